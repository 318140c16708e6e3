"""`ledger demo`: a few simulated days with a BTC crash, decided by the ledger, summarised.

From a fresh embedded store in `.ledger/demo/` (SQLite): the simulated stream is decided
by `LedgerApplication.process`, exactly as `ledger ingest` decides a file, with a simulated
venue in the loop (app/venue.py) that executes each liquidation the ledger decides and
sends its fills back the same way; every record decided, fills included, is written to
`inbox.jsonl`, so `ledger ingest` of that file decides the same journal. The journal is
replayed once into the summary printed here and the HTML report (`report.html`) a risk
officer opens in a browser. `--kafka` sends that inbox through the local Kafka broker with
`ledger publish` and `ledger run` instead.

Wall-clock timings are printed for the reader only; no decision reads them.

This module also registers `ledger api` (ledger/api.py), which loads Litestar only when run.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from app import html_report, stress_output
from app.commands import (
    CommandError,
    policy_of,
    require_simulation_size,
    simulation_accounts_max,
    simulation_days_max,
)
from app.simulation import simulate_timed
from app.venue import Venue, decide_stream_with_venue
from ledger.application import LedgerApplication
from ledger.store import LedgerStore

DEMO_FOLDER = Path(".ledger/demo")
# Sized from measurements on 2 cores: about 53,000 inbox records, decided at 2,700 to
# 6,600 records/s (the core got faster while this was written), report about 4 s: the whole
# demo takes 12 to 25 s, well under the two minutes a newcomer should wait.
DEMO_SEED = 2  # of the seeds tried, one whose crash also draws on the insurance fund
DEMO_ACCOUNTS = 300
DEMO_DAYS = 3
IN_MEMORY_STORE_URL = "sqlite:///:memory:"
DEMO_FILES = ("inbox.jsonl", "ledger.db", "ledger.db-wal", "ledger.db-shm", "report.html")
# Written into the demo's folder: the next demo may replace the files of a folder so marked.
DEMO_MARK = ".ledger-demo"
DEMO_MARK_TEXT = "written by `ledger demo`, which replaces this folder's demo files at each run\n"


@dataclass(frozen=True)
class DemoRun:
    records: int
    simulate_s: float  # float-ok: wall-clock seconds, display only
    decide_s: float  # float-ok: wall-clock seconds, display only
    store_url: str
    report: Path


def store_url_for(folder: Path) -> str:
    return f"sqlite:///{(folder / 'ledger.db').resolve()}"


def fresh_folder(folder: Path) -> None:
    """Remove what an earlier demo left in `folder` (only the demo's own files). A folder
    that holds such files without the demo's mark (`--folder .ledger`, whose ledger.db is the
    default store) is refused: the demo removes only what a demo wrote."""
    folder.mkdir(parents=True, exist_ok=True)
    mark = folder / DEMO_MARK
    held = [name for name in DEMO_FILES if (folder / name).exists()]
    ours = mark.is_file() or folder.resolve() == DEMO_FOLDER.resolve()
    if held and not ours:
        raise CommandError(
            f"--folder {folder} holds {', '.join(held)}, which no demo wrote: give the demo a "
            "folder of its own (nothing was removed)"
        )
    mark.write_text(DEMO_MARK_TEXT, encoding="utf-8")
    for name in DEMO_FILES:
        (folder / name).unlink(missing_ok=True)


def decide_with_venue(args: argparse.Namespace, inbox: Path, store_url: str) -> tuple[int, int]:
    """Simulate, decide, and let the venue execute every liquidation as it is decided,
    writing every record decided to `inbox`; returns (records decided, of which fills)."""
    policy = policy_of(args)
    venue = Venue(args.seed, policy)
    with LedgerStore.open(store_url) as store, inbox.open("wb") as out:
        records = decide_stream_with_venue(
            LedgerApplication(store, policy),
            simulate_timed(args.seed, args.accounts, args.days),
            venue,
            out,
            f"file:{inbox.name}",
        )
    return records, venue.fills


def default_demo_store(folder: Path) -> str:
    """The store `ledger demo` writes with its default seed, accounts and days, written in
    `folder` (the venue filling each liquidation): the store the pre-trade check's benchmark
    and the statements' tie-out test measure on. Returns its URL."""
    url = store_url_for(folder)
    demo = argparse.Namespace(seed=DEMO_SEED, accounts=DEMO_ACCOUNTS, days=DEMO_DAYS, policy=None)
    decide_with_venue(demo, folder / "inbox.jsonl", url)
    return url


REPOSITORY = Path(__file__).resolve().parents[1]
KAFKA_SCRIPT = REPOSITORY / "deploy" / "local" / "kafka"
kafka_start_timeout_s = 1_200  # a first start resolves the broker's jars through Maven
kafka_drain_timeout_s = 1_800
run_stop_timeout_s = 60
drain_poll_interval_s = 0.5


def _ledger(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "app", *arguments]


def _broker_answers(bootstrap: str) -> bool:
    host, _, port = bootstrap.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except (OSError, ValueError):
        return False


def start_local_kafka(bootstrap: str, out: IO[str]) -> bool:
    """Start deploy/local/kafka when nothing answers at `bootstrap`; True if started here."""
    if _broker_answers(bootstrap):
        return False
    if not KAFKA_SCRIPT.is_file():
        raise CommandError(f"no broker at {bootstrap} and no {KAFKA_SCRIPT} to start one")
    port = bootstrap.rpartition(":")[2]
    print(f"starting the local Kafka broker on port {port}...", file=out, flush=True)
    started = subprocess.run(
        [sys.executable, str(KAFKA_SCRIPT), "start"],
        env={**os.environ, "LEDGER_KAFKA_PORT": port},
        capture_output=True,
        text=True,
        timeout=kafka_start_timeout_s,
        check=False,
    )
    if started.returncode != 0:
        raise CommandError(f"deploy/local/kafka start failed: {started.stderr.strip()[-500:]}")
    return True


def stop_local_kafka(bootstrap: str) -> None:
    port = bootstrap.rpartition(":")[2]
    subprocess.run(
        [sys.executable, str(KAFKA_SCRIPT), "stop"],
        env={**os.environ, "LEDGER_KAFKA_PORT": port},
        capture_output=True,
        timeout=run_stop_timeout_s,
        check=False,
    )


def _wait_for_drain(service: subprocess.Popen[bytes], store_url: str, name: str, last: int) -> None:
    """Until `ledger run` has recorded inbox offset `last` under tracking `name`."""
    deadline = time.monotonic() + kafka_drain_timeout_s
    with LedgerStore.open(store_url) as store:
        while (store.max_tracking_id(name) or -1) < last:
            if service.poll() is not None:
                raise CommandError(
                    f"ledger run stopped early with exit status {service.returncode}"
                )
            if time.monotonic() > deadline:
                raise CommandError(
                    f"ledger run did not drain the inbox in {kafka_drain_timeout_s} s"
                )
            time.sleep(drain_poll_interval_s)


def ingest_through_kafka(
    args: argparse.Namespace, inbox: Path, store_url: str, records: int, out: IO[str]
) -> None:
    """`ledger publish` the inbox to fresh topics, `ledger run` until it has decided all."""
    bootstrap = args.bootstrap
    started_here = start_local_kafka(bootstrap, out)
    # Fresh topics per run (a fresh store needs a fresh inbox); the time only names them.
    prefix = f"demo-{args.seed}-{int(time.time())}"
    settings = ["--bootstrap", bootstrap, "--topic-prefix", prefix]
    # The policy the embedded ledger and the venue decided with: `ledger run` took the
    # demonstration policy (or LEDGER_POLICY) whatever --policy said, and its journal
    # differed from the embedded one.
    policy = [] if args.policy is None else ["--policy", str(Path(args.policy).resolve())]
    try:
        published = subprocess.run(
            # The demo's inbox holds deliberately broken records: the ledger refuses them.
            _ledger(*settings, "publish", str(inbox), "--send-malformed"),
            capture_output=True,
            text=True,
            check=False,
        )
        if published.returncode != 0:
            raise CommandError(f"ledger publish failed: {published.stderr.strip()[-500:]}")
        print(f"{published.stdout.strip()}; ledger run...", file=out, flush=True)
        service = subprocess.Popen(
            # Its progress log is for operators: the demo prints its own summary.
            _ledger(
                "--store",
                store_url,
                *settings,
                *policy,
                "run",
                "--health-port",
                "0",
                "--log-level",
                "WARNING",
            ),
            stdout=subprocess.DEVNULL,
        )
        try:
            _wait_for_drain(service, store_url, f"{prefix}.inbox:0", records - 1)
        finally:
            service.send_signal(signal.SIGTERM)
            try:
                service.wait(timeout=run_stop_timeout_s)
            except subprocess.TimeoutExpired:
                service.kill()
                service.wait()
    finally:
        if started_here:
            stop_local_kafka(bootstrap)


def run_demo(args: argparse.Namespace, out: IO[str]) -> DemoRun:
    folder: Path = args.folder
    fresh_folder(folder)
    inbox = folder / "inbox.jsonl"
    store_url = store_url_for(folder)
    started = time.monotonic()
    print(
        f"simulating {args.accounts} accounts for {args.days} days (seed {args.seed})...",
        file=out,
        flush=True,
    )
    simulated = time.monotonic()
    print("deciding them, the venue executing each liquidation...", file=out, flush=True)
    if args.kafka:
        # The venue reacts to an embedded ledger's decisions, which are the Kafka ledger's
        # too (same inbox, same journal): the inbox it writes, fills included, goes through
        # Kafka, and the journal's last hash equals the embedded run's.
        records, _ = decide_with_venue(args, inbox, IN_MEMORY_STORE_URL)
        print(f"publishing {records:,} inbox records to Kafka...", file=out, flush=True)
        ingest_through_kafka(args, inbox, store_url, records, out)
    else:
        records, _ = decide_with_venue(args, inbox, store_url)
    decided = time.monotonic()
    return DemoRun(
        records=records,
        simulate_s=simulated - started,
        decide_s=decided - simulated,
        store_url=store_url,
        report=(folder / "report.html").resolve(),
    )


def summary_lines(summary: html_report.Summary, run: DemoRun) -> list[str]:
    usd = html_report.usd
    rate = run.records / max(run.simulate_s + run.decide_s, 1e-9)
    rejects = ", ".join(
        f"{reason} {count}"
        for reason, count in sorted(summary.rejects_by_reason.items(), key=lambda i: -i[1])
    )
    retail = summary.accounts - summary.professional_accounts
    left = (
        ", ".join(f"{m} {size}" for m, size in summary.liquidation_positions.items())
        or "none (every liquidation executed)"
    )
    return [
        f"period        {summary.first_at} to {summary.last_at} UTC (ledger clock)",
        f"inbox         {run.records:,} records (the venue's fills among them), simulated "
        f"and decided in {run.simulate_s + run.decide_s:.1f} s ({rate:,.0f} records/s)",
        f"accounts      {summary.accounts:,} ({summary.professional_accounts:,} professional, "
        f"{retail:,} retail)",
        f"loans         {usd(summary.loans_outstanding)} USD outstanding "
        f"to {summary.borrowers:,} borrowers",
        f"open interest {html_report.open_interest_text(summary)} (long contracts)",
        f"margin calls  {summary.margin_calls_issued:,} issued: {summary.margin_calls_met:,} met, "
        f"{summary.margin_calls_liquidated:,} liquidated, {summary.margin_calls_open:,} open",
        f"liquidations  {summary.liquidations:,}; insurance fund drawn "
        f"{usd(summary.insurance_drawn)} USD, auto-deleveraged {usd(summary.auto_deleveraged)} "
        f"USD, bad debt {usd(summary.bad_debt)} USD",
        f"venue         {summary.venue_fills:,} fills of liquidations: insurance fund "
        f"+{usd(summary.fills_paid_to_fund)} USD from gains, -{usd(summary.fills_drawn_from_fund)}"
        f" USD for losses; {summary.lots_to_execute:,} lots left to execute",
        f"platform      platform:liquidation positions: {left}",
        f"loan book     {summary.debits_financed:,} client debits beyond cash drawn on margin "
        f"loans ({usd(summary.debits_financed_usd)} USD); client USD below zero "
        f"{usd(summary.client_usd_below_zero)} USD",
        f"market inputs {summary.stale_mark_waits:,} margin decisions waited for fresh marks "
        f"(stale-marks view); {summary.mark_alerts:,} marks beyond the alert move",
        f"corrections   {summary.trades_busted:,} busted trades and "
        f"{summary.deposits_returned:,} returned deposits reversed",
        f"stress        {html_report.REPORT_LADDER} together: insurance fund "
        f"{stress_output.ladder_verdict(summary.insurance_fund_exhausted_at)}",
        f"rejects       {sum(summary.rejects_by_reason.values()):,}: {rejects or 'none'}",
        f"journal       seq {summary.journal_seq:,}, last hash {summary.last_hash}",
    ]


def _demo(args: argparse.Namespace) -> int:
    require_simulation_size(args.accounts, args.days, accounts_min=1)
    policy = policy_of(args)
    out = sys.stdout
    started = time.monotonic()
    run = run_demo(args, out)
    with LedgerStore.open(run.store_url) as store:
        summary = html_report.write_report(store, policy, run.report)
    print("", file=out)
    for line in summary_lines(summary, run):
        print(line, file=out)
    print(f"total         {time.monotonic() - started:.1f} s", file=out)
    print(f"\nreport: {run.report}", file=out)
    print(
        f"explore: ledger --store {run.store_url} query margin ACCOUNT | rejects | report VIEW",
        file=out,
    )
    return 0


def register(sub: Any) -> None:
    demo = sub.add_parser(
        "demo", help="simulate days with a BTC crash, decide them, summarise, write a report"
    )
    demo.add_argument("--seed", type=int, default=DEMO_SEED, help="the simulation's seed")
    demo.add_argument(
        "--accounts",
        type=int,
        default=DEMO_ACCOUNTS,
        help=f"client accounts (at most {simulation_accounts_max:,})",
    )
    demo.add_argument(
        "--days",
        type=int,
        default=DEMO_DAYS,
        help=f"days to simulate (at most {simulation_days_max})",
    )
    demo.add_argument("--folder", type=Path, default=DEMO_FOLDER, help="where the demo writes")
    demo.add_argument("--kafka", action="store_true", help="through the local Kafka broker")
    demo.set_defaults(handler=_demo)
