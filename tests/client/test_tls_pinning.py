"""A pinned https connection keeps SNI and the certificate check on the URL's host name.

A local TLS server on 127.0.0.1 holds a certificate for ``cdn.pinned.test``,
signed by a CA made for the test and trusted through ``REQUESTS_CA_BUNDLE``.
The name is not in DNS: the policy's answer is the only way to reach it.
"""

from __future__ import annotations

import datetime
import io
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from django_neuraldraft.client import NeuralDraftClient, TransportError

LOOPBACK = ipaddress.ip_address("127.0.0.1")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject, issuer, public_key, signing_key, *, ca: bool, dns: str | None = None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False
        )
    return builder.sign(signing_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A CA, and server certificates it signed for ``cdn.pinned.test`` and ``other.test``."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(_name("test CA"), _name("test CA"), ca_key.public_key(), ca_key, ca=True)
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths = {"ca": folder / "ca.pem"}
    for host in ("cdn.pinned.test", "other.test"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(_name(host), ca.subject, key.public_key(), ca_key, ca=False, dns=host)
        path = folder / f"{host}.pem"
        path.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        paths[host] = path
    return paths


@contextmanager
def tls_server(certificate: Path) -> Iterator[dict]:
    seen: dict = {"sni": [], "host": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen["host"].append(self.headers["Host"])
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"image")

        def log_message(self, format: str, *args: object) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate)
    context.sni_callback = lambda sock, name, ctx: seen["sni"].append(name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    seen["port"] = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def client(api_key, pki, monkeypatch) -> Iterator[NeuralDraftClient]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki["ca"]))
    with NeuralDraftClient(api_key, "https://api.neuraldraft.io/v1", timeout=5) as client:
        yield client


def test_sni_host_and_certificate_use_the_host_name(client, pki):
    with tls_server(pki["cdn.pinned.test"]) as seen:
        url = f"https://cdn.pinned.test:{seen['port']}/x.png"
        dest = io.BytesIO()
        client.download(url, dest, max_bytes=100, policy=lambda url: [LOOPBACK])
    assert dest.getvalue() == b"image"
    assert seen["sni"] == ["cdn.pinned.test"]
    assert seen["host"] == [f"cdn.pinned.test:{seen['port']}"]


def test_a_certificate_for_another_name_is_refused(client, pki):
    with tls_server(pki["other.test"]) as seen:
        url = f"https://cdn.pinned.test:{seen['port']}/x.png"
        with pytest.raises(TransportError, match=r"doesn't match 'other\.test'"):
            client.download(url, io.BytesIO(), max_bytes=100, policy=lambda url: [LOOPBACK])
    assert seen["host"] == []
