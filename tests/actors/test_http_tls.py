"""The supervisor's HTTP port over TLS (`http.tls_cert_file`, `http.tls_key_file`): a real StatusServer with a
certificate made here. It speaks TLS 1.3 and nothing older, refuses plain HTTP with one log line and keeps
serving, and keeps rows (parked conflicts, dead letters) behind the bearer token over TLS as without it."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from actors.http import StatusServer
from config.errors import ConfigError
from config.model import Http

TOKEN = "tls-test-token-5c1e"
ROW = {"id": "c0ffee000001", "source": {"id": 7, "email": "a@example.com"}}


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "worker-sync test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "tls.crt", folder / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


class Rows:
    """The part of the supervisor's Control the row-data GETs reach: one parked conflict, one dead letter."""

    def conflict_list(self) -> list[dict[str, Any]]:
        return [ROW]

    def conflict_get(self, ident: str) -> dict[str, Any] | None:
        return ROW if ident == ROW["id"] else None

    def dead_letter_list(self) -> list[dict[str, Any]]:
        return [ROW]

    def dead_letter_get(self, ident: str) -> dict[str, Any] | None:
        return ROW if ident == ROW["id"] else None


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


@pytest.fixture
def server(certificate: tuple[Path, Path]) -> Iterator[StatusServer]:
    cert_file, key_file = certificate
    server = StatusServer(
        "127.0.0.1",
        0,
        status=dict,
        healthy=lambda: True,
        ready=lambda: True,
        token=TOKEN,
        control=Rows(),  # type: ignore[arg-type]  # only the GETs are exercised
        cert_file=str(cert_file),
        key_file=str(key_file),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def client_context(cert_file: Path, *, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert_file))
    if maximum is not None:
        context.maximum_version = maximum
    return context


def get(server: StatusServer, context: ssl.SSLContext, path: str, token: str | None = None) -> tuple[int, bytes, str]:
    """(status, body, negotiated TLS version) of one GET over TLS."""
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=10)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        assert isinstance(connection.sock, ssl.SSLSocket)
        version = connection.sock.version() or ""
        answer = connection.getresponse()
        return answer.status, answer.read(), version
    finally:
        connection.close()


def test_the_port_speaks_tls_1_3(server, certificate) -> None:
    assert server.scheme == "https"
    status, body, version = get(server, client_context(certificate[0]), "/healthz")
    assert (status, body, version) == (200, b"ok\n", "TLSv1.3")


def test_rows_stay_behind_the_token_over_tls(server, certificate) -> None:
    context = client_context(certificate[0])
    for path in ("/conflicts", f"/conflicts/{ROW['id']}", "/dead-letters", f"/dead-letters/{ROW['id']}"):
        status, body, _ = get(server, context, path)
        assert status == 401, path
        assert b"a@example.com" not in body, path
        status, body, _ = get(server, context, path, token="not-the-token")
        assert status == 401, path
        status, body, _ = get(server, context, path, token=TOKEN)
        assert status == 200 and b"a@example.com" in body, path
    # /status and /metrics carry counts and positions, never rows: they stay open to probes and Prometheus.
    assert get(server, context, "/status")[0] == 200


def test_tls_1_2_and_plain_http_are_refused_and_the_port_keeps_serving(server, certificate, caplog) -> None:
    caplog.set_level(logging.INFO, logger="actors.http")
    with pytest.raises(ssl.SSLError):
        get(server, client_context(certificate[0], maximum=ssl.TLSVersion.TLSv1_2), "/healthz")
    plain = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        plain.request("GET", "/healthz")
        plain.getresponse()
    plain.close()
    assert get(server, client_context(certificate[0]), "/healthz")[0] == 200
    refused = [r for r in caplog.records if "TLS handshake refused" in r.getMessage()]
    assert refused and not [r for r in caplog.records if r.exc_info], "one line each, no traceback"


def test_an_unverified_certificate_is_refused_by_the_client(server) -> None:
    """The client side of the bargain: without the CA, Python's default context refuses the port."""
    with pytest.raises(ssl.SSLCertVerificationError):
        get(server, ssl.create_default_context(), "/healthz")


def test_a_missing_key_is_one_config_error(certificate, tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot load `tls_cert_file`"):
        StatusServer(
            "127.0.0.1",
            0,
            status=dict,
            healthy=lambda: True,
            ready=lambda: True,
            token=None,
            cert_file=str(certificate[0]),
            key_file=str(tmp_path / "missing.key"),
        )


def test_config_needs_both_files_and_says_https() -> None:
    assert Http(tls_cert_file="/c", tls_key_file="/k").scheme == "https"
    assert Http().scheme == "http"
    with pytest.raises(ValueError, match="both `tls_cert_file` and `tls_key_file`"):
        Http(tls_cert_file="/c")
