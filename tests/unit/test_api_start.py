"""`ledger api` that cannot serve as asked says so in one line before it says it is up, exit
status 2: an address it cannot listen on, a host name with --insecure-no-auth, TLS files
that are not a certificate and its key."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.conftest import free_port
from tests.unit.test_api_tls import _certificate

api_start_timeout_s = 60


@pytest.fixture(scope="module")
def store_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("api-start")
    assert _ledger("store", "init", cwd=folder).returncode == 0
    _certificate(folder)
    # The same key under a pass phrase: the server cannot ask for it (OpenSSL prompted).
    key = serialization.load_pem_private_key((folder / "api.key").read_bytes(), password=None)
    (folder / "locked.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    (folder / "tokens.jsonl").write_text("", encoding="utf-8")
    return folder


def _ledger(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return subprocess.run(
        [sys.executable, "-m", "app", "--store", "sqlite:///ledger.db", *args],
        capture_output=True, text=True, cwd=cwd, check=False, env=environment,
        timeout=api_start_timeout_s,
    )  # fmt: skip


@pytest.fixture
def taken_port() -> Iterator[int]:
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        yield int(holder.getsockname()[1])
    finally:
        holder.close()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_another_program_holds_is_one_line(
    store_folder: Path, taken_port: int, workers: str
) -> None:
    """It printed the URL, then uvicorn's 'ERROR: [Errno 98] ...' and exited 3."""
    done = _ledger("api", "--insecure-no-auth", "--port", str(taken_port), "--workers", workers,
                   cwd=store_folder)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"ledger: cannot listen on 127.0.0.1:{taken_port}: Address already in use\n"
    )


@pytest.mark.parametrize(
    ("options", "says"),
    [
        # A traceback: the loopback check took the name for an IP address.
        (
            ("--insecure-no-auth", "--host", "nowhere.invalid"),
            "--insecure-no-auth binds 127.0.0.1 only, not nowhere.invalid",
        ),
        (("--tokens-file", "tokens.jsonl", "--host", "nowhere.invalid"), "cannot listen on"),
        # 'cannot use: [SSL] PEM lib (_ssl.c:...)', exit 1, after the URL was printed.
        (
            ("--insecure-no-auth", "--tls-cert", "api.key", "--tls-key", "api.crt"),
            "--tls-cert api.key and --tls-key api.crt are not a PEM certificate and its "
            "private key",
        ),
        (
            ("--insecure-no-auth", "--tls-cert", "api.crt", "--tls-key", "locked.key"),
            "private key without a pass phrase",
        ),
    ],
)
def test_a_setting_it_cannot_serve_with_is_one_line(
    store_folder: Path, options: tuple[str, ...], says: str
) -> None:
    done = _ledger("api", "--port", str(free_port()), *options, cwd=store_folder)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr


@pytest.mark.parametrize(
    ("flag", "name"), [("--tokens-file", "tokens.jsonl"), ("--jwt-public-key", "jwt.pub")]
)
def test_a_file_of_roles_others_may_write_is_refused_in_one_line(
    store_folder: Path, tmp_path: Path, flag: str, name: str
) -> None:
    """A tokens file (or the identity provider's key) mode 0666 was served: any local
    user could add a line and give themselves the auditor's role."""
    shared = tmp_path / name
    if name == "tokens.jsonl":
        shared.write_text("", encoding="utf-8")
    else:
        key = serialization.load_pem_private_key(
            (store_folder / "api.key").read_bytes(), password=None
        )
        shared.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    shared.chmod(0o666)
    jwt = ("--jwt-issuer", "idp", "--jwt-audience", "ledger") if flag != "--tokens-file" else ()
    done = _ledger("api", "--port", str(free_port()), flag, str(shared), *jwt, cwd=store_folder)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"ledger: {shared} may be written by users other than its owner (mode 0666): "
        f"whoever can write it can give themselves any role; `chmod go-w {shared}`\n"
    )
