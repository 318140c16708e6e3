"""`ledger publish` sends JSON objects only: a line that is not one is refused and counted
(not sent with an empty key), unless --send-malformed asks for it; counts read as English."""

from __future__ import annotations

import io

from app.kafka_commands import counted
from consumers.publish import InboxLines, refused_line_numbers_listed_max

GOOD = b'{"event_id":"e-1","type":"deposit","account_id":"C-1"}'
STREAM = [GOOD + b"\n", b"\n", b"not json\r\n", b'["an","array"]\n', b'{"broken":\n', GOOD]


def test_lines_that_are_not_json_objects_are_refused_with_their_numbers() -> None:
    lines = InboxLines()
    assert list(lines.records(io.BytesIO(b"".join(STREAM)))) == [GOOD, GOOD]
    assert (lines.not_objects.count, lines.not_objects.numbers) == (3, [3, 4, 5])
    assert lines.oversized.count == 0


def test_send_malformed_sends_every_non_blank_line() -> None:
    lines = InboxLines(send_malformed=True)
    assert list(lines.records(io.BytesIO(b"".join(STREAM)))) == [
        GOOD,
        b"not json",
        b'["an","array"]',
        b'{"broken":',
        GOOD,
    ]
    assert lines.not_objects.count == 0


def test_only_the_first_refused_line_numbers_are_kept() -> None:
    lines = InboxLines()
    assert list(lines.records(io.BytesIO(b"x\n" * 25))) == []
    assert lines.not_objects.count == 25
    assert lines.not_objects.numbers == list(range(1, refused_line_numbers_listed_max + 1))


def test_counts_read_as_english() -> None:
    assert counted(1, "record") == "1 record"
    assert counted(0, "record") == "0 records"
    assert counted(1200, "line") == "1200 lines"
