"""Streaming a URL into a file object: bounded, hop by hop, under the caller's URL policy."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any, BinaryIO
from urllib.parse import urljoin, urlsplit

import requests

from ._response import api_error
from .errors import (
    DownloadError,
    DownloadRefusedError,
    DownloadTooLargeError,
    TransportError,
)
from .types import DownloadInfo

logger = logging.getLogger("django_neuraldraft.client")

MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK_SIZE = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """Return ``(scheme, host, port)`` with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or ""), parts.port or _DEFAULT_PORTS.get(scheme)


def _check(url: str, check_url: Callable[[str], Any] | None) -> None:
    if urlsplit(url).scheme.lower() not in _DEFAULT_PORTS:
        raise DownloadRefusedError(f"Only http(s) URLs are downloaded, not {url!r}.", url=url)
    if check_url is None:
        return
    try:
        check_url(url)
    except DownloadRefusedError:
        raise
    except Exception as err:
        raise DownloadRefusedError(f"Refused {url!r}: {err}", url=url) from err


def download(
    session: requests.Session,
    url: str,
    dest: BinaryIO,
    *,
    max_bytes: int,
    check_url: Callable[[str], Any] | None,
    timeout: Any,
    api_origin: tuple[str, str, int | None],
) -> DownloadInfo:
    """Stream ``url`` into ``dest``; see :meth:`NeuralDraftClient.download` for the contract.

    Redirects are followed here rather than by requests so that ``check_url``
    sees every hop and the ``Authorization`` header is decided per hop: only a
    URL on the API's own origin gets it.
    """
    for _hop in range(MAX_REDIRECTS + 1):
        _check(url, check_url)
        headers: dict[str, str | None] = {"Accept": "*/*", "Accept-Encoding": "identity"}
        if origin(url) != api_origin:
            # None removes the session's header from this one request.
            headers["Authorization"] = None
        try:
            response = session.get(
                url, headers=headers, stream=True, allow_redirects=False, timeout=timeout
            )
        except (requests.ConnectionError, requests.Timeout) as err:
            raise TransportError(f"{type(err).__name__}: {err}", method="GET", url=url) from err
        except requests.RequestException as err:
            raise DownloadError(f"{type(err).__name__}: {err}", method="GET", url=url) from err
        with response:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "GET %s -> %s (download) in %.1f ms",
                    url.split("?", 1)[0],
                    response.status_code,
                    response.elapsed.total_seconds() * 1000,
                )
            location = response.headers.get("Location")
            if response.status_code in _REDIRECT_STATUSES and location:
                url = urljoin(url, location)
                continue
            if not 200 <= response.status_code < 300:
                raise api_error(response, "GET")
            return _write(response, url, dest, max_bytes)
    raise DownloadError(f"More than {MAX_REDIRECTS} redirects.", method="GET", url=url)


def _write(response: requests.Response, url: str, dest: BinaryIO, max_bytes: int) -> DownloadInfo:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
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
