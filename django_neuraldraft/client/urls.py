"""One parse of an http(s) URL, by the parser requests and urllib3 use, refusing ambiguous text.

A URL that two parsers could read differently (``http://a:1\\@b/`` is host
``b`` to ``urllib.parse`` and host ``a`` to urllib3) is a way past any check
made on one reading. So a URL is parsed once, with urllib3's ``parse_url``,
and only when its text has a single plain reading: printable ASCII, no
backslash, no user info, no percent-encoded host, a host that is a DNS name
or an IP address in its canonical form, a port in range, a path the HTTP
stack sends as written. The result is what a policy checks and what the
connection goes to (see :mod:`._pinning`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS = {"http": 80, "https": 443}

#: Longest URL accepted; far above any CDN URL, far below what could hurt.
MAX_URL_LENGTH = 8192
#: The characters RFC 3986 allows in a URL; urllib3 re-encodes or splits on any other.
_URL_TEXT = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_DECIMAL_OCTET = re.compile(r"0|[1-9][0-9]{0,2}")
#: A last label like these makes browsers and ``inet_aton`` read the host as an IPv4 number.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*", re.IGNORECASE)
_MAX_HOST_LENGTH = 253


class UnsafeURLError(ValueError):
    """The URL is not an http(s) URL with exactly one reading; the message says why."""


@dataclass(frozen=True)
class HTTPURL:
    """An http(s) URL as it will be connected to and requested."""

    scheme: str
    #: Lower-case DNS name, or an IP address in canonical text (IPv6 without brackets).
    host: str
    port: int
    #: Path and query, exactly as sent in the request line.
    target: str
    #: The host as an address, when the URL names one instead of a DNS name.
    address: IPAddress | None

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port

    @property
    def netloc(self) -> str:
        """The authority as written in the URL and the ``Host`` header."""
        host = f"[{self.host}]" if isinstance(self.address, ipaddress.IPv6Address) else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.target}"

    def __str__(self) -> str:
        return self.url


def parse_http_url(text: str) -> HTTPURL:
    """Return the one reading of ``text``, or raise :class:`UnsafeURLError`.

    A fragment is dropped (it is never sent). Everything else must survive
    urllib3's parse unchanged, so what was checked is what is requested.
    """
    if not isinstance(text, str) or not text:
        raise UnsafeURLError("The URL is empty.")
    if len(text) > MAX_URL_LENGTH:
        raise UnsafeURLError(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    bad = unsafe_character(text)
    if bad is not None:
        raise UnsafeURLError(
            f"The URL contains {bad!r}: only printable ASCII without spaces, "
            "backslashes, quotes, braces or angle brackets is accepted."
        )
    scheme, separator, rest = text.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in DEFAULT_PORTS:
        raise UnsafeURLError("Only absolute http:// and https:// URLs are accepted.")
    try:
        parsed = parse_url(text)
    except LocationParseError as err:
        raise UnsafeURLError(f"The URL cannot be parsed: {err}") from None
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    after = rest[len(authority) :].split("#", 1)[0]
    if "@" in authority or parsed.auth is not None:
        raise UnsafeURLError("URLs with user info (user@host) are not accepted.")
    if "%" in authority:
        raise UnsafeURLError("Percent-encoded hosts are not accepted.")
    raw_host, port = _split_port(authority)
    host, address = _canonical_host(raw_host)
    if parsed.scheme != scheme or (parsed.host or "").strip("[]") != host:
        raise UnsafeURLError("The URL's host reads differently to the HTTP stack.")
    target = after if after.startswith("/") else "/" + after
    sent = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query is not None else "")
    if sent != target:
        raise UnsafeURLError(
            "The URL's path would be rewritten before it is sent (dot segments or "
            "characters that need encoding)."
        )
    return HTTPURL(scheme, host, port or DEFAULT_PORTS[scheme], target, address)


def unsafe_character(text: str) -> str | None:
    """Return the first character of ``text`` that has no place in a URL, or ``None``."""
    if _URL_TEXT.fullmatch(text):
        return None
    return next(char for char in text if not _URL_TEXT.fullmatch(char))


def _split_port(authority: str) -> tuple[str, int | None]:
    if authority.startswith("["):
        # parse_url has already refused an unclosed bracket or text after it.
        close = authority.index("]")
        host, rest = authority[: close + 1], authority[close + 1 :]
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_or_empty = authority.partition(":")
        port_text = port_text_or_empty if colon else None
    if port_text is None:
        return host, None
    if not re.fullmatch(r"[1-9][0-9]{0,4}", port_text) or int(port_text) > 65535:
        raise UnsafeURLError(f"The URL's port {port_text!r} is not a number from 1 to 65535.")
    return host, int(port_text)


def _canonical_host(raw: str) -> tuple[str, IPAddress | None]:
    host = raw.lower()
    if not host:
        raise UnsafeURLError("The URL has no host.")
    if host.startswith("["):
        return _ipv6_host(host[1:-1])
    labels = host.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        if len(labels) == 4 and all(_DECIMAL_OCTET.fullmatch(label) for label in labels):
            if all(int(label) <= 255 for label in labels):
                return host, ipaddress.IPv4Address(host)
        raise UnsafeURLError(
            f"The host {raw!r} is an IPv4 address in a non-canonical form (only a.b.c.d "
            "in decimal without leading zeros is accepted)."
        )
    if len(host) > _MAX_HOST_LENGTH or not all(_LABEL.fullmatch(label) for label in labels):
        raise UnsafeURLError(f"The host {raw!r} is not a valid DNS name.")
    for label in labels:
        if label.startswith("xn--"):
            _check_punycode(label)
    return host, None


def _ipv6_host(text: str) -> tuple[str, IPAddress]:
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        raise UnsafeURLError(f"The host [{text}] is not an IPv6 address.") from None
    if "." in text or address.ipv4_mapped is not None:
        raise UnsafeURLError(
            f"The host [{text}] embeds an IPv4 address; write the IPv4 address itself."
        )
    if text != address.compressed:
        raise UnsafeURLError(
            f"The host [{text}] is not in canonical form; write [{address.compressed}]."
        )
    return address.compressed, address


def _check_punycode(label: str) -> None:
    try:
        decoded = label[4:].encode("ascii").decode("punycode")
    except UnicodeError:
        raise UnsafeURLError(f"The host label {label!r} is not valid punycode.") from None
    if not decoded or decoded.isascii() or not decoded.isprintable():
        raise UnsafeURLError(f"The host label {label!r} encodes no printable non-ASCII name.")
