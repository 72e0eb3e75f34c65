"""The HTTP plumbing and :class:`SandboxServer`, the object tests start, inspect and stop.

Stdlib ``http.server`` with HTTP/1.1 keep-alive, one daemon thread per
connection. The server tracks open connections so :meth:`SandboxServer.stop`
can close idle keep-alive sockets and join every thread instead of leaving
them blocked on a read.
"""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

from django_neuraldraft.sandbox.app import App
from django_neuraldraft.sandbox.faults import Fault, make_fault
from django_neuraldraft.sandbox.ids import new_id
from django_neuraldraft.sandbox.messages import Headers, Request, Response
from django_neuraldraft.sandbox.options import Options
from django_neuraldraft.sandbox.problems import ProblemError
from django_neuraldraft.sandbox.recording import RecordedRequest, describe_log, select
from django_neuraldraft.sandbox.renderer import Renderer
from django_neuraldraft.sandbox.store import Store
from django_neuraldraft.sandbox.webhooks import Delivery, Dispatcher

logger = logging.getLogger("django_neuraldraft.sandbox")

#: Bodies above this are refused unread (uploads are capped at 10 MB anyway).
MAX_BODY_BYTES = 64 * 1024 * 1024
_LINE_LIMIT = 65536


class _BodyError(Exception):
    """The request body cannot be read; the connection is closed after the answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.problem = ProblemError(status, detail)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "NeuralDraftSandbox/1"
    # Headers and body go out in separate writes; without this, Nagle plus
    # delayed ACKs add ~40 ms to every keep-alive request.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s - %s", self.address_string(), format % args)

    def _dispatch(self) -> None:
        request_id = new_id("req")
        try:
            body = self._read_body()
        except _BodyError as err:
            self.close_connection = True
            self._write(err.problem.to_response(request_id), request_id)
            return
        target, _, query = self.path.partition("?")
        request = Request(
            method=self.command,
            path=target,
            query=dict(parse_qsl(query, keep_blank_values=True)),
            headers=Headers(self.headers.items()),
            body=body,
            request_id=request_id,
        )
        response = self.server.app.handle(request)
        if response.drop:
            self.close_connection = True
            return
        self._write(response, request_id)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

    def send_error(
        self, code: int, message: str | None = None, explain: str | None = None
    ) -> None:
        """Answer the stdlib's own refusals (bad request line, unknown method) as problems too."""
        self.log_error("code %d, message %s", code, message)
        request_id = new_id("req")
        self.close_connection = True
        status = 405 if code == 501 else code
        problem = ProblemError(status, message or explain or "The request was refused.")
        self._write(problem.to_response(request_id), request_id)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            size = int(length)
        except ValueError:
            raise _BodyError(400, "The Content-Length header is not a number.") from None
        if size > MAX_BODY_BYTES:
            raise _BodyError(413, f"The request body is too large (over {MAX_BODY_BYTES} bytes).")
        return self.rfile.read(max(0, size))

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(_LINE_LIMIT)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _BodyError(400, "The chunked request body is malformed.") from None
            if size == 0:
                while self.rfile.readline(_LINE_LIMIT) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BodyError(
                    413, f"The request body is too large (over {MAX_BODY_BYTES} bytes)."
                )
            chunks.append(self.rfile.read(size))
            self.rfile.readline(_LINE_LIMIT)

    def _write(self, response: Response, request_id: str) -> None:
        self.send_response(response.status)
        if "X-Request-Id" not in response.headers:
            self.send_header("X-Request-Id", request_id)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.stream is not None:
            # Chunked, so each event reaches the client at once: without a length,
            # clients such as urllib3 buffer a close-delimited body.
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                response.stream(self._write_chunk)
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                logger.debug("Event stream client went away")
                self.close_connection = True
            return
        if response.status not in (204, 304):
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut every open connection so handler threads blocked on a read return."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("Connection from %s ended with an error", client_address, exc_info=True)


class SandboxServer:
    """A local Neural Draft API for tests and offline development.

    Every option is a behaviour the real API has, made tunable so tests run
    fast and can reach edge cases:

    - ``job_seconds``: how long a generation job runs (0 ends on first read).
    - ``image_long_edge``: pixels on the long side of generated images
      (2048, as the API docs' 2048x1152 example).
    - ``image_format``: ``"jpeg"`` (the default, as in the API docs'
      examples), ``"png"`` or ``"webp"``, for generated images.
    - ``rate_limit`` / ``rate_burst``: requests per minute and bucket size per
      project (``rate_limit=None`` turns limiting off; ``rate_burst=None`` is
      twice ``rate_limit``, as on every documented plan).
    - ``credits``: the starting balance (generation costs 40, an upload 1).
    - ``sse_heartbeat``: seconds of silence before a ``: ping`` on a stream.
    - ``webhook_retry_scale``: multiplies the documented retry delays.
    - ``webhook_timeout``: seconds a receiver has to answer one delivery.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    Raises ``ValueError`` for an option out of range.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        job_seconds: float = 3.0,
        image_long_edge: int = 2048,
        image_format: str = "jpeg",
        rate_limit: int | None = 1000,
        rate_burst: int | None = None,
        credits: int = 1_000_000,
        sse_heartbeat: float = 15.0,
        webhook_retry_scale: float = 1.0,
        webhook_timeout: float = 30.0,
    ) -> None:
        self.options = Options(
            job_seconds=job_seconds,
            image_long_edge=image_long_edge,
            image_format=image_format,
            rate_limit=rate_limit,
            rate_burst=rate_burst,
            credits=credits,
            sse_heartbeat=sse_heartbeat,
            webhook_retry_scale=webhook_retry_scale,
            webhook_timeout=webhook_timeout,
        )
        self.host = host
        self._requested_port = port
        self._store = Store(self.options)
        self._httpd: _HTTPServer | None = None
        self._port: int | None = None
        self._threads: list[threading.Thread] = []
        self._dispatcher: Dispatcher | None = None
        self._stopped = False

    def start(self) -> SandboxServer:
        """Bind and serve in background threads; returns ``self``. A server starts only once."""
        if self._httpd is not None or self._stopped:
            raise RuntimeError("A SandboxServer can be started once; create a new one instead.")
        self._httpd = _HTTPServer((self.host, self._requested_port), App(self._store))
        self._port = self._httpd.server_address[1]
        self._store.origin = self.origin
        self._dispatcher = Dispatcher(
            self._store, self.options.webhook_timeout, f"webhooks-{self._port}"
        )
        self._store.renderer = Renderer(
            self._store.keep_render, name=f"neuraldraft-sandbox-render-{self._port}"
        )
        self._threads = [
            self._store.renderer,
            threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"neuraldraft-sandbox-http-{self._port}",
                daemon=True,
            ),
            self._dispatcher,
        ]
        for thread in self._threads:
            thread.start()
        logger.info("Neural Draft sandbox listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and join the server's threads."""
        if self._httpd is None:
            return
        self._stopped = True
        self._store.stop()
        if self._dispatcher is not None:
            self._dispatcher.interrupt()
        if self._store.renderer is not None:
            self._store.renderer.stop()
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
            if thread.is_alive():
                logger.warning("Sandbox thread %s did not stop in time", thread.name)
        self._httpd = None
        logger.info("Neural Draft sandbox stopped")

    def __enter__(self) -> SandboxServer:
        return self.start() if self._httpd is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (still readable after :meth:`stop`, for messages)."""
        if self._port is None:
            raise RuntimeError("The sandbox has not been started; call start() first.")
        return self._port

    @property
    def origin(self) -> str:
        """``http://host:port``; a wildcard bind address is shown as 127.0.0.1."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API root to give a client: ``http://host:port/v1``."""
        return f"{self.origin}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far except ``/_sandbox/`` control calls, oldest first."""
        return self._store.recorded()

    @property
    def jobs(self) -> dict[str, dict[str, Any]]:
        """Job id -> the Job object as ``GET /jobs/{id}`` would answer it now."""
        return self._store.jobs_json()

    def completion_times(self) -> dict[str, float]:
        """Job id -> the Unix time, to the microsecond, its run ended or will end.

        ``jobs`` carries RFC 3339 timestamps, to the second as the API does;
        benchmarks that measure the delay from completion to display need more.
        """
        return self._store.completion_times()

    @property
    def deliveries(self) -> list[Delivery]:
        """Copies of the webhook deliveries made so far, oldest first."""
        return self._store.deliveries_copy()

    def assert_called(
        self, method: str, path: str, *, times: int | None = None
    ) -> list[RecordedRequest]:
        """Return the requests with this method and exact path (query excluded).

        Raises ``AssertionError`` listing the whole log when there were none,
        or not exactly ``times`` when given.
        """
        entries = self.requests
        matching = select(entries, method, path)
        if (times is None and not matching) or (times is not None and len(matching) != times):
            expected = "at least once" if times is None else f"{times} time(s)"
            raise AssertionError(
                f"Expected {method.upper()} {path} {expected}, saw it {len(matching)} time(s). "
                f"Requests:\n{describe_log(entries)}"
            )
        return matching

    def last_request(self, method: str | None = None, path: str | None = None) -> RecordedRequest:
        """The latest request, optionally with this method and path; ``AssertionError`` if none."""
        entries = self.requests
        matching = select(entries, method, path)
        if not matching:
            wanted = " ".join(filter(None, [method and method.upper(), path])) or "any request"
            raise AssertionError(
                f"No request matched {wanted}. Requests:\n{describe_log(entries)}"
            )
        return matching[-1]

    def set_fault(
        self,
        kind: str,
        *,
        count: int | None = None,
        method: str | None = None,
        path: str | None = None,
        **params: Any,
    ) -> Fault:
        """Inject a fault into the next ``count`` matching requests (``None``: until cleared).

        ``method`` and ``path`` (a prefix) narrow which requests it hits. See
        the sandbox docs for the kinds and their parameters; an unknown kind
        or parameter raises ``ValueError``.
        """
        fault = make_fault(kind, count=count, method=method, path=path, params=params)
        self._store.add_fault(fault)
        return fault

    def clear_faults(self) -> None:
        self._store.clear_faults()

    def reset(self) -> None:
        """Forget jobs, images, idempotency keys, webhooks, log and faults; refill the budgets."""
        self._store.reset()

    def finish_job(self, job_id: str) -> dict[str, Any]:
        """End a running job now, as if its time were up; returns the Job object.

        A job made under a ``job_failure`` fault fails; others complete. Raises
        ``KeyError`` for an unknown id.
        """
        return self._store.finish_job(job_id)
