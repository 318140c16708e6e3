"""`ledger store init`: make the store ready before its services start.
`ledger store snapshot`: this code's book snapshot at the journal's end, before an upgrade.

`init` runs with the schema owner's URL (docs/security.md): it creates the schema, the
tables, the append-only triggers and the journal-lock function, and grants `ledger_writer`
and `ledger_reader` their rights. Running it again changes nothing but refreshes the grants.
A deployment runs it once before `ledger run` (the writer) and `ledger api` (a reader),
which may not create anything themselves.

`snapshot` runs with the writer's URL, by the version about to be started, while the older
version's writer still runs (docs/operations.md, "Upgrading"): it records this version's
book snapshots (and nothing the journal does not already say: `ledger.snapshots.prepare`),
so the upgraded writer starts from one and the journal's short tail instead of replaying
the whole journal.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app.commands import EXIT_OK, open_store, snapshot_events_setting
from app.progress import Progress
from ledger import snapshots


def _init(args: argparse.Namespace) -> int:
    with open_store(args, writes=True) as store:
        print(f"store ready: {store.describe()}, journal at seq {store.last_seq()}")
    return EXIT_OK


def _snapshot(args: argparse.Namespace) -> int:
    interval = snapshot_events_setting()
    progress = Progress("snapshot", unit="events")
    with open_store(args, writes=True, creates=False) as store:
        try:
            prepared = snapshots.prepare(store, interval, progress.advance)
        except KeyboardInterrupt:
            progress.close()
            found = store.snapshot_at_or_before(snapshots.CODE_DIGEST)
            kept = "none yet" if found is None else f"at seq {found[0]}"
            print(
                f"ledger: interrupted; this version's latest book snapshot is {kept}: "
                "run the command again to go on from there",
                file=sys.stderr,
            )
            raise
    progress.close()
    if prepared.snapshot_seq == 0:
        print("the journal is empty: no book snapshot to record")
        return EXIT_OK
    began = f"seq {prepared.began_at}" if prepared.began_at else "seq 1 (no snapshot of it yet)"
    print(
        f"book snapshot of this version at seq {prepared.snapshot_seq} "
        f"(from {began}, {prepared.applied} journal events applied)"
    )
    return EXIT_OK


def register(sub: Any) -> None:
    store = sub.add_parser(
        "store",
        help="the store itself (init: tables, triggers, grants; snapshot: before an upgrade)",
    )
    store_sub = store.add_subparsers(dest="store_command", required=True, metavar="COMMAND")
    init = store_sub.add_parser("init", help="create the store's tables as its owner role")
    init.set_defaults(handler=_init)
    snapshot = store_sub.add_parser(
        "snapshot",
        help="record this version's book snapshot at the journal's end (before an upgrade)",
        description="Build the book as this version applies the journal, from its latest "
        "book snapshot (else seq 1) to the journal's end, and record its snapshot there, "
        "every LEDGER_SNAPSHOT_EVENTS events on the way too. Run it with the writer's URL "
        "while the older version's writer still runs: the upgraded writer then starts from "
        "it and the journal's short tail. It writes nothing else; interrupted, a rerun "
        "goes on from its last snapshot.",
    )
    snapshot.set_defaults(handler=_snapshot)
