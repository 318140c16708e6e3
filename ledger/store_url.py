"""Store URLs: the one parser of a PostgreSQL location, for the store, the view tables and
the reference consumer.

`postgresql://user[:password]@host[:port]/dbname[?schema=name]` (`postgres://` too): the
only option is `schema` (default `public`), a plain identifier the driver quotes
(`psycopg.sql.Identifier`) wherever it is written into SQL, never formatted into a string.
A URL without a password takes it from the file `LEDGER_STORE_PASSWORD_FILE` names.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

POSTGRES_DEFAULT_PORT = 5432
# A URL without a password takes it from this file: the password stays out of the
# environment and the process list (docs/security.md).
STORE_PASSWORD_FILE_ENV = "LEDGER_STORE_PASSWORD_FILE"  # noqa: S105 (a variable's name)
_SCHEMA_NAME_CHARS_MAX = 63  # PostgreSQL's NAMEDATALEN - 1


class StoreUrlError(ValueError):
    """A store URL this module cannot open (wrong scheme, missing part, unknown option)."""


@dataclass(frozen=True, slots=True)
class PostgresLocation:
    user: str
    password: str
    host: str
    port: int
    dbname: str
    schema: str

    def describe(self) -> str:
        """The location for logs, without the password."""
        return (
            f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}?schema={self.schema}"
        )

    def connection_arguments(self) -> dict[str, str | int]:
        """The keyword arguments of `psycopg.connect` for this location (not the schema)."""
        return {
            "user": self.user,
            "password": self.password,
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
        }


def _password_from_file() -> str:
    """The password in the file LEDGER_STORE_PASSWORD_FILE names (a mounted secret), for a
    URL without one; "" when unset (trust or peer authentication)."""
    path = os.environ.get(STORE_PASSWORD_FILE_ENV)
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as error:
        raise StoreUrlError(
            f"{STORE_PASSWORD_FILE_ENV} {path} cannot be read: {error.strerror}"
        ) from error


def parse_postgres_url(url: str) -> PostgresLocation:
    """The location a PostgreSQL URL names; StoreUrlError says what is wrong with it."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as error:  # `[::1/ledger`: an IPv6 host without its closing bracket
        raise StoreUrlError(f"not a URL: {error}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise StoreUrlError(f"a PostgreSQL URL starts with postgresql://, got {parts.scheme!r}")
    try:
        port = parts.port or POSTGRES_DEFAULT_PORT
    except ValueError as error:
        raise StoreUrlError(f"invalid port in the PostgreSQL URL: {error}") from None
    dbname = urllib.parse.unquote(parts.path.removeprefix("/"))
    if not parts.username or not parts.hostname or not dbname or "/" in dbname:
        raise StoreUrlError("a PostgreSQL URL needs user@host and one database name")
    options = urllib.parse.parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    if set(options) - {"schema"} or any(len(values) != 1 for values in options.values()):
        raise StoreUrlError(
            f"the only PostgreSQL URL option is one schema=, got {parts.query!r}; TLS and the "
            "other connection settings come from libpq's environment (PGSSLMODE, "
            "PGSSLROOTCERT: docs/security.md)"
        )
    schema = options.get("schema", ["public"])[0]
    if not (0 < len(schema) <= _SCHEMA_NAME_CHARS_MAX and schema.isidentifier()):
        raise StoreUrlError(f"schema {schema!r} is not a plain identifier of 1..63 chars")
    return PostgresLocation(
        user=urllib.parse.unquote(parts.username),
        password=urllib.parse.unquote(parts.password or "") or _password_from_file(),
        host=parts.hostname,
        port=port,
        dbname=dbname,
        schema=schema,
    )
