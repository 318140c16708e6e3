"""How every Kafka client of the ledger authenticates: settings from the environment.

- `LEDGER_KAFKA_SECURITY`: `plaintext` (the default: a local broker) or `sasl_ssl`
  (SASL/SCRAM-SHA-512 over TLS);
- `LEDGER_KAFKA_USERNAME`: the SCRAM principal (`ledger`, `upstream`, `reader`, ...);
- `LEDGER_KAFKA_PASSWORD_FILE`: a file holding its password (a mounted secret). The
  password is never a flag or a variable's value, so it shows in no process list, shell
  history or log; it is read when a client is built and never printed;
- `LEDGER_KAFKA_CA_FILE`: the PEM certificate(s) the broker's certificate must chain to;
  without it, the system's trust store.

`client_options()` gives the keyword arguments every aiokafka producer, consumer and
admin client of the project adds to its own; `ledger run`, `publish`, `audit verify
--from-kafka`, the demo and the reference reporting consumer all build their clients with it.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

security_env = "LEDGER_KAFKA_SECURITY"
username_env = "LEDGER_KAFKA_USERNAME"
password_file_env = "LEDGER_KAFKA_PASSWORD_FILE"  # noqa: S105 (a variable name)
ca_file_env = "LEDGER_KAFKA_CA_FILE"
password_bytes_max = 1_024  # a SCRAM password, not a document
sasl_mechanism = "SCRAM-SHA-512"
Protocol = Literal["plaintext", "sasl_ssl"]
PROTOCOLS: tuple[Protocol, ...] = ("plaintext", "sasl_ssl")


class KafkaSecurityError(ValueError):
    """The Kafka security settings are incomplete or unreadable: a sentence to act on."""


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: Protocol
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None

    @classmethod
    def from_environment(cls, environment: Mapping[str, str] | None = None) -> KafkaSecurity:
        env = os.environ if environment is None else environment
        protocol = (env.get(security_env) or "plaintext").lower()
        if protocol == "plaintext":
            return cls("plaintext")
        if protocol != "sasl_ssl":
            raise KafkaSecurityError(
                f"{security_env}={protocol!r}: it is one of {', '.join(PROTOCOLS)}"
            )
        username = env.get(username_env)
        password_file = env.get(password_file_env)
        if not username or not password_file:
            raise KafkaSecurityError(
                f"{security_env}=sasl_ssl needs {username_env} and {password_file_env}"
            )
        ca_file = env.get(ca_file_env)
        return cls(
            "sasl_ssl",
            username=username,
            password_file=Path(password_file),
            ca_file=Path(ca_file) if ca_file else None,
        )

    def password(self) -> str:
        if self.password_file is None:
            raise KafkaSecurityError(f"{password_file_env} is not set")
        try:
            raw = self.password_file.read_bytes()[: password_bytes_max + 1]
        except OSError as error:
            raise KafkaSecurityError(
                f"{password_file_env} {self.password_file} cannot be read: {error.strerror}"
            ) from error
        password = raw.decode("utf-8", errors="strict").rstrip("\r\n")
        if not password or len(raw) > password_bytes_max:
            raise KafkaSecurityError(
                f"{password_file_env} {self.password_file} holds no password of "
                f"1..{password_bytes_max} bytes"
            )
        return password

    def ssl_context(self) -> ssl.SSLContext:
        """Verify the broker's certificate and name, TLS 1.2 at least."""
        try:
            context = ssl.create_default_context(
                cafile=None if self.ca_file is None else str(self.ca_file)
            )
        except (OSError, ssl.SSLError) as error:
            raise KafkaSecurityError(
                f"{ca_file_env} {self.ca_file} is not a readable PEM certificate: {error}"
            ) from error
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def client_options(self) -> dict[str, Any]:
        """aiokafka keyword arguments: every option stated, none left to its default."""
        if self.protocol == "plaintext":
            return {"security_protocol": "PLAINTEXT"}
        return {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": sasl_mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password(),
            "ssl_context": self.ssl_context(),
        }

    def describe(self) -> str:
        """For logs: the protocol and principal, never the password."""
        if self.protocol == "plaintext":
            return "plaintext"
        return f"sasl_ssl user={self.username} ca={self.ca_file or 'system'}"


def client_options() -> dict[str, Any]:
    """The security keyword arguments for an aiokafka client, from the environment."""
    return KafkaSecurity.from_environment().client_options()
