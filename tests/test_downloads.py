"""The URL policy and the image checks that run before a downloaded file is kept."""

import io
import ipaddress
import struct
import subprocess
import sys
import textwrap
import zlib

import pytest
from PIL import Image, UnidentifiedImageError

from django_neuraldraft.client._download import parse
from django_neuraldraft.downloads import (
    DOMINANT_COLOR_DECODE_BYTES,
    DownloadPolicy,
    _jpeg_buffered_sampling,
    decode_cost,
    inspect_image,
)
from django_neuraldraft.exceptions import DownloadRefusedError, InvalidImageError
from django_neuraldraft.sandbox.images import blank_png, hostile_image


def image_bytes(fmt: str, size=(40, 30), color=(200, 30, 30)) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, fmt)
    buffer.seek(0)
    return buffer


def public_dns(host: str, port: int) -> list[str]:
    """Stands in for DNS, which this offline machine does not have, for names under test."""
    return {
        "localhost": ["127.0.0.1"],
        "rebound.neuraldraft.io": ["93.184.215.14", "10.1.2.3"],
        "mapped.neuraldraft.io": ["::ffff:10.0.0.1"],
        "nat64.neuraldraft.io": ["64:ff9b::a9fe:a9fe"],
        "multicast.neuraldraft.io": ["224.0.1.1"],
    }.get(host, ["93.184.215.14"])


def check(policy: DownloadPolicy, url: str) -> list:
    """What the client does for each hop: one strict parse, then the policy on its result."""
    return policy(parse(url))


class TestDownloadPolicy:
    def test_allowed_host_returns_the_addresses_to_connect_to(self):
        policy = DownloadPolicy(["cdn.neuraldraft.io"], resolve=public_dns)
        assert check(policy, "https://cdn.neuraldraft.io/prj_1/a.png") == [
            ipaddress.ip_address("93.184.215.14")
        ]

    def test_parent_domain_entry_covers_subdomains_only(self):
        policy = DownloadPolicy([".example.com"], resolve=public_dns)
        check(policy, "https://img.example.com/a.png")
        with pytest.raises(DownloadRefusedError):
            check(policy, "https://badexample.com/a.png")

    def test_one_private_address_among_the_answers_refuses_the_name(self):
        with pytest.raises(DownloadRefusedError, match=r"resolves to 10\.1\.2\.3"):
            check(
                DownloadPolicy([".neuraldraft.io"], resolve=public_dns),
                "https://rebound.neuraldraft.io/a.png",
            )

    @pytest.mark.parametrize(
        ("host", "reason"),
        [
            ("mapped.neuraldraft.io", "private"),
            ("nat64.neuraldraft.io", "private"),
            ("multicast.neuraldraft.io", "multicast"),
        ],
    )
    def test_ipv6_forms_of_private_ipv4_and_multicast_are_refused(self, host, reason):
        with pytest.raises(DownloadRefusedError, match=reason):
            check(DownloadPolicy([host], resolve=public_dns), f"https://{host}/a.png")

    def test_a_name_that_does_not_resolve_is_refused(self):
        with pytest.raises(DownloadRefusedError, match="Cannot resolve"):
            check(DownloadPolicy(["nowhere.invalid"]), "https://nowhere.invalid/a.png")

    def test_host_not_in_list_is_never_resolved(self):
        asked = []
        policy = DownloadPolicy(["cdn.neuraldraft.io"], resolve=lambda *a: asked.append(a) or [])
        with pytest.raises(DownloadRefusedError, match="not in NEURALDRAFT"):
            check(policy, "https://evil.example/a.png")
        assert asked == []

    @pytest.mark.parametrize(
        "url", ["ftp://cdn.neuraldraft.io/a.png", "file:///etc/passwd", "//cdn/a.png", "a.png"]
    )
    def test_only_http_and_https(self, url):
        with pytest.raises(DownloadRefusedError):
            check(DownloadPolicy(["cdn.neuraldraft.io"]), url)

    @pytest.mark.parametrize(
        "url",
        [
            "http://10.0.0.8/a.png",
            "http://192.168.1.1/a.png",
            "http://169.254.169.254/latest/meta-data",
            "http://127.0.0.1:9/a.png",
            "http://[::1]/a.png",
            "http://0.0.0.0/a.png",
            "http://[fe80::1]/a.png",
        ],
    )
    def test_private_loopback_and_link_local_addresses_are_refused(self, url):
        with pytest.raises(DownloadRefusedError):
            check(DownloadPolicy(["cdn.neuraldraft.io"]), url)

    def test_allowed_name_resolving_to_loopback_is_refused(self):
        with pytest.raises(DownloadRefusedError, match=r"resolves to 127\.0\.0\.1"):
            check(DownloadPolicy(["localhost"], resolve=public_dns), "http://localhost:8765/a.png")

    def test_allow_listed_address_and_network(self):
        check(DownloadPolicy(["127.0.0.1"]), "http://127.0.0.1:8765/cdn/a.png")
        policy = DownloadPolicy(["localhost", "127.0.0.0/8"], resolve=public_dns)
        check(policy, "http://localhost:8765/a.png")
        check(DownloadPolicy(["::1"]), "http://[::1]:8765/a.png")

    def test_allow_listed_address_does_not_allow_its_neighbours(self):
        with pytest.raises(DownloadRefusedError):
            check(DownloadPolicy(["127.0.0.1"]), "http://127.0.0.2:8765/cdn/a.png")


class TestInspectImage:
    @pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
    def test_accepted_formats(self, fmt):
        image_format, width, height, color = inspect_image(image_bytes(fmt), max_pixels=10_000)
        assert (image_format, width, height) == (fmt, 40, 30)
        assert color.startswith("#") and len(color) == 7

    def test_dominant_colour(self):
        buffer = io.BytesIO()
        image = Image.new("RGB", (100, 100), (10, 120, 200))
        image.paste((250, 250, 250), (0, 0, 20, 20))
        image.save(buffer, "PNG")
        assert inspect_image(buffer, max_pixels=10**6)[3] == "#0a78c8"

    def test_other_formats_are_refused(self):
        with pytest.raises(InvalidImageError, match="not a JPEG, PNG, WebP or GIF image"):
            inspect_image(image_bytes("BMP"), max_pixels=10_000)

    def test_pixel_cap_is_checked_before_decoding(self):
        with pytest.raises(InvalidImageError, match="40x30 pixels, more than the 1000"):
            inspect_image(image_bytes("PNG"), max_pixels=1000)

    def test_truncated_image(self):
        data = image_bytes("PNG", size=(300, 300)).getvalue()
        with pytest.raises(InvalidImageError, match="not a valid image"):
            inspect_image(io.BytesIO(data[: len(data) // 2]), max_pixels=10**6)

    def test_png_with_a_broken_chunk(self):
        data = bytearray(image_bytes("PNG").getvalue())
        data[-14] ^= 0xFF  # in the CRC of the last IDAT chunk, before IEND
        with pytest.raises(InvalidImageError, match="bad CRC"):
            inspect_image(io.BytesIO(bytes(data)), max_pixels=10**6)

    def test_png_padded_with_a_huge_chunk_is_checked_but_not_decoded(self):
        data = image_bytes("PNG").getvalue()
        payload = b"\0" * (2 * 1024 * 1024)
        chunk = struct.pack(">I", len(payload)) + b"prVt" + payload
        chunk += struct.pack(">I", zlib.crc32(b"prVt" + payload))
        padded = data[:-12] + chunk + data[-12:]
        assert inspect_image(io.BytesIO(padded), max_pixels=10**6)[1:] == (40, 30, "")

    def test_not_an_image(self):
        with pytest.raises(InvalidImageError, match="not a JPEG, PNG, WebP or GIF image"):
            inspect_image(io.BytesIO(b"<html>Not found</html>"), max_pixels=10**6)

    def test_large_non_jpeg_is_not_decoded_for_its_colour(self):
        buffer = image_bytes("PNG", size=(2100, 2000))
        assert inspect_image(buffer, max_pixels=10**7)[3] == ""

    def test_large_jpeg_gets_its_colour_from_a_reduced_decode(self):
        buffer = image_bytes("JPEG", size=(2100, 2000), color=(0, 0, 255))
        assert inspect_image(buffer, max_pixels=10**7)[3] in ("#0000fe", "#0000ff")


class TestHostileImages:
    @pytest.mark.parametrize(
        ("variant", "message", "cause"),
        [
            ("text_bomb", "Decompressed data too large", ValueError),
            ("icc_bomb", "Decompressed data too large", ValueError),
            ("animated_gif", "animated GIF", None),
            ("animated_png", "animated PNG", None),
            ("animated_webp", "animated WebP", None),
            ("tiff", "not a JPEG, PNG, WebP or GIF image", UnidentifiedImageError),
        ],
    )
    def test_is_an_invalid_image(self, variant, message, cause):
        data, _content_type = hostile_image(variant)
        with pytest.raises(InvalidImageError, match=message) as caught:
            inspect_image(io.BytesIO(data), max_pixels=10**6)
        if cause is not None:
            assert isinstance(caught.value.__cause__, cause)

    def test_pillows_own_bomb_check_is_an_invalid_image(self):
        with pytest.raises(InvalidImageError) as caught:
            inspect_image(io.BytesIO(blank_png(20_000, 20_000)), max_pixels=10**9)
        assert isinstance(caught.value.__cause__, Image.DecompressionBombError)

    def test_a_webp_whose_riff_size_lies_is_refused_before_pillow(self):
        data = image_bytes("WEBP").getvalue()
        with pytest.raises(InvalidImageError, match="RIFF size"):
            inspect_image(io.BytesIO(data[:-4]), max_pixels=10**6)

    def test_a_webp_canvas_over_the_pixel_cap_is_refused_from_its_header(self):
        with pytest.raises(InvalidImageError, match="40x30 pixels"):
            inspect_image(image_bytes("WEBP"), max_pixels=1000)


class TestDecodeBudget:
    def test_a_webp_too_costly_to_decode_is_checked_but_not_opened(self, monkeypatch):
        side = 1200
        buffer = io.BytesIO()
        Image.new("RGB", (side, side), (10, 20, 30)).save(buffer, "WEBP", lossless=True)
        assert decode_cost("WEBP", "RGB", side, side, len(buffer.getvalue())) > (
            DOMINANT_COLOR_DECODE_BYTES
        )

        def never(*args, **kwargs):
            raise AssertionError("Pillow opened a WebP it should only have checked")

        monkeypatch.setattr(Image, "open", never)  # no server can show what was not opened
        assert inspect_image(buffer, max_pixels=10**7) == ("WEBP", side, side, "")

    def test_a_small_webp_gets_its_colour(self):
        assert inspect_image(image_bytes("WEBP", color=(0, 0, 255)), max_pixels=10**6)[3] in (
            "#0000fe",
            "#0000ff",
        )

    def test_an_rgb_png_costs_four_bytes_a_pixel_a_jpeg_one_sixteenth(self):
        assert decode_cost("PNG", "RGB", 2000, 2000, 12_000_000) == 16_000_000
        assert decode_cost("PNG", "P", 2000, 2000, 1_000_000) == 4_000_000
        assert decode_cost("JPEG", "RGB", 2000, 2000, 4_000_000) == 250_000

    def test_a_progressive_jpeg_costs_the_coefficients_of_the_whole_image(self):
        full, halved = ((1, 1),) * 3, ((2, 2), (1, 1), (1, 1))
        scaled = decode_cost("JPEG", "RGB", 2048, 1152, 0)
        assert scaled == 4 * 256 * 144
        # 2 bytes a coefficient, 64 a block: 6 bytes a pixel at 4:4:4, 3 at 4:2:0.
        assert decode_cost("JPEG", "RGB", 2048, 1152, 0, buffered_sampling=full) == (
            scaled + 6 * 2048 * 1152
        )
        assert decode_cost("JPEG", "RGB", 2048, 1152, 0, buffered_sampling=halved) == (
            scaled + 3 * 2048 * 1152
        )

    @pytest.mark.parametrize(
        ("progressive", "subsampling", "coloured"),
        [(False, 0, True), (True, 2, True), (True, 0, False)],
    )
    def test_a_progressive_jpeg_is_decoded_only_within_the_budget(
        self, progressive, subsampling, coloured
    ):
        """2048x1152: its coefficients take 3 bytes a pixel at 4:2:0 (7 MB, within
        DOMINANT_COLOR_DECODE_BYTES) and 6 at 4:4:4 (14 MB, over it)."""
        buffer = io.BytesIO()
        Image.new("RGB", (2048, 1152), (10, 120, 200)).save(
            buffer, "JPEG", progressive=progressive, subsampling=subsampling
        )
        image_format, width, height, colour = inspect_image(buffer, max_pixels=10**7)
        assert (image_format, width, height, bool(colour)) == ("JPEG", 2048, 1152, coloured)

    def test_a_sequential_jpeg_in_several_scans_is_costed_as_a_progressive_one(self):
        """Pillow cannot write one; the first scan's component count is rewritten, which
        is all the header walk reads (a byte-level case no encoder here produces)."""
        data = bytearray(image_bytes("JPEG").getvalue())
        scan = data.index(b"\xff\xda")
        assert _jpeg_buffered_sampling(io.BytesIO(bytes(data)), 3) is None
        data[scan + 4] = 1
        assert _jpeg_buffered_sampling(io.BytesIO(bytes(data)), 3) == ((2, 2), (1, 1), (1, 1))

    @pytest.mark.parametrize(
        "header",
        [
            b"\xff\xd8\xff\xff\xff\xc0",  # fill bytes before a marker
            b"\xff\xd8\xff\xe0\x00\x01",  # a segment length under its own two bytes
            b"\xff\xd8\xff\xe0\x00\x10JFIF",  # ends before the first scan
            b"\xff\xd8\xff\xc0\x00\x0b\x08\x00\x10\x00\x10\x01\x01\x00\x00"
            b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00",  # a sampling factor of 0
        ],
    )
    def test_a_jpeg_header_the_walk_cannot_follow_is_costed_as_the_worst(self, header):
        assert _jpeg_buffered_sampling(io.BytesIO(header), 3) == ((1, 1),) * 3

    def test_a_small_progressive_jpeg_of_many_pixels_stays_within_its_memory(self, tmp_path):
        """docs/security.rst: an ingest grows memory by at most 1.2x the file, or 8 MB.
        A 16-megapixel progressive JPEG of one colour is a few hundred KB, and its
        full decode takes 96 MB; peak memory is read in a process of its own."""
        path = tmp_path / "progressive.jpg"
        Image.new("RGB", (4000, 4000), (10, 120, 200)).save(
            path, "JPEG", progressive=True, quality=90, subsampling=0
        )
        assert path.stat().st_size < 1024 * 1024
        growth = int(
            subprocess.run(
                [sys.executable, "-c", PEAK_GROWTH_OF_INSPECTING, str(path)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        assert growth <= 8 * 1024 * 1024, growth


#: Prints how much inspect_image raised this process's peak RSS (VmHWM; the
#: ru_maxrss of a child carries its parent's peak over exec).
PEAK_GROWTH_OF_INSPECTING = textwrap.dedent(
    """
    import re, sys
    from django.conf import settings
    settings.configure()
    from django_neuraldraft.downloads import inspect_image

    def peak():
        with open("/proc/self/status") as status:
            return int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read())[1]) * 1024

    with open(sys.argv[1], "rb") as file:
        before = peak()
        inspect_image(file, max_pixels=50_000_000)
        print(peak() - before)
    """
)
