"""Downloads: streamed and hashed, capped, hop-by-hop URL checks, no key for foreign hosts."""

from __future__ import annotations

import hashlib
import io

import pytest

from django_neuraldraft.client import (
    HTTPURL,
    DownloadError,
    DownloadRefusedError,
    DownloadTooLargeError,
    NeuralDraftClient,
    NotFoundError,
    ServerError,
    TransportError,
)

from .local_http import send

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


def serve_png(handler) -> None:
    send(handler, 200, PNG, {"Content-Type": "image/png"})


def completed_image_url(client: NeuralDraftClient, sandbox, **fields: str) -> str:
    job = client.create_image("A red bicycle", aspect_ratio="1:1", **fields)
    sandbox.finish_job(job.id)
    return client.get_job(job.id).result["url"]


class RecordingPolicy:
    """A policy that approves every URL at the address it names, or refuses one; records each."""

    def __init__(self, refuse: str | None = None) -> None:
        self.urls: list[str] = []
        self.refuse = refuse

    def __call__(self, url: HTTPURL) -> list:
        self.urls.append(url.url)
        if self.refuse and self.refuse in url.url:
            raise PermissionError(f"{url} is not on the allow-list")
        return [url.address]


class TestFromSandbox:
    def test_streams_a_generated_image(self, client, sandbox):
        url = completed_image_url(client, sandbox)
        dest = io.BytesIO()
        check = RecordingPolicy()
        info = client.download(url, dest, max_bytes=10_000_000, policy=check)
        data = dest.getvalue()
        assert data.startswith(b"\xff\xd8\xff")
        assert info.url == url
        assert info.bytes == len(data)
        assert info.sha256 == hashlib.sha256(data).hexdigest()
        assert info.content_type == "image/jpeg"
        assert check.urls == [url]

    def test_api_origin_keeps_the_key(self, client, sandbox, api_key):
        """The sandbox CDN shares the API's origin, the one place the key may go."""
        url = completed_image_url(client, sandbox)
        client.download(url, io.BytesIO(), max_bytes=10_000_000)
        cdn = sandbox.requests[-1]
        assert cdn.path.startswith("/cdn/")
        assert cdn.headers["Authorization"] == f"Bearer {api_key}"

    def test_content_length_over_the_cap(self, client, sandbox):
        url = completed_image_url(client, sandbox)
        sandbox.set_fault("oversized_image", bytes=300_000)
        dest = io.BytesIO()
        with pytest.raises(DownloadTooLargeError, match="Content-Length"):
            client.download(url, dest, max_bytes=200_000)
        assert dest.getvalue() == b""

    def test_wrong_content_type_is_reported_not_judged(self, client, sandbox):
        url = completed_image_url(client, sandbox)
        sandbox.set_fault("wrong_content_type")
        info = client.download(url, io.BytesIO(), max_bytes=10_000_000)
        assert info.content_type.startswith("text/html")

    def test_missing_file(self, client, sandbox):
        url = f"{sandbox.origin}/cdn/prj_sandbox/none.png"
        with pytest.raises(NotFoundError):
            client.download(url, io.BytesIO(), max_bytes=9)

    def test_server_error_not_retried(self, client, sandbox, sleeps):
        url = completed_image_url(client, sandbox)
        sandbox.set_fault("status", status=503, path="/cdn/")
        with pytest.raises(ServerError):
            client.download(url, io.BytesIO(), max_bytes=10_000_000)
        assert sleeps.waits == []

    def test_dropped_connection(self, client, sandbox):
        url = completed_image_url(client, sandbox)
        sandbox.set_fault("drop_response", path="/cdn/")
        with pytest.raises(TransportError):
            client.download(url, io.BytesIO(), max_bytes=10_000_000)


class TestFromLocalServer:
    """A second local server plays a foreign CDN: other origin, redirects, missing lengths."""

    def test_no_authorization_to_a_foreign_host(self, client, local_server):
        local_server.routes["/img.png"] = serve_png
        info = client.download(local_server.url("/img.png"), io.BytesIO(), max_bytes=len(PNG))
        assert info.bytes == len(PNG)
        (request,) = local_server.requests
        assert "Authorization" not in request.headers
        assert request.headers["User-Agent"].startswith("django-neuraldraft/")

    def test_byte_cap_without_content_length(self, client, local_server):
        local_server.routes["/big.png"] = lambda h: send(h, 200, PNG, length=False)
        dest = io.BytesIO()
        with pytest.raises(DownloadTooLargeError, match="More than 1000 bytes"):
            client.download(local_server.url("/big.png"), dest, max_bytes=1000)
        assert len(dest.getvalue()) <= 1000

    def test_reads_no_further_than_content_length(self, client, local_server):
        def lying(handler):
            send(handler, 200, PNG, {"Content-Length": "100"}, length=False)

        local_server.routes["/lying.png"] = lying
        dest = io.BytesIO()
        info = client.download(local_server.url("/lying.png"), dest, max_bytes=100)
        assert info.bytes == 100 == len(dest.getvalue())

    def test_exact_cap_is_allowed(self, client, local_server):
        local_server.routes["/img.png"] = lambda h: send(h, 200, PNG, length=False)
        info = client.download(local_server.url("/img.png"), io.BytesIO(), max_bytes=len(PNG))
        assert info.bytes == len(PNG)

    def chain(self, local_server, hops: int) -> str:
        """``/r/<n>`` redirects to ``/r/<n-1>``; ``/r/0`` is the image."""
        for n in range(1, hops + 1):
            location = {"Location": f"/r/{n - 1}"}
            local_server.routes[f"/r/{n}"] = lambda h, loc=location: send(h, 302, headers=loc)
        local_server.routes["/r/0"] = serve_png
        return local_server.url(f"/r/{hops}")

    def test_follows_five_redirects_checking_each_hop(self, client, local_server):
        check = RecordingPolicy()
        info = client.download(
            self.chain(local_server, 5), io.BytesIO(), max_bytes=len(PNG), policy=check
        )
        assert check.urls == [local_server.url(f"/r/{n}") for n in range(5, -1, -1)]
        assert info.url == local_server.url("/r/0")
        assert len(local_server.requests) == 6

    def test_six_redirects_are_too_many(self, client, local_server):
        with pytest.raises(DownloadError, match="More than 5 redirects"):
            client.download(self.chain(local_server, 6), io.BytesIO(), max_bytes=len(PNG))
        assert len(local_server.requests) == 6

    def test_refused_redirect_target_is_never_fetched(self, client, local_server):
        check = RecordingPolicy(refuse="/r/1")
        with pytest.raises(DownloadRefusedError, match="allow-list") as caught:
            client.download(
                self.chain(local_server, 3), io.BytesIO(), max_bytes=len(PNG), policy=check
            )
        assert isinstance(caught.value.__cause__, PermissionError)
        assert [r.path for r in local_server.requests] == ["/r/3", "/r/2"]

    def test_redirect_from_api_origin_to_foreign_host_drops_the_key(
        self, sandbox, api_key, local_server
    ):
        # Here the local server is the API's origin and the sandbox the foreign host.
        redirecting = NeuralDraftClient(api_key, local_server.url("/v1"))
        local_server.routes["/go"] = lambda h: send(
            h, 302, headers={"Location": sandbox.origin + "/cdn/prj_sandbox/none.png"}
        )
        with pytest.raises(NotFoundError):
            redirecting.download(local_server.url("/go"), io.BytesIO(), max_bytes=10)
        assert local_server.requests[0].headers["Authorization"] == f"Bearer {api_key}"
        assert "Authorization" not in sandbox.requests[-1].headers

    def test_refused_first_url(self, client, local_server):
        with pytest.raises(DownloadRefusedError):
            client.download(
                local_server.url("/img.png"),
                io.BytesIO(),
                max_bytes=10,
                policy=RecordingPolicy(refuse="img"),
            )
        assert local_server.requests == []

    @pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x.png"])
    def test_only_http(self, client, url):
        with pytest.raises(DownloadRefusedError, match="http"):
            client.download(url, io.BytesIO(), max_bytes=10)
