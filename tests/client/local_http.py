"""A small real HTTP server on loopback for what the sandbox cannot be.

It plays a foreign host (a CDN on another origin), a server that redirects,
lies about its length, answers 200 with HTML or cuts an event stream half way.
Routes are functions that write the whole answer through the handler.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]


Route = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class LocalServer:
    """Routes by exact path (query ignored) to functions that write the whole answer."""

    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    origin: str = ""

    def url(self, path: str) -> str:
        return self.origin + path


def _handler(server: LocalServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            server.requests.append(Recorded(self.command, path, dict(self.headers.items())))
            route = server.routes.get(path)
            if route is None:
                self.send_error(404)
                return
            route(self)

        do_POST = do_GET

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def serve() -> Iterator[LocalServer]:
    """Run a :class:`LocalServer` on a free port for the duration of the block."""
    server = LocalServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    server.origin = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


def send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    length: bool = True,
) -> None:
    """Write a whole answer; without ``length`` the body ends when the connection closes."""
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    if length:
        handler.send_header("Content-Length", str(len(body)))
    else:
        handler.send_header("Connection", "close")
        handler.close_connection = True
    handler.end_headers()
    handler.wfile.write(body)
