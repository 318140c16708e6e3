"""`ledger api` (the read-only HTTP API) and `ledger api-token` (a new opaque API token).

`ledger api` refuses to start without an authentication setting: a tokens file
(`--tokens-file`, $LEDGER_API_TOKENS_FILE), a JWT public key or JWKS file with its issuer and
audience, or, for a local look only, `--insecure-no-auth` (which binds 127.0.0.1 and says so
on every response). TLS with `--tls-cert` and `--tls-key`. This module stays light: Litestar,
uvicorn and PyJWT load only when the API runs.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import ssl
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from app.commands import (
    EXIT_REFUSED,
    CommandError,
    open_store,
    policies_of,
    port_max,
    require_output_file,
    without_password,
)
from ledger import snapshots
from ledger.identifiers import identifier_problem, printable
from ledger.store import LedgerStore

if TYPE_CHECKING:
    from app.api_auth import ApiSecurity

tokens_file_env = "LEDGER_API_TOKENS_FILE"
jwt_public_key_env = "LEDGER_API_JWT_PUBLIC_KEY"
jwt_jwks_env = "LEDGER_API_JWT_JWKS"
jwt_issuer_env = "LEDGER_API_JWT_ISSUER"
jwt_audience_env = "LEDGER_API_JWT_AUDIENCE"
access_log_env = "LEDGER_API_ACCESS_LOG"
tls_cert_env = "LEDGER_API_TLS_CERT"
tls_key_env = "LEDGER_API_TLS_KEY"
insecure_host = "127.0.0.1"
api_workers_max = 16  # processes on one machine: more than its cores only queue on them
tokens_file_mode = 0o600  # the hashes are not secrets, but who holds which role is


def _path(text: str | None) -> Path | None:
    return Path(text) if text else None


def _readable(path: Path | None, option: str) -> Path | None:
    if path is not None and not path.is_file():
        raise CommandError(f"{option} {path} is not a readable file")
    return path


def _check_settings(args: argparse.Namespace) -> None:
    """Refuse an API without authentication, or with half a setting."""
    jwt_key = _readable(args.jwt_public_key, "--jwt-public-key")
    jwks = _readable(args.jwt_jwks, "--jwt-jwks")
    _readable(args.tokens_file, "--tokens-file")
    if jwt_key and jwks:
        raise CommandError("give --jwt-public-key or --jwt-jwks, not both")
    if (jwt_key or jwks) and not (args.jwt_issuer and args.jwt_audience):
        raise CommandError("a JWT setting needs --jwt-issuer and --jwt-audience")
    authenticated = bool(args.tokens_file or jwt_key or jwks)
    if args.insecure_no_auth and authenticated:
        raise CommandError("--insecure-no-auth cannot be combined with a token setting")
    if not (authenticated or args.insecure_no_auth):
        raise CommandError(
            f"ledger api needs an authentication setting: --tokens-file (${tokens_file_env}), "
            f"--jwt-public-key or --jwt-jwks with --jwt-issuer and --jwt-audience, "
            "or --insecure-no-auth for a local look on 127.0.0.1"
        )
    if args.insecure_no_auth and not _loopback(args.host):
        raise CommandError(f"--insecure-no-auth binds {insecure_host} only, not {args.host}")
    if not 0 <= args.port <= port_max:
        # The server would log the bind failure and keep running without a socket.
        raise CommandError(f"--port {args.port} is not a port (0 to {port_max})")
    if not 1 <= args.workers <= api_workers_max:
        raise CommandError(f"--workers {args.workers} is not 1 to {api_workers_max}")
    if args.workers > 1 and args.port == 0:
        # Each worker binds the port itself: port 0 would give each its own port.
        raise CommandError("--workers needs a fixed --port, not 0")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise CommandError("TLS needs both --tls-cert and --tls-key")
    _readable(args.tls_cert, "--tls-cert")
    _readable(args.tls_key, "--tls-key")
    if args.tls_cert:
        _require_tls_pair(args.tls_cert, args.tls_key)
    _require_listenable(args.host, args.port)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: --insecure-no-auth takes an address it can check


def _require_tls_pair(cert: Path, key: Path) -> None:
    """The server would fail on them only after saying it is up."""
    try:
        # No password: the server has no way to ask for one, and OpenSSL would prompt.
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            cert, key, password=_no_password
        )
    except ssl.SSLError as error:
        raise CommandError(
            f"--tls-cert {cert} and --tls-key {key} are not a PEM certificate and its private "
            f"key without a pass phrase: {error.reason or error}"
        ) from error


def _no_password() -> str:
    return ""


def _require_listenable(host: str, port: int) -> None:
    """An address the server cannot listen on (taken by another program, a name that does
    not resolve, not this machine's), said before the server says it is up: the server
    would print its own lines and exit 3. A port that a `ledger api --workers N` holds is
    taken too: this probe does not share it (no SO_REUSEPORT)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
            probe.bind((host, port))
    except OSError as error:
        raise CommandError(f"cannot listen on {host}:{port}: {error.strerror or error}") from error


def _access_log(path: Path | None, store_url: str) -> IO[str]:
    if path is None or str(path) == "-":
        return sys.stderr
    require_output_file(path, "--access-log", store_url)
    try:
        return path.open("a", encoding="utf-8")
    except OSError as error:  # a folder, a file it may not write: was "[Errno 21] ..."
        raise CommandError(
            f"--access-log {path} cannot be written: {error.strerror}", EXIT_REFUSED
        ) from error


def _api(args: argparse.Namespace) -> int:
    _check_settings(args)
    from app import api_auth  # noqa: PLC0415 - Litestar only for `ledger api`

    try:
        security = api_auth.ApiSecurity(
            tokens=api_auth.load_token_file(args.tokens_file) if args.tokens_file else {},
            jwt_verifier=_jwt_verifier(args),
            insecure_no_auth=args.insecure_no_auth,
            access_log=_access_log(args.access_log, args.store),
        )
    except (api_auth.TokenFileError, ValueError, OSError) as error:
        raise CommandError(str(error)) from error
    # A store that cannot be opened, or whose journal is under a policy whose document is
    # neither kept nor given, is refused before the server says it is up (the views
    # refused it in the framework's startup, a traceback, after the server had said so).
    with open_store(args) as store:
        policies_of(args, store).in_force(snapshots.book_at(store))
        may_write = store.role_may_append()
    scheme = "https" if args.tls_cert else "http"
    print(f"ledger api: {scheme}://{args.host}:{args.port}/openapi.json", file=sys.stderr)
    if may_write:
        # Served all the same (a local look as the owner is common), but said: whoever
        # took over the API's process could then write the store (docs/security.md).
        print(
            f"ledger api: warning: the store's role ({without_password(args.store)}) may "
            "write the journal; serve with ledger_reader's URL",
            file=sys.stderr,
        )
    if args.insecure_no_auth:
        print("ledger api: NO AUTHENTICATION (--insecure-no-auth)", file=sys.stderr)
    if args.workers == 1:
        _serve(args, security, sock=None)
        return 0
    from app import api_processes  # noqa: PLC0415

    def worker() -> int:
        _serve(args, security, api_processes.listening_socket(args.host, args.port))
        return 0

    return api_processes.run_workers(args.workers, worker)


def _serve(
    args: argparse.Namespace,
    security: ApiSecurity,
    sock: socket.socket | None,
) -> None:
    """One server process: the store opened here, its views built here."""
    from app import api, api_as_of  # noqa: PLC0415

    # Checked by `open_store` before the server said it was up. Its reads give up on a
    # PostgreSQL server that is down after a second, so requests are answered 503 at once.
    with LedgerStore.open(
        args.store, read_only=True, reach_timeout_s=api_as_of.store_reach_timeout_s
    ) as store:
        tls = api.TlsFiles(args.tls_cert, args.tls_key) if args.tls_cert else None
        source = api_as_of.AsOfSource(args.store, args.policy)
        api.serve(
            store,
            policies_of(args, store),
            args.host,
            args.port,
            security=security,
            tls=tls,
            as_of_source=source,
            sock=sock,
        )


def _jwt_verifier(args: argparse.Namespace) -> Any:
    from app import api_auth  # noqa: PLC0415

    if args.jwt_public_key:
        keys = api_auth.JwtKeys.from_pem(args.jwt_public_key)
    elif args.jwt_jwks:
        keys = api_auth.JwtKeys.from_jwks(args.jwt_jwks)
    else:
        return None
    return api_auth.JwtVerifier(keys, args.jwt_issuer, args.jwt_audience)


def _api_token(args: argparse.Namespace) -> int:
    """Print a new token once; append only its hash and roles to the tokens file."""
    from app import api_auth  # noqa: PLC0415

    if args.tokens_file is None:
        raise CommandError(f"ledger api-token needs --tokens-file or ${tokens_file_env}")
    # The principal is who the access log says called: a name a person can read.
    problem = "is empty" if not args.principal.strip() else identifier_problem(args.principal)
    if problem is not None:
        raise CommandError(f"--principal {printable(args.principal)!r} {problem}")
    token = api_auth.new_api_token()
    try:
        line = api_auth.token_record(args.principal, args.role, token)
    except api_auth.RoleError as error:
        raise CommandError(str(error)) from error
    descriptor = os.open(args.tokens_file, os.O_RDWR | os.O_CREAT | os.O_APPEND, tokens_file_mode)
    with os.fdopen(descriptor, "r+b") as tokens_file:
        held = tokens_file.read()
        try:
            api_auth.token_records(held, args.tokens_file)
        except api_auth.TokenFileError as error:
            # Another file named by mistake: appending would break it and serve no token.
            raise CommandError(
                f"{error}: {args.tokens_file} is not a tokens file, nothing was added"
            ) from error
        tokens_file.write(line if held.endswith(b"\n") or not held else b"\n" + line)
    print(token)
    print(
        f"ledger api-token: {args.principal} ({', '.join(args.role)}) added to "
        f"{args.tokens_file}; the token above is shown once and stored nowhere",
        file=sys.stderr,
    )
    return 0


def _from_env(parser: Any, flag: str, env_name: str, help_text: str, *, path: bool = True) -> None:
    """An option whose default is the environment variable `env_name`; `help_text` names
    it as `{env}`."""
    value = os.environ.get(env_name)
    parser.add_argument(
        flag,
        type=Path if path else str,
        default=_path(value) if path else value,
        help=help_text.format(env=f"${env_name}"),
    )


def register(sub: Any) -> None:
    api = sub.add_parser("api", help="the read-only HTTP API (OpenAPI at /openapi.json)")
    api.add_argument("--host", default=insecure_host, help="address to listen on")
    api.add_argument("--port", type=int, default=8000, help="port to listen on")
    api.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port, each with its own views (deploy/README.md: one "
        f"per core the API may use; at most {api_workers_max})",
    )
    _from_env(
        api,
        "--tokens-file",
        tokens_file_env,
        "opaque API tokens, as hashes ({env}; see `ledger api-token`)",
    )
    _from_env(api, "--jwt-public-key", jwt_public_key_env, "PEM public key that signs JWTs ({env})")
    _from_env(api, "--jwt-jwks", jwt_jwks_env, "JWKS file of the keys that sign JWTs ({env})")
    _from_env(api, "--jwt-issuer", jwt_issuer_env, "expected `iss` ({env})", path=False)
    _from_env(api, "--jwt-audience", jwt_audience_env, "expected `aud` ({env})", path=False)
    api.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="no authentication: a local look on 127.0.0.1 only",
    )
    _from_env(api, "--tls-cert", tls_cert_env, "PEM certificate chain: serve HTTPS ({env})")
    _from_env(api, "--tls-key", tls_key_env, "PEM private key of --tls-cert ({env})")
    _from_env(
        api,
        "--access-log",
        access_log_env,
        "JSON-lines access log file ({env}; stderr by default)",
    )
    api.set_defaults(handler=_api)

    token = sub.add_parser("api-token", help="make an API token; only its hash is kept")
    token.add_argument("--principal", required=True, help="who holds the token")
    token.add_argument(
        "--role",
        action="append",
        required=True,
        help="auditor, risk, reporting, trading or client:<account_id> (repeat for several)",
    )
    _from_env(
        token,
        "--tokens-file",
        tokens_file_env,
        "the file `ledger api` reads the token hashes from ({env})",
    )
    token.set_defaults(handler=_api_token)
