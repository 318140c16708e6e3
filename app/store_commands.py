"""`ledger store init`: make the store ready before its services start.

Run with the schema owner's URL (docs/security.md): it creates the schema, the tables, the
append-only triggers and the journal-lock function, and grants `ledger_writer` and
`ledger_reader` their rights. Running it again changes nothing but refreshes the grants.
A deployment runs it once before `ledger run` (the writer) and `ledger api` (a reader),
which may not create anything themselves.
"""

from __future__ import annotations

import argparse
from typing import Any

from app.commands import open_store


def _init(args: argparse.Namespace) -> int:
    with open_store(args, writes=True) as store:
        print(f"store ready: {store.describe()}, journal at seq {store.last_seq()}")
    return 0


def register(sub: Any) -> None:
    store = sub.add_parser("store", help="the store itself (init: tables, triggers, grants)")
    store_sub = store.add_subparsers(dest="store_command", required=True, metavar="COMMAND")
    init = store_sub.add_parser("init", help="create the store's tables as its owner role")
    init.set_defaults(handler=_init)
