"""parse_http_url: one reading of a URL, or a refusal that says why."""

from __future__ import annotations

import ipaddress

import pytest

from django_neuraldraft.client import UnsafeURLError, parse_http_url


@pytest.mark.parametrize(
    ("text", "url", "host", "port", "target"),
    [
        (
            "https://cdn.neuraldraft.io/prj_1/img.png?sig=a%2Fb+c~d=&t=1#frag",
            "https://cdn.neuraldraft.io/prj_1/img.png?sig=a%2Fb+c~d=&t=1",
            "cdn.neuraldraft.io",
            443,
            "/prj_1/img.png?sig=a%2Fb+c~d=&t=1",
        ),
        (
            "HTTP://CDN.Example.com:8080",
            "http://cdn.example.com:8080/",
            "cdn.example.com",
            8080,
            "/",
        ),
        ("http://127.0.0.1:80/x", "http://127.0.0.1/x", "127.0.0.1", 80, "/x"),
        (
            "https://[2001:DB8::1]:8443/x",
            "https://[2001:db8::1]:8443/x",
            "2001:db8::1",
            8443,
            "/x",
        ),
        ("http://nd_sandbox:8000/v1", "http://nd_sandbox:8000/v1", "nd_sandbox", 8000, "/v1"),
        ("http://xn--bcher-kva.de/", "http://xn--bcher-kva.de/", "xn--bcher-kva.de", 80, "/"),
        ("http://h?q=1", "http://h/?q=1", "h", 80, "/?q=1"),
    ],
)
def test_plain_urls_have_one_reading(text, url, host, port, target):
    parsed = parse_http_url(text)
    assert (parsed.url, parsed.host, parsed.port, parsed.target) == (url, host, port, target)


def test_an_ip_literal_carries_its_address():
    assert parse_http_url("http://10.0.0.1/").address == ipaddress.ip_address("10.0.0.1")
    assert parse_http_url("http://cdn.neuraldraft.io/").address is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("http://127.0.0.1:9\\@cdn.neuraldraft.io/x", "contains '\\\\\\\\'"),
        ("http://h/a b", "contains ' '"),
        ("http://h/\x7f", "contains"),
        ("http://bücher.de/", "contains 'ü'"),
        ("http://a@h/", "user info"),
        ("http://%68/", "Percent-encoded"),
        ("http://[fe80::1%25eth0]/", "Percent-encoded"),
        ("http://2130706433/", "non-canonical"),
        ("http://0177.0.0.1/", "non-canonical"),
        ("http://0x7f.1/", "non-canonical"),
        ("http://127.1/", "non-canonical"),
        ("http://256.0.0.1/", "non-canonical"),
        ("http://example.123/", "non-canonical"),
        ("http://[::ffff:10.0.0.1]/", "embeds an IPv4"),
        ("http://[::ffff:a00:1]/", "embeds an IPv4"),
        ("http://[0::1]/", "canonical form"),
        ("http://[::1/", "cannot be parsed"),
        ("http://h./", "not a valid DNS name"),
        ("http://-h/", "not a valid DNS name"),
        ("http://xn--/", "not a valid DNS name"),
        ("http://xn--zzzzzzzz/", "not valid punycode"),
        ("http://xn--abc/", "no printable non-ASCII name"),
        ("http:///x", "no host"),
        ("http:/h/x", "absolute http"),
        ("ftp://h/x", "absolute http"),
        ("//h/x", "absolute http"),
        ("http://h:0/", "port"),
        ("http://h:080/", "port"),
        ("http://h:65536/", "cannot be parsed"),
        ("http://h:/", "port"),
        ("http://h/a/../b", "rewritten"),
        ("http://h/a[1]", "rewritten"),
        ("", "empty"),
        ("http://h/" + "a" * 8192, "longer than"),
    ],
)
def test_ambiguous_urls_are_refused(text, reason):
    with pytest.raises(UnsafeURLError, match=reason):
        parse_http_url(text)
