"""Fetch a remote image into a temporary file: streamed, capped and checked before it is kept."""

from __future__ import annotations

import ipaddress
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, cast

from PIL import Image, UnidentifiedImageError

from .client import DOWNLOAD_SECONDS, NeuralDraftClient
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

#: Most memory a decode for the dominant colour may take (or the file's own size,
#: when that is larger). Sequential JPEGs are decoded at 1/8 scale and fit
#: whatever their size; a larger PNG, WebP or GIF, or a progressive JPEG, gets no
#: colour rather than a decode that costs several times the file (see decode_cost).
DOMINANT_COLOR_DECODE_BYTES = 8 * 1024 * 1024

#: Start-of-frame markers (SOF0 to SOF15 but DHT, JPG and DAC), and those of
#: progressive frames; SOS starts a scan.
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_PROGRESSIVE_FRAMES = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_JPEG_SCAN = 0xDA
#: Header segments read before the first scan; a JPEG with more is taken as the costly kind.
_JPEG_HEADER_SEGMENTS = 256

#: The (horizontal, vertical) sampling factors of a JPEG's components.
Sampling = tuple[tuple[int, int], ...]

_DOWNLOADED = "The downloaded file"
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
    #: ``#rrggbb``, or ``""`` for a large non-JPEG image (see DOMINANT_COLOR_DECODE_BYTES).
    dominant_color: str


@contextmanager
def fetch_image(
    client: NeuralDraftClient,
    url: str,
    *,
    policy: DownloadPolicy,
    max_bytes: int,
    max_pixels: int,
    max_seconds: float = DOWNLOAD_SECONDS,
) -> Iterator[DownloadedImage]:
    """Download ``url`` and yield it verified; the temporary file is gone on exit.

    The body never sits whole in memory, and the file is anonymous, so a
    worker killed mid-download leaves nothing behind. Raises a
    ``DownloadError`` subclass for a refused URL, an oversized body or bytes
    that are not a JPEG, PNG, WebP or GIF image within ``max_pixels``, and
    DownloadError for a download that takes longer than ``max_seconds``.
    """
    with tempfile.TemporaryFile(prefix="neuraldraft-") as file:
        info = client.download(
            url, file, max_bytes=max_bytes, policy=policy, max_seconds=max_seconds
        )
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


def inspect_image(
    file: IO[bytes], *, max_pixels: int, source: str = _DOWNLOADED
) -> tuple[str, int, int, str]:
    """Return ``(format, width, height, dominant colour)`` of the image in ``file``.

    One ``Image.open``, restricted to the accepted formats, reads the header:
    format and size are checked (the pixel cap stops decompression bombs)
    before any pixel is decoded, and animated images are refused. A WebP is
    read from its RIFF header instead (Pillow reads the whole file to open
    one, and copies it). PNG chunks are checked in blocks; the dominant
    colour is decoded only within :data:`DOMINANT_COLOR_DECODE_BYTES` (see
    :func:`decode_cost`). Whatever Pillow raises on a hostile file becomes
    InvalidImageError, whose message names the file as ``source`` (the
    downloaded file by default; an upload says so).
    """
    try:
        size = file.seek(0, 2)
        file.seek(0)
        if file.read(12)[8:] == b"WEBP":
            width, height = _webp_header(file, size, max_pixels)
            if decode_cost("WEBP", "RGBA", width, height, size) > _decode_budget(size):
                return "WEBP", width, height, ""
        file.seek(0)
        with Image.open(file, formats=list(IMAGE_FORMATS)) as image:
            image_format, (width, height) = image.format or "", image.size
            _check_header(image, max_pixels)
            if image_format == "PNG":
                _verify_png_chunks(file)
            buffered = (
                _jpeg_buffered_sampling(file, len(image.getbands()))
                if image_format == "JPEG"
                else None
            )
            cost = decode_cost(
                image_format, image.mode, width, height, size, buffered_sampling=buffered
            )
            padded = size > width * height * 4 + _METADATA_ALLOWANCE
            color = "" if padded or cost > _decode_budget(size) else _dominant_color(image)
    except InvalidImageError:
        raise
    except _Malformed as err:
        raise InvalidImageError(f"{source} is not a valid image: {err}") from None
    except UnidentifiedImageError as err:
        raise InvalidImageError(f"{source} is not a JPEG, PNG, WebP or GIF image.") from err
    except _PILLOW_ERRORS as err:
        raise InvalidImageError(
            f"{source} is not a valid image: {type(err).__name__}: {err}"
        ) from err
    return image_format, width, height, color


class _Malformed(Exception):
    """A structural flaw found by our own header checks; inspect_image names the file."""


#: What Pillow raises on hostile files: decompression bombs (``DecompressionBombError``,
#: and ``ValueError`` for zTXt/iCCP chunks past ``MAX_TEXT_CHUNK``), truncated or
#: corrupt data (``OSError``, ``SyntaxError``, ``EOFError``, ``struct.error``) and
#: malformed headers (``IndexError``, ``KeyError``, ``TypeError``, ``ZeroDivisionError``).
_PILLOW_ERRORS = (
    Image.DecompressionBombError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
)


def _check_header(image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if image.format not in IMAGE_FORMATS:
        raise InvalidImageError(f"{image.format} images are not accepted.")
    _check_pixels(width, height, max_pixels)
    if getattr(image, "is_animated", False):
        raise InvalidImageError(
            f"The image is an animated {image.format}; only still images are accepted."
        )


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise _Malformed(f"it is {width}x{height} pixels.")
    if width * height > max_pixels:
        raise InvalidImageError(
            f"The image is {width}x{height} pixels, more than the "
            f"{max_pixels} of NEURALDRAFT['MAX_PIXELS']."
        )


def decode_cost(
    image_format: str,
    mode: str,
    width: int,
    height: int,
    file_bytes: int,
    *,
    buffered_sampling: Sampling | None = None,
) -> int:
    """Return the bytes of memory decoding the image for its dominant colour takes.

    Pillow keeps 1 byte per pixel for ``L``/``P``/``1`` images and 4 for the
    rest (RGB included). A JPEG is decoded at 1/8 scale, but one that comes in
    several scans (``buffered_sampling``, see :func:`_jpeg_buffered_sampling`)
    first has libjpeg keep every DCT coefficient of the whole image, whatever
    the scale: 2 bytes each, 64 per 8x8 block of each component. Opening a WebP
    reads and copies the whole file, and decoding one makes three RGBA canvases.
    """
    per_pixel = 1 if mode in ("1", "L", "P") else 4
    if image_format == "JPEG":
        scaled = per_pixel * _ceil_div(width, 8) * _ceil_div(height, 8)
        if buffered_sampling is None:
            return scaled
        return scaled + _coefficient_bytes(width, height, buffered_sampling)
    if image_format == "WEBP":
        return 2 * file_bytes + 3 * 4 * width * height
    return per_pixel * width * height


def _coefficient_bytes(width: int, height: int, sampling: Sampling) -> int:
    """The bytes of libjpeg's whole-image coefficient buffer: 128 per 8x8 block
    of each component, its blocks rounded up to whole MCUs as libjpeg does."""
    most_across = max(across for across, _down in sampling)
    most_down = max(down for _across, down in sampling)
    blocks = 0
    for across, down in sampling:
        columns = _ceil_div(width * across, most_across * 8)
        rows = _ceil_div(height * down, most_down * 8)
        blocks += _ceil_div(columns, across) * across * _ceil_div(rows, down) * down
    return 128 * blocks


def _ceil_div(dividend: int, divisor: int) -> int:
    return -(-dividend // divisor)


def _jpeg_buffered_sampling(file: IO[bytes], bands: int) -> Sampling | None:
    """The sampling of a JPEG's components if libjpeg keeps the whole image's
    coefficients to decode it, ``None`` if it decodes it scan by scan.

    It keeps them when the image comes in several scans: a progressive JPEG,
    or a sequential one whose first scan leaves components for later. The
    header segments are walked up to the first scan; a header this walk cannot
    follow (fill bytes, a zero sampling factor, too many segments) is taken as
    the costly kind, ``bands`` components at full sampling, so that it only
    loses its dominant colour.
    """
    unknown = ((1, 1),) * bands
    file.seek(2)
    sampling: Sampling | None = None
    progressive = False
    for _segment in range(_JPEG_HEADER_SEGMENTS):
        head = file.read(4)
        if len(head) < 4 or head[0] != 0xFF or head[1] == 0xFF:
            return unknown
        marker, length = head[1], int.from_bytes(head[2:], "big")
        if length < 2:
            return unknown
        body = file.read(length - 2) if marker in _JPEG_FRAMES or marker == _JPEG_SCAN else b""
        if marker in _JPEG_FRAMES:
            progressive = marker in _JPEG_PROGRESSIVE_FRAMES
            components = body[5] if len(body) > 5 else 0
            factors = body[7 : 6 + 3 * components : 3]
            sampling = tuple((factor >> 4, factor & 0x0F) for factor in factors)
            if not sampling or len(sampling) < components or any(0 in f for f in sampling):
                return unknown
        elif marker == _JPEG_SCAN:
            if sampling is None or not body:
                return unknown
            return sampling if progressive or body[0] < len(sampling) else None
        else:
            file.seek(length - 2, 1)
    return unknown


def _decode_budget(file_bytes: int) -> int:
    # A decode as large as the file itself stays within the 1.2x the benchmark
    # holds ingest to; below DOMINANT_COLOR_DECODE_BYTES any decode is small enough.
    return max(DOMINANT_COLOR_DECODE_BYTES, file_bytes)


def _webp_header(file: IO[bytes], size: int, max_pixels: int) -> tuple[int, int]:
    """Walk a WebP's RIFF chunks without reading their payloads; return its canvas size.

    Refuses a RIFF size that disagrees with the file, chunks that overrun it,
    animation and a canvas over ``max_pixels``.
    """
    file.seek(4)
    (riff_size,) = struct.unpack("<I", file.read(4))
    if riff_size + 8 != size:
        raise _Malformed("the WebP's RIFF size is not its length.")
    position, dimensions, animated = 12, None, False
    while position < size:
        file.seek(position)
        header = file.read(8)
        if len(header) < 8:
            raise _Malformed("truncated WebP chunk header.")
        kind, length = header[:4], struct.unpack("<I", header[4:])[0]
        end = position + 8 + length + (length & 1)
        if end > size:
            raise _Malformed(f"WebP chunk {kind!r} overruns the file.")
        if dimensions is None:
            dimensions, animated = _webp_first_chunk(kind, file.read(min(length, 10)))
        animated = animated or kind in (b"ANIM", b"ANMF")
        position = end
    if dimensions is None:
        raise _Malformed("a WebP without image data.")
    if animated:
        raise InvalidImageError("The image is an animated WebP; only still images are accepted.")
    _check_pixels(*dimensions, max_pixels)
    return dimensions


def _webp_first_chunk(kind: bytes, data: bytes) -> tuple[tuple[int, int], bool]:
    """Read the canvas size from the first chunk: VP8X, VP8L (lossless) or VP8 (lossy)."""
    if kind == b"VP8X" and len(data) >= 10:
        width = 1 + int.from_bytes(data[4:7], "little")
        height = 1 + int.from_bytes(data[7:10], "little")
        return (width, height), bool(data[0] & 0x02)
    if kind == b"VP8L" and len(data) >= 5 and data[0] == 0x2F:
        bits = int.from_bytes(data[1:5], "little")
        return (1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)), False
    if kind == b"VP8 " and len(data) >= 10 and data[3:6] == b"\x9d\x01\x2a":
        width = int.from_bytes(data[6:8], "little") & 0x3FFF
        height = int.from_bytes(data[8:10], "little") & 0x3FFF
        return (width, height), False
    raise _Malformed(f"the WebP starts with an unknown {kind!r} chunk.")


def _verify_png_chunks(file: IO[bytes]) -> None:
    """Check every PNG chunk's CRC up to IEND, reading in 64 KB blocks.

    Pillow's ``verify()`` reads each chunk whole (twice its size at peak), so
    one huge chunk, legal in PNG, would cost its size in memory.
    """
    file.seek(0)
    if file.read(8) != _PNG_SIGNATURE:
        raise _Malformed("no PNG signature.")
    while True:
        header = file.read(8)
        if len(header) < 8:
            raise _Malformed("truncated PNG, no IEND chunk.")
        length, kind = struct.unpack(">I4s", header)
        crc = zlib.crc32(kind)
        remaining = length
        while remaining:
            block = file.read(min(remaining, _CRC_BLOCK))
            if not block:
                raise _Malformed("truncated PNG.")
            crc = zlib.crc32(block, crc)
            remaining -= len(block)
        stored = file.read(4)
        if len(stored) < 4 or struct.unpack(">I", stored)[0] != crc:
            raise _Malformed(f"PNG chunk {kind!r} has a bad CRC.")
        if kind == b"IEND":
            return


def _dominant_color(image: Image.Image) -> str:
    if image.format == "JPEG":
        image.draft("RGB", (64, 64))
    if "A" in image.mode:
        # Resampling premultiplies alpha in a full-size copy; a 64x64 sample does not.
        width, height = image.size
        scale = min(1.0, 64 / max(width, height))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.NEAREST)
    else:
        image.thumbnail((64, 64))
    palette_image = image.convert("RGB").quantize(colors=5)
    palette = palette_image.getpalette() or []
    # The colours of a "P" image are palette indexes; Pillow's types allow any colour.
    colors = cast("list[tuple[int, int]]", palette_image.getcolors() or [(0, 0)])
    _count, index = max(colors)
    red, green, blue = palette[index * 3 : index * 3 + 3]
    return f"#{red:02x}{green:02x}{blue:02x}"
