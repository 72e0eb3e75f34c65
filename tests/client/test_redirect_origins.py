"""Redirects between origins: once a download has left the API's origin, the key never returns.

Two sandboxes play the API (the client's ``base_url``, whose CDN is on the
same origin and so gets the key) and a CDN on another origin; their
``redirect`` faults bounce the download between them.
"""

from __future__ import annotations

import io

import pytest

from django_neuraldraft.client import DownloadError
from django_neuraldraft.downloads import DownloadPolicy
from django_neuraldraft.testing import run_sandbox

from .test_download import completed_image_url


@pytest.fixture(scope="module")
def other_origin():
    with run_sandbox() as server:
        yield server


def authorization_seen(server, prefix: str = "/cdn/") -> list[str | None]:
    return [
        request.headers.get("Authorization")
        for request in server.requests
        if request.path.startswith(prefix)
    ]


def test_api_origin_to_cdn_and_back_sends_the_key_only_on_the_first_hop(
    client, sandbox, other_origin
):
    other_origin.reset()
    url = completed_image_url(client, sandbox)
    path = url.removeprefix(sandbox.origin)
    sandbox.set_fault("redirect", path="/cdn/", count=1, location=other_origin.origin + path)
    other_origin.set_fault("redirect", path="/cdn/", count=1, location=url)
    info = client.download(
        url, io.BytesIO(), max_bytes=10_000_000, policy=DownloadPolicy(["127.0.0.1"])
    )
    assert info.bytes > 0 and info.url == url
    first, back = authorization_seen(sandbox)
    assert first is not None and first.startswith("Bearer ndsk_test_")
    assert back is None
    assert authorization_seen(other_origin) == [None]


def test_bouncing_between_origins_ends_without_the_key(client, sandbox, other_origin):
    other_origin.reset()
    url = completed_image_url(client, sandbox)
    path = url.removeprefix(sandbox.origin)
    sandbox.set_fault("redirect", path="/cdn/", location=other_origin.origin + path)
    other_origin.set_fault("redirect", path="/cdn/", location=url)
    with pytest.raises(DownloadError, match="More than 5 redirects"):
        client.download(
            url, io.BytesIO(), max_bytes=10_000_000, policy=DownloadPolicy(["127.0.0.1"])
        )
    assert authorization_seen(sandbox)[1:] == [None, None]
    assert authorization_seen(other_origin) == [None, None, None]
