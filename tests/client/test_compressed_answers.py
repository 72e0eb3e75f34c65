"""Compressed and unbounded answers: never more than the bound, on decoded bytes.

The sandbox's ``gzip_bomb`` fault sends gigabytes of zeros gzip-compressed
(about 1000:1: 64 GB in 64 MB) whatever ``Accept-Encoding`` asked for.
"""

from __future__ import annotations

import io

import pytest

from django_neuraldraft.client import DownloadError, DownloadTooLargeError, ResponseTooLargeError

from .test_download import completed_image_url

BOMB = 64 * 1024**3


def test_a_download_sent_compressed_is_refused_before_decoding(client, sandbox):
    """A download asks for ``identity``: an image sent gzip-encoded is refused, not decoded."""
    url = completed_image_url(client, sandbox)
    fault = sandbox.set_fault("gzip_bomb", bytes=BOMB, path="/cdn/")
    dest = io.BytesIO()
    with pytest.raises(DownloadError, match="Content-Encoding 'gzip'"):
        client.download(url, dest, max_bytes=10_000_000)
    assert dest.getvalue() == b""
    assert fault.served < 16 * 1024**2


def test_a_compressed_api_answer_is_bounded_on_its_decoded_bytes(client, sandbox):
    fault = sandbox.set_fault(
        "gzip_bomb", bytes=BOMB, content_type="application/json", path="/v1/jobs/"
    )
    with pytest.raises(ResponseTooLargeError, match="refused past 4194304 bytes"):
        client.get_job("job_1")
    assert fault.served < 16 * 1024**2


def test_a_chunked_image_body_without_a_length_stops_at_the_cap(client, sandbox):
    url = completed_image_url(client, sandbox)
    fault = sandbox.set_fault("huge_body", bytes=200 * 1024**2, path="/cdn/")
    dest = io.BytesIO()
    with pytest.raises(DownloadTooLargeError, match="More than 1000000 bytes arrived"):
        client.download(url, dest, max_bytes=1_000_000)
    assert len(dest.getvalue()) <= 1_000_000
    assert fault.served < 200 * 1024**2 // 8
