"""Connecting to the address a policy approved, never to a second DNS answer for the same name.

requests resolves a URL's host when it connects; a policy that resolved it
first may have seen another answer (DNS rebinding). :class:`PinnedAdapter`
makes the connection pool for one :class:`.urls.HTTPURL` on the approved IP
instead, while the ``Host`` header, TLS SNI and the certificate check still
use the URL's host name.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.exceptions import InvalidURL
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .urls import HTTPURL, IPAddress


def resolve(host: str, port: int) -> list[IPAddress]:
    """Return every address the system resolver gives for ``host``, in its order."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class Deadline:
    """A moment after which the connections opened under :meth:`watch` are cut.

    A socket timeout bounds each read, not their sum: a server that sends a
    byte just before every timeout (a slow loris) would hold a download for
    ever. While :meth:`watch` runs, every connection this thread opens through
    a pinned adapter is registered here, and a timer shuts them down when
    the deadline passes, so the read blocked on them returns at once.
    """

    _current = threading.local()

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.passed = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    @contextmanager
    def watch(self) -> Iterator[None]:
        timer = threading.Timer(max(0.0, self.remaining()), self._cut)
        timer.daemon = True
        Deadline._current.deadline = self
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            Deadline._current.deadline = None
            with self._lock:
                self._sockets.clear()

    @classmethod
    def register(cls, sock: socket.socket | None) -> None:
        deadline = getattr(cls._current, "deadline", None)
        if deadline is None or sock is None:
            return
        with deadline._lock:
            deadline._sockets.append(sock)
            cut = deadline.passed
        if cut:
            _shut(sock)

    def _cut(self) -> None:
        with self._lock:
            self.passed = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Watched:
    """Registers each new socket, before any TLS handshake, with the thread's Deadline."""

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        Deadline.register(sock)
        return sock


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class NoRedirectSession(requests.Session):
    """A session that never reads ``Location``: the client follows redirects itself.

    With ``allow_redirects=False`` requests still prepares the next hop
    (``Response.next``), parsing ``Location`` with another parser, which
    raises ``ValueError`` on some hostile values.
    """

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


class PinnedAdapter(HTTPAdapter):
    """A transport adapter that sends requests for ``url``'s origin to ``address`` only.

    A request for any other origin raises ``requests.exceptions.InvalidURL``: the adapter
    is mounted for one hop of one download and never reused.
    """

    def __init__(self, url: HTTPURL, address: IPAddress) -> None:
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)
        self.url = url
        self.address = address

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }

    def build_connection_pool_key_attributes(  # type: ignore[override]
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        # The stubs' TypedDicts omit the TLS keys urllib3 accepts (server_hostname,
        # assert_hostname), which is the point of this override: plain dicts here.
        params, kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        host_params: dict[str, Any] = dict(params)
        pool_kwargs: dict[str, Any] = dict(kwargs)
        asked = (host_params["scheme"], str(host_params["host"]).strip("[]"))
        if asked != (self.url.scheme, self.url.host) or host_params["port"] not in (
            self.url.port,
            None,
        ):
            raise InvalidURL(f"This connection is pinned to {self.url.netloc}.")
        host_params["host"], host_params["port"] = str(self.address), self.url.port
        if self.url.scheme == "https":
            pool_kwargs["server_hostname"] = self.url.host
            if verify is not False:
                pool_kwargs["assert_hostname"] = self.url.host
        return host_params, pool_kwargs


def pinned_session(url: HTTPURL, address: IPAddress) -> requests.Session:
    """A session for one request to ``url``, connecting to ``address``.

    ``trust_env`` is off: an environment proxy would connect elsewhere, and a
    ``.netrc`` entry would add credentials the caller never chose. The CA
    bundle named by ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` is still used,
    as requests would.
    """
    session = NoRedirectSession()
    session.trust_env = False
    session.verify = (
        os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    )
    adapter = PinnedAdapter(url, address)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
