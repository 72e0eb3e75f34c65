"""The URL that is checked is the URL that is fetched: hostile result URLs and redirects.

Each hostile URL reaches the real pipeline (``request_generation`` -> ``submit``
-> ``poll_once``) as the job's result URL (the sandbox's ``result_url`` fault)
or as a redirect from the sandbox's CDN (its ``redirect`` fault). Listeners on
the addresses those URLs point at record every connection: none may arrive,
no ``Authorization`` header may leave the API's origin, the job fails with
``download_refused`` and the key keeps its old image.

In this suite the sandbox's 127.0.0.1 is allow-listed (it is the API's host),
so a URL that reaches the listener on 127.0.0.1 through a parser differential
or an odd IPv4 spelling is stopped by nothing but the strict parse.
"""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.files.storage import storages
from PIL import Image

from django_neuraldraft import services
from django_neuraldraft.choices import JobStatus
from django_neuraldraft.models import ImageKey, Job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (20, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


_PNG = _png()


@dataclass
class Listener:
    """A server that would gladly serve an image: every connection to it is a leak."""

    host: str
    port: int = 0
    connections: int = 0
    authorization: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def _handler(listener: Listener) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            listener.connections += 1
            super().setup()

        def do_GET(self) -> None:
            listener.lines.append(self.requestline)
            if "Authorization" in self.headers:
                listener.authorization.append(self.headers["Authorization"])
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(_PNG)))
            self.end_headers()
            self.wfile.write(_PNG)

        do_POST = do_HEAD = do_GET

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


@contextmanager
def listening(host: str) -> Iterator[Listener]:
    listener = Listener(host)
    server_class = _Server6 if ":" in host else _Server
    try:
        server = server_class((host, 0), _handler(listener))
    except OSError as err:
        pytest.skip(f"Cannot listen on {host}: {err}")
    listener.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def listeners() -> Iterator[dict[str, Listener]]:
    """The hostile targets: the allow-listed loopback address, and two that are not."""
    with listening("127.0.0.1") as local, listening("127.0.0.2") as other:
        with listening("::1") as ipv6:
            yield {"P": local, "Q": other, "R": ipv6}


#: Hostile URLs, by family. ``{P}`` is a listener on 127.0.0.1 (allow-listed here),
#: ``{Q}`` one on 127.0.0.2 and ``{R}`` one on ::1 (neither allow-listed), ``{S}``
#: the sandbox's port: ``127.0.0.1:{S}`` is the API's own origin.
HOSTILE_URLS = [
    # Backslashes: urllib.parse sees the host after "@", urllib3 the one before.
    pytest.param("http://127.0.0.1:{P}\\@127.0.0.1:{S}/cdn/x.png", id="backslash-api-origin"),
    pytest.param("http://127.0.0.1:{P}\\@cdn.neuraldraft.io/x.png", id="backslash-cdn"),
    pytest.param("http://127.0.0.1:{P}\\\\@cdn.neuraldraft.io/x.png", id="double-backslash"),
    pytest.param("https://127.0.0.1:{P}\\.cdn.neuraldraft.io/x.png", id="backslash-subdomain"),
    # User info.
    pytest.param("http://cdn.neuraldraft.io@127.0.0.1:{P}/x.png", id="userinfo"),
    pytest.param("http://user:pass@127.0.0.1:{P}/x.png", id="userinfo-password"),
    pytest.param("http://127.0.0.1:{S}@127.0.0.1:{P}/x.png", id="userinfo-api-origin"),
    pytest.param("http://127.0.0.1:{P};@127.0.0.1:{S}/cdn/x.png", id="userinfo-semicolon"),
    pytest.param("http://@127.0.0.1:{P}/x.png", id="userinfo-empty"),
    # Percent-encoding in the host.
    pytest.param("http://%31%32%37.0.0.1:{P}/x.png", id="encoded-host"),
    pytest.param("http://cdn.neuraldraft.io%40127.0.0.1:{P}/x.png", id="encoded-at"),
    pytest.param("http://127.0.0.1%3a{P}/x.png", id="encoded-colon"),
    # IPv4 literals in forms inet_aton accepts and a canonical check would miss.
    pytest.param("http://2130706433:{P}/x.png", id="ipv4-decimal"),
    pytest.param("http://0177.0.0.1:{P}/x.png", id="ipv4-octal"),
    pytest.param("http://0x7f.0.0.1:{P}/x.png", id="ipv4-hex-octet"),
    pytest.param("http://0x7f000001:{P}/x.png", id="ipv4-hex"),
    pytest.param("http://0x7f.1:{P}/x.png", id="ipv4-hex-short"),
    pytest.param("http://127.1:{P}/x.png", id="ipv4-short"),
    pytest.param("http://127.0.1:{P}/x.png", id="ipv4-three-parts"),
    pytest.param("http://127.000.000.001:{P}/x.png", id="ipv4-leading-zeros"),
    # IPv6 literals that carry an IPv4 address.
    pytest.param("http://[::ffff:127.0.0.1]:{P}/x.png", id="ipv4-mapped"),
    pytest.param("http://[::ffff:7f00:1]:{P}/x.png", id="ipv4-mapped-hex"),
    pytest.param("http://[::127.0.0.1]:{P}/x.png", id="ipv4-compatible"),
    pytest.param("http://[0:0:0:0:0:0:0:1]:{R}/x.png", id="ipv6-long-form"),
    pytest.param("http://[::ffff:127.0.0.1%25lo]:{P}/x.png", id="ipv4-mapped-zone"),
    pytest.param("http://[fe80::1%25lo]:{P}/x.png", id="ipv6-zone"),
    pytest.param("http://[fe80::1%lo]:{P}/x.png", id="ipv6-raw-zone"),
    # Control characters and whitespace.
    pytest.param("http://127.0.0.1:{P}\t@cdn.neuraldraft.io/x.png", id="tab"),
    pytest.param("http://127.0.0.1:{P} @cdn.neuraldraft.io/x.png", id="space"),
    pytest.param("http://127.0.0.1:{P}/x.png\x00.cdn.neuraldraft.io", id="nul"),
    pytest.param("http://127.0.0.1:{P}/x.png\x0b", id="vertical-tab"),
    pytest.param("\x00http://127.0.0.1:{P}/x.png", id="leading-nul"),
    # Unicode that IDNA or NFKC folds into an address.
    pytest.param("http://127\u30020\u30020\u30021:{P}/x.png", id="ideographic-dots"),
    pytest.param("http://\uff11\uff12\uff17.0.0.1:{P}/x.png", id="fullwidth-digits"),
    pytest.param("http://cdn.neuraldraft.io\u2025127.0.0.1:{P}/x.png", id="two-dot-leader"),
    pytest.param("http://xn--:{P}/x.png", id="bad-punycode"),
    # No host, other schemes, ports.
    pytest.param("http:///127.0.0.1:{P}/x.png", id="empty-host"),
    pytest.param("http:/127.0.0.1:{P}/x.png", id="one-slash"),
    pytest.param("ftp://127.0.0.1:{P}/x.png", id="ftp"),
    pytest.param("gopher://127.0.0.1:{P}/_GET%20/", id="gopher"),
    pytest.param("file:///etc/passwd", id="file"),
    pytest.param("http://127.0.0.1:0{P}/x.png", id="port-leading-zero"),
    pytest.param("http://127.0.0.1:{P_PLUS_65536}/x.png", id="port-out-of-range"),
    pytest.param("http://127.0.0.1:+{P}/x.png", id="port-plus"),
    pytest.param("http://127.0.0.1:/x.png", id="port-empty"),
    pytest.param("http://127.0.0.1:0/x.png", id="port-zero"),
    pytest.param("http://127.0.0.1:{P}:{S}/x.png", id="two-ports"),
    pytest.param("http://127.0.0.1\uff0e:{P}/x.png", id="fullwidth-dot"),
    pytest.param("http://127.0.0.1.:{P}/x.png", id="ipv4-trailing-dot"),
    # Addresses the policy refuses however they are written.
    pytest.param("http://127.0.0.2:{Q}/x.png", id="other-loopback"),
    pytest.param("http://[::1]:{R}/x.png", id="ipv6-loopback"),
    pytest.param("http://0.0.0.0:{P}/x.png", id="unspecified"),
    pytest.param("http://localhost:{P}/x.png", id="localhost-name"),
    pytest.param("http://localhost.:{P}/x.png", id="trailing-dot"),
]

#: Extra forms only a ``Location`` header can take: relative references. (A
#: leading space is not one: HTTP drops it from every header value.)
HOSTILE_LOCATIONS = [
    pytest.param("/x.png?" + "a" * 60_000, id="location-60kb"),
    # As a result URL this one never gets this far: the job's mirror refuses
    # a URL longer than its column (``invalid_result``).
    pytest.param("http://127.0.0.1:{P}/" + "a" * 9000, id="url-9000"),
    pytest.param("//127.0.0.2:{Q}/x.png", id="scheme-relative"),
    pytest.param("/\\127.0.0.1:{P}/x.png", id="slash-backslash"),
    pytest.param("\\\\127.0.0.1:{P}/x.png", id="backslashes-relative"),
]


def fill(template: str, listeners: dict[str, Listener], sandbox) -> str:
    ports = {name: listener.port for name, listener in listeners.items()}
    return template.format(S=sandbox.port, P_PLUS_65536=ports["P"] + 65536, **ports)


@pytest.fixture
def hero_with_image(sandbox):
    """A key whose first image is bound: a refused download must leave it in place."""
    image_key = ImageKey.objects.create(
        key="hero.background", prompt="A quiet harbour at dawn", aspect_ratio="16:9"
    )
    job = services.submit(services.request_generation(image_key))
    sandbox.finish_job(job.remote_id)
    assert services.poll_once(job).version is not None
    image_key.refresh_from_db()
    return image_key


def generate_through(sandbox, image_key: ImageKey) -> Job:
    """Request, submit, finish at the sandbox and poll, as a worker would."""
    job = services.submit(services.request_generation(image_key))
    sandbox.finish_job(job.remote_id)
    return services.poll_once(job).job


def assert_refused_and_nothing_leaked(job, image_key, listeners):
    job.refresh_from_db()
    assert (job.status, job.error_code) == (JobStatus.FAILED, "download_refused")
    for listener in listeners.values():
        assert (listener.connections, listener.lines, listener.authorization) == (0, [], [])
    old = image_key.current
    image_key.refresh_from_db()
    assert image_key.current == old
    assert storages["default"].exists(old.file.name)


@pytest.fixture
def clean_listeners(listeners):
    for listener in listeners.values():
        listener.connections = 0
        listener.lines.clear()
        listener.authorization.clear()
    yield listeners
    for listener in listeners.values():
        assert listener.connections == 0, f"{listener.host} was reached: {listener.lines}"


@pytest.mark.parametrize(
    "template", [*HOSTILE_URLS, pytest.param(" http://127.0.0.1:{P}/x.png", id="leading-space")]
)
def test_hostile_result_url_is_never_fetched(template, clean_listeners, sandbox, hero_with_image):
    url = fill(template, clean_listeners, sandbox)
    sandbox.set_fault("result_url", count=1, url=url)
    job = generate_through(sandbox, hero_with_image)
    assert job.result["url"] == url
    assert_refused_and_nothing_leaked(job, hero_with_image, clean_listeners)


@pytest.mark.parametrize("template", HOSTILE_URLS + HOSTILE_LOCATIONS)
def test_hostile_redirect_from_the_cdn_is_never_followed(
    template, clean_listeners, sandbox, hero_with_image
):
    location = fill(template, clean_listeners, sandbox)
    sandbox.set_fault("redirect", count=1, path="/cdn/", location=location)
    job = generate_through(sandbox, hero_with_image)
    assert_refused_and_nothing_leaked(job, hero_with_image, clean_listeners)
    cdn_hits = [request for request in sandbox.requests if request.path.startswith("/cdn/")]
    assert len(cdn_hits) == 2  # the first image, then the redirect that was refused


def test_a_redirect_whose_header_is_too_long_to_read_fails_the_job(
    clean_listeners, sandbox, hero_with_image
):
    """A 70 KB Location is past http.client's line limit: the same answer every time."""
    location = f"http://127.0.0.1:{clean_listeners['P'].port}/" + "a" * 70_000
    sandbox.set_fault("redirect", path="/cdn/", location=location)
    job = generate_through(sandbox, hero_with_image)
    job.refresh_from_db()
    assert (job.status, job.error_code) == (JobStatus.FAILED, "download_failed")
    assert "LineTooLong" in job.error_message


def test_the_listeners_do_record_a_fetch(clean_listeners, sandbox, hero_with_image):
    """The control: a plain URL to the allow-listed listener is fetched, without the key."""
    local = clean_listeners["P"]
    sandbox.set_fault("result_url", count=1, url=f"http://127.0.0.1:{local.port}/x.png")
    job = generate_through(sandbox, hero_with_image)
    assert job.status == JobStatus.COMPLETED
    assert (local.connections, local.authorization) == (1, [])
    local.connections = 0
    local.lines.clear()


def test_a_redirect_to_another_origin_drops_the_key(clean_listeners, sandbox, hero_with_image):
    """The sandbox CDN (the API origin) gets the key; the allow-listed hop after it does not."""
    local = clean_listeners["P"]
    sandbox.set_fault(
        "redirect", count=1, path="/cdn/", location=f"http://127.0.0.1:{local.port}/x.png"
    )
    job = generate_through(sandbox, hero_with_image)
    assert job.status == JobStatus.COMPLETED
    assert local.lines == ["GET /x.png HTTP/1.1"]
    assert local.authorization == []
    assert sandbox.requests[-1].headers["Authorization"].startswith("Bearer ndsk_test_")
    local.connections = 0
    local.lines.clear()
