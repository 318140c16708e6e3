"""A refused record keeps its `event_id` whenever it can be read, so that upstream can match
each reject to what it sent, even when the record is refused for another field."""

from __future__ import annotations

import pytest

from ledger import limits
from ledger.inbox import readable_event_id


@pytest.mark.parametrize(
    ("raw", "event_id"),
    [
        (b'{"event_id":"dep-7","type":"deposit","amount":12.5}', "dep-7"),
        (b'{"type":"nonsense","event_id":"x-1","extra":[1,2]}', "x-1"),
        (b'{"event_id":"dep-8","amount":"1"', None),  # not JSON: nothing can be read
        (b'["dep-9"]', None),
        (b'{"event_id":42}', None),
        (b'{"event_id":""}', None),
        (b'{"event_id":"' + b"e" * (limits.event_id_chars_max + 1) + b'"}', None),
        (b'{"event_id":"dep-\xff"}', None),
        (b'{"event_id":"big","pad":"' + b"p" * limits.inbox_record_bytes_max + b'"}', None),
    ],
)
def test_the_event_id_of_a_refused_record(raw: bytes, event_id: str | None) -> None:
    assert readable_event_id(raw) == event_id
