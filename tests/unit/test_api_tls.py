"""`ledger api --tls-cert --tls-key` serves HTTPS only, with a real server and certificate."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import REPOSITORY, free_port

server_ready_timeout_s = 60.0


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "api.crt", folder / "api.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def https_api(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    cert, key = _certificate(tmp_path)
    port = free_port()
    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    # `ledger api` serves an existing store only: make an empty one first.
    subprocess.run([sys.executable, "-m", "app", "--store", store, "store", "init"], check=True)
    command = [
        sys.executable, "-m", "app", "--store", store,
        "api", "--insecure-no-auth", "--port", str(port),
        "--tls-cert", str(cert), "--tls-key", str(key),
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=REPOSITORY, stderr=subprocess.DEVNULL)
    try:
        yield port, cert
    finally:
        server.terminate()
        server.wait(timeout=30)


def _get(url: str, context: ssl.SSLContext) -> tuple[int, dict[str, str], bytes]:
    deadline = time.monotonic() + server_ready_timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, context=context, timeout=5) as answer:  # noqa: S310
                return answer.status, dict(answer.headers), answer.read()
        except urllib.error.URLError as error:
            if isinstance(error.reason, ssl.SSLError) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_api_answers_over_tls_and_refuses_plain_http(https_api: tuple[int, Path]) -> None:
    port, cert = https_api
    trusting = ssl.create_default_context(cafile=str(cert))
    status, headers, body = _get(f"https://127.0.0.1:{port}/health", trusting)
    assert status == 200
    assert json.loads(body)["status"] == "ok"
    assert headers["cache-control"] == "no-store"
    assert "no authentication" in headers["x-ledger-insecure"]
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        _get(f"https://127.0.0.1:{port}/health", ssl.create_default_context())
