"""`deploy/local/kafka start --secure`: the same broker with SASL/SCRAM over TLS and ACLs.

At the first secure start in a data folder:

- a throwaway CA and a broker certificate for 127.0.0.1 (openssl), in `tls/`; the CA's
  key is deleted once it has signed, so nothing else can be issued;
- one random password per principal in `credentials/<name>.password` (0600): `admin`
  (super user: creates topics and ACLs), `ledger`, `upstream`, `reader`. Their SCRAM-SHA-512
  credentials go into the storage format, through a Java argument file (0600, deleted at
  once), so no password is ever on a command line;
- the listeners: SASL_SSL for clients, and the controller's listener on mutual TLS (only
  the broker's certificate gets in); KRaft's StandardAuthorizer, with no access for a
  principal without an ACL (`allow.everyone.if.no.acl.found=false`);
- the ACLs of docs/security.md for `LEDGER_TOPIC_PREFIX` (default `ledger`), added with
  Kafka's own AclCommand as `admin`.
"""

import os
import secrets
import socket
import ssl
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from local_servers.process import ServerError

principals = ("admin", "ledger", "upstream", "reader")
broker_principal = "User:CN=ledger-local-broker"
scram_mechanism = "SCRAM-SHA-512"
certificate_days = 30
password_bytes = 24
openssl_timeout_s = 60.0
acl_command_timeout_s = 120.0
acl_retry_s = 2.0
acl_ready_timeout_s = 120.0
security_marker = "security"


@dataclass(frozen=True)
class SecureLayout:
    data_dir: Path

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    @property
    def credentials_dir(self) -> Path:
        return self.data_dir / "credentials"

    @property
    def ca_file(self) -> Path:
        return self.tls_dir / "ca.crt"

    @property
    def keystore(self) -> Path:
        return self.tls_dir / "broker.p12"

    @property
    def keystore_password_file(self) -> Path:
        return self.tls_dir / "keystore.password"

    @property
    def admin_config(self) -> Path:
        return self.credentials_dir / "admin.properties"

    def password_file(self, principal: str) -> Path:
        return self.credentials_dir / f"{principal}.password"

    def password(self, principal: str) -> str:
        return self.password_file(principal).read_text().strip()


def check_mode(data_dir: Path, secure: bool, formatted: bool) -> None:
    """A data folder keeps the security it was formatted with."""
    marker = data_dir / security_marker
    wanted = "sasl_ssl" if secure else "plaintext"
    found = marker.read_text().strip() if marker.is_file() else "plaintext"
    if formatted and found != wanted:
        flag = "with" if found == "sasl_ssl" else "without"
        raise ServerError(
            f"The data folder {data_dir} holds a {found} broker: start it {flag} --secure, "
            "or choose another LEDGER_KAFKA_DATA."
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(wanted + "\n")


def write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as secret:
        secret.write(text)


def ensure_credentials(layout: SecureLayout) -> None:
    for principal in principals:
        if not layout.password_file(principal).is_file():
            write_secret(layout.password_file(principal), secrets.token_urlsafe(password_bytes))
    write_secret(
        layout.admin_config,
        client_properties("admin", layout.password("admin"), layout.ca_file),
    )


def client_properties(principal: str, password: str, ca_file: Path) -> str:
    """A Java client's settings (Kafka's own tools) for `principal` over SASL_SSL."""
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{principal}" password="{password}";'
    )
    return (
        "security.protocol=SASL_SSL\n"
        f"sasl.mechanism={scram_mechanism}\n"
        f"sasl.jaas.config={jaas}\n"
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={ca_file}\n"
    )


def openssl(arguments: list[str], cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *arguments], cwd=cwd, capture_output=True, text=True, check=False,
        timeout=openssl_timeout_s,
    )  # fmt: skip
    if result.returncode != 0:
        raise ServerError(f"`openssl {arguments[0]}` failed:\n{result.stdout}{result.stderr}")


def ensure_certificates(
    layout: SecureLayout, names: tuple[str, ...] = ("IP:127.0.0.1", "DNS:localhost")
) -> None:
    """A CA and the broker's certificate for `names`, once per data folder."""
    if layout.keystore.is_file() and layout.ca_file.is_file():
        return
    tls = layout.tls_dir
    tls.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_secret(layout.keystore_password_file, secrets.token_urlsafe(password_bytes))
    days = str(certificate_days)
    openssl(
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
         "-days", days, "-subj", "/CN=ledger-local-ca",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        tls,
    )  # fmt: skip
    openssl(
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
         "-subj", "/CN=ledger-local-broker"],
        tls,
    )  # fmt: skip
    (tls / "broker.ext").write_text(
        f"subjectAltName={','.join(names)}\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
    )
    openssl(
        ["x509", "-req", "-in", "broker.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "broker.crt", "-days", days, "-extfile", "broker.ext"],
        tls,
    )  # fmt: skip
    openssl(
        ["pkcs12", "-export", "-in", "broker.crt", "-inkey", "broker.key", "-certfile", "ca.crt",
         "-name", "broker", "-out", "broker.p12",
         "-passout", f"file:{layout.keystore_password_file}"],
        tls,
    )  # fmt: skip
    # A throwaway CA: with its key gone, nothing else can ever be issued under it.
    for leftover in ("ca.key", "broker.key", "broker.csr", "ca.srl", "broker.ext"):
        (tls / leftover).unlink(missing_ok=True)


def secure_properties(layout: SecureLayout, port: int, controller_port: int) -> dict[str, str]:
    """What the secure broker sets beyond (or instead of) the plaintext one's settings."""
    keystore_password = layout.keystore_password_file.read_text().strip()
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="admin" password="{layout.password("admin")}";'
    )
    return {
        "listeners": f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{port}",
        "inter.broker.listener.name": "SASL_SSL",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SSL",
        "sasl.enabled.mechanisms": scram_mechanism,
        "sasl.mechanism.inter.broker.protocol": scram_mechanism,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": jaas,
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(layout.keystore),
        "ssl.keystore.password": keystore_password,
        "ssl.key.password": keystore_password,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(layout.ca_file),
        # Only a certificate from our CA (the broker's own) reaches the controller.
        "listener.name.controller.ssl.client.auth": "required",
        "ssl.enabled.protocols": "TLSv1.3,TLSv1.2",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:admin;{broker_principal}",
        "allow.everyone.if.no.acl.found": "false",
    }


def scram_argument_file(layout: SecureLayout, main: str, arguments: list[str]) -> Path:
    """StorageTool's arguments with the SCRAM users, in a 0600 Java argument file."""
    scram = [f"{scram_mechanism}=[name={p},password={layout.password(p)}]" for p in principals]
    lines = [main, *arguments]
    for entry in scram:
        lines += ["--add-scram", entry]
    path = layout.credentials_dir / "format.args"
    write_secret(path, "\n".join(f'"{line}"' for line in lines) + "\n")
    return path


def acl_commands(prefix: str) -> list[list[str]]:
    """AclCommand arguments: each principal's rights on `<prefix>.*` (docs/security.md)."""
    inbox, events, rejects, checkpoints = (
        f"{prefix}.{name}" for name in ("inbox", "events", "rejects", "checkpoints")
    )

    def allow(principal: str, operations: list[str], resources: list[str]) -> list[str]:
        granted = [item for operation in operations for item in ("--operation", operation)]
        return ["--add", "--allow-principal", f"User:{principal}", *granted, *resources]

    return [
        # ledger: reads the inbox (its group commits offsets for lag tools), creates its
        # four topics when missing, writes and reads back the journal, the rejects and the
        # signed checkpoints.
        allow("ledger", ["Read", "Describe"], ["--topic", inbox, "--group", f"{prefix}.sequencer"]),
        allow("ledger", ["Create", "Describe"], ["--topic", inbox]),
        allow(
            "ledger",
            ["Write", "Read", "Describe", "Create"],
            ["--topic", events, "--topic", rejects, "--topic", checkpoints],
        ),
        allow(
            "ledger",
            ["Write", "Describe"],
            [
                "--transactional-id",
                f"{prefix}.journal-relay",
                "--transactional-id",
                f"{prefix}.rejects-relay",
                "--transactional-id",
                f"{prefix}.checkpoint-relay",
            ],
        ),
        # upstream: writes the inbox, nothing else.
        allow("upstream", ["Write", "Describe"], ["--topic", inbox]),
        # reader: reads the journal, the rejects and the checkpoints with its own group.
        allow(
            "reader",
            ["Read", "Describe"],
            ["--topic", events, "--topic", rejects, "--topic", checkpoints],
        ),
        allow("reader", ["Read", "Describe"], ["--group", f"{prefix}.reporting"]),
    ]


def api_versions_over_tls(port: int, ca_file: Path, timeout_s: float = 2.0) -> bool:
    """Whether the SASL_SSL listener completes a TLS handshake and answers ApiVersions
    (the one request Kafka serves before authentication)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    client_id = b"ledger-local"
    body = struct.pack(">hhih", 18, 0, 11, len(client_id)) + client_id
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as connection,
        ):
            connection.sendall(struct.pack(">i", len(body)) + body)
            header = connection.recv(8)
    except OSError:
        return False
    return len(header) == 8 and struct.unpack(">ii", header)[1] == 11


def add_acls(run_acl_command: "AclRunner", prefix: str) -> None:
    """Add every ACL, retrying while the broker is still loading its metadata."""
    for arguments in acl_commands(prefix):
        deadline = time.monotonic() + acl_ready_timeout_s
        while True:
            result = run_acl_command(arguments)
            if result.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise ServerError(f"Adding Kafka ACLs failed:\n{result.stdout}{result.stderr}")
            time.sleep(acl_retry_s)


class AclRunner:
    """Runs Kafka's AclCommand as `admin` against the broker."""

    def __init__(self, command_prefix: list[str], bootstrap: str, layout: SecureLayout) -> None:
        self.command_prefix = command_prefix
        self.bootstrap = bootstrap
        self.layout = layout

    def __call__(self, arguments: list[str]) -> "subprocess.CompletedProcess[str]":
        command = [
            *self.command_prefix,
            "--bootstrap-server", self.bootstrap,
            "--command-config", str(self.layout.admin_config),
            *arguments,
        ]  # fmt: skip
        return subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=acl_command_timeout_s
        )


def describe_credentials(layout: SecureLayout, bootstrap: str) -> str:
    """Where the principals' credentials are; never a password itself."""
    lines = [
        f"SASL_SSL (SCRAM-SHA-512) on {bootstrap}; CA certificate: {layout.ca_file}",
        "Credentials (one password file per principal, mode 0600):",
    ]
    lines += [f"  {p}: {layout.password_file(p)}" for p in principals]
    lines += [
        "A client of the ledger, e.g. `ledger run` as principal ledger:",
        "  LEDGER_KAFKA_SECURITY=sasl_ssl LEDGER_KAFKA_USERNAME=ledger "
        f"LEDGER_KAFKA_PASSWORD_FILE={layout.password_file('ledger')} "
        f"LEDGER_KAFKA_CA_FILE={layout.ca_file}",
    ]
    return "\n".join(lines)
