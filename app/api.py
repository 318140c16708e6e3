"""`ledger api`: the read-only HTTP API of docs/api.md, served by Litestar.

- `GET /accounts/{id}/margin`, `GET /accounts/{id}/balances`: what `ledger query` prints;
- `GET /reports/{view}`: what `ledger report VIEW` prints (projections/ views);
- `GET /health`, `GET /metrics` (Prometheus text), `GET /openapi.json`.

Every read takes `as_of` (a journal seq or an RFC 3339 time with an offset). The current
state is one projection of the store's journal kept in memory (`LiveViews`), started at
startup as a copy of the views stored next to the journal (as `ledger report` keeps them;
from seq 1 when there are none) and brought up to the journal's end before each read, on
the event loop's thread (the in-memory views are a SQLite connection bound to one thread;
catching up is short). An `as_of` read reads the accounts' history stored with the views,
or rebuilds state at a past position, which is not short: either runs in a bounded pool of
worker processes (`app/api_as_of.py`), never on the event loop. A user's mistake is a 4xx with a
JSON body (`ErrorDocument`: `{"status_code": ..., "detail": ...}`), never a 500; every
route's errors are in the OpenAPI document with that schema.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn

import msgspec
from litestar import Litestar, MediaType, Request, Response, get
from litestar.exceptions import (
    HTTPException,
    InternalServerException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
)
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.params import Parameter
from litestar.status_codes import HTTP_409_CONFLICT, HTTP_503_SERVICE_UNAVAILABLE

from app import api_auth, api_checks
from app.api_as_of import (
    AsOfBusy,
    AsOfReader,
    AsOfRefusal,
    AsOfSource,
    account_document,
    as_of_retry_after_s,
    report_document,
)
from app.api_auth import ApiSecurity
from app.api_documents import (
    BalancesDocument,
    ErrorDocument,
    HealthDocument,
    MarginDocument,
    ProblemDocument,
    ViewDocument,
    checked,
    error_responses,
)
from ledger import journal_events as je
from ledger import pretrade, reporting, risk
from ledger.adopted_policies import AdoptedPolicies
from ledger.book import Book
from ledger.limits import inbox_record_bytes_max
from ledger.policy import Policy, PolicyError
from ledger.rejections import decode_reject_record
from ledger.store import InterfaceError, LedgerStore, OperationalError
from projections.database import ViewDatabase
from projections.runner import ProjectionRunner
from projections.tables import TABLES, TABLES_BY_VIEW
from projections.views import document, stored_copy

log = logging.getLogger(__name__)
# A database restart takes seconds: when the API's store cannot be reached, callers retry.
store_retry_after_s = 5
# The Retry-After of a 503 for a policy the journal adopted whose document the API lacks:
# an operator's step (a writer started, a file copied) ends it, not a moment's wait.
policy_retry_after_s = 30
# Seconds after a failed read during which the store is not tried: requests are answered
# 503 at once; then one read, off the event loop, tells whether it answers again.
store_unreachable_hold_s = 2.0

API_TITLE = "collateral-ledger"
API_VERSION = "1"
AS_OF = Annotated[
    str | None,
    Parameter(
        description="journal seq, or RFC 3339 time with an offset (2026-11-03T12:00:00Z)",
        max_length=64,
    ),
]
ACCOUNT_ID = Annotated[
    str,
    Parameter(
        description="a client account id, or a platform account (platform:house)", max_length=128
    ),
]
# Every view `ledger report` prints.
REPORT_VIEWS = tuple(table.view for table in TABLES)


_MARK_ALERT = b'"alert":true'
request_body_bytes_max = 4 * inbox_record_bytes_max  # larger is a 413 before it is read
uvicorn_startup_failure_status = 3  # what `uvicorn.run` exits with when it cannot start
api_start_refused_status = 2  # the store cannot be served as asked (docs/cli.md)
# The collector's first generation is collected when this many more objects have been made
# than freed (Python's default: 700). A served request leaves next to nothing behind (no
# cyclic garbage), but at 700 the collector ran every third request over the objects of
# the check in flight, and promoted them for its older generations to walk again: 70 ms of
# CPU per worker per 3,000 checks, 5% of an answer (docs/performance.md). At 20,000 it runs
# a few times a run; what it could hold back is at most that many unreachable objects.
api_gc_young_objects_max = 20_000


class PolicyUnreadable(PolicyError):
    """The views stand before a `policy_adopted` whose document the API cannot find."""


@dataclass
class LiveViews:
    """The store's journal projected into in-memory views, brought up to date on demand,
    with running counts of journal events by type and rejects by reason for /metrics."""

    store: LedgerStore
    # Each seq valued with the policy in force there (docs/views.md "Policies").
    policies: AdoptedPolicies
    # Where views are stored next to the journal (None: a store in memory): the in-memory
    # views start as a copy of them, not from seq 1.
    stored_url: str | None
    database: ViewDatabase = field(init=False)
    runner: ProjectionRunner = field(init=False)
    events_by_type: Counter[str] = field(default_factory=Counter)
    rejects_by_reason: Counter[str] = field(default_factory=Counter)
    mark_alerts: int = 0  # marks that moved more than the policy's mark_alert_move
    counted_seq: int = 0
    counted_rejects: int = 0
    # Each account's figures before a pre-trade check, kept until the journal moves on.
    figures_before: pretrade.FiguresBefore = field(default_factory=pretrade.FiguresBefore)
    caught_up: bool = False  # the first follow done, what it built frozen out of the GC
    # The store's commit marker at the last follow and the last count (None: read again).
    followed_marker: int | None = None
    counted_marker: int | None = None
    # Why the views stopped before a policy the journal adopted (None: they did not).
    unreadable: PolicyError | None = None

    def __post_init__(self) -> None:
        self.database = stored_copy(self.stored_url)
        self.runner = ProjectionRunner(self.database, self.policies)

    @property
    def policy(self) -> Policy:
        """The policy in force at the views' end: what the figures and checks use now."""
        return self.runner.state.policy

    def follow_journal(self) -> None:
        """Project what the journal gained since the last read, without counting for
        /metrics: what a pre-trade check needs, and no more. Nothing is read when the
        store says nothing was committed since (`LedgerStore.commit_marker`).

        A policy the journal adopted whose document is nowhere (a writer of an older
        version keeps none) stops the views before it, and raises: each read past it is
        answered 503 (`_policy_unreadable`) until the document is found (looked for again
        at each read)."""
        marker = self.store.commit_marker()  # before the read: a later commit moves it
        if marker is None or marker != self.followed_marker or self.unreadable is not None:
            self.unreadable = None
            self.runner.follow(self.store, valued=self._valued)
            if self.unreadable is not None:
                raise PolicyUnreadable(str(self.unreadable)) from None
            self.followed_marker = marker
        if not self.caught_up:
            # The book and views of the first catch-up live as long as the process: frozen,
            # the collector's full passes no longer walk them after each burst of requests
            # (on the demo's store, /health answered 3 times as many callers a second).
            gc.freeze()
            self.caught_up = True

    def refresh(self) -> None:
        """Project and count what the journal and the rejects gained since the last read."""
        marker = self.store.commit_marker()
        self.follow_journal()
        if marker is not None and marker == self.counted_marker:
            return
        for entry in self.store.iter_journal(self.counted_seq):
            self.events_by_type[entry.type] += 1
            # Canonical JSON writes `alert` only when true: no decoding of every mark.
            if entry.type == "mark_price_applied" and _MARK_ALERT in entry.record:
                self.mark_alerts += 1
            self.counted_seq = entry.seq
        while records := self.store.read_rejects(self.counted_rejects):
            for record in records:
                head = decode_reject_record(record)
                self.rejects_by_reason[head.reason_code] += 1
                self.counted_rejects = head.number
        self.counted_marker = marker

    def _valued(self, event: je.JournalEventType) -> bool:
        """Whether the views can value `event`: not a `policy_adopted` whose document is
        neither kept in the store nor given (why kept in `unreadable`)."""
        if type(event) is not je.PolicyAdopted:
            return True
        try:
            self.policies.adopted(event)
        except PolicyError as error:
            self.unreadable = error
            return False
        return True

    @property
    def book(self) -> Book:
        return self.runner.state.book

    def close(self) -> None:
        self.database.close()


class StoreHeld(Exception):
    """The store failed a read less than `store_unreachable_hold_s` ago: not tried."""


@dataclass
class StoreGate:
    """Remembers that the store could not be reached, so that an outage costs the event
    loop one failed read (`store_reach_timeout_s`) rather than one per request: while
    it is remembered, requests are answered 503 at once; after it, one read in a worker
    thread (the others still answered 503) finds whether the store answers again."""

    store: LedgerStore
    failed_at: float | None = None  # time.monotonic() of the last failed read
    probing: bool = False

    def failed(self) -> None:
        self.failed_at = time.monotonic()

    async def admit(self) -> None:
        """Return when the store may be read on the event loop; raise StoreHeld, or the
        read's OperationalError, when it may not."""
        if self.failed_at is None:
            return
        if self.probing or time.monotonic() - self.failed_at < store_unreachable_hold_s:
            raise StoreHeld(f"unreachable less than {store_unreachable_hold_s} s ago")
        self.probing = True
        try:
            await asyncio.to_thread(self.store.last_seq)
        finally:
            self.probing = False
        self.failed_at = None


def _live(request: Request[Any, Any, Any]) -> LiveViews:
    live: LiveViews = request.app.state.live
    return live


async def _refreshed(request: Request[Any, Any, Any]) -> LiveViews:
    """The in-memory views brought up to the journal's end, when the store is reachable."""
    gate: StoreGate = request.app.state.gate
    await gate.admit()
    live = _live(request)
    live.refresh()
    return live


async def _as_of(
    request: Request[Any, Any, Any], read: Callable[..., dict[str, Any]], *args: str
) -> dict[str, Any]:
    """`read(*args)` in the as_of pool; its refusals as 4xx, a full pool as 503."""
    gate: StoreGate = request.app.state.gate
    await gate.admit()
    reader: AsOfReader = request.app.state.as_of
    try:
        return await reader.run(read, *args)
    except AsOfRefusal as refusal:
        raise HTTPException(status_code=refusal.status_code, detail=refusal.detail) from None
    except AsOfBusy:
        raise HTTPException(
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
            detail="too many as_of requests in flight: retry shortly",
            headers={"Retry-After": str(as_of_retry_after_s)},
        ) from None


async def _account_document(
    request: Request[Any, Any, Any], account_id: str, as_of: str | None, what: str
) -> dict[str, Any]:
    if as_of is not None:
        return await _as_of(request, account_document, as_of, account_id, what)
    live = await _refreshed(request)
    book = live.book
    # A platform account (platform:house, platform:insurance, ...) answers as in `ledger query`.
    if not reporting.in_ledger(book, account_id):
        raise NotFoundException(detail=f"account {account_id} is not in the ledger")
    build = reporting.margin_view if what == "margin" else reporting.balances_view
    try:
        return build(book, live.policy, account_id)
    except risk.MissingMark as missing:
        raise HTTPException(
            status_code=HTTP_409_CONFLICT,
            detail=f"account {account_id} cannot be valued yet: {missing}",
        ) from missing


_ACCOUNT_ERRORS = error_responses(400, 401, 403, 404, 409, 500, 503)


@get(
    "/accounts/{account_id:str}/margin",
    summary="An account's figures from the risk model",
    responses=_ACCOUNT_ERRORS,
)
async def account_margin(
    request: Request[Any, Any, Any], account_id: ACCOUNT_ID, as_of: AS_OF = None
) -> MarginDocument:
    return checked(await _account_document(request, account_id, as_of, "margin"), MarginDocument)


@get(
    "/accounts/{account_id:str}/balances",
    summary="Each asset's balance, mark and value",
    responses=_ACCOUNT_ERRORS,
)
async def account_balances(
    request: Request[Any, Any, Any], account_id: ACCOUNT_ID, as_of: AS_OF = None
) -> BalancesDocument:
    answer = await _account_document(request, account_id, as_of, "balances")
    return checked(answer, BalancesDocument)


@get(
    "/reports/{view:str}",
    summary="A regulatory view, as `ledger report VIEW` shows it",
    responses=error_responses(400, 401, 403, 404, 500, 503),
)
async def report(
    request: Request[Any, Any, Any],
    view: Annotated[str, Parameter(description=", ".join(REPORT_VIEWS), max_length=64)],
    as_of: AS_OF = None,
) -> ViewDocument:
    if view not in REPORT_VIEWS:
        raise NotFoundException(detail=f"no view {view!r}: the views are {', '.join(REPORT_VIEWS)}")
    if as_of is not None:
        return checked(await _as_of(request, report_document, as_of, view), ViewDocument)
    live = await _refreshed(request)
    return checked(document(live.database, TABLES_BY_VIEW[view]), ViewDocument)


@get(
    "/health",
    summary="Whether the store answers, and its journal position",
    security=api_auth.OPENAPI_PUBLIC,  # probes carry no token
    responses=error_responses(500, 503),
)
async def health(request: Request[Any, Any, Any]) -> HealthDocument:
    live = await _refreshed(request)
    return HealthDocument(
        status="ok",
        journal_seq=live.book.last_seq,
        last_hash=live.book.last_hash,
        policy_version=live.policy.version,
    )


def metrics_text(live: LiveViews) -> str:
    """Prometheus text format 0.0.4: journal position, events by type, rejects by reason.

    Events per second is Prometheus's `rate(ledger_journal_events_total[1m])`; the inbox
    lag needs the broker's end offsets, which `ledger run` reports on its own /health."""
    lines = [
        "# HELP ledger_journal_seq The last journal seq recorded in the store.",
        "# TYPE ledger_journal_seq gauge",
        f"ledger_journal_seq {live.book.last_seq}",
        "# HELP ledger_journal_events_total Journal events recorded, by event type.",
        "# TYPE ledger_journal_events_total counter",
    ]
    for event_type, count in sorted(live.events_by_type.items()):
        lines.append(f'ledger_journal_events_total{{type="{event_type}"}} {count}')
    lines += [
        "# HELP ledger_rejects_total Inputs refused, by reason code.",
        "# TYPE ledger_rejects_total counter",
    ]
    for reason, count in sorted(live.rejects_by_reason.items()):
        lines.append(f'ledger_rejects_total{{reason="{reason}"}} {count}')
    lines += [
        "# HELP ledger_mark_alerts_total Marks that moved more than the policy's "
        "mark_alert_move from the previous mark (booked, flagged).",
        "# TYPE ledger_mark_alerts_total counter",
        f"ledger_mark_alerts_total {live.mark_alerts}",
        "# HELP ledger_client_accounts Client accounts in the ledger.",
        "# TYPE ledger_client_accounts gauge",
        f"ledger_client_accounts {len(live.book.clients())}",
    ]
    return "\n".join(lines) + "\n"


@get(
    "/metrics",
    summary="Prometheus text format",
    media_type=MediaType.TEXT,
    responses=error_responses(401, 403, 500, 503),
)
async def metrics(request: Request[Any, Any, Any]) -> Response[str]:
    live = await _refreshed(request)
    # Litestar appends the charset to a text media type itself: naming it here sent it twice.
    return Response(metrics_text(live), media_type="text/plain; version=0.0.4")


ROUTE_HANDLERS = [
    account_margin,
    account_balances,
    report,
    health,
    metrics,
    *api_checks.route_handlers(),
]
# The OpenAPI document only, at /openapi.json: no browser UI that loads from a CDN. Its
# router lives under that path: at "/" its catch-all took every unknown path.
OPENAPI_CONFIG = OpenAPIConfig(
    title=API_TITLE,
    version=API_VERSION,
    description=(
        "The collateral ledger's figures and regulatory views, read-only (docs/api.md). Every "
        "path but /health and /openapi.json needs a bearer token whose roles open it "
        "(docs/security.md), checked before the path is looked for: without one, an unknown "
        "path is a 401 too. Figures are exact decimal strings. Every error is an "
        "ErrorDocument."
    ),
    path="/openapi.json",
    render_plugins=[JsonRenderPlugin(path="/")],
    components=api_auth.openapi_components(),
    security=api_auth.OPENAPI_SECURITY,
)


def error_response(exception: HTTPException) -> Response[ErrorDocument]:
    """The API's body for every HTTP error, its headers (Allow, Retry-After, ...) kept."""
    problems = exception.extra if isinstance(exception.extra, list) else None
    body = ErrorDocument(
        status_code=exception.status_code,
        detail=exception.detail,
        extra=None if problems is None else msgspec.convert(problems, list[ProblemDocument]),
    )
    return Response(body, status_code=exception.status_code, headers=exception.headers)


def _error_handler(
    security: ApiSecurity,
) -> Callable[[Request[Any, Any, Any], HTTPException], Response[ErrorDocument]]:
    def respond(request: Request[Any, Any, Any], error: HTTPException) -> Response[ErrorDocument]:
        if isinstance(error, NotFoundException | MethodNotAllowedException):
            try:
                security.authenticate_unrouted(request)
            except NotAuthorizedException as unauthenticated:
                return error_response(unauthenticated)
        return error_response(error)

    return respond


def _store_unreachable(
    request: Request[Any, Any, Any], outage: OperationalError | InterfaceError | StoreHeld
) -> Response[ErrorDocument]:
    """The database is down or restarting: not a fault of the ledger, so one log line and a
    503 the caller (and /health's probe) can retry, not a 500 with a traceback. A failed
    read is remembered (`StoreGate`): the next requests do not wait for the store."""
    if not isinstance(outage, StoreHeld):
        gate: StoreGate = request.app.state.gate
        gate.failed()
    log.warning(
        "api_store_unreachable method=%s path=%s error=%s",
        request.method,
        request.url.path,
        str(outage).splitlines()[0] if str(outage) else type(outage).__name__,
    )
    return error_response(
        HTTPException(
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
            detail="the store cannot be reached: retry shortly",
            headers={"Retry-After": str(store_retry_after_s)},
        )
    )


def _policy_unreadable(
    request: Request[Any, Any, Any], error: PolicyError
) -> Response[ErrorDocument]:
    """The journal adopted a policy whose document the API cannot find (a writer of an
    older version keeps none in the store) or read: what lies past it cannot be valued.
    Not a fault of the request nor of the ledger: one log line and a 503 naming the policy,
    which is looked for again at each request (docs/api.md)."""
    log.warning(
        "api_policy_unreadable method=%s path=%s error=%s", request.method, request.url.path, error
    )
    detail = (
        f"{error}. The API values the journal past it once the document is kept in the store "
        "(a writer of this version started under that policy keeps it) or its file is in the "
        "API's --policy folder: retry then"
    )
    return error_response(
        HTTPException(
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
            detail=detail,
            headers={"Retry-After": str(policy_retry_after_s)},
        )
    )


def _fault(request: Request[Any, Any, Any], fault: Exception) -> Response[ErrorDocument]:
    """A fault of the ledger, not of the request: logged with its traceback for the operator
    (Litestar logs none outside debug), answered 500 without a word of it for the caller."""
    log.error("api_fault method=%s path=%s", request.method, request.url.path, exc_info=fault)
    return error_response(InternalServerException())


def create_app(
    store: LedgerStore,
    policies: AdoptedPolicies,
    security: ApiSecurity,
    as_of_source: AsOfSource | None = None,
) -> Litestar:
    """The API over an open store; the caller closes the store after the app stops.

    `security` (app/api_auth.py) says who may read what, marks every response no-store
    and writes the access log. `as_of_source` lets worker processes open the same store and
    policy files for as_of reads; without it (a store in memory) they run on threads.

    The in-memory views are opened at startup, on the thread that serves the requests."""

    def open_views(app: Litestar) -> None:
        stored_url = None if as_of_source is None else as_of_source.store_url
        # Caught up and counted before the server listens: a worker answers its first
        # caller at once, not after replaying the journal into its book and counting it for
        # /metrics (7 s on the demo's store).
        try:
            app.state.live = live = LiveViews(store, policies, stored_url)
            live.refresh()
        except PolicyError as error:
            _refuse_start(str(error))
        app.state.as_of = AsOfReader(store, policies, as_of_source)
        app.state.gate = StoreGate(store)

    def close_views(app: Litestar) -> None:
        live: LiveViews = app.state.live
        live.close()
        reader: AsOfReader = app.state.as_of
        reader.close()

    return Litestar(
        route_handlers=ROUTE_HANDLERS,
        openapi_config=OPENAPI_CONFIG,
        guards=[security.guard],
        exception_handlers={
            HTTPException: _error_handler(security),
            OperationalError: _store_unreachable,
            InterfaceError: _store_unreachable,
            StoreHeld: _store_unreachable,
            PolicyError: _policy_unreadable,
            Exception: _fault,
        },
        before_send=[security.before_send],
        # A check's body is one inbox record (at most 16 KiB, larger ones answered
        # record_too_large); the framework's default let 10 MB bodies be read and held.
        request_max_body_size=request_body_bytes_max,
        on_startup=[open_views],
        on_shutdown=[close_views],
        # The command line has configured logging (one format for every command); the
        # framework's default would replace the root logger's handler with its own.
        logging_config=None,
        debug=False,
    )


def _refuse_start(reason: str) -> NoReturn:
    """End a worker whose views cannot be built from this store (a policy the journal
    adopted whose document is neither kept in the store nor given) in one line and exit
    status 2, as the command line's refusals: raised from the startup hook, the framework
    would log its traceback and uvicorn say only that the startup failed."""
    print(f"ledger: {reason}", file=sys.stderr, flush=True)
    os._exit(api_start_refused_status)


def served_app(
    store: LedgerStore,
    policies: AdoptedPolicies,
    security: ApiSecurity,
    as_of_source: AsOfSource | None = None,
) -> api_checks.CheckFront:
    """What `ledger api` serves: `create_app`'s API with the pre-trade check answered in
    front of the web framework (app/api_checks.py)."""
    return api_checks.CheckFront(create_app(store, policies, security, as_of_source), security)


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI document `/openapi.json` serves, without a store (docs/openapi.json)."""
    app = Litestar(
        route_handlers=ROUTE_HANDLERS,
        openapi_config=OPENAPI_CONFIG,
        logging_config=None,
        debug=False,
    )
    return app.openapi_schema.to_schema()


@dataclass(frozen=True)
class TlsFiles:
    """The server's certificate chain and private key, PEM files."""

    cert: Path
    key: Path


def serve(
    store: LedgerStore,
    policies: AdoptedPolicies,
    host: str,
    port: int,
    *,
    security: ApiSecurity,
    tls: TlsFiles | None,
    as_of_source: AsOfSource | None,
    sock: socket.socket | None = None,
) -> None:
    """Run the API with uvicorn until stopped (Ctrl-C or SIGTERM), on `sock` when given (a
    worker of `ledger api --workers`, app/api_processes.py), else on (host, port)."""
    import uvicorn  # noqa: PLC0415 (only `ledger api` needs the server)

    from app.api_connections import DeadlineHttpProtocol  # noqa: PLC0415 (it imports uvicorn)

    config = uvicorn.Config(
        served_app(store, policies, security, as_of_source),
        # Python's server context: TLS 1.2 at least, the interpreter's cipher choice.
        ssl_certfile=None if tls is None else str(tls.cert),
        ssl_keyfile=None if tls is None else str(tls.key),
        host=host,
        port=port,
        workers=1,  # this process: the in-memory views belong to it
        # The C HTTP parser and event loop: with h11 and asyncio's loop, parsing and writing
        # a request cost more than the pre-trade check it carries (docs/performance.md).
        # uvicorn's protocol over it, with a deadline for each request to arrive whole.
        http=DeadlineHttpProtocol,
        loop="uvloop",
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # nothing sits in front of it by default: trust no header
    )
    gc.set_threshold(api_gc_young_objects_max, *gc.get_threshold()[1:])
    server = uvicorn.Server(config)
    server.run(sockets=None if sock is None else [sock])
    if not server.started:  # it logged why (the port taken, the TLS files unreadable...)
        sys.exit(uvicorn_startup_failure_status)
