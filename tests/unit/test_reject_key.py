"""A refused record's Kafka key as its reject keeps it: text when it is UTF-8, its bytes in
base64 (`key_encoding: "base64"`) when it is not, and the rejects topic keyed with the
same bytes as the inbox record. The key was read with replacement characters: `\\xff\\xfe`
became `\\ufffd\\ufffd`, and upstream could not find the record it had sent."""

from __future__ import annotations

from consumers.journal_relay import read_rejects_batch
from ledger.application import InboxItem
from tests.ledger_scenario import Scenario

NOT_JSON = b'{"type":"deposit"'  # refused malformed_json


def _refused(key: bytes | None) -> tuple[dict[str, object], bytes | None]:
    scenario = Scenario()
    scenario.app.process([InboxItem(NOT_JSON, key, "ledger.inbox", 0, 7)])
    (reject,) = scenario.rejects()
    (outgoing,) = read_rejects_batch(scenario.store, 0)
    return reject, outgoing.key


def test_a_key_that_is_not_utf8_is_kept_as_base64_and_published_as_its_bytes() -> None:
    reject, published = _refused(b"\xff\xfeC1")
    assert reject["reason_code"] == "malformed_json"
    assert (reject["key"], reject["key_encoding"]) == ("//5DMQ==", "base64")  # base64 by hand
    assert published == b"\xff\xfeC1"


def test_a_utf8_key_is_kept_as_text_as_before() -> None:
    reject, published = _refused("客户-1".encode())
    assert reject["key"] == "客户-1"
    assert "key_encoding" not in reject  # a reject of a text key is written as before
    assert published == "客户-1".encode()


def test_no_key_is_null() -> None:
    reject, published = _refused(None)
    assert reject["key"] is None
    assert published is None
