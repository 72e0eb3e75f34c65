"""Renditions: planned from the settings, made once per version, stored beside the original."""

from __future__ import annotations

import hashlib
import io
import logging
import struct
from io import StringIO

import pytest
from django.core.checks import Error, Warning
from django.core.files.base import ContentFile
from django.core.files.storage import InMemoryStorage, storages
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image, ImageChops, ImageCms, ImageStat, features

from django_neuraldraft import conf, renditions, resolver, services, tasks
from django_neuraldraft.checks import check_renditions
from django_neuraldraft.choices import ImageOrigin
from django_neuraldraft.models import ImageKey, ImageVersion
from django_neuraldraft.sandbox.images import render_image
from django_neuraldraft.services import publishing
from django_neuraldraft.storage import ConfiguredStorage
from django_neuraldraft.testing import SANDBOX_API_KEY
from tests.helpers import run_published

pytestmark = pytest.mark.django_db

MIME_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}


@pytest.fixture(autouse=True)
def small_renditions(settings):
    """An empty storage, and small widths to keep the suite fast; a test may set others."""
    settings.STORAGES = {**settings.STORAGES, "default": {**settings.STORAGES["default"]}}
    settings.NEURALDRAFT = {"API_KEY": SANDBOX_API_KEY, "RENDITION_WIDTHS": (80, 160)}
    renditions._warned_unwritable.clear()
    yield
    renditions._warned_unwritable.clear()


def configure(settings, **values):
    settings.NEURALDRAFT = {**settings.NEURALDRAFT, **values}


def photo(size=(400, 225), fmt="JPEG", prompt="A harbour", **save) -> bytes:
    """A picture with a photograph's detail (the sandbox's render) as ``fmt``, with ``save``."""
    picture = Image.open(io.BytesIO(render_image(prompt, None, "16:9", size, "png")))
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, format=fmt, **save)
    return buffer.getvalue()


def encoded(image: Image.Image, fmt: str, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def make_version(data: bytes, key: str = "hero.background", *, bind: bool = True) -> ImageVersion:
    """A version of ``key`` whose original, ``data``, is in the storage; bound unless asked not."""
    with Image.open(io.BytesIO(data)) as image:
        fmt, (width, height) = image.format, image.size
    digest = hashlib.sha256(data).hexdigest()
    image_key, _ = ImageKey.objects.get_or_create(key=key)
    name = f"neuraldraft/{key}/{digest}.{EXTENSIONS[fmt]}"
    ConfiguredStorage().save(name, ContentFile(data))
    version = ImageVersion.objects.create(
        image_key=image_key,
        file=name,
        width=width,
        height=height,
        bytes=len(data),
        mime_type=MIME_TYPES[fmt],
        sha256=digest,
        source_url=f"https://cdn.neuraldraft.io/tests/{digest}.{EXTENSIONS[fmt]}",
    )
    if bind:
        image_key.current = version
        image_key.save(update_fields=["current", "updated_at"])
    return version


def open_stored(name: str) -> Image.Image:
    with ConfiguredStorage().open(name) as file:
        image = Image.open(io.BytesIO(file.read()))
    image.load()
    return image


def widths_of(version: ImageVersion, image_format: str) -> list[int]:
    return [r["width"] for r in version.renditions if r["format"] == image_format]


def linear_rgb_profile() -> bytes:
    """An ICC v2 display profile with sRGB's primaries and a linear (gamma 1.0) tone curve.

    Built by hand because Pillow can only create sRGB, LAB and XYZ profiles. A
    mid grey of 128 in it is 0.5 of full light, which sRGB encodes as 188.
    """

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + struct.pack(">iii", *(round(v * 65536) for v in (x, y, z)))

    text = b"Linear RGB\0"
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, 0x0100) + b"\0\0"
    tags = [
        (b"desc", b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + bytes(78)),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.4361, 0.2225, 0.0139)),
        (b"gXYZ", xyz(0.3851, 0.7169, 0.0971)),
        (b"bXYZ", xyz(0.1431, 0.0606, 0.7141)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
        (b"cprt", b"text\0\0\0\0none\0"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table = data = b""
    for signature, body in tags:
        body += bytes(-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = (
        struct.pack(">I", offset + len(data))
        + bytes(4)
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + bytes(12)
        + b"acsp"
        + bytes(28)
        + xyz(0.9642, 1.0, 0.8249)[8:]
        + bytes(48)
    )
    return header + struct.pack(">I", len(tags)) + table + data


class TestPlan:
    def test_every_format_the_settings_may_name_has_a_writer(self):
        assert tuple(renditions.FORMATS) == conf.RENDITION_FORMAT_NAMES
        assert set(conf.LOSSY_RENDITION_FORMATS) <= set(renditions.FORMATS)

    def test_widths_are_never_upscaled_and_the_original_width_is_the_largest(self, settings):
        configure(settings, RENDITION_WIDTHS=(2048, 320, 640))
        version = make_version(photo((500, 250)))
        planned = renditions.plan(version)
        assert [(item.format, item.width) for item in planned] == [
            ("avif", 500),
            ("avif", 320),
            ("webp", 500),
            ("webp", 320),
            ("jpeg", 500),
            ("jpeg", 320),
        ]

    def test_names_sit_beside_the_original_and_carry_the_quality(self, settings):
        configure(settings, RENDITION_QUALITY={"avif": 60})
        version = make_version(photo())
        stem = f"neuraldraft/hero.background/{version.sha256}"
        assert [item.name for item in renditions.plan(version)] == [
            f"{stem}/160w-q60.avif",
            f"{stem}/80w-q60.avif",
            f"{stem}/160w-q80.webp",
            f"{stem}/80w-q80.webp",
            f"{stem}/160w-q80.jpg",
            f"{stem}/80w-q80.jpg",
        ]

    @pytest.mark.parametrize(
        ("fmt", "formats"),
        [("PNG", ["avif", "webp", "png"]), ("WEBP", ["avif", "webp"])],
    )
    def test_the_originals_format_is_the_fallback_and_comes_last(self, fmt, formats):
        version = make_version(photo(fmt=fmt))
        assert list(dict.fromkeys(item.format for item in renditions.plan(version))) == formats

    def test_a_lossless_png_rendition_has_no_quality_in_its_name(self):
        version = make_version(photo(fmt="PNG"))
        assert renditions.plan(version)[-1].name.endswith("/80w.png")

    def test_gif_originals_and_an_empty_width_list_plan_nothing(self, settings):
        gif = make_version(encoded(Image.new("P", (200, 100)), "GIF"), key="a.gif")
        assert renditions.plan(gif) == []
        configure(settings, RENDITION_WIDTHS=())
        assert renditions.plan(make_version(photo())) == []


class TestMakeFor:
    def test_every_planned_rendition_is_stored_and_recorded(self):
        version = make_version(photo((400, 225)))
        outcome = renditions.make_for(version)
        assert outcome.made == 6 and outcome.failed == []
        version.refresh_from_db()
        assert version.renditions == outcome.renditions
        assert [(r["format"], r["width"], r["height"]) for r in version.renditions] == [
            ("avif", 160, 90),
            ("avif", 80, 45),
            ("webp", 160, 90),
            ("webp", 80, 45),
            ("jpeg", 160, 90),
            ("jpeg", 80, 45),
        ]
        for rendition in version.renditions:
            assert set(rendition) == {"width", "height", "format", "name", "bytes"}
            assert storages["default"].size(rendition["name"]) == rendition["bytes"]
            image = open_stored(rendition["name"])
            assert image.format == rendition["format"].upper()
            assert image.size == (rendition["width"], rendition["height"])

    def test_the_pictures_are_the_originals_scaled_down(self):
        data = photo((400, 225))
        version = make_version(data)
        renditions.make_for(version)
        original = Image.open(io.BytesIO(data)).convert("RGB").resize((160, 90))
        for rendition in version.renditions:
            if rendition["width"] == 160:
                picture = open_stored(rendition["name"]).convert("RGB")
                difference = ImageStat.Stat(ImageChops.difference(original, picture)).mean
                assert max(difference) < 12, rendition["format"]

    def test_a_second_call_makes_nothing(self):
        version = make_version(photo())
        first = renditions.make_for(version).renditions
        again = renditions.make_for(ImageVersion.objects.get(pk=version.pk))
        assert (again.made, again.renditions) == (0, first)

    def test_check_files_remakes_a_rendition_gone_from_the_storage(self):
        version = make_version(photo())
        renditions.make_for(version)
        gone = version.renditions[1]["name"]
        storages["default"].delete(gone)
        assert renditions.make_for(version).made == 0
        outcome = renditions.make_for(version, check_files=True)
        assert outcome.made == 1
        assert storages["default"].exists(gone)

    def test_files_left_by_a_crash_before_the_row_was_written_are_reused(self):
        version = make_version(photo())
        first = renditions.make_for(version).renditions
        ImageVersion.objects.filter(pk=version.pk).update(renditions=[])
        again = renditions.make_for(ImageVersion.objects.get(pk=version.pk))
        assert again.renditions == first
        folder = f"neuraldraft/hero.background/{version.sha256}"
        assert sorted(storages["default"].listdir(folder)[1]) == sorted(
            rendition["name"].rsplit("/", 1)[1] for rendition in first
        )

    def test_exif_orientation_is_honoured(self):
        stored = Image.new("RGB", (320, 160), "red")
        stored.paste(Image.new("RGB", (160, 160), "blue"), (160, 0))
        exif = Image.Exif()
        exif[0x0112] = 6  # shown turned a quarter clockwise: the left half ends on top
        version = make_version(encoded(stored, "JPEG", exif=exif.tobytes(), quality=95))
        renditions.make_for(version)
        assert {(r["width"], r["height"]) for r in version.renditions} == {(160, 320), (80, 160)}
        for rendition in version.renditions:
            image = open_stored(rendition["name"]).convert("RGB")
            width, height = image.size
            top = image.getpixel((width // 2, height // 4))
            bottom = image.getpixel((width // 2, 3 * height // 4))
            assert top[0] > 200 and top[2] < 60, rendition["name"]
            assert bottom[2] > 200 and bottom[0] < 60, rendition["name"]
        assert [item.width for item in renditions.todo(version)] == []

    def test_colours_are_converted_to_srgb(self):
        grey = Image.new("RGB", (200, 100), (128, 128, 128))
        version = make_version(encoded(grey, "PNG", icc_profile=linear_rgb_profile()))
        renditions.make_for(version)
        for rendition in version.renditions:
            image = open_stored(rendition["name"]).convert("RGB")
            assert all(abs(channel - 188) <= 3 for channel in image.getpixel((40, 20))), rendition[
                "name"
            ]

    def test_metadata_is_stripped(self):
        exif = Image.Exif()
        exif[0x010F] = "Camera maker"
        exif[0x0131] = "Editing software 1.0"
        srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        data = photo(exif=exif.tobytes(), icc_profile=srgb, comment=b"private note")
        version = make_version(data)
        assert Image.open(io.BytesIO(data)).getexif()
        renditions.make_for(version)
        for rendition in version.renditions:
            image = open_stored(rendition["name"])
            assert not image.getexif(), rendition["name"]
            assert not {"exif", "icc_profile", "xmp", "comment"} & set(image.info), (
                rendition["name"],
                set(image.info),
            )

    def test_transparency_is_kept_where_the_format_has_it_and_flattened_on_white(self, settings):
        configure(settings, RENDITION_FORMATS=("avif", "webp", "jpeg"))
        picture = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
        picture.paste(Image.new("RGBA", (100, 100), (255, 0, 0, 255)), (100, 0))
        version = make_version(encoded(picture, "PNG"))
        renditions.make_for(version)
        for rendition in version.renditions:
            image = open_stored(rendition["name"])
            left = image.convert("RGBA").getpixel((image.width // 4, image.height // 2))
            if rendition["format"] == "jpeg":
                assert image.mode == "RGB" and min(left[:3]) > 240, rendition["name"]
            else:
                assert image.mode == "RGBA" and left[3] < 10, rendition["name"]

    def test_an_animated_original_keeps_its_original_only(self):
        frames = [Image.new("RGB", (200, 100), colour) for colour in ("red", "blue")]
        data = encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:])
        version = make_version(data)
        outcome = renditions.make_for(version)
        assert (outcome.made, outcome.failed, outcome.renditions) == (0, [], [])

    def test_an_encoder_failure_keeps_the_other_renditions_and_the_original(self, settings):
        # WebP holds at most 16383 pixels a side: a tall image is a real encoder failure.
        configure(settings, RENDITION_WIDTHS=(10, 20), RENDITION_FORMATS=("webp",))
        version = make_version(encoded(Image.new("RGB", (20, 16400), "teal"), "JPEG"))
        outcome = renditions.make_for(version)
        assert [(f, w) for f, w, _reason in outcome.failed] == [("webp", 20)]
        assert "WebP limit" in outcome.failed[0][2]
        version.refresh_from_db()
        assert [(r["format"], r["width"], r["height"]) for r in version.renditions] == [
            ("webp", 10, 8200),
            ("jpeg", 20, 16400),
            ("jpeg", 10, 8200),
        ]
        assert storages["default"].exists(version.file.name)
        assert ImageKey.objects.get(key="hero.background").current == version
        assert [(item.format, item.width) for item in renditions.todo(version)] == [("webp", 20)]

    def test_an_original_that_does_not_decode_keeps_the_original_and_records_nothing(self):
        data = photo()
        version = make_version(data)
        storages["default"].delete(version.file.name)
        storages["default"].save(version.file.name, ContentFile(data[: len(data) // 3]))
        outcome = renditions.make_for(version)
        assert outcome.made == 0
        assert len(outcome.failed) == 6
        version.refresh_from_db()
        assert version.renditions == []
        assert storages["default"].exists(version.file.name)
        assert ImageKey.objects.get(key="hero.background").current == version

    def test_a_storage_failure_leaves_no_unrecorded_file(self, settings):
        settings.STORAGES = {
            **settings.STORAGES,
            "small": {"BACKEND": "tests.test_renditions.FullAfterTheLargest"},
        }
        configure(settings, STORAGE="small")
        version = make_version(photo())
        with pytest.raises(OSError, match="No space left"):
            renditions.make_for(version)
        folder = f"neuraldraft/hero.background/{version.sha256}"
        assert storages["small"].listdir(folder) == ([], [])
        assert storages["small"].exists(version.file.name)
        version.refresh_from_db()
        assert version.renditions == []

    def test_they_go_to_the_storage_of_their_original_after_a_storage_switch(self, settings):
        settings.STORAGES = {
            **settings.STORAGES,
            "old": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
            "new": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
        }
        configure(settings, STORAGE="old")
        version = make_version(photo())
        configure(settings, STORAGE="new")
        renditions.make_for(ImageVersion.objects.get(pk=version.pk))
        folder = f"neuraldraft/hero.background/{version.sha256}"
        assert len(storages["old"].listdir(folder)[1]) == 6
        assert not storages["new"].exists(folder)

    def test_a_version_deleted_meanwhile_leaves_no_file(self):
        version = make_version(photo())
        ImageVersion.objects.filter(pk=version.pk).delete()
        outcome = renditions.make_for(version)
        assert outcome.renditions == []
        assert not storages["default"].exists(f"neuraldraft/hero.background/{version.sha256}")

    def test_fewer_formats_in_the_settings_drop_their_renditions_from_the_row(self, settings):
        version = make_version(photo())
        renditions.make_for(version)
        configure(settings, RENDITION_FORMATS=("webp",))
        assert not renditions.is_current(version)
        outcome = renditions.make_for(version)
        assert outcome.made == 0
        assert {r["format"] for r in version.renditions} == {"webp", "jpeg"}
        assert renditions.is_current(ImageVersion.objects.get(pk=version.pk))

    def test_the_cached_image_data_is_invalidated_once_recorded(
        self, cold_cache, commit, django_assert_num_queries, settings
    ):
        # Counted as with a cache all processes share: a per-process one adds a query a page.
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "SHARED_CACHE": True}
        version = make_version(photo())
        resolver.resolve("hero.background")
        with django_assert_num_queries(0):
            resolver.resolve("hero.background")
        with commit():
            renditions.make_for(version)
        with django_assert_num_queries(1):
            resolver.resolve("hero.background")


class FullAfterTheLargest(InMemoryStorage):
    """A storage that runs out of space when the second width's renditions arrive."""

    attempts = 0

    def _save(self, name, content):
        if "/80w" in name:
            self.attempts += 1
            raise OSError("No space left on the device.")
        return super()._save(name, content)


class TestWithoutAvif:
    """Pillow without AVIF, made by monkeypatching its feature probe, ``PIL.features.check``.

    The installed Pillow can write AVIF, and a second Pillow cannot be
    installed beside it; the probe is the one thing the app asks.
    """

    @pytest.fixture(autouse=True)
    def no_avif(self, monkeypatch):
        probe = features.check
        monkeypatch.setattr(features, "check", lambda name: name != "avif" and probe(name))

    def test_avif_is_skipped_with_one_warning(self, caplog):
        first = make_version(photo(), key="one")
        second = make_version(photo(prompt="Another"), key="two")
        with caplog.at_level(logging.WARNING, logger="django_neuraldraft.renditions"):
            made = [renditions.make_for(version) for version in (first, second)]
        assert [{r["format"] for r in outcome.renditions} for outcome in made] == [
            {"webp", "jpeg"},
            {"webp", "jpeg"},
        ]
        assert [record.getMessage() for record in caplog.records] == [
            "The installed Pillow cannot write AVIF; renditions are made without it "
            "(system check neuraldraft.W021)."
        ]

    def test_the_system_check_says_so(self):
        assert check_renditions() == [
            Warning(
                "NEURALDRAFT['RENDITION_FORMATS'] asks for AVIF, which the installed Pillow "
                "cannot write; renditions are made without it.",
                hint="Install a Pillow that can (AVIF: 11.2 or later built with libavif; "
                "PIL.features.check() tells), or remove the format from RENDITION_FORMATS. "
                "See docs/renditions.rst.",
                id="neuraldraft.W021",
            )
        ]

    def test_no_warning_when_avif_is_not_asked_for(self, settings):
        configure(settings, RENDITION_FORMATS=("webp",))
        assert check_renditions() == []


class TestChecks:
    def test_the_defaults_pass(self):
        assert check_renditions() == []

    @pytest.mark.parametrize(
        ("name", "value", "expected", "default"),
        [
            (
                "RENDITION_WIDTHS",
                (320, 0),
                "a list of widths in pixels, each from 1 to 16383",
                (320, 480, 640, 960, 1280, 1600, 2048),
            ),
            (
                "RENDITION_WIDTHS",
                640,
                "a list of widths in pixels, each from 1 to 16383",
                (320, 480, 640, 960, 1280, 1600, 2048),
            ),
            (
                "RENDITION_WIDTHS",
                (320.5,),
                "a list of widths in pixels, each from 1 to 16383",
                (320, 480, 640, 960, 1280, 1600, 2048),
            ),
            (
                "RENDITION_FORMATS",
                ("avif", "heic"),
                "a list of formats among 'avif', 'webp', 'jpeg', 'png'",
                ("avif", "webp"),
            ),
            (
                "RENDITION_QUALITY",
                {"avif": 101},
                "a dict of qualities from 1 to 100 for 'avif', 'webp', 'jpeg'",
                {"avif": 50, "webp": 80, "jpeg": 80},
            ),
            (
                "RENDITION_QUALITY",
                {"png": 90},
                "a dict of qualities from 1 to 100 for 'avif', 'webp', 'jpeg'",
                {"avif": 50, "webp": 80, "jpeg": 80},
            ),
        ],
    )
    def test_malformed_settings_are_errors(self, settings, name, value, expected, default):
        configure(settings, **{name: value})
        assert check_renditions() == [
            Error(
                f"NEURALDRAFT[{name!r}] = {value!r} is not {expected}.",
                hint=f"Fix the value or remove it to use the default, {default!r}.",
                id="neuraldraft.E020",
            )
        ]


@pytest.mark.usefixtures("neuraldraft_settings")
class TestEveryOrigin:
    """Every way a version is stored queues its renditions, which the task then makes."""

    @pytest.fixture(autouse=True)
    def small(self, settings, neuraldraft_settings):
        configure(settings, RENDITION_WIDTHS=(160, 320))

    def test_a_generated_image(self, sandbox, published, commit):
        hero = ImageKey.objects.create(key="hero.background", prompt="A quiet harbour at dawn")
        job = services.submit(services.request_generation(hero))
        sandbox.finish_job(job.remote_id)
        with commit():
            version = services.ingest(services.refresh_job(job))
        assert version.renditions == []
        assert run_published(published) == ["neuraldraft.make_renditions"]
        version.refresh_from_db()
        assert [(r["format"], r["width"], r["height"]) for r in version.renditions] == [
            ("avif", 320, 180),
            ("avif", 160, 90),
            ("webp", 320, 180),
            ("webp", 160, 90),
            ("jpeg", 320, 180),
            ("jpeg", 160, 90),
        ]

    def test_a_pulled_image(self, sandbox, published, commit):
        services.get_client().upload_image(
            "brand.logo", io.BytesIO(photo(fmt="PNG")), filename="logo.png"
        )
        with commit():
            version = services.pull("brand.logo")
        assert run_published(published) == ["neuraldraft.make_renditions"]
        version.refresh_from_db()
        assert {r["format"] for r in version.renditions} == {"avif", "webp", "png"}

    def test_an_uploaded_image(self, sandbox, published, commit):
        image_key = ImageKey.objects.create(key="team.photo")
        with commit():
            version = publishing.upload(image_key, io.BytesIO(photo(fmt="WEBP")))
        assert version.origin == ImageOrigin.UPLOADED
        assert run_published(published) == ["neuraldraft.make_renditions"]
        version.refresh_from_db()
        assert {r["format"] for r in version.renditions} == {"avif", "webp"}

    def test_nothing_is_queued_when_renditions_are_off(self, settings, published, commit):
        configure(settings, RENDITION_WIDTHS=())
        with commit():
            make_version(photo())
            renditions.schedule(ImageVersion.objects.get())
        assert published == []

    def test_the_task_retries_a_storage_failure_then_gives_up_leaving_no_file(
        self, settings, published, commit
    ):
        settings.STORAGES = {
            **settings.STORAGES,
            "small": {"BACKEND": "tests.test_renditions.FullAfterTheLargest"},
        }
        configure(settings, STORAGE="small", RENDITION_WIDTHS=(80, 160))
        with commit():
            version = make_version(photo())
            renditions.schedule(version)
        assert run_published(published) == ["neuraldraft.make_renditions"] * 3
        assert storages["small"].attempts == 3
        version.refresh_from_db()
        assert version.renditions == [] and version.chain_token == ""
        assert version.renditions_attempts == 3
        assert version.renditions_error == (
            "Gave up: 3 attempts failed; the last: OSError: No space left on the device. "
            "Run neuraldraft_renditions --missing."
        )
        assert storages["small"].listdir(f"neuraldraft/hero.background/{version.sha256}") == (
            [],
            [],
        )
        assert storages["small"].exists(version.file.name)

    def test_the_task_of_a_deleted_version_does_nothing(self):
        version = make_version(photo())
        ImageVersion.objects.filter(pk=version.pk).delete()
        tasks.make_renditions(version.pk)
        assert not storages["default"].exists(f"neuraldraft/hero.background/{version.sha256}")


class TtyOutput(StringIO):
    def isatty(self) -> bool:
        return True


class TestCommand:
    @pytest.fixture
    def versions(self):
        return [
            make_version(photo(prompt="A hero"), key="hero.background"),
            make_version(photo(prompt="A card"), key="card.one"),
        ]

    def run(self, *args, stdout=None):
        out = stdout or StringIO()
        call_command("neuraldraft_renditions", *args, stdout=out, no_color=True)
        return out.getvalue()

    def test_makes_what_every_version_lacks_one_line_each(self, versions):
        output = self.run()
        hero, card = versions
        assert output.splitlines() == [
            f"hero.background #{hero.pk}: 6 made, 0 failed",
            f"card.one #{card.pk}: 6 made, 0 failed",
            "Made 12 rendition(s) for 2 version(s).",
        ]
        assert all(renditions.is_current(ImageVersion.objects.get(pk=v.pk)) for v in versions)
        assert self.run().splitlines() == ["Made 0 rendition(s) for 0 version(s)."]

    def test_key_limits_it_to_that_keys_versions(self, versions):
        self.run("--key", "card.one")
        hero, card = (ImageVersion.objects.get(pk=v.pk) for v in versions)
        assert (hero.renditions == [], len(card.renditions)) == (True, 6)

    @pytest.mark.parametrize(
        ("key", "message"),
        [("no.such.key", "No image key no.such.key"), ("Bad Key", "not a valid image key")],
    )
    def test_an_unknown_or_invalid_key_is_an_error(self, versions, key, message):
        with pytest.raises(CommandError, match=message):
            self.run("--key", key)

    def test_dry_run_says_what_and_changes_nothing(self, versions):
        output = self.run("--dry-run", "--key", "hero.background", "--verbosity", "2")
        hero = versions[0]
        assert output.splitlines()[0] == f"hero.background #{hero.pk}: would make 6 rendition(s)"
        assert output.splitlines()[1].startswith(f"  neuraldraft/hero.background/{hero.sha256}/")
        assert output.splitlines()[-1] == "Would make 6 rendition(s) for 1 version(s)."
        hero.refresh_from_db()
        assert hero.renditions == []
        assert not storages["default"].exists(f"neuraldraft/hero.background/{hero.sha256}")

    def test_missing_trusts_the_rows_and_the_full_pass_checks_the_files(self, versions):
        self.run()
        hero = ImageVersion.objects.get(pk=versions[0].pk)
        storages["default"].delete(hero.renditions[0]["name"])
        assert self.run("--missing").splitlines() == ["Made 0 rendition(s) for 0 version(s)."]
        assert self.run().splitlines()[-1] == "Made 1 rendition(s) for 1 version(s)."
        assert storages["default"].exists(hero.renditions[0]["name"])

    def test_missing_makes_a_new_width_for_existing_versions(self, settings, versions):
        self.run()
        configure(settings, RENDITION_WIDTHS=(80, 120, 160))
        assert self.run("--missing").splitlines()[-1] == "Made 6 rendition(s) for 2 version(s)."
        hero = ImageVersion.objects.get(pk=versions[0].pk)
        assert widths_of(hero, "avif") == [160, 120, 80]

    def test_a_bar_on_a_terminal(self, versions):
        output = self.run(stdout=TtyOutput())
        assert "\r[############------------] 1/2 hero.background" in output
        assert "\r[########################] 2/2 card.one" in output
        assert output.endswith("Made 12 rendition(s) for 2 version(s).\n")

    def test_ctrl_c_stops_with_exit_code_130_and_keeps_what_was_made(self, versions, monkeypatch):
        # Ctrl-C cannot be pressed in-process: the second version's make_for raises what
        # Python raises for it.
        make_for = renditions.make_for

        def interrupted_on_the_second(version, **options):
            if version.pk == versions[1].pk:
                raise KeyboardInterrupt
            return make_for(version, **options)

        monkeypatch.setattr(renditions, "make_for", interrupted_on_the_second)
        with pytest.raises(CommandError, match="Interrupted after 6 rendition") as raised:
            self.run()
        assert raised.value.returncode == 130
        assert len(ImageVersion.objects.get(pk=versions[0].pk).renditions) == 6
        assert ImageVersion.objects.get(pk=versions[1].pk).renditions == []

    def test_failures_are_reported_and_exit_non_zero(self, versions):
        hero = versions[0]
        storages["default"].delete(hero.file.name)
        storages["default"].save(hero.file.name, ContentFile(b"not an image at all"))
        out = StringIO()
        with pytest.raises(CommandError, match="6 rendition"):
            call_command("neuraldraft_renditions", stdout=out, no_color=True)
        assert f"hero.background #{hero.pk}: 0 made, 6 failed" in out.getvalue()
        assert "card.one" in out.getvalue()


@pytest.mark.parametrize(
    ("broker_url", "priority"),
    [
        ("redis://127.0.0.1:6379/0", 9),
        ("rediss://cache.example.com:6380/1", 9),
        ("redis+socket:///run/redis.sock", 9),
        ("sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26379", 9),
        ("amqp://guest:guest@127.0.0.1:5672//", None),
        ("pyamqp://127.0.0.1//", None),
        ("memory://", None),
        ("", None),
    ],
)
def test_renditions_messages_get_redis_lowest_priority_and_no_other(broker_url, priority):
    assert renditions.message_priority(broker_url) == priority
