"""`ledger statements daily --date D --out DIR` and `ledger statements monthly --month YYYY-MM
--out DIR`: client statements replayed from the store's journal (ledger/statements.py).

Writes `statement-<period>-<account>.html` per client, and `statements-<period>.csv` and
`statements-<period>.parquet` with every line of the batch; prints one summary line on
stderr. The store is only read.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from app import statement_output
from app.commands import (
    EXIT_REFUSED,
    CommandError,
    open_store,
    policies_of,
)
from app.output_files import folder_written_whole
from ledger import journal_events as je
from ledger import statements
from ledger.store import LedgerStore
from projections.parquet import ParquetError, write_parquet
from projections.render import render_text

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_NAME_DIGEST_CHARS = 12  # hex digits of an account id's SHA-256 that set its file apart


def _events(store: LedgerStore) -> Iterator[je.JournalEventType]:
    for entry in store.iter_journal():
        yield je.decode_journal_record(entry.record)


def _period(store: LedgerStore, args: argparse.Namespace) -> statements.Period:
    closes = statements.find_closes(_events(store))
    try:
        if args.kind == "daily":
            try:
                business_date = date.fromisoformat(args.date)
            except ValueError as error:
                raise CommandError(f"--date {args.date!r} is not a date YYYY-MM-DD") from error
            return statements.daily_period(closes, business_date)
        if not _MONTH.match(args.month):
            raise CommandError(f"--month {args.month!r} is not a month YYYY-MM")
        return statements.monthly_period(closes, args.month)
    except statements.StatementError as error:
        raise CommandError(str(error)) from error


def file_names(period: statements.Period, account_ids: list[str]) -> dict[str, str]:
    """Each account's file name: the account id with anything but letters, digits, `.`,
    `_`, `-` as `_`. Made so, `C 1` and `C_1` (or `c1` and `C1` on a file system that
    ignores case) would share a file, and one client's statement would replace the other's:
    an id that is not safe as it is, or whose name is taken, also gets `~` and the start of
    its SHA-256 (no safe id holds a `~`)."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for account_id in account_ids:
        safe = _SAFE_NAME.sub("_", account_id)
        if safe != account_id or safe.casefold() in taken:
            digest = hashlib.sha256(account_id.encode("utf-8")).hexdigest()
            safe = f"{safe}~{digest[:_NAME_DIGEST_CHARS]}"
        taken.add(safe.casefold())
        names[account_id] = f"statement-{period.label}-{safe}.html"
    return names


def _statements(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} is a file, not a folder: name a folder for the statements")
    if not out.parent.is_dir():
        # As for every --out: a mistyped path made its whole chain of folders.
        raise CommandError(f"--out {out}: the folder {out.parent} does not exist", EXIT_REFUSED)
    with open_store(args) as store:
        period = _period(store, args)
        # Each day valued with the policy in force at its close; the page names each.
        batch = statements.statements(_events(store), policies_of(args, store), period)
    out.mkdir(exist_ok=True)
    with folder_written_whole(out) as partial:
        _write_statements(partial, period, batch)
    print(
        f"statements: {len(batch)} {period.kind} statements for {period.label} (journal seq "
        f"{period.opening_seq} to {period.closing_seq}) in {out}",
        file=sys.stderr,
    )
    return 0


def _write_statements(
    out: Path,
    period: statements.Period,
    batch: list[statements.ClientStatement],
) -> None:
    names = file_names(period, [statement.account_id for statement in batch])
    for statement in batch:
        page = statement_output.statement_html(statement)
        (out / names[statement.account_id]).write_text(page, encoding="utf-8")
    document = statement_output.batch_document(period, batch)
    table = statement_output.STATEMENT_LINES
    (out / f"statements-{period.label}.csv").write_text(
        render_text(document, table, "csv"), encoding="utf-8"
    )
    try:
        write_parquet(document, table, out / f"statements-{period.label}.parquet")
    except ParquetError as error:
        raise CommandError(str(error)) from error


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "statements", help="client statements for a business day or a month (HTML, CSV, Parquet)"
    )
    kinds = parser.add_subparsers(dest="kind", required=True)
    daily = kinds.add_parser("daily", help="one business date's statements")
    daily.add_argument("--date", required=True, help="the business date, YYYY-MM-DD")
    monthly = kinds.add_parser("monthly", help="a month's statements, with daily closes")
    monthly.add_argument("--month", required=True, help="the month, YYYY-MM")
    for kind in (daily, monthly):
        kind.add_argument("--out", required=True, help="the folder to write into")
        kind.set_defaults(handler=_statements)
