"""Images: generation requests, uploads, lookups, replacement, and what they cost."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image, ImageChops, ImageFilter, ImageStat

from django_neuraldraft.sandbox.images import render_image
from tests.sandbox.support import Api

TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (40, 30), colour: str = "teal") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


class TestRenderedImages:
    """Generated images weigh what the API's do, so encoder figures measured on them hold."""

    @pytest.mark.parametrize("prompt", ["A quiet harbour at dawn", "A forest", "x"])
    def test_a_jpeg_weighs_about_the_api_docs_example(self, prompt):
        data = render_image(prompt, None, "16:9", (2048, 1152))
        assert 350_000 < len(data) < 650_000  # the docs' 2048x1152 example: 482,911 bytes

    def test_detail_at_every_scale_not_flat_colour(self):
        image = Image.open(io.BytesIO(render_image("A harbour", None, "16:9", (2048, 1152))))
        grey = image.convert("L")
        fine = ImageChops.difference(grey, grey.filter(ImageFilter.BoxBlur(1)))
        coarse = ImageChops.difference(grey, grey.filter(ImageFilter.BoxBlur(24)))
        assert ImageStat.Stat(fine).mean[0] > 2
        assert ImageStat.Stat(coarse).mean[0] > 8
        assert len(image.getcolors(maxcolors=1 << 22)) > 100_000

    @pytest.mark.parametrize(("image_format", "pillow_format"), [("png", "PNG"), ("webp", "WEBP")])
    def test_png_and_webp_show_the_same_picture(self, image_format, pillow_format):
        size = (256, 144)
        jpeg = Image.open(io.BytesIO(render_image("A barn", None, "16:9", size)))
        other = Image.open(io.BytesIO(render_image("A barn", None, "16:9", size, image_format)))
        assert other.format == pillow_format
        difference = ImageChops.difference(jpeg.convert("RGB"), other.convert("RGB"))
        assert max(ImageStat.Stat(difference).mean) < 12

    def test_a_render_is_kept_and_not_drawn_again(self):
        first = render_image("A kept render", None, "1:1", (64, 64))
        assert render_image("A kept render", None, "1:1", (64, 64)) is first


class TestGenerate:
    def test_json_post_answers_202_with_a_pending_job(self, api):
        response = api.post("/images", json={"prompt": "A lighthouse", "key": "hero.background"})
        assert response.status_code == 202
        assert response.headers["Content-Type"] == "application/json"
        job = response.json()
        assert re.fullmatch(r"job_[0-9A-Za-z]{12}", job["id"])
        assert job["type"] == "image.generate"
        assert job["status"] == "pending"
        assert job["progress"] == 0
        assert job["message"]
        assert job["steps"] == [
            {"name": name, "completed": False, "active": False}
            for name in ("compose", "render", "upscale")
        ]
        assert re.fullmatch(TIMESTAMP, job["created_at"])
        assert re.fullmatch(TIMESTAMP, job["updated_at"])
        assert "result" not in job and "error" not in job

    def test_defaults_and_nulls_are_accepted(self, api):
        job = api.completed("A lighthouse", style=None, aspect_ratio=None, key=None)
        assert (job["result"]["width"], job["result"]["height"]) == (2048, 1152)
        assert job["result"]["key"] is None

    def test_limits_are_inclusive(self, api):
        api.generate("x" * 4000, key="k" * 128, style="photorealistic", aspect_ratio="4:5")

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({}, "prompt"),
            ({"prompt": ""}, "prompt"),
            ({"prompt": "   "}, "prompt"),
            ({"prompt": "x" * 4001}, "prompt"),
            ({"prompt": 42}, "prompt"),
            ({"prompt": "ok", "style": 3}, "style"),
            ({"prompt": "ok", "aspect_ratio": "2:1"}, "aspect_ratio"),
            ({"prompt": "ok", "key": "Hero"}, "key"),
            ({"prompt": "ok", "key": ".hidden"}, "key"),
            ({"prompt": "ok", "key": "a..b"}, "key"),
            ({"prompt": "ok", "key": "a/b"}, "key"),
            ({"prompt": "ok", "key": ""}, "key"),
            ({"prompt": "ok", "key": "k" * 129}, "key"),
            ({"prompt": "ok", "key": 7}, "key"),
        ],
    )
    def test_bad_fields_are_422_with_an_errors_map(self, api, body, field):
        response = api.post("/images", json=body)
        assert response.status_code == 422
        assert response.headers["Content-Type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "validation_failed"
        assert problem["type"] == "https://api.neuraldraft.io/errors/validation_failed"
        assert list(problem["errors"]) == [field]
        assert all(isinstance(message, str) for message in problem["errors"][field])

    def test_every_bad_field_is_reported_at_once(self, api):
        response = api.post("/images", json={"aspect_ratio": "2:1", "key": "UP", "style": 1})
        assert set(response.json()["errors"]) == {"prompt", "aspect_ratio", "key", "style"}

    @pytest.mark.parametrize(
        ("data", "content_type"),
        [
            (b"{not json", "application/json"),
            (b'["a", "list"]', "application/json"),
            (b"", "application/json"),
            (b'{"prompt": "ok"}', "text/plain"),
            (b'{"prompt": "ok"}', None),
        ],
        ids=["invalid-json", "not-an-object", "empty", "text-plain", "no-content-type"],
    )
    def test_malformed_bodies_are_400(self, api, data, content_type):
        headers = {"Content-Type": content_type} if content_type else {}
        response = api.post("/images", data=data, headers=headers)
        assert response.status_code == 400
        assert response.json()["code"] == "bad_request"
        assert "errors" not in response.json()
        assert api.server.jobs == {}


class TestUpload:
    @pytest.mark.parametrize(
        ("fmt", "mime"),
        [
            ("PNG", "image/png"),
            ("JPEG", "image/jpeg"),
            ("WEBP", "image/webp"),
            ("GIF", "image/gif"),
        ],
    )
    def test_multipart_post_answers_201_wrapped(self, api, fmt, mime):
        data = image_bytes(fmt)
        response = api.upload("brand.logo", data, mime)
        assert response.status_code == 201
        image = response.json()["data"]
        assert image["key"] == "brand.logo"
        assert (image["width"], image["height"]) == (40, 30)
        assert image["bytes"] == len(data)
        assert image["mime_type"] == mime
        assert image["generated"] is False
        assert re.fullmatch(TIMESTAMP, image["created_at"])
        assert re.fullmatch(TIMESTAMP, image["updated_at"])
        assert re.fullmatch(
            re.escape(api.server.origin) + r"/cdn/prj_sandbox/brand\.logo-[0-9a-f]{8}\.\w+",
            image["url"],
        )
        download = api.session.get(image["url"], timeout=5)
        assert download.content == data
        assert download.headers["Content-Type"] == mime

    def test_upload_is_then_resolvable_bare(self, api):
        uploaded = api.upload("brand.logo", image_bytes()).json()["data"]
        response = api.get("/images/brand.logo")
        assert response.status_code == 200
        assert response.json() == uploaded

    @pytest.mark.parametrize(
        ("files", "data", "field"),
        [
            ({"file": ("a.png", image_bytes(), "image/png")}, {}, "key"),
            ({"file": ("a.png", image_bytes(), "image/png")}, {"key": "Bad Key"}, "key"),
            ({"other": ("a.png", image_bytes(), "image/png")}, {"key": "ok"}, "file"),
            (
                {"file": ("a.txt", b"plain text, not an image", "text/plain")},
                {"key": "ok"},
                "file",
            ),
            ({"file": ("a.png", image_bytes()[:40], "image/png")}, {"key": "ok"}, "file"),
        ],
        ids=["no-key", "bad-key", "no-file", "not-an-image", "truncated"],
    )
    def test_bad_uploads_are_422(self, api, files, data, field):
        response = api.post("/images", files=files, data=data)
        assert response.status_code == 422
        assert field in response.json()["errors"]

    def test_files_over_10_mb_are_refused(self, api):
        too_big = b"\0" * (10 * 1024 * 1024 + 1)
        response = api.upload("big", too_big)
        assert response.status_code == 422
        assert "10 MB" in response.json()["errors"]["file"][0]

    def test_a_form_without_boundary_is_400(self, api):
        response = api.post("/images", data=b"x", headers={"Content-Type": "multipart/form-data"})
        assert response.status_code == 400


class TestGetImage:
    def test_unknown_key_is_404(self, api):
        response = api.get("/images/nothing.here")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"

    def test_completed_generation_with_key_is_resolvable(self, api):
        job = api.completed("A forest", key="hero.forest", aspect_ratio="1:1")
        image = api.get("/images/hero.forest").json()
        assert image["url"] == job["result"]["url"]
        assert (image["width"], image["height"]) == (2048, 2048)
        assert image["generated"] is True
        assert image["mime_type"] == "image/jpeg"
        assert image["bytes"] == len(api.session.get(image["url"], timeout=5).content)

    def test_image_appears_only_when_the_job_completes(self, make_api):
        api = make_api(job_seconds=30)
        job = api.generate(key="later")
        assert api.get("/images/later").status_code == 404
        api.server.finish_job(job["id"])
        assert api.get("/images/later").status_code == 200


class TestReplace:
    def test_put_upload_replaces_and_keeps_created_at(self, api):
        first = api.upload("hero", image_bytes(colour="red")).json()["data"]
        response = api.put(
            "/images/hero", files={"file": ("b.png", image_bytes(colour="blue"), "image/png")}
        )
        assert response.status_code == 200
        second = response.json()["data"]
        assert second["created_at"] == first["created_at"]
        assert second["url"] != first["url"]
        assert api.get("/images/hero").json() == second

    def test_put_upload_creates_a_missing_key(self, api):
        response = api.put(
            "/images/new.key", files={"file": ("b.png", image_bytes(), "image/png")}
        )
        assert response.status_code == 200
        assert response.json()["data"]["key"] == "new.key"

    def test_put_regenerate_starts_a_job_for_the_path_key(self, api):
        api.upload("hero", image_bytes())
        response = api.put("/images/hero", json={"regenerate": True, "prompt": "Snow", "key": "x"})
        assert response.status_code == 202
        job = response.json()
        api.server.finish_job(job["id"])
        result = api.get(f"/jobs/{job['id']}").json()["result"]
        assert result["key"] == "hero"
        image = api.get("/images/hero").json()
        assert image["generated"] is True
        assert image["url"] == result["url"]

    @pytest.mark.parametrize("body", [{"prompt": "Snow"}, {"regenerate": False, "prompt": "Snow"}])
    def test_put_json_must_ask_to_regenerate(self, api, body):
        response = api.put("/images/hero", json=body)
        assert response.status_code == 422
        assert list(response.json()["errors"]) == ["regenerate"]

    def test_put_regenerate_validates_the_prompt(self, api):
        response = api.put("/images/hero", json={"regenerate": True})
        assert list(response.json()["errors"]) == ["prompt"]

    def test_put_with_an_invalid_path_key_is_422(self, api):
        response = api.put("/images/UPPER", json={"regenerate": True, "prompt": "x"})
        assert response.status_code == 422
        assert list(response.json()["errors"]) == ["key"]

    def test_put_with_another_content_type_is_400(self, api):
        response = api.put("/images/hero", data=b"x", headers={"Content-Type": "image/png"})
        assert response.status_code == 400

    def test_a_new_generation_overwrites_an_uploaded_key(self, api):
        api.upload("hero", image_bytes())
        api.completed("Sunset", key="hero")
        assert api.get("/images/hero").json()["generated"] is True


class TestCredits:
    def test_project_shows_plan_and_balance(self, api):
        assert api.get("/projects/me").json() == {
            "id": "prj_sandbox",
            "name": "Sandbox",
            "plan": "scale",
            "credits": 1_000_000,
        }

    def test_generation_costs_40_and_upload_1(self, api):
        api.generate()
        api.put("/images/hero", json={"regenerate": True, "prompt": "again"})
        api.upload("logo", image_bytes())
        assert api.get("/projects/me").json()["credits"] == 1_000_000 - 40 - 40 - 1

    def test_balance_below_the_cost_is_402(self, make_api):
        api: Api = make_api(credits=45)
        api.generate()
        response = api.post("/images", json={"prompt": "one too many"})
        assert response.status_code == 402
        assert response.json()["code"] == "insufficient_credits"
        assert len(api.server.jobs) == 1
        assert api.upload("logo", image_bytes()).status_code == 201
        assert api.get("/projects/me").json()["credits"] == 4

    def test_reset_restores_the_balance(self, api):
        api.generate()
        api.server.reset()
        assert api.get("/projects/me").json()["credits"] == 1_000_000
