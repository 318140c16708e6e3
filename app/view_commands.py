"""`ledger report VIEW` and `ledger audit verify|replay|explain` (docs/cli.md)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.commands import (
    EXIT_REFUSED,
    EXIT_USAGE,
    CommandError,
    open_store,
    policies_of,
    policy_path,
    policy_scales,
    require_file,
    require_output_file,
)
from app.output_files import write_stdout, written_whole
from app.progress import Progress
from ledger import checkpoints, reporting, snapshots
from ledger.adopted_policies import policy_files
from ledger.invariants import InvariantViolation
from ledger.reporting import AsOfError
from ledger.store import LedgerStore, PolicyDocument
from projections import audit, explain, parquet, policy_audit, render, views
from projections.database import (
    ProjectionConflict,
    ViewDatabase,
    ViewsOfOlderCode,
    ViewsReadOnly,
    ViewsUrlError,
)
from projections.runner import Advance, ProjectionGap, projection_batch_events_max
from projections.tables import TABLES, TABLES_BY_VIEW

_USER_ERRORS = (
    AsOfError,
    ProjectionConflict,
    ViewsUrlError,
    ViewsReadOnly,
    ProjectionGap,
)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn what a user can cause into one-line errors (exit 2)."""
    try:
        yield
    except (*_USER_ERRORS, explain.ExplainError, parquet.ParquetError) as error:
        raise CommandError(str(error)) from error


def _views(
    store: LedgerStore, args: argparse.Namespace, progress: Advance | None = None
) -> ViewDatabase:
    """The live views (caught up first), or the views as of `--as-of`: from the stored views
    when they stand at or before it, else built from seq 1, in a scratch database.

    Where the live views cannot be written (PostgreSQL's `ledger_reader`, a read-only file
    system), they are caught up in a scratch copy: the same rows, nothing written."""
    policies = policies_of(args, store)
    if args.as_of is None:
        return views.readable_views(store, args.store, policies, progress)
    seq = reporting.as_of_seq(store, args.as_of)
    return views.views_at(store, policies, seq, progress, stored_url=args.store)


# -- report -----------------------------------------------------------------------------


def _report(args: argparse.Namespace) -> int:
    table = TABLES_BY_VIEW[args.view]
    if args.out not in (None, "-"):
        require_output_file(Path(args.out), "--out", args.store)
    with _user_errors(), open_store(args) as store:
        progress = Progress("project", unit="events")
        try:
            database = _views(store, args, progress.advance)
        finally:
            progress.close()
        with database:
            document = views.document(database, table)
        if args.format == "parquet":
            if args.out in (None, "-") and sys.stdout.isatty():
                raise CommandError("--format parquet is binary: give --out FILE, or pipe it")
            if args.out in (None, "-"):
                parquet.write_parquet(document, table, sys.stdout.buffer)
                return 0
            with written_whole(Path(args.out)) as partial:
                parquet.write_parquet(document, table, partial)
            return 0
        scale_of = None if args.wide else policy_scales(policies_of(args, store).current)
        text = render.render_text(document, table, args.format, scale_of)
    if args.out in (None, "-"):
        write_stdout(text)
    else:
        with written_whole(Path(args.out)) as partial:
            partial.write_text(text, encoding="utf-8")
    return 0


# -- audit ------------------------------------------------------------------------------


@contextmanager
def _verifying() -> Iterator[Advance]:
    progress = Progress("verify", unit="records")
    try:
        yield progress.advance
    finally:
        progress.close()


checkpoint_public_key_env = "LEDGER_CHECKPOINT_PUBLIC_KEY"


def _anchors(args: argparse.Namespace) -> list[checkpoints.Anchor]:
    """The anchors the journal must hold: `--expect SEQ:HASH`, signed `--checkpoint` files
    and the signed checkpoints `ledger run` kept (`--signed-checkpoints store|kafka`)."""
    try:
        anchors = [checkpoints.parse_expectation(text) for text in args.expect]
        if args.checkpoint or args.signed_checkpoints:
            paths = args.public_key or _environment_public_keys()
            if not paths:
                option = "--checkpoint" if args.checkpoint else "--signed-checkpoints"
                raise CommandError(
                    f"{option} needs --public-key (${checkpoint_public_key_env}), the "
                    "Ed25519 key that signed it"
                )
            keys = [checkpoints.load_public_key(Path(path)) for path in paths]
            for path in args.checkpoint:
                anchors.extend(checkpoints.read_checkpoints(Path(path), keys))
            if args.signed_checkpoints:
                anchors.extend(_signed_checkpoints(args, keys))
    except checkpoints.CheckpointError as error:
        raise CommandError(str(error)) from error
    return anchors


def _environment_public_keys() -> list[str]:
    """The key files of LEDGER_CHECKPOINT_PUBLIC_KEY, separated as in PATH (':' on Unix)."""
    listed = os.environ.get(checkpoint_public_key_env, "")
    return [path for path in listed.split(os.pathsep) if path]


def _signed_checkpoints(
    args: argparse.Namespace, keys: list[Ed25519PublicKey]
) -> list[checkpoints.Anchor]:
    """Every checkpoint `ledger run` signed, from the store or from `<prefix>.checkpoints`,
    each signature verified. None at all is a failure: they were removed, or never made."""
    if args.signed_checkpoints == "kafka":
        from app.kafka_commands import broker_faults  # noqa: PLC0415
        from consumers.journal_topic import JournalTopicError, read_journal_topic  # noqa: PLC0415
        from consumers.topics import TopicNames  # noqa: PLC0415

        where = TopicNames(args.topic_prefix).checkpoints
        try:
            with broker_faults(args.bootstrap, client_logs=args.log_level is not None):
                documents = list(read_journal_topic(args.bootstrap, where))
        except JournalTopicError as error:
            raise CommandError(
                f"{where} is not a checkpoint topic: {error}", EXIT_REFUSED
            ) from error
    else:
        with open_store(args) as store:
            where, documents = "the store", _stored_checkpoints(store)
    if not documents:
        raise CommandError(
            f"{where} holds no signed checkpoint: `ledger run --checkpoint-key` writes them",
            EXIT_REFUSED,
        )
    return [
        checkpoints.verify_checkpoint(document, keys, f"{where} checkpoint {number}")
        for number, document in enumerate(documents, 1)
    ]


def _stored_checkpoints(store: LedgerStore) -> list[bytes]:
    documents: list[bytes] = []
    while page := store.read_checkpoints(len(documents)):
        documents.extend(page)
    return documents


def _verify(args: argparse.Namespace) -> int:
    anchors = _anchors(args)
    kept: list[PolicyDocument] | None = None  # an export's or the topic's: no store
    if args.from_kafka:
        # Only this option needs Kafka: consumers/ stays out of every other audit.
        from app.kafka_commands import broker_faults  # noqa: PLC0415
        from consumers.journal_topic import JournalTopicError, read_journal_topic  # noqa: PLC0415
        from consumers.topics import TopicNames  # noqa: PLC0415

        topic = TopicNames(args.topic_prefix).events
        try:
            quiet = args.log_level is None
            with broker_faults(args.bootstrap, client_logs=not quiet), _verifying() as progress:
                records = read_journal_topic(args.bootstrap, topic)
                outcome = audit.verify_records(records, progress, anchors)
        except JournalTopicError as error:
            raise CommandError(f"{topic} is not a journal: {error}", EXIT_REFUSED) from error
    elif args.file is not None:
        path = Path(args.file)
        require_file(path, "journal")
        with _verifying() as progress:
            outcome = audit.verify_records(audit.file_records(path), progress, anchors)
    else:
        with open_store(args) as store:
            with _verifying() as progress:
                outcome = audit.verify_store(store, progress, anchors)
            kept = store.adopted_policies()
    given = policy_files(policy_path(args))
    documents = policy_audit.check_policy_documents(outcome.adoptions, kept, given)
    print(outcome.describe())
    print(documents.describe())
    return 0 if outcome.ok and documents.ok else 1


def _replay(args: argparse.Namespace) -> int:
    """The live views (or, at an earlier `--as-of`, the store's journal projected to it)
    against the journal replayed alone: the store's, or an export (`--file`), whose chain
    is verified first."""
    file_end: int | None = None
    if args.file is not None:
        outcome = _verified_file(Path(args.file))
        if not outcome.ok:
            print(f"{args.file}: {outcome.describe()}; nothing compared")
            return 1
        file_end = outcome.first_seq + outcome.report.count - 1
    with _user_errors(), open_store(args) as store:
        policies = policies_of(args, store)
        with _live_views(args.store) as live:
            seq = live.position().last_seq
            if seq == 0:
                journal_seq = store.last_seq()
                raise CommandError(
                    "nothing to compare: the views were never built "
                    + (
                        f"(the journal holds seq 1..{journal_seq}); "
                        "`ledger report VIEW` builds them, then replay again"
                        if journal_seq
                        else "and the journal is empty"
                    )
                )
            if args.as_of is not None:
                seq = reporting.as_of_seq(store, args.as_of)
            if _ends_before(args.file, file_end, seq):
                return 1
            reference = live if seq == live.position().last_seq else None
            progress = Progress("replay", unit="events")
            try:
                if reference is None:
                    reference = views.views_at(store, policies, seq)
                records: Iterable[bytes] = (
                    (e.record for e in store.iter_journal() if e.seq <= seq)
                    if args.file is None
                    else _records_up_to(Path(args.file), seq)
                )
                replayed = views.views_from_records(
                    records, policies, projection_batch_events_max, progress.advance
                )
            finally:
                progress.close()
            with replayed:
                found = views.differences(reference, replayed)
            if reference is not live:
                reference.close()
    for difference in found:
        print("\n".join(views.describe_difference(TABLES_BY_VIEW[difference.view], difference)))
    total = sum(d.count for d in found)
    print(
        f"replay of seq 1..{seq} into a scratch store: "
        + (f"{total} rows differ in {len(found)} views" if found else "every view is identical")
    )
    snapshots_differ = args.file is None and _check_snapshots(args)
    return 1 if found or snapshots_differ else 0


def _live_views(url: str) -> ViewDatabase:
    """The live views to compare, as they stand. Views an older version wrote are not opened
    to write: that open empties them for a rebuild from seq 1, and the replay then found
    nothing to compare where the owner's views had stood."""
    try:
        ViewDatabase.open(url, create=False).close()
    except ViewsOfOlderCode as error:
        raise CommandError(f"nothing to compare: {error}, then replay again", EXIT_USAGE) from None
    except ViewsReadOnly:
        pass  # never built: the open below makes them (empty), or says who may
    try:
        return ViewDatabase.open(url)
    except ViewsReadOnly:
        # A reader role compares the views the owner maintains, as they stand.
        return ViewDatabase.open(url, create=False)


def _check_snapshots(args: argparse.Namespace) -> bool:
    """Print how the store's book snapshots, trades and deposits compare with the book rebuilt
    from seq 1; True when one differs."""
    with open_store(args) as store:
        check = snapshots.check_all(store)
    for snapshot in check.snapshots:
        if snapshot.verdict != "equal":
            print(f"book snapshot at seq {snapshot.seq}: {snapshot.verdict}")
    equal = sum(snapshot.verdict == "equal" for snapshot in check.snapshots)
    print(f"book snapshots: {equal} of {len(check.snapshots)} equal the book rebuilt from seq 1")
    named = check.originals_differing[:originals_differing_named_max]
    more = ", ..." if len(check.originals_differing) > len(named) else ""
    if named:
        print(f"trades and deposits tables: missing or other than booked: {', '.join(named)}{more}")
    print(
        f"trades and deposits tables: {check.originals - len(check.originals_differing)} of "
        f"{check.originals} client trades and deposits as the journal booked them"
    )
    differs = any(snapshot.verdict == "differs" for snapshot in check.snapshots)
    return differs or bool(check.originals_differing)


originals_differing_named_max = 10  # the audit names the first few trades or deposits that differ


def _ends_before(file: str | None, file_end: int | None, seq: int) -> bool:
    """Whether the export `file` ends before `seq`, where the views are compared (said so):
    replayed to its end, every row since was printed as a difference."""
    if file_end is None or file_end >= seq:
        return False
    print(
        f"{file} ends at seq {file_end}, before seq {seq} where the views are compared: "
        f"nothing compared (--as-of {file_end} compares at its end)"
    )
    return True


def _verified_file(path: Path) -> audit.VerifyOutcome:
    require_file(path, "journal")
    return audit.verify_records(audit.file_records(path))


def _records_up_to(path: Path, seq: int) -> Iterator[bytes]:
    require_file(path, "journal")
    for number, record in enumerate(audit.file_records(path), start=1):
        if number > seq:
            return
        yield record


def _explain(args: argparse.Namespace) -> int:
    with _user_errors(), open_store(args) as store:
        found = explain.explain(store, args.id, policies_of(args, store))
    for explanation in found:
        print("\n".join(explanation.lines))
        if not explanation.checks:
            verdict = "records no figures to recompute: nothing was checked"
        elif explanation.consistent:
            verdict = (
                f"the {explanation.checks} recorded figures equal the recomputed ones "
                "or the journal's"
            )
        else:
            verdict = (
                f"{len(explanation.differences)} of {explanation.checks} recorded figures "
                "differ from the recomputed ones or the journal's (✗ above)"
            )
        print(f"=> seq {explanation.seq}: {verdict}\n")
    return 0 if all(e.consistent for e in found) else 1


def register(sub: Any) -> None:
    report = sub.add_parser("report", help="a regulatory view (docs/views.md)")
    report.add_argument("view", choices=[table.view for table in TABLES], help="docs/views.md")
    report.add_argument("--as-of", default=None, help="journal seq or RFC 3339 timestamp")
    report.add_argument(
        "--format",
        choices=render.FORMATS,
        default="table",
        help="table for people, json with exact decimal strings, csv, parquet (to --out or a pipe)",
    )
    report.add_argument("--out", default=None, help="write to FILE instead of stdout")
    report.add_argument(
        "--wide",
        action="store_true",
        help="a table with every figure's exact digits, no cell cut",
    )
    report.set_defaults(handler=_guarded(_report))

    audit_parser = sub.add_parser("audit", help="verify, replay and explain the journal")
    audit_sub = audit_parser.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser(
        "verify", help="seq continuity, the hash chain and the policy documents"
    )
    verify.add_argument("--file", default=None, help="an exported journal (JSON lines)")
    verify.add_argument("--from-kafka", action="store_true", help="read the journal topic")
    verify.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="SEQ:HASH",
        help="the journal must reach SEQ and hold HASH there (repeatable)",
    )
    verify.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="FILE",
        help="a signed checkpoint (ledger journal checkpoint) the journal must hold",
    )
    verify.add_argument(
        "--signed-checkpoints",
        choices=("store", "kafka"),
        default=None,
        help="the journal must hold every checkpoint `ledger run` signed, as kept in the "
        "store or on <prefix>.checkpoints",
    )
    verify.add_argument(
        "--public-key",
        action="append",
        default=[],
        help="Ed25519 public key (PEM) that signed the checkpoints; after a key rotation give "
        "each key in use since the oldest checkpoint, the option once per key "
        f"(${checkpoint_public_key_env}: the files separated by '{os.pathsep}')",
    )
    verify.set_defaults(handler=_guarded(_verify))

    replay = audit_sub.add_parser("replay", help="rebuild every view and compare with the live")
    replay.add_argument("--file", default=None, help="replay an exported journal instead")
    replay.add_argument(
        "--as-of",
        default=None,
        help="compare at this journal seq or RFC 3339 time instead of the journal's end",
    )
    replay.set_defaults(handler=_guarded(_replay))

    explain_parser = audit_sub.add_parser("explain", help="recompute one decision")
    explain_parser.add_argument(
        "id", help="a seq, causation id, call id, liquidation id or trade id"
    )
    explain_parser.set_defaults(handler=_guarded(_explain))


def _guarded(handler: Any) -> Any:
    """A broken journal is not a traceback for the person running an audit."""

    def run(args: argparse.Namespace) -> int:
        try:
            result: int = handler(args)
        except InvariantViolation as violation:
            print(f"ledger: the journal is inconsistent: {violation}", file=sys.stderr)
            return 1
        return result

    return run
