"""Streaming a URL into a file object: bounded, hop by hop, pinned to what the policy approved."""

from __future__ import annotations

import hashlib
import http.client
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO
from urllib.parse import urljoin

import requests

from ._pinning import Deadline, pinned_session, resolve
from ._response import api_error, declared_length, hide_authorization
from .errors import (
    DownloadError,
    DownloadRefusedError,
    DownloadTooLargeError,
    NeuralDraftError,
    TransportError,
)
from .types import DownloadInfo
from .urls import HTTPURL, IPAddress, UnsafeURLError, parse_http_url, unsafe_character

logger = logging.getLogger("django_neuraldraft.client")

MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK_SIZE = 64 * 1024
#: Seconds a socket timeout runs past the deadline, so the deadline's timer fires first.
_DEADLINE_GRACE = 1.0
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*:", re.IGNORECASE)

#: ``policy(url)`` returns the addresses ``url`` may be fetched from, or raises to refuse it.
Policy = Callable[[HTTPURL], Iterable[IPAddress]]


def parse(url: str) -> HTTPURL:
    """Parse a download URL; an ambiguous one is refused as DownloadRefusedError."""
    try:
        return parse_http_url(url)
    except UnsafeURLError as err:
        raise DownloadRefusedError(f"Refused an unsafe URL: {err}", url=_shown(url)) from None


def _shown(url: Any) -> str:
    # An unsafe URL is kept out of messages whole: control characters, any length.
    text = url if isinstance(url, str) else repr(url)
    return text[:200].encode("ascii", "backslashreplace").decode("ascii")


def _approved_address(url: HTTPURL, policy: Policy | None) -> IPAddress:
    """Return the one address this hop connects to, as the policy approved it."""
    try:
        if policy is not None:
            addresses = list(policy(url))
        elif url.address is not None:
            addresses = [url.address]
        else:
            addresses = resolve(url.host, url.port)
    except DownloadRefusedError:
        raise
    except Exception as err:
        raise DownloadRefusedError(f"Refused {url.netloc}: {err}", url=url.url) from err
    if not addresses:
        raise DownloadRefusedError(f"Refused {url.netloc}: no address to connect to.", url=url.url)
    return addresses[0]


def download(
    url: str,
    dest: BinaryIO,
    *,
    max_bytes: int,
    max_seconds: float,
    policy: Policy | None,
    timeout: Any,
    api_origin: tuple[str, str, int],
    headers: dict[str, str],
    authorization: str,
    secret: str,
) -> DownloadInfo:
    """Stream ``url`` into ``dest``; see :meth:`NeuralDraftClient.download` for the contract.

    Each hop is parsed once, approved by ``policy`` and connected to the
    address it approved. Redirects are followed here, never by requests, so
    every target goes through the same checks, and ``authorization`` is sent
    only while every hop so far has been on the API's own origin. The whole
    download, every hop, ends within ``max_seconds`` (see :class:`._pinning.Deadline`).
    """
    target = parse(url)
    deadline = Deadline(max_seconds)
    key_allowed = True
    for _ in range(MAX_REDIRECTS + 1):
        address = _approved_address(target, policy)
        key_allowed = key_allowed and target.origin == api_origin
        hop_headers = {**headers, "Host": target.netloc, "Accept-Encoding": "identity"}
        if key_allowed:
            hop_headers["Authorization"] = authorization
        if deadline.remaining() <= 0:
            raise _too_slow(deadline, target)
        with deadline.watch():
            try:
                outcome = _fetch_hop(
                    target, address, hop_headers, dest, max_bytes, timeout, deadline, secret
                )
            except NeuralDraftError as err:
                if deadline.passed:
                    raise _too_slow(deadline, target) from err
                raise
            if deadline.passed:
                raise _too_slow(deadline, target)
        if isinstance(outcome, DownloadInfo):
            return outcome
        target = outcome
    raise DownloadError(f"More than {MAX_REDIRECTS} redirects.", method="GET", url=target.url)


def _fetch_hop(
    target: HTTPURL,
    address: IPAddress,
    headers: dict[str, str],
    dest: BinaryIO,
    max_bytes: int,
    timeout: Any,
    deadline: Deadline,
    secret: str,
) -> DownloadInfo | HTTPURL:
    """Fetch one hop: the body written to ``dest``, or the next hop a redirect points at."""
    response = _get(target, address, headers, _within(timeout, deadline))
    with response:
        hide_authorization(response, secret)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "GET %s -> %s (download from %s) in %.1f ms",
                target.url.split("?", 1)[0],
                response.status_code,
                address,
                response.elapsed.total_seconds() * 1000,
            )
        location = response.headers.get("Location")
        if response.status_code in _REDIRECT_STATUSES and location is not None:
            return _redirect_target(target, location)
        if not 200 <= response.status_code < 300:
            raise api_error(response, "GET", secret)
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            raise DownloadError(
                f"The server sent Content-Encoding {_shown(encoding)!r} although only "
                "'identity' was accepted; the body is not decoded.",
                status=response.status_code,
                method="GET",
                url=target.url,
            )
        return _write(response, target.url, dest, max_bytes)


def _within(timeout: Any, deadline: Deadline) -> tuple[float, float]:
    """The ``(connect, read)`` timeouts of one hop, ending just after the deadline.

    The deadline's timer cuts the connection first, so a hop that runs out of
    time always ends as too slow, never as a transport error to retry.
    """
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    limit = max(0.0, deadline.remaining()) + _DEADLINE_GRACE
    return min(connect, limit), min(read, limit)


def _too_slow(deadline: Deadline, target: HTTPURL) -> DownloadError:
    return DownloadError(
        f"The download took longer than {deadline.seconds:g} seconds.",
        method="GET",
        url=target.url,
    )


def _redirect_target(current: HTTPURL, location: str) -> HTTPURL:
    """Return the hop a ``Location`` points at, held to the same rules as the first URL.

    An absolute or scheme-relative location is parsed as it stands; only a
    path is resolved against the current URL, so ``http:///x`` is refused
    rather than read as a path on the current host.
    """
    bad = unsafe_character(location)
    if bad is not None:
        raise DownloadRefusedError(
            f"Refused a redirect to {_shown(location)!r}: it contains {bad!r}.", url=current.url
        )
    if _SCHEME.match(location):
        following = parse(location)
    elif location.startswith("//"):
        following = parse(f"{current.scheme}:{location}")
    else:
        following = parse(urljoin(current.url, location))
    if current.scheme == "https" and following.scheme != "https":
        raise DownloadRefusedError(
            f"Refused a redirect from https to {following.url!r}.", url=current.url
        )
    return following


def _get(
    target: HTTPURL, address: IPAddress, headers: dict[str, str], timeout: Any
) -> requests.Response:
    with pinned_session(target, address) as session:
        try:
            return session.get(
                target.url, headers=headers, stream=True, allow_redirects=False, timeout=timeout
            )
        except (requests.ConnectionError, requests.Timeout) as err:
            malformed = _malformed_head(err)
            if malformed is not None:
                raise DownloadError(
                    f"The server's answer cannot be read: {type(malformed).__name__}: {malformed}",
                    method="GET",
                    url=target.url,
                ) from err
            raise TransportError(
                f"{type(err).__name__}: {err}", method="GET", url=target.url
            ) from err
        except requests.RequestException as err:
            raise DownloadError(
                f"{type(err).__name__}: {err}", method="GET", url=target.url
            ) from err


def _malformed_head(err: BaseException) -> http.client.HTTPException | None:
    """The http.client error inside ``err`` when the status line or headers broke the rules.

    requests reports a header line over 64 KB, more than 100 headers or a
    garbled status line as a ConnectionError, like a dropped connection. But
    sending the request again brings the same answer: it is the server's
    fault, not the network's. A connection closed before the status line
    (``RemoteDisconnected``) stays a transport error.
    """
    seen: list[BaseException] = []
    pending: list[object] = [err]
    while pending:
        item = pending.pop()
        if not isinstance(item, BaseException) or any(item is other for other in seen):
            continue
        seen.append(item)
        if isinstance(item, http.client.HTTPException) and not isinstance(
            item, (http.client.RemoteDisconnected, http.client.IncompleteRead)
        ):
            return item
        pending.extend([*item.args, item.__cause__, item.__context__])
    return None


def _write(response: requests.Response, url: str, dest: BinaryIO, max_bytes: int) -> DownloadInfo:
    declared = declared_length(response)
    if declared is not None and declared > max_bytes:
        raise DownloadTooLargeError(
            f"Content-Length {declared} exceeds the {max_bytes}-byte limit.",
            status=response.status_code,
            method="GET",
            url=url,
        )
    digest = hashlib.sha256()
    size = 0
    try:
        for chunk in response.iter_content(_CHUNK_SIZE):
            size += len(chunk)
            if size > max_bytes:
                raise DownloadTooLargeError(
                    f"More than {max_bytes} bytes arrived.",
                    status=response.status_code,
                    method="GET",
                    url=url,
                )
            digest.update(chunk)
            dest.write(chunk)
    except requests.RequestException as err:
        raise TransportError(f"{type(err).__name__}: {err}", method="GET", url=url) from err
    return DownloadInfo(
        url=url,
        bytes=size,
        content_type=response.headers.get("Content-Type"),
        sha256=digest.hexdigest(),
    )
