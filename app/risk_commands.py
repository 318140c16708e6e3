"""The risk officer's and the trading desk's what-if commands: `ledger check`, `ledger stress`.

They replay the store's journal into a book and decide on a scratch copy of it
(`ledger/scratch.py`): the store is only read, never written.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from app import stress_output
from app.commands import (
    CommandError,
    open_store,
    policies_of,
    policy_scales,
    require_account_id,
    require_file,
    require_output_file,
)
from app.output_files import write_stdout, written_whole
from ledger import pretrade, reporting, stress
from ledger.book import Book
from ledger.policy import Policy
from ledger.store import LedgerStore
from projections.figures import ScaleOf, readable

# Exit statuses of `ledger check`: 0 the ledger would accept the record (or already has it),
# 1 it would refuse it, 2 the command was used wrongly (CommandError).
check_refused_exit = 1


def _check(args: argparse.Namespace) -> int:
    require_account_id(args.account)
    path = Path(args.record)
    if args.record == "-":
        raw = sys.stdin.buffer.read()
    else:
        require_file(path, "record")
        raw = path.read_bytes()
    with open_store(args) as store:
        book, policy = _book_in(store, args)
        try:
            result = pretrade.check(book, policy, args.account, raw.strip(), store=store)
        except pretrade.CheckError as error:
            raise CommandError(str(error)) from error
    document = result.document(policy.version)
    if args.format == "json":
        write_stdout(json.dumps(document, indent=2, sort_keys=True) + "\n")
    else:
        write_stdout(_check_table(document, policy_scales(policy)))
    return check_refused_exit if result.outcome is pretrade.Outcome.REFUSED else 0


def _book_in(store: LedgerStore, args: argparse.Namespace) -> tuple[Book, Policy]:
    """The book at `--as-of` and the policy in force there (a check or stress under another
    policy than the journal's would answer for a ledger that does not exist)."""
    try:
        book = reporting.book_as_of(store, args.as_of)
    except reporting.AsOfError as error:
        raise CommandError(str(error)) from error
    return book, policies_of(args, store).in_force(book)


def _ladder_step(text: str) -> Decimal:
    """`--step` in percentage points: a finite number above 0 (`Decimal("abc")` was shown
    as "[<class 'decimal.ConversionSyntax'>]")."""
    try:
        step = Decimal(text)
    except InvalidOperation:
        step = Decimal("NaN")
    if not (step.is_finite() and step > 0):
        raise CommandError(f"--step {text!r} is not a number of percentage points above 0")
    return step


def _stress(args: argparse.Namespace) -> int:
    if not args.shock and not args.ladder:
        raise CommandError("give at least one --shock NAME=-30%,... or a --ladder NAME=-5%..-60%")
    step = _ladder_step(args.step)
    try:
        shocks = [stress.parse_shock(text) for text in args.shock]
        ladders = [stress.parse_ladder(text, step) for text in args.ladder]
    except stress.ShockError as error:
        raise CommandError(str(error)) from error
    if args.html is not None:
        require_output_file(args.html, "--html", args.store)
    with open_store(args) as store:
        book, policy = _book_in(store, args)
    try:
        stress.require_known(policy, [*shocks, *(rungs[0] for rungs in ladders)])
    except stress.ShockError as error:
        raise CommandError(str(error)) from error
    document = _stress_document(book, policy, shocks, ladders)
    scale_of = policy_scales(policy)
    if args.html is not None:
        with written_whole(args.html) as partial:
            partial.write_text(stress_output.ladder_html(document, scale_of), encoding="utf-8")
    if args.format == "json":
        write_stdout(json.dumps(document, indent=2, sort_keys=True) + "\n")
        return 0
    for one in document["stresses"]:
        write_stdout(stress_output.stress_table(one, scale_of) + "\n")
    for one in document["ladders"]:
        write_stdout(stress_output.ladder_table(one, scale_of) + "\n")
    return 0


def _stress_document(
    book: Book, policy: Policy, shocks: list[stress.Shock], ladders: list[list[stress.Shock]]
) -> dict[str, Any]:
    return {
        "journal_seq": book.last_seq,
        "policy_version": policy.version,
        "stresses": [
            stress_output.stress_document(stress.stress(book, policy, shock)) for shock in shocks
        ],
        "ladders": [
            stress_output.ladder_document(stress.ladder(book, policy, rungs)) for rungs in ladders
        ],
    }


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


def _check_table(document: dict[str, Any], scale_of: ScaleOf) -> str:
    """The verdict, then each figure before and after side by side (as `ledger query`
    shows them: money at the cent, ratios as percentages), then the positions."""
    verdict = document["outcome"]
    if document["reason_code"]:
        verdict += f" {document['reason_code']}: {document['detail']}"
    lines = [
        f"account       {document['account_id']}",
        f"record        {_cell(document['record_type'])} {_cell(document['event_id'])}",
        f"journal seq   {document['journal_seq']}",
        f"verdict       {verdict}",
        f"would record  {', '.join(document['would_record']) or '(nothing)'}",
        f"{'figure':<26} {'before':>22} {'after':>22}",
    ]
    before, after = document["before"] or {}, document["after"] or {}
    for name in _CHECK_FIGURES:
        shown = [_figure(name, figures.get(name), scale_of) for figures in (before, after)]
        lines.append(f"{name:<26} {shown[0]:>22} {shown[1]:>22}")
    for label, figures in (("before", before), ("after", after)):
        for position in figures.get("positions", []):
            cells = {
                name: _figure(name, position[name], scale_of, position)
                for name in ("size", "entry_price", "mark_price", "liquidation_price")
            }
            lines.append(
                f"{label} {position['market']}: size {cells['size']}, entry "
                f"{cells['entry_price']}, mark {cells['mark_price']}, liquidation price "
                f"{cells['liquidation_price']}"
            )
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _figure(name: str, value: Any, scale_of: ScaleOf, row: dict[str, Any] | None = None) -> str:
    """A figure as `ledger query` shows it (`row` names the position's market, for a size
    at its asset's scale): the positions' entry and mark were the exact digits, beside
    figures at the cent."""
    return "-" if value is None else readable(name, str(value), row or {}, scale_of)


def register(sub: Any) -> None:
    check = sub.add_parser(
        "check",
        help="would the ledger accept this record? figures before and after (books nothing)",
    )
    check.add_argument("account", help="the account id")
    check.add_argument("record", help="a JSON file holding one proposed inbox record, or -")
    check.add_argument("--as-of", default=None, help="journal seq or RFC 3339 timestamp")
    check.add_argument(
        "--format", choices=["table", "json"], default="table", help="table for people, or json"
    )
    check.set_defaults(handler=_check)

    shocked = sub.add_parser(
        "stress",
        help="revalue the book under shocked marks and run liquidations on a copy (books nothing)",
    )
    shocked.add_argument(
        "--shock",
        action="append",
        default=[],
        help="moves such as BTC=-30%%,ETH=-40%% (repeatable)",
    )
    shocked.add_argument(
        "--ladder",
        action="append",
        default=[],
        help="a range such as BTC=-5%%..-60%%: finds the move that exhausts the insurance fund",
    )
    shocked.add_argument("--step", default="5", help="ladder step in percentage points (5)")
    shocked.add_argument("--as-of", default=None, help="journal seq or RFC 3339 timestamp")
    shocked.add_argument(
        "--format", choices=["table", "json"], default="table", help="table for people, or json"
    )
    shocked.add_argument("--html", type=Path, default=None, help="also write the ladders' chart")
    shocked.set_defaults(handler=_stress)
