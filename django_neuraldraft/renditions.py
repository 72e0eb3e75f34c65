"""Responsive renditions: smaller widths and modern formats of an image, made once in the worker.

A version is bound as soon as its original is stored; its renditions follow
in a task of their own (``neuraldraft.make_renditions``), queued when the
version's row commits, which records them on ``ImageVersion.renditions`` and
invalidates the key's cached data. docs/renditions.rst says why it is not
the other way round. Rendering reads the recorded list and never calls
Pillow or the storage backend.

Each rendition is a file beside the original, named after the original's
sha256, its width and its encoder quality
(``<UPLOAD_TO>/<key>/<sha256>/<width>w-q<quality>.<ext>``), so a name always
holds the same bytes: files are written once and never replaced, and a
change of settings makes new names instead of rewriting old ones.
"""

from __future__ import annotations

import io
import logging
import posixpath
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import IO, Any

from celery import current_app
from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from django.db import transaction
from PIL import ExifTags, Image, ImageCms, UnidentifiedImageError, features

from . import conf, resolver
from .downloads import IMAGE_FORMATS
from .low_priority import call_at_low_priority
from .models import ImageKey, ImageVersion
from .storage import delete_file, save_immutable

logger = logging.getLogger(__name__)

#: The Celery task that makes a version's renditions (see ``tasks.make_renditions``).
TASK_NAME = "neuraldraft.make_renditions"


@dataclass(frozen=True)
class RenditionFormat:
    """How one output format is written, and what a browser is told about it."""

    #: The name Pillow saves it under.
    pillow_format: str
    mime_type: str
    extension: str
    #: Whether it keeps transparency; an image with alpha is flattened on white otherwise.
    alpha: bool
    #: Encoder settings besides the quality, chosen for the cost budget in docs/renditions.rst.
    options: dict[str, Any] = field(default_factory=dict)


#: How each of ``conf.RENDITION_FORMAT_NAMES`` is written, by the name used in
#: ``RENDITION_FORMATS`` and in each recorded rendition's ``"format"``.
FORMATS: dict[str, RenditionFormat] = {
    # One thread: a worker's processes are the parallelism, and encoder threads
    # only contend with them. Speed 9 costs a twelfth of the default 6, for files
    # within 6% of the size and 0.4 dB of the PSNR on photographs (docs/renditions.rst).
    "avif": RenditionFormat(
        "AVIF",
        "image/avif",
        "avif",
        alpha=True,
        options={"speed": 9, "max_threads": 1},
    ),
    "webp": RenditionFormat("WEBP", "image/webp", "webp", alpha=True, options={"method": 4}),
    "jpeg": RenditionFormat(
        "JPEG",
        "image/jpeg",
        "jpg",
        alpha=False,
        options={"optimize": True, "progressive": True},
    ),
    "png": RenditionFormat("PNG", "image/png", "png", alpha=True),
}

#: The fallback format for each original's MIME type. GIF has none: GIFs are
#: mostly animations, which a still rendition would replace with one frame.
FALLBACK_FORMATS = {"image/jpeg": "jpeg", "image/png": "png", "image/webp": "webp"}

#: Formats a Pillow build may lack; ``PIL.features.check`` knows them by these names.
_OPTIONAL_CODECS = frozenset({"avif", "webp"})

_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_warned_unwritable: set[str] = set()


def pillow_can_write(image_format: str) -> bool:
    """Whether the installed Pillow can encode ``image_format`` (a key of :data:`FORMATS`).

    AVIF needs Pillow 11.2 or later built with libavif, WebP a build with
    libwebp; JPEG and PNG are always there.
    """
    return image_format not in _OPTIONAL_CODECS or bool(features.check(image_format))


def writable_formats() -> tuple[str, ...]:
    """``RENDITION_FORMATS`` without those this Pillow cannot write, each warned about once."""
    formats = []
    for name in conf.rendition_formats():
        if pillow_can_write(name):
            formats.append(name)
        elif name not in _warned_unwritable:
            _warned_unwritable.add(name)
            logger.warning(
                "The installed Pillow cannot write %s; renditions are made without it "
                "(system check neuraldraft.W021).",
                name.upper(),
            )
    return tuple(formats)


@dataclass(frozen=True)
class Planned:
    """One rendition the settings ask for: its format, width and file name."""

    format: str
    width: int
    name: str


def plan(version: ImageVersion) -> list[Planned]:
    """The renditions the current settings ask for ``version``, largest first in each format.

    Widths wider than the original become the original's width: nothing is
    upscaled, and an original narrower than the widest setting gets a
    rendition of its own width. The original's format comes last, as the
    fallback. An EXIF-rotated original
    is recognised from the renditions already recorded, whose width is the
    displayed one.
    """
    fallback = FALLBACK_FORMATS.get(version.mime_type)
    widths = conf.rendition_widths()
    original = version.file.name
    if fallback is None or not widths or not original:
        return []
    formats = [*(name for name in writable_formats() if name != fallback), fallback]
    shown_width = _shown_width(version)
    sizes = sorted({min(width, shown_width) for width in widths}, reverse=True)
    stem = posixpath.splitext(original)[0]
    return [
        Planned(name, width, f"{stem}/{width}w{_quality_suffix(name)}.{FORMATS[name].extension}")
        for name in formats
        for width in sizes
    ]


def _shown_width(version: ImageVersion) -> int:
    for rendition in version.renditions:
        if rendition["width"] != rendition["height"]:
            turned = (rendition["width"] > rendition["height"]) != (version.width > version.height)
            return version.height if turned else version.width
    return version.width


def _quality_suffix(image_format: str) -> str:
    if image_format not in conf.LOSSY_RENDITION_FORMATS:
        return ""
    return f"-q{conf.rendition_quality(image_format)}"


def todo(version: ImageVersion, *, check_files: bool = False) -> list[Planned]:
    """The planned renditions of ``version`` its row does not record.

    With ``check_files``, also those it records whose file the storage no
    longer has (one ``exists`` call per recorded file).
    """
    recorded = {rendition["name"] for rendition in version.renditions}
    storage = version.file.storage
    return [
        item
        for item in plan(version)
        if item.name not in recorded or (check_files and not storage.exists(item.name))
    ]


def is_current(version: ImageVersion) -> bool:
    """Whether ``version`` records exactly the renditions the settings ask for, no more."""
    return {item.name for item in plan(version)} == {r["name"] for r in version.renditions}


def schedule(version: ImageVersion) -> None:
    """Queue the making of ``version``'s renditions for when its row has committed.

    The hook every path that stores a version calls (ingest, pull, upload).
    It gives the version a renditions chain
    (:mod:`django_neuraldraft.services.rendition_chain`): the task message's token is
    written on the row, so that a message lost on the way (a broker that
    cannot be reached is logged, not raised: the version is bound already)
    is requeued by the sweep, and a duplicate is dropped.
    """
    if not plan(version):
        return
    token = ImageVersion.objects.start_chain(
        version.pk, renditions_error="", renditions_attempts=0
    )
    version.chain_token, version.renditions_error, version.renditions_attempts = token, "", 0
    pk = version.pk
    transaction.on_commit(lambda: send_task(pk, token), robust=True)


def send_task(
    version_pk: int, token: str, *, below: int | None = None, countdown: float = 0.0
) -> None:
    """Send the renditions message holding ``token``, for widths under ``below`` (all if None).

    On a Redis broker the message goes out at the lowest priority, so that a
    worker takes the polls, ingests and webhooks queued after it first; see
    :func:`message_priority`.
    """
    current_app.send_task(
        TASK_NAME,
        (version_pk,),
        {"token": token, "below": below},
        countdown=countdown,
        priority=message_priority(str(current_app.conf.broker_url or "")),
    )


#: Redis's lowest priority: Celery's Redis transport serves 0 first and 9 last.
_REDIS_LOWEST_PRIORITY = 9


@lru_cache(maxsize=8)
def message_priority(broker_url: str) -> int | None:
    """The priority of a renditions message: Redis's lowest, else none.

    Celery's Redis transport keeps a list per priority and always serves the
    highest first, with no setup. RabbitMQ counts the other way (9 highest)
    and ignores priorities on a queue declared without ``x-max-priority``, so
    there a message gets none and the queue stays first in, first out.
    """
    scheme = broker_url.partition("://")[0].partition("+")[0]
    return _REDIS_LOWEST_PRIORITY if scheme in ("redis", "rediss", "sentinel") else None


@dataclass
class Outcome:
    """What one :func:`make_for` call did."""

    #: The version's recorded renditions afterwards.
    renditions: list[dict[str, Any]]
    #: How many files were encoded and recorded by this call.
    made: int = 0
    #: ``(format, width, reason)`` of each rendition that could not be made.
    failed: list[tuple[str, int, str]] = field(default_factory=list)
    #: CPU seconds of the calling thread, by step: ``"decode"``, ``"resize"`` and each
    #: format's name. Every encoder runs on that thread, so this is the whole cost.
    cpu_seconds: dict[str, float] = field(default_factory=dict)


def make_for(
    version: ImageVersion, *, check_files: bool = False, widths: Collection[int] | None = None
) -> Outcome:
    """Make the renditions of ``version`` that are missing, store them and record them.

    Safe to call again and from two workers at once: names are fixed by the
    original and the settings, a file already stored under its name is kept,
    and both calls record the same list. A rendition that fails to encode is
    logged and left out (``Outcome.failed``); the others and the original are
    kept. An original that does not decode fails them all the same way. A
    storage that cannot be opened or written raises, after deleting what
    this call saved, with nothing recorded. ``check_files`` also remakes
    recorded renditions whose file is gone from the storage; ``widths``
    limits this call to those widths (a step of the renditions task).

    The names about to be written are noted on the row first
    (``renditions_writing``), so that files a killed worker left unrecorded
    are known: each call moves those the settings no longer ask for to
    ``renditions_dropped`` before it starts, and records the others when it
    makes them. Renditions the settings no longer ask for leave the recorded
    list for ``renditions_dropped`` too, their files kept for cached pages.

    Memory is bounded by the largest rendition for a JPEG, decoded at the
    smallest scale that still covers it (``Image.draft``); other formats are
    decoded whole, within ``MAX_PIXELS``, checked again here before any
    pixel is read. Every width is resized from that one decode.
    """
    storage = version.file.storage
    original = version.file.name
    planned = plan(version)
    recorded = {rendition["name"]: rendition for rendition in version.renditions}
    wanted = [
        item
        for item in todo(version, check_files=check_files)
        if widths is None or item.width in widths
    ]
    if not _note_writing(version, planned, wanted):
        return Outcome(renditions=[])
    outcome = Outcome(renditions=list(version.renditions))
    made: dict[str, dict[str, Any]] = {}
    saved: list[str] = []
    try:
        if wanted and original:
            call_at_low_priority(_make, storage, original, wanted, outcome, made, saved)
        kept = [made.get(item.name) or recorded.get(item.name) for item in planned]
        renditions = [rendition for rendition in kept if rendition is not None]
        changed = renditions != version.renditions or version.renditions_writing
        if changed and not _record(version, renditions):
            _delete(storage, saved)
            return Outcome(renditions=[], failed=outcome.failed, cpu_seconds=outcome.cpu_seconds)
    except BaseException:
        _delete(storage, saved)
        raise
    outcome.renditions, outcome.made = renditions, len(made)
    return outcome


def _note_writing(version: ImageVersion, planned: list[Planned], wanted: list[Planned]) -> bool:
    """Settle the names an earlier run noted, then note those this run may write.

    A name noted by an earlier run that the row does not record is a file a
    killed worker may have left. If the settings still plan it, the next
    run that makes that width finds and records it; otherwise it moves to
    ``renditions_dropped``, for cleanup to delete with the version. It is not
    deleted here: identical images share one rendition folder, so another
    version may record the same name, and only
    :func:`~django_neuraldraft.services.history.delete_unused_files`, above
    this module, knows. Names outside the version's own rendition folder are
    forgotten. ``False`` if the row is gone.
    """
    folder = posixpath.splitext(version.file.name or "")[0] + "/"
    keep = {item.name for item in planned} | {r["name"] for r in version.renditions}
    writing: list[str] = []
    dropped = list(version.renditions_dropped)
    for name in version.renditions_writing:
        if not isinstance(name, str) or not name.startswith(folder):
            continue
        if name in keep:
            writing.append(name)
        elif name not in dropped:
            dropped.append(name)
    writing = list(dict.fromkeys([*writing, *(item.name for item in wanted)]))
    if (writing, dropped) == (version.renditions_writing, version.renditions_dropped):
        return True
    if not ImageVersion.objects.filter(pk=version.pk).update(
        renditions_writing=writing, renditions_dropped=dropped
    ):
        return False
    version.renditions_writing, version.renditions_dropped = writing, dropped
    return True


def _make(
    storage: Storage,
    original: str,
    wanted: list[Planned],
    outcome: Outcome,
    made: dict[str, dict[str, Any]],
    saved: list[str],
) -> None:
    started = time.thread_time()
    with storage.open(original, "rb") as file:
        try:
            source = _decode(file, original, max(item.width for item in wanted))
        except (
            UnidentifiedImageError,
            Image.DecompressionBombError,
            OSError,
            SyntaxError,
            ValueError,
        ) as err:
            logger.warning("Cannot make renditions of %s: %s", original, err)
            outcome.failed.extend((item.format, item.width, str(err)) for item in wanted)
            return
        finally:
            outcome.cpu_seconds["decode"] = time.thread_time() - started
    if source is None:
        return
    for width, image in _resized(source, wanted, outcome):
        for item in wanted:
            if item.width == width:
                record = _make_one(storage, item, image, outcome, saved)
                if record is not None:
                    made[item.name] = record


def _decode(file: IO[bytes], name: str, largest: int) -> Image.Image | None:
    """The original at most ``largest`` pixels wide, upright, in sRGB, without metadata.

    ``None`` for an animated image, which keeps its original only: a still
    rendition would replace the animation with its first frame.
    """
    with Image.open(file, formats=list(IMAGE_FORMATS)) as image:
        if image.width * image.height > conf.max_pixels():
            raise ValueError(
                f"{image.width}x{image.height} pixels is more than NEURALDRAFT['MAX_PIXELS']."
            )
        if getattr(image, "n_frames", 1) > 1:
            logger.info("%s is animated; it keeps its original only.", name)
            return None
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        icc_profile = image.info.get("icc_profile")
        mode = "RGBA" if image.has_transparency_data else "RGB"
        shown_width = image.height if orientation in _QUARTER_TURNS else image.width
        scale = min(1.0, largest / shown_width)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        if image.format == "JPEG":
            image.draft(image.mode, size)
        # Palette and bi-level images only resize with NEAREST; L and CMYK stay
        # as they are until their colour profile has been applied.
        kept = (mode,) if mode == "RGBA" else ("RGB", "L", "CMYK")
        working = image if image.mode in kept else image.convert(mode)
        upright = working.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if orientation in _ORIENTATION_TRANSPOSE:
        upright = upright.transpose(_ORIENTATION_TRANSPOSE[orientation])
    return _to_srgb(upright, icc_profile, mode)


#: EXIF orientations that turn the picture a quarter, so that its width is its stored height.
_QUARTER_TURNS = (5, 6, 7, 8)


def _to_srgb(image: Image.Image, icc_profile: bytes | None, mode: str) -> Image.Image:
    """Convert to sRGB in ``mode`` (RGB or RGBA) and drop every piece of metadata.

    Browsers take an untagged image as sRGB, so converting the pixels and
    leaving the profile out shows the same colours in fewer bytes.
    """
    converted = None
    if icc_profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            converted = ImageCms.profileToProfile(image, source, _srgb_profile(), outputMode=mode)
        except (ImageCms.PyCMSError, OSError, ValueError) as err:
            logger.warning("Ignoring an unusable colour profile: %s", err)
    if converted is None:
        converted = image.convert(mode) if image.mode != mode else image.copy()
    converted.info = {}
    return converted


def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _resized(
    source: Image.Image, wanted: list[Planned], outcome: Outcome
) -> Iterator[tuple[int, Image.Image]]:
    """Each wanted width of ``source``, largest first, resized from ``source`` itself."""
    for width in sorted({item.width for item in wanted}, reverse=True):
        started = time.thread_time()
        if width >= source.width:
            image = source
        else:
            height = max(1, round(source.height * width / source.width))
            image = source.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
        outcome.cpu_seconds["resize"] = (
            outcome.cpu_seconds.get("resize", 0.0) + time.thread_time() - started
        )
        yield width, image


def _make_one(
    storage: Storage,
    item: Planned,
    image: Image.Image,
    outcome: Outcome,
    saved: list[str],
) -> dict[str, Any] | None:
    started = time.thread_time()
    try:
        data = encode(image, item.format)
    # Encoders raise many unrelated types, and one format must not stop the others.
    except Exception as err:
        logger.warning(
            "Cannot make the %s rendition %dw of %s.",
            item.format,
            item.width,
            item.name,
            exc_info=True,
        )
        outcome.failed.append((item.format, item.width, str(err) or type(err).__name__))
        return None
    finally:
        outcome.cpu_seconds[item.format] = (
            outcome.cpu_seconds.get(item.format, 0.0) + time.thread_time() - started
        )
    if storage.exists(item.name) and storage.size(item.name) != len(data):
        storage.delete(item.name)
    if not storage.exists(item.name):
        name = save_immutable(storage, item.name, ContentFile(data), None)
        saved.append(name)
        if name != item.name:
            raise OSError(f"The storage renamed {item.name!r} to {name!r}.")
    return {
        "width": image.width,
        "height": image.height,
        "format": item.format,
        "name": item.name,
        "bytes": len(data),
    }


def encode(image: Image.Image, image_format: str) -> bytes:
    """``image`` as ``image_format`` bytes, with the configured quality and no metadata."""
    spec = FORMATS[image_format]
    if not spec.alpha and image.mode == "RGBA":
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image).convert("RGB")
    options = dict(spec.options)
    if image_format in conf.LOSSY_RENDITION_FORMATS:
        options["quality"] = conf.rendition_quality(image_format)
    buffer = io.BytesIO()
    image.save(buffer, format=spec.pillow_format, **options)
    return buffer.getvalue()


def _record(version: ImageVersion, renditions: list[dict[str, Any]]) -> bool:
    """Store ``renditions`` on the version's row; ``False`` if the row is gone.

    The names recorded leave ``renditions_writing`` and ``renditions_dropped``
    in the same UPDATE, and those no longer recorded join
    ``renditions_dropped``: their files stay for pages cached with them, and
    cleanup deletes them with the version. ``QuerySet.update`` sends no
    signal, so the key's cached data is invalidated here, once the update has
    committed.
    """
    names = {rendition["name"] for rendition in renditions}
    writing = [name for name in version.renditions_writing if name not in names]
    no_longer = [r["name"] for r in version.renditions if r["name"] not in names]
    dropped = [
        name
        for name in dict.fromkeys([*version.renditions_dropped, *no_longer])
        if name not in names
    ]
    if not ImageVersion.objects.filter(pk=version.pk).update(
        renditions=renditions, renditions_writing=writing, renditions_dropped=dropped
    ):
        return False
    version.renditions, version.renditions_writing = renditions, writing
    version.renditions_dropped = dropped
    pk = version.image_key_id
    transaction.on_commit(lambda: _invalidate_key(pk), robust=True)
    return True


def _invalidate_key(image_key_pk: int) -> None:
    resolver.invalidate(*ImageKey.objects.filter(pk=image_key_pk).values_list("key", flat=True))


def _delete(storage: Storage, names: list[str]) -> None:
    for name in names:
        delete_file(storage, name)
