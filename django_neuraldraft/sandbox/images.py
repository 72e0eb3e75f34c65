"""Image bytes the sandbox serves: deterministic renders, upload inspection, fault payloads.

Rendered images are a pure function of their inputs, so tests can compare
bytes and hashes across runs. They are as large and as heavy as the API's
(2048 pixels on the long side, a JPEG of about half a megabyte), with
gradients, shapes and a photographic texture, so a person looking at the
demo sees that different prompts give different pictures and an encoder
measured on them does the work a real photograph asks for.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageChops, ImageDraw

#: The aspect ratios the API accepts, as (width, height) proportions.
ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "1:1": (1, 1),
    "16:9": (16, 9),
    "9:16": (9, 16),
    "4:5": (4, 5),
    "4:3": (4, 3),
    "3:2": (3, 2),
}

#: Pillow format name -> MIME type, for the formats an upload may use.
UPLOAD_FORMATS: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
}

#: File extension used in CDN paths for each MIME type.
EXTENSIONS: dict[str, str] = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/gif": "gif",
}

_BACKGROUND_SIZE = 128


def image_size(aspect_ratio: str, long_edge: int) -> tuple[int, int]:
    """Return ``(width, height)`` for ``aspect_ratio`` with the longer side ``long_edge``.

    The short side is ``long_edge * short / long`` rounded half up, in integer
    arithmetic so no float rounding can make 4:5 come out one pixel off.
    """
    across, down = ASPECT_RATIOS[aspect_ratio]
    if across >= down:
        return long_edge, (2 * long_edge * down + across) // (2 * across)
    return (2 * long_edge * across + down) // (2 * down), long_edge


def render_fingerprint(
    prompt: str, style: str | None, aspect_ratio: str, size: tuple[int, int]
) -> str:
    """Return the sha256 hex digest that names a render: same inputs, same digest, same bytes."""
    material = json.dumps([prompt, style, aspect_ratio, list(size)], ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()


def _seed_bytes(fingerprint: str) -> Iterator[int]:
    """Yield an endless, reproducible byte stream expanded from ``fingerprint`` with sha256."""
    counter = 0
    while True:
        yield from hashlib.sha256(f"{fingerprint}:{counter}".encode()).digest()
        counter += 1


@dataclass
class _Palette:
    """Colour and position picks drawn from the seed stream, one byte at a time."""

    stream: Iterator[int]

    def byte(self) -> int:
        return next(self.stream)

    def fraction(self) -> float:
        return self.byte() / 255

    def colour(self, alpha: int | None = None) -> tuple[int, ...]:
        rgb = (self.byte(), self.byte(), self.byte())
        return rgb if alpha is None else (*rgb, alpha)


#: Formats a generated image may be written in: name -> (MIME type, extension).
RENDER_FORMATS = {
    "jpeg": ("image/jpeg", "jpg"),
    "png": ("image/png", "png"),
    "webp": ("image/webp", "webp"),
}

#: Encoder settings per format. JPEG quality 82 puts a 2048x1152 render near the
#: weight of the API docs' example (482,911 bytes); WebP 80 is its usual default.
_ENCODER_OPTIONS: dict[str, dict[str, Any]] = {
    "jpeg": {"format": "JPEG", "quality": 82},
    "png": {"format": "PNG", "compress_level": 1},
    "webp": {"format": "WEBP", "quality": 80, "method": 2},
}

#: Value-noise octaves of the texture, as (cell size in pixels, weight): coarse
#: clouds to fine grain, as a photograph has detail at every scale.
_OCTAVES = ((128, 1.0), (32, 0.5), (8, 0.35), (2, 0.25))
_TEXTURE_CONTRAST = 2.0
_GRAIN_CONTRAST = 0.1


@functools.lru_cache(maxsize=8)
def render_image(
    prompt: str,
    style: str | None,
    aspect_ratio: str,
    size: tuple[int, int],
    image_format: str = "jpeg",
) -> bytes:
    """Render the image for a generation request as JPEG (the default), PNG or WebP.

    A two-colour gradient background (vertical, horizontal, diagonal or
    radial), a "sun", a band of hills and a few translucent circles and
    rectangles, all placed and coloured from the request's sha256, under a
    texture of value noise at several scales and a film grain. The texture
    is what makes the file weigh what a photograph weighs and what gives
    encoders realistic work: flat colour would compress to almost nothing
    and flatter every figure measured on it.

    Renders are a pure function of their arguments and cost about 0.04 s at
    2048x1152 (JPEG), so the last few are kept: a test suite asks for the
    same prompts again and again.
    """
    width, height = size
    fingerprint = render_fingerprint(prompt, style, aspect_ratio, size)
    pick = _Palette(_seed_bytes(fingerprint))
    image = _background(pick, width, height)
    draw = ImageDraw.Draw(image, "RGBA")
    unit = min(width, height)
    for _ in range(3 + pick.byte() % 4):
        x, y = pick.fraction() * width, pick.fraction() * height
        radius = unit * (0.05 + 0.2 * pick.fraction())
        box = (x - radius, y - radius, x + radius, y + radius)
        if pick.byte() % 3:
            draw.ellipse(box, fill=pick.colour(90 + pick.byte() // 2))
        else:
            draw.rectangle(box, fill=pick.colour(70 + pick.byte() // 2))
    sun_x, sun_y = pick.fraction() * width, (0.15 + 0.35 * pick.fraction()) * height
    sun_r = unit * (0.08 + 0.12 * pick.fraction())
    draw.ellipse(
        (sun_x - sun_r, sun_y - sun_r, sun_x + sun_r, sun_y + sun_r), fill=pick.colour(230)
    )
    for layer in range(2):
        base = height * (0.7 + 0.12 * layer)
        peaks: list[tuple[float, float]] = [(0, height), (0, base)]
        steps = 4 + pick.byte() % 4
        for step in range(1, steps + 1):
            peaks.append((width * step / steps, base - pick.fraction() * height * 0.25))
        peaks.append((width, height))
        draw.polygon(peaks, fill=pick.colour(200 + 25 * layer))
    left, top = pick.byte() * (width // 4) // 255, pick.byte() * (height // 4) // 255
    texture = _texture((width + width // 4, height + height // 4))
    grey = texture.crop((left, top, left + width, top + height))
    image = ImageChops.soft_light(image, Image.merge("RGB", (grey, grey, grey)))
    buffer = io.BytesIO()
    image.save(buffer, **_ENCODER_OPTIONS[image_format])
    return buffer.getvalue()


def _noise(seed: bytes, size: tuple[int, int]) -> Image.Image:
    """Uniform grey noise, reproducible from ``seed`` (SHAKE-256 gives any length at once)."""
    return Image.frombytes("L", size, hashlib.shake_256(seed).digest(size[0] * size[1]))


def _contrast(image: Image.Image, gain: float) -> Image.Image:
    """Scale each grey level's distance from mid-grey by ``gain``, clipped to 0..255."""
    return image.point([max(0, min(255, round(128 + (v - 128) * gain))) for v in range(256)])


@functools.lru_cache(maxsize=4)
def _texture(size: tuple[int, int]) -> Image.Image:
    """Mid-grey-centred texture: :data:`_OCTAVES` of value noise, plus grain, for soft light.

    Drawing it is half the cost of a render, so there is one per size, kept,
    drawn a quarter larger than the picture: each render takes its own window
    of it, at an offset drawn from its hash.
    """
    seed = b"neuraldraft-sandbox-texture"
    width, height = size
    layers = [
        _noise(seed + bytes([octave]), (max(2, width // cell), max(2, height // cell))).resize(
            size, Image.Resampling.BICUBIC
        )
        for octave, (cell, _weight) in enumerate(_OCTAVES)
    ]
    texture = layers[0]
    for layer, (_cell, weight) in zip(layers[1:], _OCTAVES[1:], strict=True):
        texture = Image.blend(texture, layer, weight / (1 + weight))
    grain = _contrast(_noise(seed + b"grain", size), _GRAIN_CONTRAST)
    return ImageChops.add(_contrast(texture, _TEXTURE_CONTRAST), grain, 1, -128)


def _background(pick: _Palette, width: int, height: int) -> Image.Image:
    """Return an RGB gradient between two seeded colours, drawn small and scaled to size."""
    mode = pick.byte() % 4
    if mode == 3:
        mask = Image.radial_gradient("L").resize((_BACKGROUND_SIZE, _BACKGROUND_SIZE))
    else:
        vertical = Image.linear_gradient("L").resize((_BACKGROUND_SIZE, _BACKGROUND_SIZE))
        horizontal = vertical.transpose(Image.Transpose.ROTATE_90)
        mask = (vertical, horizontal, Image.blend(vertical, horizontal, 0.5))[mode]
    start = Image.new("RGB", mask.size, pick.colour())
    end = Image.new("RGB", mask.size, pick.colour())
    small = Image.composite(end, start, mask)
    return small.resize((width, height), Image.Resampling.BILINEAR)


@dataclass(frozen=True)
class UploadInfo:
    """What an upload turned out to be, once Pillow has read its header."""

    mime_type: str
    width: int
    height: int


def inspect_upload(data: bytes) -> UploadInfo:
    """Identify uploaded bytes as JPEG, PNG, WebP or GIF; raise ``ValueError`` for anything else.

    ``verify()`` walks the file structure without decoding pixels, so a
    truncated or disguised file is refused without the cost of a full decode.
    """
    try:
        with Image.open(io.BytesIO(data), formats=list(UPLOAD_FORMATS)) as image:
            info = UploadInfo(UPLOAD_FORMATS[image.format or ""], image.width, image.height)
            image.verify()
    except Exception as err:  # Pillow raises many unrelated types for bad input.
        raise ValueError("The file must be a JPEG, PNG, WebP or GIF image.") from err
    return info


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@functools.lru_cache(maxsize=8)
def blank_png(width: int, height: int) -> bytes:
    """Return a valid one-colour 1-bit PNG of any size, built without a pixel buffer.

    Pillow would allocate the whole image first (gigabytes for the sizes the
    pixel-cap tests want); writing zero rows straight into zlib keeps memory
    at one row.
    """
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = bytes(1 + (width + 7) // 8)
    rows_per_block = max(1, (1 << 20) // len(row))
    compressor = zlib.compressobj(9)
    pieces = []
    for start in range(0, height, rows_per_block):
        pieces.append(compressor.compress(row * min(rows_per_block, height - start)))
    pieces.append(compressor.flush())
    return (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(pieces))
        + _png_chunk(b"IEND", b"")
    )


def padded_png(min_bytes: int) -> bytes:
    """Return a small valid PNG padded with a private ancillary chunk to at least ``min_bytes``.

    Decoders skip unknown ancillary chunks (lower-case first letter), so the
    file stays a decodable 8x8 image however large it is.
    """
    small = blank_png(8, 8)
    missing = max(0, min_bytes - len(small) - 12)
    iend = _png_chunk(b"IEND", b"")
    return small[: -len(iend)] + _png_chunk(b"ndPd", bytes(missing)) + iend


#: Bytes a PNG text or ICC chunk inflates to in the bomb variants: past Pillow's
#: ``MAX_TEXT_CHUNK`` (1 MB), from a few KB on the wire.
_BOMB_INFLATED_BYTES = 8 * 1024 * 1024


@functools.lru_cache(maxsize=8)
def hostile_image(variant: str) -> tuple[bytes, str]:
    """Return ``(bytes, content type)`` for a ``hostile_image`` fault: files that must be refused.

    ``text_bomb`` and ``icc_bomb`` are small PNGs whose zTXt or iCCP chunk
    inflates to 8 MB; the ``animated_*`` variants have two frames; ``tiff``
    is a TIFF served as ``image/png``.
    """
    if variant in ("text_bomb", "icc_bomb"):
        inflated = zlib.compress(bytes(_BOMB_INFLATED_BYTES), 9)
        if variant == "text_bomb":
            chunk = _png_chunk(b"zTXt", b"Comment\x00\x00" + inflated)
        else:
            chunk = _png_chunk(b"iCCP", b"icc\x00\x00" + inflated)
        small = blank_png(8, 8)
        return small[:33] + chunk + small[33:], "image/png"
    buffer = io.BytesIO()
    if variant == "tiff":
        Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="TIFF")
        return buffer.getvalue(), "image/png"
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((200, 30, 30), (30, 30, 200))]
    image_format = {"animated_gif": "GIF", "animated_png": "PNG", "animated_webp": "WEBP"}[variant]
    frames[0].save(buffer, format=image_format, save_all=True, append_images=frames[1:])
    return buffer.getvalue(), f"image/{image_format.lower()}"
