"""A poison record never stops the ledger: whatever fails in decoding one record is that
record's refusal, and the records around it are booked. A fault in the decision code
stops the writer, naming the record, until an operator skips it on the record."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import subprocess
import sys
import tracemalloc
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.commands import ingest_stream
from consumers.publish import InboxLines, inbox_key
from ledger import application
from ledger.application import InboxItem, LedgerApplication, UndecidableRecord
from ledger.inbox import Deposit, decode_inbox
from ledger.inbox_lines import inbox_line_read_bytes_max, read_inbox_lines
from ledger.limits import inbox_record_bytes_max
from ledger.policy import load_policy
from ledger.rejections import Refusal
from ledger.store import LedgerStore, Tracking
from tests.ledger_scenario import Scenario

POLICY = load_policy(None)
AT = "2026-11-24T01:00:00Z"


def _deposit(event_id: str, amount: str = "100.00", account: str = "C1") -> bytes:
    return json.dumps(
        {
            "type": "deposit",
            "event_id": event_id,
            "occurred_at": AT,
            "account_id": account,
            "asset": "USD",
            "amount": amount,
        }
    ).encode()


def _opened(account: str = "C1") -> bytes:
    return json.dumps(
        {
            "type": "account_opened",
            "event_id": f"open-{account}",
            "occurred_at": AT,
            "account_id": account,
            "investor_class": "professional",
        }
    ).encode()


DEEP_ARRAY = b'{"x":' + b"[" * 1000 + b"]" * 1000 + b',"type":"deposit"}'  # about 2 KB
DEEP_OBJECT = b'{"x":' + b'{"a":' * 1000 + b"1" + b"}" * 1000 + b',"type":"deposit"}'
DUPLICATE_AMOUNT = _deposit("dup")[:-1] + b', "amount": "1000000.00"}'
DUPLICATE_ESCAPED = _deposit("dup2")[:-1] + b', "am\\u006funt": "1000000.00"}'


def _refusal(raw: bytes) -> str:
    with pytest.raises(Refusal) as refused:
        decode_inbox(raw, POLICY)
    return str(refused.value.reason_code)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (DEEP_ARRAY, "too_deep"),
        (DEEP_OBJECT, "too_deep"),
        (b"[" * 70 + b"]" * 70, "too_deep"),
        (DUPLICATE_AMOUNT, "duplicate_key"),
        (DUPLICATE_ESCAPED, "duplicate_key"),
        (_deposit("e\x00"), "invalid_identifier"),  # NUL
        (_deposit("e1", account="C\x07"), "invalid_identifier"),  # BEL
        (_deposit("e1", account="\x1b[2J\x1b[HC1"), "invalid_identifier"),  # ESC: clear screen
        (_deposit("e1", account="C\u202e1"), "invalid_identifier"),  # right-to-left override
        (_deposit("e1", account="C\u200b1"), "invalid_identifier"),  # zero-width space
        (_deposit("e1", account="C\u2028"), "invalid_identifier"),  # line separator
        (_deposit("e1", account="Cafe\u0301"), "invalid_identifier"),  # NFD, not NFC
        (_deposit("e\u00a01"), "invalid_identifier"),  # no-break space
        (_deposit("e1", account=" "), "invalid_identifier"),  # blank: it opened account ' '
        (_deposit("   "), "invalid_identifier"),  # a blank event id
    ],
)
def test_a_hostile_record_is_refused_with_its_reason(raw: bytes, code: str) -> None:
    assert _refusal(raw) == code


def test_a_shallow_nesting_keeps_its_own_reason() -> None:
    assert _refusal(_deposit("e1")[:-1] + b', "x": [[1]]}') == "unknown_field"


def test_printable_identifiers_in_any_script_are_accepted() -> None:
    # A Cyrillic look-alike is printable NFC text: a different account, shown as it is.
    for account in ("C1", "Caf\u00e9", "\u0421\u0430fe", "客户 7"):
        record = decode_inbox(_deposit("e1", account=account), POLICY)
        assert isinstance(record, Deposit)
        assert record.account_id == account


def test_duplicate_keys_book_nothing_and_the_single_key_record_books() -> None:
    s = Scenario()
    s.send("account_opened", account_id="C1", investor_class="professional")
    item = InboxItem(DUPLICATE_AMOUNT, None, "t", 0, 1)
    outcome = s.app.process([item, InboxItem(_deposit("ok", "1.00"), None, "t", 0, 2)])
    assert (outcome.accepted, outcome.refused) == (1, 1)
    assert s.app.book.accounts["C1"].balance("USD") == Decimal("1.00")
    assert s.rejects()[-1]["reason_code"] == "duplicate_key"


def test_publish_keys_a_deep_record_as_null_instead_of_crashing() -> None:
    assert inbox_key(DEEP_ARRAY) is None
    assert inbox_key(_deposit("e1")) == b"C1"


# -- bounded lines ----------------------------------------------------------------


def _big_line_file(path: Path, size_bytes: int) -> bytes:
    """A file: a valid line, one line of `size_bytes` (never held whole), a valid line."""
    digest = hashlib.sha256()
    chunk = b"x" * (1 << 20)
    with path.open("wb") as out:
        out.write(_opened() + b"\n")
        out.write(b'{"type":"deposit","pad":"')
        digest.update(b'{"type":"deposit","pad":"')
        left = size_bytes - 26
        while left > 0:
            piece = chunk[: min(left, len(chunk))]
            out.write(piece)
            digest.update(piece)
            left -= len(piece)
        out.write(b'"\r\n')
        digest.update(b'"')
        out.write(_deposit("after") + b"\n")
    return digest.digest()


def test_an_oversized_line_is_refused_with_its_prefix_length_and_digest(tmp_path: Path) -> None:
    path = tmp_path / "inbox.jsonl"
    digest = _big_line_file(path, 50 * 1024 * 1024)
    with LedgerStore.open("sqlite:///:memory:") as store:
        app = LedgerApplication(store, POLICY)
        tracemalloc.start()
        with path.open("rb") as stream:
            total = ingest_stream(app, stream, "file:inbox.jsonl")
        peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        (reject,) = [json.loads(r) for r in store.read_rejects()]
    assert (total.accepted, total.refused) == (2, 1)
    assert peak_bytes < 8 * 1024 * 1024  # a 50 MB line; the old reader held it whole
    assert reject["reason_code"] == "record_too_large"
    assert reject["value_bytes"] == 50 * 1024 * 1024
    assert reject["value_sha256"] == digest.hex()
    assert len(reject["value"]) == inbox_record_bytes_max
    assert reject["value"].startswith('{"type":"deposit","pad":"xxx')
    assert reject["offset"] == 2


def test_a_line_at_the_read_bound_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "edge.jsonl"
    path.write_bytes(b"y" * inbox_line_read_bytes_max)  # no line end, ends at the bound
    with path.open("rb") as stream:
        (line,) = read_inbox_lines(stream)
    assert line.truncation is None
    assert len(line.value) == inbox_line_read_bytes_max


def test_a_kafka_record_over_the_bound_keeps_a_prefix_in_its_reject() -> None:
    s = Scenario()
    value = b"\xe2\x82\xac" * 10_000  # 30,000 bytes of euro signs: the cut splits one
    s.app.process([InboxItem(value, None, "ledger.inbox", 0, 9)])
    reject = s.rejects()[-1]
    assert reject["reason_code"] == "record_too_large"
    assert reject["value_bytes"] == 30_000
    assert reject["value_sha256"] == hashlib.sha256(value).hexdigest()
    assert reject["value_encoding"] == "utf-8"
    assert reject["value"] == "\u20ac" * (inbox_record_bytes_max // 3)


def test_publish_sends_no_oversized_line(tmp_path: Path) -> None:
    path = tmp_path / "inbox.jsonl"
    _big_line_file(path, 100_000)
    lines = InboxLines()
    with path.open("rb") as stream:
        sent = list(lines.records(stream))
    assert sent == [_opened(), _deposit("after")]
    assert lines.oversized.numbers == [2]


# -- a fault in the decision code -------------------------------------------------


FAULTY_EVENT_ID = "boom"


@pytest.fixture
def decide_fails_on_event(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Deciding the record with event_id `boom` raises, as a bug in `decide` would;
    returns the real `decide`, to put back."""
    real = getattr(application, "decide")  # noqa: B009 - imported by the module, not exported

    def faulty(desk: Any, record: Any) -> Any:
        if record.event_id == FAULTY_EVENT_ID:
            raise ZeroDivisionError("a bug")
        return real(desk, record)

    monkeypatch.setattr(application, "decide", faulty)
    return real


@pytest.mark.usefixtures("decide_fails_on_event")
def test_a_fault_in_deciding_stops_at_the_record_and_books_those_before_it() -> None:
    s = Scenario()
    s.send("account_opened", account_id="C1", investor_class="professional")
    before = s.store.last_seq()
    items = [
        InboxItem(_deposit("first", "1.00"), None, "ledger.inbox", 0, 5),
        InboxItem(_deposit(FAULTY_EVENT_ID), None, "ledger.inbox", 0, 6),
        InboxItem(_deposit("after", "2.00"), None, "ledger.inbox", 0, 7),
    ]
    with pytest.raises(UndecidableRecord) as stopped:
        s.app.process(items, Tracking("ledger.inbox:0", 7))
    assert "ledger.inbox:0:6" in str(stopped.value)
    assert s.store.last_seq() == before + 1  # the deposit before it, nothing after
    assert s.app.book.accounts["C1"].balance("USD") == Decimal("1.00")
    assert s.store.max_tracking_id("ledger.inbox:0") == 5


def test_an_operator_skips_the_record_on_the_record() -> None:
    s = Scenario()
    s.send("account_opened", account_id="C1", investor_class="professional")
    number = s.app.skip(
        Tracking("ledger.inbox:0", 6),
        InboxItem(b"", None, "ledger.inbox", 0, 6),
        "ticket 42: \x1b[31m",
    )
    reject = s.rejects()[-1]
    assert reject["number"] == number == 1
    assert reject["reason_code"] == "skipped_by_operator"
    assert reject["detail"].endswith("ticket 42: \\x1b[31m")
    assert (reject["topic"], reject["partition"], reject["offset"]) == ("ledger.inbox", 0, 6)
    assert s.store.max_tracking_id("ledger.inbox:0") == 6


def _ledger(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], capture_output=True, text=True, cwd=cwd, check=False
    )


def test_ingest_books_every_valid_line_around_poison_lines(tmp_path: Path) -> None:
    lines = [
        _opened(),
        DEEP_ARRAY,
        _deposit("a", "1.00"),
        DUPLICATE_AMOUNT,
        _deposit("b", "2.00", account="C\u202e1"),
        _deposit("c", "4.00"),
    ]
    (tmp_path / "inbox.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    done = _ledger("ingest", "inbox.jsonl", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "3 accepted" in done.stderr
    assert "duplicate_key 1, invalid_identifier 1, too_deep 1" in done.stderr
    balances = _ledger("query", "balances", "C1", "--format", "json", cwd=tmp_path)
    (usd,) = json.loads(balances.stdout)["balances"]
    assert usd["balance"] == "5.00"
    escaped = _ledger("rejects", cwd=tmp_path)
    assert "\x1b" not in escaped.stdout
    assert "\u202e" not in escaped.stdout


def test_ingest_stops_on_a_fault_in_one_line_and_the_skip_moves_past_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    decide_fails_on_event: Any,
) -> None:
    from app import cli  # noqa: PLC0415 - in process, so that `decide` stays broken

    inbox = tmp_path / "inbox.jsonl"
    records = [_opened(), _deposit(FAULTY_EVENT_ID), _deposit("c", "4.00")]
    inbox.write_bytes(b"\n".join(records) + b"\n")
    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert cli.main(["--store", store, "ingest", str(inbox)]) == 4
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    position = err.split("ledger inbox skip ")[1].split(" ")[0]
    assert position.startswith("file:")
    assert position.endswith(":2")
    ahead = position.removesuffix(":2") + ":3"
    assert cli.main(["--store", store, "inbox", "skip", ahead, "--reason", "ticket 7"]) == 2
    refused = capsys.readouterr().err
    assert "stands at 1: the record to skip is 2" in refused
    assert "would pass over 1 undecided records: nothing was recorded" in refused
    assert cli.main(["--store", store, "inbox", "skip", position, "--reason", "ticket 7"]) == 0
    monkeypatch.setattr(application, "decide", decide_fails_on_event)
    assert cli.main(["--store", store, "ingest", str(inbox)]) == 0
    with LedgerStore.open(store) as opened:
        app = LedgerApplication(opened, POLICY)
        assert app.book.accounts["C1"].balance("USD") == Decimal("4.00")
        (reject,) = [json.loads(r) for r in opened.read_rejects()]
    assert reject["reason_code"] == "skipped_by_operator"
    again = cli.main(["--store", store, "inbox", "skip", position, "--reason", "again"])
    assert again == 2
    assert "nothing was recorded" in capsys.readouterr().err


def test_the_service_stops_on_an_undecidable_record_with_one_line_naming_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from consumers import exit_status, service  # noqa: PLC0415 - aiokafka loads for this test only

    async def stop_on_it() -> None:
        item = InboxItem(_deposit(FAULTY_EVENT_ID), None, "ledger.inbox", 3, 1234)
        raise UndecidableRecord(item, ZeroDivisionError("a bug"))

    async def failed_task() -> asyncio.Task[None]:
        task = asyncio.create_task(stop_on_it(), name="ingest")
        await asyncio.wait({task})
        return task

    caplog.set_level(logging.INFO, logger="consumers.service")
    status = service._failure_status(asyncio.run(failed_task()))
    assert status == exit_status.EXIT_UNDECIDABLE == 4
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "undecidable_record topic=ledger.inbox partition=3 offset=1234" in line
    assert "ledger inbox skip ledger.inbox:3:1234 --reason TEXT" in line


def test_an_empty_kafka_record_is_refused_saying_it_is_empty() -> None:
    """A record without a value (a tombstone, or an empty one) was refused 'the record is
    not valid JSON (Input data was truncated).', which names no cause an upstream can fix."""
    s = Scenario()
    s.app.process([InboxItem(b"", b"C1", "ledger.inbox", 0, 11)])
    reject = s.rejects()[-1]
    assert (reject["reason_code"], reject["detail"]) == (
        "malformed_json",
        "the record is empty (a Kafka record without a value, such as a tombstone): "
        "send one JSON object",
    )
    assert (reject["value"], reject["offset"]) == ("", 11)
