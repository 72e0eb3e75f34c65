"""Generated images (deterministic Pillow renders) and the CDN that serves them."""

from __future__ import annotations

import io
import re

import pytest
import requests
from PIL import Image

from django_neuraldraft.sandbox.images import image_size, render_image
from django_neuraldraft.testing import run_sandbox

SIZES = {
    "16:9": (2048, 1152),
    "1:1": (2048, 2048),
    "9:16": (1152, 2048),
    "4:5": (1638, 2048),
    "4:3": (2048, 1536),
    "3:2": (2048, 1365),
}


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


class TestRendering:
    @pytest.mark.parametrize(("aspect_ratio", "size"), SIZES.items())
    def test_every_aspect_ratio_has_the_documented_size(self, api, aspect_ratio, size):
        job = api.completed("A cliff", aspect_ratio=aspect_ratio)
        assert (job["result"]["width"], job["result"]["height"]) == size
        image = decode(api.session.get(job["result"]["url"], timeout=5).content)
        assert image.format == "JPEG"
        assert image.size == size

    def test_long_edge_is_configurable(self, make_api):
        api = make_api(image_long_edge=512, job_seconds=0)
        job = api.completed("A cliff", aspect_ratio="4:5")
        assert (job["result"]["width"], job["result"]["height"]) == (410, 512)
        assert decode(api.session.get(job["result"]["url"], timeout=5).content).size == (410, 512)

    def test_short_side_rounds_half_up(self):
        assert image_size("16:9", 100) == (100, 56)
        assert image_size("3:2", 5) == (5, 3)

    def test_same_inputs_give_the_same_bytes(self, api):
        first = api.completed("A red barn", style="watercolor", aspect_ratio="1:1")
        api.server.reset()
        second = api.completed("A red barn", style="watercolor", aspect_ratio="1:1")
        assert first["result"]["url"] == second["result"]["url"]
        fetch = api.session.get
        assert fetch(first["result"]["url"]).content == fetch(second["result"]["url"]).content

    @pytest.mark.parametrize(
        "other",
        [("A blue barn", None, "1:1"), ("A red barn", "oil", "1:1")],
        ids=["prompt", "style"],
    )
    def test_different_inputs_give_different_images(self, other):
        size = (256, 256)
        assert render_image("A red barn", None, "1:1", size) != render_image(*other, size)


class TestCdn:
    def test_cdn_needs_no_auth_and_sends_length(self, api):
        url = api.completed()["result"]["url"]
        response = __import__("requests").get(url, timeout=5)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "image/jpeg"
        assert int(response.headers["Content-Length"]) == len(response.content)

    def test_url_without_key_uses_image_stem(self, api):
        url = api.completed()["result"]["url"]
        assert re.fullmatch(r".*/cdn/prj_sandbox/image-[0-9a-f]{8}\.jpg", url)

    def test_head_sends_headers_only(self, api):
        url = api.completed()["result"]["url"]
        head = api.session.head(url, timeout=5)
        assert head.status_code == 200
        assert head.content == b""
        assert int(head.headers["Content-Length"]) == len(api.session.get(url, timeout=5).content)

    def test_unknown_object_is_404(self, api):
        response = api.session.get(api.server.origin + "/cdn/prj_sandbox/missing.png", timeout=5)
        assert response.status_code == 404

    def test_only_get_and_head(self, api):
        url = api.completed()["result"]["url"]
        response = api.session.post(url, timeout=5)
        assert response.status_code == 405
        assert response.headers["Allow"] == "GET, HEAD"

    def test_nothing_is_served_before_completion(self, make_api):
        api = make_api(job_seconds=60)
        job = api.generate()
        api.server.finish_job(job["id"])
        url = api.get(f"/jobs/{job['id']}").json()["result"]["url"]
        api.server.reset()
        assert api.session.get(url, timeout=5).status_code == 404


@pytest.mark.parametrize(
    ("image_format", "mime_type", "extension", "pillow_format"),
    [("png", "image/png", ".png", "PNG"), ("webp", "image/webp", ".webp", "WEBP")],
)
def test_generated_images_can_be_png_or_webp(
    api_key, image_format, mime_type, extension, pillow_format
):
    with run_sandbox(job_seconds=0, image_format=image_format, image_long_edge=256) as server:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {api_key}"
        job = session.post(f"{server.base_url}/images", json={"prompt": "x"}, timeout=10).json()
        server.finish_job(job["id"])
        finished = session.get(f"{server.base_url}/jobs/{job['id']}", timeout=10).json()
        url = finished["result"]["url"]
        assert url.endswith(extension)
        response = requests.get(url, timeout=10)
        assert response.headers["Content-Type"] == mime_type
        assert decode(response.content).format == pillow_format
