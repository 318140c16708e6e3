"""Who may read what from `ledger api`: bearer tokens, roles, and the access log.

A request carries `Authorization: Bearer <token>`. The token is either an opaque API token
(its SHA-256 kept in the tokens file, never the token) or a JWT signed by the identity
provider's key (issuer, audience and expiry checked). Either names a principal and its roles:

- `auditor`: everything, at every `as_of`;
- `risk`: every account and every report, and /metrics;
- `reporting`: the reports;
- `trading`: the pre-trade checks (`POST /accounts/{id}/checks`), nothing else;
- `client:<account_id>`: that account's own figures.

Only the auditor reads the past (`as_of`): a reconstructed past is evidence, and the other
roles work on the present. /health and /openapi.json answer anyone (a probe has no token;
neither shows a figure). A route this table does not know is the auditor's alone, so a
route added later is closed until someone opens it here. A path no route takes is a 401
without a valid token too, and only then a 404 (or a 405 for a method the path does not take).

No token is a 401, a token outside its role a 403, both with the API's JSON error body.
Every response carries `Cache-Control: no-store` (figures must not sit in a proxy or a
browser cache) and, under `--insecure-no-auth`, a header saying so. Every request is one
JSON line in the access log: time, principal, role, method, path, as_of, status, bytes.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import secrets
import stat
import sys
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any, Literal, cast

import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import (
    ClientException,
    NotAuthorizedException,
    PermissionDeniedException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import Message, Scope

from ledger.identifiers import account_id_problem, identifier_problem

READ_QUERY_PARAMETERS = frozenset({"as_of"})  # an account's or report's reads (docs/api.md)
api_token_chars_max = 8_192  # a JWT with a few claims is well under 2 KB
api_token_bytes_entropy = 32  # 256 bits from the OS's generator
api_token_prefix = "lgr_"  # noqa: S105 (not a secret: tells a leaked token apart in a secret scanner
jwt_leeway_s = 30  # clock skew tolerated on exp/nbf/iat between the provider and us
# Public-key algorithms only: an HS* token "signed" with our public key is refused.
jwt_algorithms = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
insecure_header = (b"x-ledger-insecure", b"no authentication (--insecure-no-auth), 127.0.0.1 only")
insecure_principal = "anonymous"
no_store_header = (b"cache-control", b"no-store")

ROLE_NAMES = ("auditor", "risk", "reporting", "trading")
CLIENT_ROLE_PREFIX = "client:"
PUBLIC_PATHS = frozenset({"/health", "/openapi.json"})
AccessKind = Literal["public", "check", "account", "report", "operations", "other"]
_ACCESS_STATE_KEY = "ledger_access"


# The OpenAPI document's word for the scheme: every path needs it but /health (whose
# operation says `security: [{}]`, no requirement) and the document itself.
OPENAPI_SCHEME = "bearer"
OPENAPI_SECURITY: list[dict[str, list[str]]] = [{OPENAPI_SCHEME: []}]
OPENAPI_PUBLIC: list[dict[str, list[str]]] = [{}]


def openapi_components() -> Components:
    return Components(
        security_schemes={
            OPENAPI_SCHEME: SecurityScheme(
                type="http",
                scheme="bearer",
                bearer_format="an opaque API token (ledger api-token) or a JWT",
                description="roles: auditor, risk, reporting, client:<account_id> "
                "(docs/security.md); 401 without a valid token, 403 outside the role",
            )
        }
    )


class RoleError(ValueError):
    """A role string that is neither a known role nor `client:<account_id>`."""


def parse_role(text: str) -> str:
    """The role as given, once it is one of ROLE_NAMES or `client:<account_id>` with an
    account id the inbox could open (not empty nor blank, printable NFC text): a role
    naming no possible account (`client: `) is a mistake to say, not a role to keep."""
    if text in ROLE_NAMES:
        return text
    account_id = text.removeprefix(CLIENT_ROLE_PREFIX)
    if text.startswith(CLIENT_ROLE_PREFIX) and account_id and not identifier_problem(account_id):
        return text
    known = ", ".join((*ROLE_NAMES, "client:<account_id>"))
    raise RoleError(f"{text!r} is not a role: the roles are {known}")


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who a token says is calling, and the roles it grants."""

    name: str
    roles: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Grant:
    """The role that let a request through."""

    role: str


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a principal may not make a request: the 403's detail."""

    detail: str


def access_kind(path_template: str, path_params: Mapping[str, Any]) -> AccessKind:
    """Which rule of the module's table a route falls under."""
    if path_template in PUBLIC_PATHS:
        return "public"
    if path_template.endswith("/checks"):
        return "check"
    if "account_id" in path_params:
        return "account"
    if path_template.startswith("/reports/"):
        return "report"
    if path_template == "/metrics":
        return "operations"
    return "other"


_ROLES_BY_KIND: dict[AccessKind, tuple[str, ...]] = {
    "public": (),
    # Pre-trade checks (POST /accounts/{id}/checks): the trading system asks before an order.
    "check": ("auditor", "risk", "trading"),
    "account": ("auditor", "risk"),
    "report": ("auditor", "risk", "reporting"),
    "operations": ("auditor", "risk"),
    "other": ("auditor",),
}


def authorise(
    principal: Principal, kind: AccessKind, account_id: str | None, as_of: str | None
) -> Grant | Refusal:
    """The first of the principal's roles that allows the request, or why none does."""
    if as_of is not None and "auditor" not in principal.roles:
        return Refusal("reading the past (as_of) is for the auditor role")
    for role in principal.roles:
        if role in _ROLES_BY_KIND[kind]:
            return Grant(role)
        if kind == "account" and role == f"{CLIENT_ROLE_PREFIX}{account_id}":
            return Grant(role)
    roles = ", ".join(principal.roles) or "none"
    if kind == "account":
        return Refusal(f"account {account_id} is not open to {principal.name} (roles: {roles})")
    return Refusal(f"this path is not open to {principal.name} (roles: {roles})")


class TokenRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One line of the tokens file: the token's SHA-256, never the token."""

    principal: str
    roles: list[str]
    sha256: str


_decode_token_record = msgspec.json.Decoder(TokenRecord).decode


def token_digest(token: str) -> str:
    # One round of SHA-256 is enough: the tokens are 256 random bits, not passwords.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_api_token() -> str:
    return api_token_prefix + secrets.token_urlsafe(api_token_bytes_entropy)


def token_record(principal: str, roles: Iterable[str], token: str) -> bytes:
    """The tokens-file line for `token`, with its roles checked."""
    record = TokenRecord(
        principal=principal, roles=[parse_role(r) for r in roles], sha256=token_digest(token)
    )
    return msgspec.json.encode(record) + b"\n"


class TokenFileError(ValueError):
    """A tokens file that cannot be read as one JSON record per line."""


def load_token_file(path: Path) -> dict[str, Principal]:
    """The tokens file as {sha256: principal}; a bad line names its number."""
    return token_records(trusted_bytes(path), path)


_WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH


def trusted_bytes(path: Path) -> bytes:
    """A file that says who may read what (the tokens file, the identity provider's keys),
    refused when users other than its owner may write it: whoever can add a line or swap
    the key gives themselves any role (as ssh refuses such an authorized_keys file)."""
    mode = path.stat().st_mode
    if mode & _WRITABLE_BY_OTHERS:
        raise TokenFileError(
            f"{path} may be written by users other than its owner (mode "
            f"{stat.S_IMODE(mode):04o}): whoever can write it can give themselves any role; "
            f"`chmod go-w {path}`"
        )
    return path.read_bytes()


def token_records(content: bytes, path: Path) -> dict[str, Principal]:
    """The tokens file's `content` as {sha256: principal}; a bad line names its number."""
    principals: dict[str, Principal] = {}
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = _decode_token_record(line)
            roles = tuple(parse_role(r) for r in record.roles)
        except (msgspec.DecodeError, RoleError) as error:
            raise TokenFileError(f"{path} line {number}: {error}") from error
        principals[record.sha256] = Principal(record.principal, roles)
    return principals


class JwtKeys:
    """The identity provider's public keys: one PEM key, or a JWKS document by `kid`."""

    def __init__(self, single: Any | None, by_kid: Mapping[str, Any]) -> None:
        self.single = single
        self.by_kid = dict(by_kid)

    @classmethod
    def from_pem(cls, path: Path) -> JwtKeys:
        key = serialization.load_pem_public_key(trusted_bytes(path))
        public_types = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)
        if not isinstance(key, public_types):
            raise TokenFileError(f"{path}: an RSA, EC or Ed25519 public key is needed")
        return cls(key, {})

    @classmethod
    def from_jwks(cls, path: Path) -> JwtKeys:
        try:
            key_set = jwt.PyJWKSet.from_json(trusted_bytes(path).decode("utf-8"))
        except jwt.PyJWTError as error:
            raise TokenFileError(f"{path}: not a JWKS document: {error}") from error
        return cls(None, {k.key_id: k.key for k in key_set.keys if k.key_id})

    def key_for(self, token: str) -> Any:
        if self.single is not None:
            return self.single
        kid = jwt.get_unverified_header(token).get("kid")
        if not isinstance(kid, str) or kid not in self.by_kid:
            raise jwt.InvalidTokenError("the token's kid is not in the JWKS")
        return self.by_kid[kid]


@dataclasses.dataclass(frozen=True)
class JwtVerifier:
    keys: JwtKeys
    issuer: str
    audience: str

    def principal(self, token: str) -> Principal:
        claims = jwt.decode(
            token,
            self.keys.key_for(token),
            algorithms=list(jwt_algorithms),
            audience=self.audience,
            issuer=self.issuer,
            leeway=jwt_leeway_s,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
        roles = claims.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise jwt.InvalidTokenError("the token's roles claim is not a list of roles")
        try:
            return Principal(str(claims["sub"]), tuple(parse_role(r) for r in roles))
        except RoleError as error:
            raise jwt.InvalidTokenError(str(error)) from error


class AccessRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One line of the access log. The token is never in it."""

    time: str
    principal: str | None
    role: str | None
    method: str
    path: str
    as_of: str | None
    status: int
    bytes: int


@dataclasses.dataclass
class _Exchange:
    """What the access log needs of one request, gathered while it is served."""

    principal: str | None = None
    role: str | None = None
    status: int = 0
    bytes: int = 0


def _bearer(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header."""
    if header is None:
        raise NotAuthorizedException(
            detail="no token: send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > api_token_chars_max:
        raise NotAuthorizedException(
            detail="the Authorization header is not `Bearer <token>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token


def _exchange(scope: Scope) -> _Exchange:
    state = cast(dict[str, Any], scope)
    exchange = state.get(_ACCESS_STATE_KEY)
    if exchange is None:
        exchange = state[_ACCESS_STATE_KEY] = _Exchange()
    return cast(_Exchange, exchange)


@dataclasses.dataclass
class ApiSecurity:
    """The API's authentication, authorisation, response headers and access log.

    `create_app` wires it with `guards=[security.guard]` and
    `before_send=[security.before_send]`."""

    tokens: Mapping[str, Principal] = dataclasses.field(default_factory=dict)
    jwt_verifier: JwtVerifier | None = None
    insecure_no_auth: bool = False
    access_log: IO[str] = dataclasses.field(default_factory=lambda: sys.stderr)

    def principal(self, token: str) -> Principal:
        """Who the token names; a token neither known nor valid is a 401."""
        known = self.tokens.get(token_digest(token))
        if known is not None:
            return known
        if self.jwt_verifier is not None and token.count(".") == 2:
            try:
                return self.jwt_verifier.principal(token)
            except jwt.PyJWTError as error:
                raise NotAuthorizedException(
                    detail=f"the token is not valid: {error}",
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                ) from error
        raise NotAuthorizedException(
            detail="the token is not valid",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )

    async def guard(
        self, connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
    ) -> None:
        """Let the request through, or raise the 401 or 403 that says why not.

        A coroutine, though it never waits: the web framework runs a plain function guard
        on a worker thread, and that hand-off to and back from the thread cost every request
        more than the guard's own work (a token's hash looked up, a JWT's signature checked,
        both done while holding the interpreter's lock either way)."""
        template = str(connection.scope.get("path_template") or connection.scope["path"])
        kind = access_kind(template, connection.path_params)
        if kind == "public":
            return  # before the headers and query are parsed: /health is the probes' route
        self.admit(
            connection.scope,
            kind,
            connection.path_params.get("account_id"),
            connection.query_params.get("as_of"),
            connection.headers.get("authorization"),
        )
        unknown = sorted(set(connection.query_params) - READ_QUERY_PARAMETERS)
        if kind in ("account", "report") and unknown:
            # `?asof=5` or `?AS_OF=5` was answered with the journal's end, as if read then.
            raise ClientException(
                detail=f"unknown query parameter {unknown[0]!r}: the API takes only as_of"
            )

    def admit(
        self,
        scope: Scope,
        kind: AccessKind,
        account_id: str | None,
        as_of: str | None,
        authorization: str | None,
    ) -> None:
        """The guard's decision on a request of a `kind` that is not public, carrying the
        `authorization` header: return to let it through (its principal and role noted for
        the access log), or raise its 401 or 403. `ledger api` calls it for a pre-trade
        check in front of the framework (app/api_checks.py)."""
        if self.insecure_no_auth:
            principal = Principal(insecure_principal, ("auditor",))
        else:
            principal = self.principal(_bearer(authorization))
        exchange = _exchange(scope)
        exchange.principal = principal.name
        problem = None if account_id is None else account_id_problem(account_id)
        if problem is not None:
            # Said as `ledger query` says it, to every role alike: a client's 403 read
            # `account   is not open to ...`, and no route looks such an id up.
            raise ClientException(detail=problem)
        match authorise(principal, kind, account_id, as_of):
            case Grant(role=role):
                exchange.role = role
            case Refusal(detail=detail):
                raise PermissionDeniedException(detail=detail)

    def authenticate_unrouted(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        """A request no route takes (an unknown path, a method a path does not take) is
        authenticated all the same: without a valid token it is the 401, not the 404 or 405,
        so the API's paths are told to nobody who cannot read them."""
        exchange = _exchange(connection.scope)
        if connection.scope["path"] in PUBLIC_PATHS or exchange.principal is not None:
            return
        if self.insecure_no_auth:
            exchange.principal = insecure_principal
            return
        authorization = connection.headers.get("authorization")
        exchange.principal = self.principal(_bearer(authorization)).name

    async def before_send(self, message: Message, scope: Scope) -> None:
        """Mark every response no-store (and insecure when it is), and log each request."""
        if scope["type"] != ScopeType.HTTP:
            return
        exchange = _exchange(scope)
        if message["type"] == "http.response.start":
            start = cast(dict[str, Any], message)
            start["headers"] = [*start.get("headers", []), *self.response_headers()]
            exchange.status = int(start["status"])
        elif message["type"] == "http.response.body":
            exchange.bytes += len(message.get("body", b""))
            if not message.get("more_body", False):
                self._log(scope, exchange)

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers `before_send` adds to every response."""
        return [no_store_header, *([insecure_header] if self.insecure_no_auth else [])]

    def log_answer(self, scope: Scope, status: int, length: int) -> None:
        """The access-log line of a request admitted here and answered without the
        framework (`before_send` writes the framework's)."""
        exchange = _exchange(scope)
        exchange.status, exchange.bytes = status, length
        self._log(scope, exchange)

    def _log(self, scope: Scope, exchange: _Exchange) -> None:
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        as_of = query.get("as_of", [None])[-1]
        record = AccessRecord(
            time=datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            principal=exchange.principal,
            role=exchange.role,
            method=str(scope.get("method", "")),
            path=scope["path"],
            as_of=as_of,
            status=exchange.status,
            bytes=exchange.bytes,
        )
        self.access_log.write(msgspec.json.encode(record).decode("utf-8") + "\n")
        self.access_log.flush()
