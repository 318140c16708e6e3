"""The risk officer's and the trading desk's what-if commands: `ledger check`.

They replay the store's journal into a book and decide on a scratch copy of it
(`ledger/scratch.py`): the store is only read, never written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.commands import CommandError, open_store, policy_of
from ledger import pretrade, reporting

# Exit statuses of `ledger check`: 0 the ledger would accept the record (or already has it),
# 1 it would refuse it, 2 the command was used wrongly (CommandError).
check_refused_exit = 1


def _check(args: argparse.Namespace) -> int:
    policy = policy_of(args)
    path = Path(args.record)
    if args.record == "-":
        raw = sys.stdin.buffer.read()
    elif path.is_file():
        raw = path.read_bytes()
    else:
        raise CommandError(f"record file {path} does not exist")
    with open_store(args) as store:
        try:
            book = reporting.book_as_of(store, args.as_of)
        except reporting.AsOfError as error:
            raise CommandError(str(error)) from error
    try:
        result = pretrade.check(book, policy, args.account, raw.strip())
    except pretrade.CheckError as error:
        raise CommandError(str(error)) from error
    document = result.document(policy.version)
    if args.format == "json":
        sys.stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(_check_table(document))
    return check_refused_exit if result.outcome is pretrade.Outcome.REFUSED else 0


_CHECK_FIGURES = (
    "equity",
    "initial_requirement",
    "maintenance_requirement",
    "liquidation_requirement",
    "available",
    "margin_level",
    "ltv",
    "status",
)


def _check_table(document: dict[str, Any]) -> str:
    """The verdict, then each figure before and after side by side, then the positions."""
    verdict = document["outcome"]
    if document["reason_code"]:
        verdict += f" {document['reason_code']}: {document['detail']}"
    lines = [
        f"account       {document['account_id']}",
        f"record        {document['record_type']} {document['event_id']}",
        f"journal seq   {document['journal_seq']}",
        f"verdict       {verdict}",
        f"would record  {', '.join(document['would_record']) or '(nothing)'}",
        f"{'figure':<26}{'before':>22}{'after':>22}",
    ]
    before, after = document["before"] or {}, document["after"] or {}
    for name in _CHECK_FIGURES:
        lines.append(f"{name:<26}{_cell(before.get(name)):>22}{_cell(after.get(name)):>22}")
    for label, figures in (("before", before), ("after", after)):
        for position in figures.get("positions", []):
            lines.append(
                f"{label} {position['market']}: size {position['size']}, entry "
                f"{position['entry_price']}, mark {position['mark_price']}, liquidation price "
                f"{_cell(position['liquidation_price'])}"
            )
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def register(sub: Any) -> None:
    check = sub.add_parser(
        "check",
        help="would the ledger accept this record? figures before and after (books nothing)",
    )
    check.add_argument("account")
    check.add_argument("record", help="a JSON file holding one proposed inbox record, or -")
    check.add_argument("--as-of", default=None, help="journal seq or RFC 3339 timestamp")
    check.add_argument("--format", choices=["table", "json"], default="table")
    check.set_defaults(handler=_check)
