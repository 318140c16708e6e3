"""The embedded-mode commands: ingest, query, simulate, schema, rejects, journal export, verify."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import sys
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from app.output_files import write_stdout, written_whole
from app.progress import Progress
from ledger import checkpoints, reporting
from ledger.adopted_policies import AdoptedPolicies, adopted_policies
from ledger.application import BatchOutcome, InboxItem, LedgerApplication, UndecidableRecord
from ledger.identifiers import (
    account_id_problem,
    identifier_problem,
    is_ascii_number,
    printable,
    spreadsheet_cell,
)
from ledger.inbox_lines import read_inbox_lines
from ledger.limits import (
    inbox_batch_records_max,
    journal_read_batch_events_max,
    snapshot_interval_events,
)
from ledger.policy import Policy, load_policy
from ledger.rejections import RejectRecord, decode_reject_record
from ledger.store import (
    JournalConflict,
    LedgerStore,
    NotALedgerStore,
    StoreUrlError,
    Tracking,
    TrackingConflict,
)
from projections import render
from projections.figures import ScaleOf
from projections.render import text_table

file_digest_chunk_bytes = 1 << 20
port_max = 65_535  # a TCP port number, at most
SNAPSHOT_EVENTS_ENV = "LEDGER_SNAPSHOT_EVENTS"

# The store when neither --store nor LEDGER_STORE names one. The first command that writes
# it makes its folder; the folder of a store a person names must exist (README "Exit status").
DEFAULT_STORE = "sqlite:///.ledger/ledger.db"
DEFAULT_STORE_FOLDER = Path(DEFAULT_STORE.removeprefix("sqlite:///")).parent

# Exit statuses of every command (README "Exit status").
EXIT_OK = 0
EXIT_REFUSED = 1  # ingest: some records were refused; any command: the environment failed
EXIT_USAGE = 2  # the command cannot be done as asked: a person's mistake
EXIT_UNDECIDABLE = 4  # a record could not be decided: a fault in the ledger, nothing booked
EXIT_INTERRUPTED = 130  # the shell's status for a command ended by SIGINT (docs/cli.md)


class CommandError(Exception):
    """A user's mistake or a fault the user can act on: printed as one line."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


def require_file(path: Path, what: str) -> None:
    """The command's input file is there and is a file: a folder is said to be one."""
    if path.is_dir():
        raise CommandError(f"{what} file {path} is a folder, not a file")
    if path.exists() and not path.is_file():
        # `<(zcat inbox.jsonl.gz)`: read once, it could not be hashed for a resumable ingest.
        raise CommandError(
            f"{what} file {path} is not a regular file (a pipe or a device): write it to a "
            "file first, or give - and pipe it in where the command reads standard input"
        )
    if not path.is_file():
        raise CommandError(f"{what} file {path} does not exist")


def require_output_file(path: Path, flag: str, store_url: str) -> None:
    """A file the command is to write: in a folder that exists (else exit status 1, a file
    that cannot be written), and not a file of the SQLite store (exit status 2): written
    over, the store was gone (`journal export --out ledger.db` emptied it). Said before the
    command's work, in one line."""
    if not path.parent.is_dir():
        raise CommandError(f"{flag} {path}: the folder {path.parent} does not exist", EXIT_REFUSED)
    if not (store_url.startswith("sqlite:///") and path.exists()):
        return
    store = store_url.removeprefix("sqlite:///")
    store_files = (Path(store), Path(f"{store}-wal"), Path(f"{store}-shm"))
    if any(kept.is_file() and path.samefile(kept) for kept in store_files):
        raise CommandError(f"{flag} {path} is a file of the store: name another file")


def policy_of(args: argparse.Namespace) -> Policy:
    """The one policy a writer decides under: `--policy FILE`, else the demonstration policy."""
    path: Path | None = args.policy
    if path is not None:
        if path.is_dir():
            raise CommandError(
                f"--policy {path} is a folder: a writer decides under one policy, name its file"
            )
        require_file(path, "policy")
    return load_policy(path)


def policies_of(args: argparse.Namespace, store: LedgerStore) -> AdoptedPolicies:
    """The policies a reader values the journal with, each seq with the one in force there:
    those the store keeps, and `--policy`'s for a store written before it kept them. No
    `--policy` and none kept: the demonstration policy (docs/views.md "Policies")."""
    return adopted_policies(store, files=policy_path(args))


def policy_path(args: argparse.Namespace) -> Path | None:
    """A reader's `--policy`: a policy file (that must exist) or a folder of them."""
    path: Path | None = args.policy
    if path is not None and not path.is_dir():
        require_file(path, "policy")
    return path


def snapshot_events_setting() -> int:
    """Journal events between two book snapshots: `LEDGER_SNAPSHOT_EVENTS`, else the default
    (`ledger.limits.snapshot_interval_events`). Only the writers (ingest, run) use it."""
    text = os.environ.get(SNAPSHOT_EVENTS_ENV) or str(snapshot_interval_events)
    if not (is_ascii_number(text) and int(text) > 0):
        raise CommandError(f"{SNAPSHOT_EVENTS_ENV}={text!r} is not a positive number of events")
    return int(text)


@contextmanager
def open_store(
    args: argparse.Namespace, *, writes: bool = False, creates: bool = True
) -> Iterator[LedgerStore]:
    """The store of `--store`: read-only, and never created, unless the command `writes`;
    a command that writes to a store it must find (not `creates`) refuses a missing one."""
    if writes and not creates:
        with open_store(args):
            pass  # the read-only open refuses a store that is missing or holds no ledger
    if writes:
        make_default_store_folder(args.store)
    try:
        store = LedgerStore.open(args.store, read_only=not writes)
    except NotALedgerStore as error:
        hint = "" if writes else " (this command never creates one)"
        raise CommandError(f"{error}: check --store or LEDGER_STORE{hint}") from error
    except (StoreUrlError, ValueError) as error:
        where = without_password(args.store)
        raise CommandError(f"cannot open the store {where}: {error}") from error
    try:
        yield store
    finally:
        store.close()


def without_password(url: str) -> str:
    """`url` as a message may show it: a password in it written `***`. A text that is not
    a URL has everything between `scheme://` and its last `@` written so."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # `[::1/ledger`: an IPv6 host without its closing bracket
        return _USER_INFO.sub(r"\1***@", url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


_USER_INFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://).*@")


def make_default_store_folder(url: str) -> None:
    """The default store's folder, for a command about to write the store: made here
    because a new store is only ever made in a folder that exists."""
    if url == DEFAULT_STORE:
        DEFAULT_STORE_FOLDER.mkdir(exist_ok=True)


def standard_input() -> IO[bytes]:
    """stdin as bytes; a person's mistake when it is closed (`ledger ingest - <&-`)."""
    if sys.stdin is None:
        raise CommandError("standard input is closed: give a file, or pipe records into -")
    return sys.stdin.buffer


# -- ingest ---------------------------------------------------------------------


@dataclass
class IngestTotals(BatchOutcome):
    already_ingested: int = 0  # lines an earlier run of the same file recorded


def ingest_stream(
    app: LedgerApplication, stream: IO[bytes], name: str, tracking_name: str | None = None
) -> IngestTotals:
    """Decide every JSON line of `stream` in bounded batches; returns the totals.

    With a `tracking_name`, each batch is recorded with its last line number, and lines the
    store already holds under that name are skipped: an ingest that was stopped or
    crashed resumes where its last batch was committed, and a second run books nothing
    and refuses nothing twice.
    """
    total = IngestTotals()
    batch: list[InboxItem] = []
    progress = Progress("ingest", unit="records")
    done = None if tracking_name is None else app.store.max_tracking_id(tracking_name)

    def flush() -> None:
        last_line = batch[-1].offset
        assert last_line is not None
        tracking = None if tracking_name is None else Tracking(tracking_name, last_line)
        outcome = app.process(batch, tracking)
        total.accepted += outcome.accepted
        total.duplicates += outcome.duplicates
        total.refused += outcome.refused
        total.refused_by_reason.update(outcome.refused_by_reason)
        progress.advance(len(batch))
        batch.clear()

    try:
        for line in read_inbox_lines(stream):
            if done is not None and line.number <= done:
                total.already_ingested += 1
                continue
            batch.append(
                InboxItem(
                    value=line.value,
                    key=None,
                    topic=name,
                    partition=None,
                    offset=line.number,
                    truncation=line.truncation,
                )
            )
            if len(batch) >= inbox_batch_records_max:
                flush()
        if batch:
            flush()
    finally:
        progress.close()  # an interruption's line starts on a line of its own
    return total


def file_tracking_name(path: Path) -> str:
    """The same bytes, the same name: a file is resumed only by a run over its exact content."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(file_digest_chunk_bytes):
            digest.update(chunk)
    return f"file:{digest.hexdigest()}"


def _ingest(args: argparse.Namespace) -> int:
    policy = policy_of(args)
    with open_store(args, writes=True) as store:
        try:
            app = LedgerApplication(store, policy, snapshot_events_setting())
        except KeyboardInterrupt:
            print("ledger: interrupted before any record was decided", file=sys.stderr)
            raise
        tracking_name = None
        try:
            if args.file == "-":
                total = ingest_stream(app, standard_input(), "stdin")
            else:
                path = Path(args.file)
                require_file(path, "inbox")
                tracking_name = file_tracking_name(path)
                with path.open("rb") as stream:
                    total = ingest_stream(app, stream, f"file:{path.name}", tracking_name)
        except UndecidableRecord as undecidable:
            raise _undecidable_error(undecidable, tracking_name) from undecidable
        except (TrackingConflict, JournalConflict) as conflict:
            raise CommandError(
                "another process wrote this store meanwhile (a second ingest, or ledger run): "
                "nothing of this batch was booked (earlier batches were); run one writer at a "
                "time, then run this ingest again to resume",
                EXIT_REFUSED,
            ) from conflict
        except KeyboardInterrupt:
            print(f"ledger: {_interrupted(store, args.file, tracking_name)}", file=sys.stderr)
            raise
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(total.refused_by_reason.items()))
        earlier = f", {total.already_ingested} ingested before" if total.already_ingested else ""
        print(
            f"ingested: {total.accepted} accepted, {total.duplicates} duplicates, "
            f"{total.refused} refused{f' ({reasons})' if reasons else ''}{earlier}; "
            f"journal seq {app.book.last_seq}",
            file=sys.stderr,
        )
    return 1 if total.refused else 0


def _interrupted(store: LedgerStore, file: str, tracking_name: str | None) -> str:
    """Where an interrupted ingest stopped (its last recorded batch), and how to go on."""
    if tracking_name is None:
        return (
            f"interrupted with the journal at seq {store.last_seq()}: the batches decided "
            "are recorded; a rerun with the same records acknowledges those as duplicates"
        )
    line = store.max_tracking_id(tracking_name)
    where = "before its first batch was recorded" if line is None else f"after line {line}"
    return f"interrupted {where} of {file}: run the same command again to resume from there"


def _undecidable_error(undecidable: UndecidableRecord, tracking_name: str | None) -> CommandError:
    """A fault in the ledger: what to do next, in one line. Batches before it are kept."""
    if tracking_name is None:
        action = "remove that line from the input to go on"
    else:
        line = undecidable.item.offset
        action = f"to go on without it: ledger inbox skip {tracking_name}:{line} --reason TEXT"
    return CommandError(
        f"{undecidable}; a fault in the ledger, nothing of that batch was booked (earlier "
        f"batches were); report it, or {action}",
        EXIT_UNDECIDABLE,
    )


# -- inbox skip -----------------------------------------------------------------


def _inbox_skip(args: argparse.Namespace) -> int:
    name, _, offset_text = args.position.rpartition(":")
    if not name or not is_ascii_number(offset_text) or identifier_problem(name) is not None:
        raise CommandError(
            f"'{printable(args.position)}' is not a position: write TOPIC:PARTITION:OFFSET "
            "(ledger.inbox:0:1234) or file:SHA256:LINE, as the stopped command printed it"
        )
    if not args.reason.strip():
        raise CommandError("--reason must say why the record is skipped")
    offset = int(offset_text)
    topic, _, partition_text = name.rpartition(":")
    partition = int(partition_text) if topic and is_ascii_number(partition_text) else None
    item = InboxItem(
        value=b"", key=None, topic=name if partition is None else topic,
        partition=partition, offset=offset,
    )  # fmt: skip
    with open_store(args, writes=True, creates=False) as store:
        recorded = store.max_tracking_id(name)
        if recorded is not None and offset > recorded + 1:
            # Only the record a stopped command named: a later one would pass over records
            # that were never decided and leave no reject saying so.
            raise CommandError(
                f"{name} stands at {recorded}: the record to skip is {recorded + 1}, as the "
                f"stopped command printed it; skipping {offset} would pass over "
                f"{offset - recorded - 1} undecided records: nothing was recorded"
            )
        app = LedgerApplication(store, policy_of(args))
        try:
            number = app.skip(Tracking(name, offset), item, args.reason)
        except TrackingConflict as conflict:
            raise CommandError(
                f"{name} is already at {conflict.recorded_id}: offset {offset} was decided "
                "or skipped before; nothing was recorded"
            ) from conflict
    print(f"skipped {args.position}: reject {number} records it", file=sys.stderr)
    return EXIT_OK


# -- query ----------------------------------------------------------------------


def require_account_id(account_id: str) -> None:
    """An account id a person typed: an empty or blank one names no account (no inbox
    record can open one), and saying it is not in the ledger read
    `account   is not in the ledger`."""
    problem = account_id_problem(account_id)
    if problem is not None:
        raise CommandError(problem)


def _query(args: argparse.Namespace) -> int:
    require_account_id(args.account)
    with open_store(args) as store:
        try:
            book = reporting.book_as_of(store, args.as_of)
        except reporting.AsOfError as error:
            raise CommandError(str(error)) from error
        policy = policies_of(args, store).in_force(book)
    if not reporting.in_ledger(book, args.account):
        raise CommandError(
            reporting.account_not_found(printable(args.account), args.as_of, book.last_seq)
        )
    build: Callable[..., dict[str, Any]] = (
        reporting.margin_view if args.what == "margin" else reporting.balances_view
    )
    document = build(book, policy, args.account)
    match args.format:
        case "json":
            write_stdout(json.dumps(document, indent=2, sort_keys=True) + "\n")
        case "csv":
            text, note = render.query_csv(document)
            write_stdout(text)
            if note is not None:
                print(f"ledger: {note}", file=sys.stderr)
        case _:
            scale_of = None if args.wide else policy_scales(policy)
            write_stdout(render.query_table(document, scale_of))
    return 0


def policy_scales(policy: Policy) -> ScaleOf:
    """Each asset code's decimal places, as the policy sets them."""
    return lambda code: policy.asset(code).scale


# -- the rest -------------------------------------------------------------------


# The simulator sorts each day's records in memory (about 30 KB per account: 5,000 accounts
# make 198,000 records and 150 MB a day) and draws the whole market path up front.
simulation_accounts_max = 20_000
simulation_days_max = 366


def require_simulation_size(accounts: int, days: int, *, accounts_min: int) -> None:
    """`--accounts` and `--days` of `ledger simulate` and `ledger demo`, within bounds that
    keep the simulator's memory under about half a gigabyte."""
    if not (
        accounts_min <= accounts <= simulation_accounts_max and 1 <= days <= simulation_days_max
    ):
        raise CommandError(
            f"--accounts {accounts} --days {days}: a simulation needs {accounts_min} to "
            f"{simulation_accounts_max:,} accounts and 1 to {simulation_days_max} days"
        )


def _simulate(args: argparse.Namespace) -> int:
    from app.simulation import simulate  # noqa: PLC0415 - only this command needs it

    require_simulation_size(args.accounts, args.days, accounts_min=0)
    out = sys.stdout.buffer
    for record in simulate(args.seed, args.accounts, args.days):
        out.write(record + b"\n")
    out.flush()
    return 0


def _schema(args: argparse.Namespace) -> int:
    from app import contract_docs  # noqa: PLC0415 (only this command needs the generators)

    if args.write_docs is not None:
        if not (args.write_docs / "events.md").is_file():
            raise CommandError(f"{args.write_docs} is not the repository's docs folder")
        for path in contract_docs.write_documents(args.write_docs, args.build_parser()):
            print(f"wrote {path}", file=sys.stderr)
        return 0
    if args.which is None:
        raise CommandError("name a schema (inbox, journal, reject, openapi) or --write-docs DIR")
    write_stdout(contract_docs.schema_text(args.which))
    return 0


def _rejects(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CommandError("--limit must be at least 1")
    stored: list[bytes] = []
    with open_store(args) as store:
        while len(stored) < args.limit:
            page = store.read_rejects(
                len(stored), min(args.limit - len(stored), journal_read_batch_events_max)
            )
            if not page:
                break
            stored.extend(page)
    records = [decode_reject_record(r) for r in stored]
    match args.format:
        case "json":
            # The records as stored and as the rejects topic carries them: the fields of a
            # cut value (`value_bytes`, `value_sha256`) only on a reject whose value was cut,
            # `key_encoding` only on one whose key was not UTF-8.
            listed = [json.loads(r) for r in stored]
            write_stdout(json.dumps(listed, indent=2, sort_keys=True) + "\n")
        case "csv":
            writer = csv.DictWriter(sys.stdout, fieldnames=REJECT_CSV_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(
                {c: _csv_cell(getattr(r, c)) for c in REJECT_CSV_COLUMNS} for r in records
            )
        case _:
            cells = [
                [str(r.number), r.reason_code, reject_origin(r), r.event_id or "", r.detail]
                for r in records
            ]
            for line in text_table(REJECT_TABLE_COLUMNS, cells, frozenset({"number"})):
                print(line)
    counts = Counter(r.reason_code for r in records)
    summary = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
    noun = "reject" if len(records) == 1 else "rejects"
    print(f"{len(records)} {noun}" + (f": {summary}" if summary else ""), file=sys.stderr)
    return 0


REJECT_TABLE_COLUMNS = ["number", "reason_code", "origin", "event_id", "detail"]
# Every field of the reject record, in its order (a truncated value's length and SHA-256 too).
REJECT_CSV_COLUMNS = list(RejectRecord.__struct_fields__)


def _csv_cell(value: object) -> object:
    return "" if value is None else spreadsheet_cell(value) if isinstance(value, str) else value


def reject_origin(record: RejectRecord) -> str:
    """Where a refused record came from: `inbox.jsonl line 539` for a file given to
    `ledger ingest`, `ledger.inbox partition 0 offset 4711` for Kafka."""
    topic, partition, offset = record.topic, record.partition, record.offset
    if topic.startswith("file:"):
        where = topic.removeprefix("file:")
        return where if offset is None else f"{where} line {offset}"
    if partition is None:
        return topic if offset is None else f"{topic} offset {offset}"
    return f"{topic} partition {partition} offset {offset}"


checkpoint_key_env = "LEDGER_CHECKPOINT_KEY"


def _journal_checkpoint(args: argparse.Namespace) -> int:
    """A signed checkpoint of the journal's last record, for `audit verify --checkpoint`."""
    if args.key is None:
        raise CommandError(f"a checkpoint needs --key (${checkpoint_key_env}), an Ed25519 key")
    try:
        key = checkpoints.load_private_key(Path(args.key))
    except checkpoints.CheckpointError as error:
        raise CommandError(str(error)) from error
    with open_store(args) as store:
        seq = store.last_seq()
        if seq == 0:
            raise CommandError("the journal is empty: nothing to checkpoint")
        (entry,) = store.read_journal(seq - 1, 1)
    document = checkpoints.sign_journal_entry(entry, key) + b"\n"
    if args.out not in (None, "-"):
        require_output_file(Path(args.out), "--out", args.store)
    if args.out in (None, "-"):  # `-` is stdout, as for journal export and report
        sys.stdout.buffer.write(document)
    else:
        with written_whole(Path(args.out)) as partial:
            partial.write_bytes(document)
    print(
        f"checkpoint: seq {seq}, hash {checkpoints.checkpoint_position(document)[1]}",
        file=sys.stderr,
    )
    return EXIT_OK


def _journal_export(args: argparse.Namespace) -> int:
    if args.out in (None, "-"):
        _export_journal(args, sys.stdout.buffer)
        return 0
    require_output_file(Path(args.out), "--out", args.store)
    with written_whole(Path(args.out)) as partial, partial.open("wb") as out:
        _export_journal(args, out)
    return 0


def _export_journal(args: argparse.Namespace, out: IO[bytes]) -> None:
    progress = Progress("export", unit="events")
    try:
        with open_store(args) as store:
            for entry in store.iter_journal():
                out.write(entry.record + b"\n")
                progress.advance(1)
    finally:
        progress.close()
        out.flush()


def register(sub: Any) -> None:
    ingest = sub.add_parser("ingest", help="decide JSON-lines inbox records from a file or -")
    ingest.add_argument("file", help="a JSON-lines file of inbox records, or - for stdin")
    ingest.set_defaults(handler=_ingest)

    query = sub.add_parser("query", help="an account's margin figures or balances")
    query.add_argument(
        "what", choices=["margin", "balances"], help="the risk model's figures, or the balances"
    )
    query.add_argument("account", help="the account id")
    query.add_argument("--as-of", default=None, help="journal seq or RFC 3339 timestamp")
    query.add_argument(
        "--format",
        choices=["table", "json", "csv"],
        default="table",
        help="table for people, json with exact decimal strings, csv for spreadsheets",
    )
    query.add_argument(
        "--wide", action="store_true", help="a table with every figure's exact digits"
    )
    query.set_defaults(handler=_query)

    sim = sub.add_parser("simulate", help="write a realistic seeded inbox stream to stdout")
    sim.add_argument("--seed", type=int, default=1, help="the same seed writes the same bytes")
    sim.add_argument(
        "--accounts",
        type=int,
        default=200,
        help=f"client accounts to open (at most {simulation_accounts_max:,})",
    )
    sim.add_argument(
        "--days",
        type=int,
        default=3,
        help=f"trading days to simulate (at most {simulation_days_max})",
    )
    sim.set_defaults(handler=_simulate)

    schema = sub.add_parser(
        "schema",
        help="the JSON Schema of a topic's records, or the API's OpenAPI document",
        description="Print the JSON Schema of inbox, journal or reject records, or the "
        "OpenAPI document of `ledger api`; --write-docs rewrites every document of docs/ "
        "that is generated from the code.",
    )
    schema.add_argument(
        "which",
        nargs="?",
        choices=["inbox", "journal", "reject", "openapi"],
        help="the topic's records, or the HTTP API",
    )
    schema.add_argument(
        "--write-docs",
        type=Path,
        default=None,
        metavar="DIR",
        help="rewrite the generated documents of the docs folder DIR (make docs)",
    )
    schema.set_defaults(handler=_schema)

    rejects = sub.add_parser("rejects", help="the refused inputs and why")
    rejects.add_argument(
        "--format",
        choices=["table", "json", "csv"],
        default="table",
        help="table for people (the count by reason on stderr), json, or csv of every field",
    )
    rejects.add_argument("--limit", type=int, default=10_000, help="list at most this many")
    rejects.set_defaults(handler=_rejects)

    inbox = sub.add_parser("inbox", help="operator actions on the inbox")
    inbox_sub = inbox.add_subparsers(dest="inbox_command", required=True)
    skip = inbox_sub.add_parser(
        "skip",
        help="move past one record that stops the ledger, recording it in the rejects",
    )
    skip.add_argument("position", help="TOPIC:PARTITION:OFFSET, or file:SHA256:LINE")
    skip.add_argument("--reason", required=True, help="why, kept in the reject's detail")
    skip.set_defaults(handler=_inbox_skip)

    journal = sub.add_parser("journal", help="the journal")
    journal_sub = journal.add_subparsers(dest="journal_command", required=True)
    export = journal_sub.add_parser("export", help="write the journal as JSON lines")
    export.add_argument("--out", default=None, help="write to FILE instead of stdout")
    export.set_defaults(handler=_journal_export)
    checkpoint = journal_sub.add_parser(
        "checkpoint", help="sign the journal's end (seq, hash, time) with an Ed25519 key"
    )
    checkpoint.add_argument(
        "--key",
        default=os.environ.get(checkpoint_key_env) or None,
        help=f"Ed25519 private key, PEM (${checkpoint_key_env})",
    )
    checkpoint.add_argument("--out", default=None, help="write to FILE instead of stdout")
    checkpoint.set_defaults(handler=_journal_checkpoint)
