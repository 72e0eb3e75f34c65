"""A download ends within its deadline however slowly the server sends (a slow loris).

The sandbox's ``slow_body`` fault sends a 72-byte PNG one byte every 0.2 s:
each read returns well within the read timeout, so only a deadline on the
whole download can stop it.
"""

from __future__ import annotations

import io

import pytest

from django_neuraldraft.client import DownloadError
from django_neuraldraft.downloads import DownloadPolicy, fetch_image

from .test_download import completed_image_url


def test_a_trickling_body_is_cut_at_the_deadline(client, sandbox):
    url = completed_image_url(client, sandbox)
    fault = sandbox.set_fault("slow_body", path="/cdn/", count=1)
    dest = io.BytesIO()
    with pytest.raises(DownloadError, match="took longer than 1 seconds"):
        client.download(url, dest, max_bytes=10_000, max_seconds=1)
    assert 0 < fault.served < 72


def test_the_deadline_covers_every_redirect(client, sandbox):
    url = completed_image_url(client, sandbox)
    sandbox.set_fault("latency", seconds=0.4, path="/cdn/")
    sandbox.set_fault("redirect", location=url, path="/cdn/", count=5)
    with pytest.raises(DownloadError, match="took longer than 1 seconds"):
        client.download(url, io.BytesIO(), max_bytes=10_000, max_seconds=1)
    assert len([r for r in sandbox.requests if r.path.startswith("/cdn/")]) < 5


def test_fetch_image_passes_its_deadline(client, sandbox):
    url = completed_image_url(client, sandbox)
    sandbox.set_fault("slow_body", path="/cdn/", count=1)
    policy = DownloadPolicy(["127.0.0.1"])
    with pytest.raises(DownloadError, match=r"took longer than 0\.5 seconds"):
        with fetch_image(
            client, url, policy=policy, max_bytes=10_000, max_pixels=10**6, max_seconds=0.5
        ):
            pass


def test_a_download_within_its_deadline_is_whole(client, sandbox):
    url = completed_image_url(client, sandbox)
    sandbox.set_fault("slow_body", path="/cdn/", count=1, bytes=36, interval=0.05)
    dest = io.BytesIO()
    info = client.download(url, dest, max_bytes=10_000, max_seconds=30)
    assert info.bytes == 72 and dest.getvalue().startswith(b"\x89PNG")
