"""Fetch a remote image into a temporary file: streamed, capped and checked before it is kept."""

from __future__ import annotations

import ipaddress
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from PIL import Image, UnidentifiedImageError

from .client import NeuralDraftClient
from .client._pinning import resolve as client_resolve
from .client.urls import HTTPURL, IPAddress
from .exceptions import DownloadRefusedError, InvalidImageError

#: Pillow format -> (MIME type, file extension). Anything else is refused.
IMAGE_FORMATS = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
    "GIF": ("image/gif", "gif"),
}

#: Largest image decoded in full to find its dominant colour. JPEGs are decoded
#: at a reduced scale whatever their size; larger images of other formats get no
#: colour rather than a decode that costs width x height x 4 bytes of memory.
DOMINANT_COLOR_MAX_PIXELS = 4_000_000

_NOT_AN_IMAGE = "The downloaded bytes are not a valid image"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CRC_BLOCK = 64 * 1024
#: Bytes a file may carry beyond its raw pixels (metadata, colour profiles)
#: before it is taken as padded and not decoded for its colour.
_METADATA_ALLOWANCE = 1024 * 1024

_ACCEPTED_CONTENT_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, RFC 6052).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class DownloadPolicy:
    """Decide where a URL may be fetched from; asked for the first URL and every redirect.

    ``allowed`` holds host names (``cdn.neuraldraft.io``), parent domains with a
    leading dot (``.example.com``) and IP addresses or networks (``10.0.0.0/8``).
    Called with a URL parsed by :func:`~django_neuraldraft.client.urls.parse_http_url`,
    it returns the addresses the client may connect to, or raises
    DownloadRefusedError. A URL passes when its host is allowed *and* every
    address it resolves to is public (not private, loopback, link-local,
    multicast, reserved or unspecified, nor an IPv6 form embedding such an
    IPv4 address) or inside an allowed network, so an allowed name that
    points at the private network (a poisoned record, a rebinding attack) is
    still refused. The name is resolved here, once, and the client connects
    to what was returned: no second answer is ever used.
    """

    def __init__(
        self,
        allowed: Iterable[str],
        *,
        resolve: Callable[[str, int], Iterable[IPAddress | str]] | None = None,
    ) -> None:
        #: ``resolve(host, port)`` returns the host's addresses; the system resolver by default.
        self.resolve = resolve or client_resolve
        self.hosts: set[str] = set()
        self.networks: list[IPNetwork] = []
        for entry in allowed:
            try:
                self.networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                self.hosts.add(entry.lower())

    def __call__(self, url: HTTPURL) -> list[IPAddress]:
        host = url.host
        if not self._host_allowed(url):
            raise DownloadRefusedError(
                f"Refused to download from {host}: not in NEURALDRAFT['ALLOWED_DOWNLOAD_HOSTS'].",
                url=url.url,
            )
        addresses = [url.address] if url.address is not None else self._resolve(url)
        for address in addresses:
            reason = self._refusal(address)
            if reason:
                raise DownloadRefusedError(
                    f"Refused to download from {host}: it resolves to {address}, {reason} "
                    "that is not allow-listed.",
                    url=url.url,
                )
        return addresses

    def _host_allowed(self, url: HTTPURL) -> bool:
        if url.address is not None:
            return self._in_allowed_network(url.address)
        return url.host in self.hosts or any(
            entry.startswith(".") and url.host.endswith(entry) for entry in self.hosts
        )

    def _in_allowed_network(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def _refusal(self, address: IPAddress) -> str:
        """Return why ``address`` may not be connected to, or ``""``."""
        if self._in_allowed_network(address):
            return ""
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            if self._in_allowed_network(embedded):
                return ""
            address = embedded
        if address.is_multicast:
            return "a multicast address"
        if address.is_unspecified or address.is_reserved:
            return "a reserved address"
        if not address.is_global:
            return "a private, loopback or link-local address"
        return ""

    def _resolve(self, url: HTTPURL) -> list[IPAddress]:
        try:
            answers = list(self.resolve(url.host, url.port))
        except OSError as err:
            raise DownloadRefusedError(f"Cannot resolve {url.host}: {err}.", url=url.url) from err
        addresses = [ipaddress.ip_address(str(answer).split("%", 1)[0]) for answer in answers]
        if not addresses:
            raise DownloadRefusedError(f"Cannot resolve {url.host}: no address.", url=url.url)
        return addresses


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address routes to (mapped, NAT64, 6to4, Teredo), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


@dataclass(frozen=True)
class DownloadedImage:
    """A verified image waiting in a temporary file, with what was learnt about it."""

    file: IO[bytes]
    url: str
    bytes: int
    sha256: str
    mime_type: str
    extension: str
    width: int
    height: int
    #: ``#rrggbb``, or ``""`` for a large non-JPEG image (see DOMINANT_COLOR_MAX_PIXELS).
    dominant_color: str


@contextmanager
def fetch_image(
    client: NeuralDraftClient,
    url: str,
    *,
    policy: DownloadPolicy,
    max_bytes: int,
    max_pixels: int,
) -> Iterator[DownloadedImage]:
    """Download ``url`` and yield it verified; the temporary file is gone on exit.

    The body never sits whole in memory, and the file is anonymous, so a
    worker killed mid-download leaves nothing behind. Raises a
    ``DownloadError`` subclass for a refused URL, an oversized body or bytes
    that are not a JPEG, PNG, WebP or GIF image within ``max_pixels``.
    """
    with tempfile.TemporaryFile(prefix="neuraldraft-") as file:
        info = client.download(url, file, max_bytes=max_bytes, policy=policy)
        content_type = (info.content_type or "").split(";", 1)[0].strip().lower()
        if content_type and not content_type.startswith(_ACCEPTED_CONTENT_TYPES):
            raise InvalidImageError(
                f"The image URL answered {content_type!r}, not an image.", url=info.url
            )
        image_format, width, height, color = inspect_image(file, max_pixels=max_pixels)
        mime_type, extension = IMAGE_FORMATS[image_format]
        file.seek(0)
        yield DownloadedImage(
            file=file,
            url=info.url,
            bytes=info.bytes,
            sha256=info.sha256,
            mime_type=mime_type,
            extension=extension,
            width=width,
            height=height,
            dominant_color=color,
        )


def inspect_image(file: IO[bytes], *, max_pixels: int) -> tuple[str, int, int, str]:
    """Return ``(format, width, height, dominant colour)`` of the image in ``file``.

    The header gives format and size before any pixel is decoded, so the
    pixel cap stops decompression bombs before they cost memory.
    """
    try:
        file.seek(0)
        with Image.open(file) as image:
            image_format, (width, height) = image.format, image.size
            if image_format not in IMAGE_FORMATS:
                raise InvalidImageError(f"{image_format} images are not accepted.")
            if width * height > max_pixels:
                raise InvalidImageError(
                    f"The image is {width}x{height} pixels, more than the "
                    f"{max_pixels} of NEURALDRAFT['MAX_PIXELS']."
                )
            if image_format == "PNG":
                _verify_png_chunks(file)
            else:
                image.verify()
        size = file.seek(0, 2)
        file.seek(0)
        with Image.open(file) as image:
            # Pillow reads every chunk after the pixels whole while decoding; a file
            # much larger than its raw pixels is mostly such chunks.
            padded = size > width * height * 4 + _METADATA_ALLOWANCE
            color = "" if padded else _dominant_color(image)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as err:
        raise InvalidImageError(f"{_NOT_AN_IMAGE}: {err}") from err
    return image_format, width, height, color


def _verify_png_chunks(file: IO[bytes]) -> None:
    """Check every PNG chunk's CRC up to IEND, reading in 64 KB blocks.

    Pillow's ``verify()`` reads each chunk whole (twice its size at peak), so
    one huge chunk, legal in PNG, would cost its size in memory.
    """
    file.seek(0)
    if file.read(8) != _PNG_SIGNATURE:
        raise InvalidImageError(f"{_NOT_AN_IMAGE}: no PNG signature.")
    while True:
        header = file.read(8)
        if len(header) < 8:
            raise InvalidImageError(f"{_NOT_AN_IMAGE}: truncated PNG, no IEND chunk.")
        length, kind = struct.unpack(">I4s", header)
        crc = zlib.crc32(kind)
        remaining = length
        while remaining:
            block = file.read(min(remaining, _CRC_BLOCK))
            if not block:
                raise InvalidImageError(f"{_NOT_AN_IMAGE}: truncated PNG.")
            crc = zlib.crc32(block, crc)
            remaining -= len(block)
        stored = file.read(4)
        if len(stored) < 4 or struct.unpack(">I", stored)[0] != crc:
            raise InvalidImageError(f"{_NOT_AN_IMAGE}: PNG chunk {kind!r} has a bad CRC.")
        if kind == b"IEND":
            return


def _dominant_color(image: Image.Image) -> str:
    if image.format == "JPEG":
        image.draft("RGB", (64, 64))
    elif image.width * image.height > DOMINANT_COLOR_MAX_PIXELS:
        return ""
    image.thumbnail((64, 64))
    palette_image = image.convert("RGB").quantize(colors=5)
    palette = palette_image.getpalette() or []
    _count, index = max(palette_image.getcolors() or [(0, 0)])
    red, green, blue = palette[index * 3 : index * 3 + 3]
    return f"#{red:02x}{green:02x}{blue:02x}"
