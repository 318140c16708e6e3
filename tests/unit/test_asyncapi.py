"""docs/asyncapi.yaml against the contract it describes (docs/events.md): the three topics,
every inbox type with its fields, amounts as strings of the right form, the journal's
common fields and topic settings, and examples that obey their own schemas."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.checkpoints import sign_checkpoint
from ledger.inbox import decode_inbox, inbox_json_schema
from ledger.journal_events import JournalEventType
from ledger.policy import load_policy
from ledger.rejections import Refusal

DOCS = Path(__file__).resolve().parents[2] / "docs"
ASYNCAPI = DOCS / "asyncapi.yaml"

# docs/events.md "Inbox records": each type and its fields beyond the common ones
# (optional fields marked with a trailing "?").
INBOX_TYPES: dict[str, tuple[str, ...]] = {
    "account_opened": ("account_id", "investor_class", "credit_limit?"),
    "credit_limit_set": ("account_id", "credit_limit"),
    "deposit": ("account_id", "asset", "amount", "reference?"),
    "withdrawal_requested": ("account_id", "asset", "amount"),
    "loan_draw_requested": ("account_id", "amount"),
    "loan_repayment": ("account_id", "amount"),
    "spot_trade": (
        "account_id",
        "trade_id",
        "symbol",
        "side",
        "quantity",
        "price",
        "fee",
        "liquidation_id?",
    ),
    "perp_trade": (
        "account_id",
        "trade_id",
        "market",
        "side",
        "quantity",
        "price",
        "fee",
        "liquidation_id?",
    ),
    "mark_price": ("instrument", "price"),
    "funding_rate": ("market", "rate", "funding_time"),
    "day_closed": ("business_date",),
    "related_group_set": ("account_id", "group_id"),
    "daily_statements_set": ("account_id", "daily_statements"),
    "trade_busted": ("trade_id", "reason"),
    "deposit_returned": ("reference", "reason"),
}
COMMON_REQUIRED = ("event_id", "type", "occurred_at")
# docs/events.md: amounts, prices, quantities and rates are JSON strings.
DECIMAL_FIELDS = frozenset({"amount", "credit_limit", "quantity", "price", "fee", "rate"})
# docs/events.md "Topics": the key of each inbox type.
KEY_FIELDS = {
    "mark_price": "instrument",
    "funding_rate": "market",
    "day_closed": "business_date",
    "trade_busted": "trade_id",
    "deposit_returned": "reference",
}
JOURNAL_FIELDS = ("seq", "type", "recorded_at", "causation_id", "account_id", "prev_hash", "hash")
REJECT_FIELDS = (
    "reason_code",
    "detail",
    "topic",
    "partition",
    "offset",
    "key",
    "value",
    "value_encoding",
)
JOURNAL_TOPIC_CONFIG: dict[str, object] = {
    "cleanup.policy": ["delete"],
    "retention.ms": -1,
    "retention.bytes": -1,
    "min.insync.replicas": 2,
    "unclean.leader.election.enable": False,
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def resolve(document: dict[str, Any], node: Any) -> Any:
    """Follow a local `$ref` (`#/a/b`) until the node is not a reference."""
    while isinstance(node, dict) and "$ref" in node:
        reference = node["$ref"]
        assert reference.startswith("#/"), f"only local references: {reference}"
        node = document
        for part in reference[2:].split("/"):
            assert part in node, f"dangling reference {reference}"
            node = node[part]
    return node


def channel(document: dict[str, Any], address: str) -> dict[str, Any]:
    found = [c for c in document["channels"].values() if c["address"] == address]
    assert len(found) == 1, f"no single channel for {address}"
    entry: dict[str, Any] = found[0]
    return entry


def messages(document: dict[str, Any], address: str) -> dict[str, dict[str, Any]]:
    """The channel's messages by their `name`, references resolved."""
    resolved = [resolve(document, m) for m in channel(document, address)["messages"].values()]
    return {message["name"]: message for message in resolved}


def payload(document: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = resolve(document, message["payload"])
    return schema


def kafka_key(document: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    """The message's Kafka key binding, on the message or from one of its traits."""
    sources = [message, *(resolve(document, t) for t in message.get("traits", []))]
    keys = [s["bindings"]["kafka"]["key"] for s in sources if "bindings" in s]
    assert len(keys) == 1, f"{message['name']}: expected one Kafka key binding"
    key: dict[str, Any] = keys[0]
    return key


def test_it_is_asyncapi_3_and_names_the_four_topics(document: dict[str, Any]) -> None:
    assert str(document["asyncapi"]).startswith("3.0")
    addresses = {c["address"] for c in document["channels"].values()}
    assert addresses == {"ledger.inbox", "ledger.events", "ledger.rejects", "ledger.checkpoints"}
    for entry in document["channels"].values():
        assert entry["bindings"]["kafka"]["topic"] == entry["address"]
    for operation in document["operations"].values():
        resolve(document, operation["channel"])


def test_inbox_message_types_are_exactly_the_contracts(document: dict[str, Any]) -> None:
    assert set(messages(document, "ledger.inbox")) == set(INBOX_TYPES)


@pytest.mark.parametrize("inbox_type", sorted(INBOX_TYPES))
def test_inbox_payload_has_the_contracts_fields(document: dict[str, Any], inbox_type: str) -> None:
    schema = payload(document, messages(document, "ledger.inbox")[inbox_type])
    fields = INBOX_TYPES[inbox_type]
    required = {*COMMON_REQUIRED, *(f for f in fields if not f.endswith("?"))}
    optional = {"source", *(f.rstrip("?") for f in fields if f.endswith("?"))}
    assert set(schema["required"]) == required
    assert set(schema["properties"]) == required | optional
    assert schema["additionalProperties"] is False
    assert schema["properties"]["type"]["const"] == inbox_type


@pytest.mark.parametrize("inbox_type", sorted(INBOX_TYPES))
def test_inbox_key_is_the_contracts_key(document: dict[str, Any], inbox_type: str) -> None:
    key = kafka_key(document, messages(document, "ledger.inbox")[inbox_type])
    assert key["type"] == "string"
    assert f"`{KEY_FIELDS.get(inbox_type, 'account_id')}`" in key["description"]


@pytest.mark.parametrize("inbox_type", sorted(INBOX_TYPES))
def test_inbox_payload_matches_the_decoders_json_schema(
    document: dict[str, Any], inbox_type: str
) -> None:
    """The document and `ledger schema inbox` (the decoder's own schema) agree on fields."""
    code_schema = inbox_json_schema()
    (expected,) = (
        definition
        for definition in code_schema["$defs"].values()
        if definition.get("properties", {}).get("type", {}).get("enum") == [inbox_type]
    )
    schema = payload(document, messages(document, "ledger.inbox")[inbox_type])
    assert set(schema["properties"]) == set(expected["properties"])
    assert set(schema["required"]) == set(expected["required"])
    for field in DECIMAL_FIELDS & set(expected["properties"]):
        assert expected["properties"][field]["type"] == "string"


def decimal_patterns(document: dict[str, Any]) -> dict[str, re.Pattern[str]]:
    """Every decimal field's pattern, by `type.field`."""
    found: dict[str, re.Pattern[str]] = {}
    for name, message in messages(document, "ledger.inbox").items():
        for field, node in payload(document, message)["properties"].items():
            if field in DECIMAL_FIELDS:
                schema = resolve(document, node)
                assert schema["type"] == "string", f"{name}.{field} must be a string"
                found[f"{name}.{field}"] = re.compile(schema["pattern"])
    return found


def test_every_amount_is_a_string_of_plain_decimal_form(document: dict[str, Any]) -> None:
    patterns = decimal_patterns(document)
    assert set(patterns) == {
        f"{name}.{field.rstrip('?')}"
        for name, fields in INBOX_TYPES.items()
        for field in fields
        if field.rstrip("?") in DECIMAL_FIELDS
    }
    refused = ["1e5", "1E-8", "NaN", "Infinity", "+1", ".5", "1.", "01", " 1", "1,5", ""]
    for where, pattern in patterns.items():
        assert pattern.match("0.25"), where
        assert pattern.match("68307.5"), where
        for text in refused:
            assert not pattern.match(text), f"{where} accepts {text!r}"
        assert not pattern.match("1000000000000000000"), f"{where} accepts 10^18"


def test_positive_amounts_refuse_zero_and_only_rates_may_be_negative(
    document: dict[str, Any],
) -> None:
    patterns = decimal_patterns(document)
    for where, pattern in patterns.items():
        assert bool(pattern.match("-0.0001")) == (where == "funding_rate.rate"), where
    for where in ("deposit.amount", "spot_trade.quantity", "mark_price.price"):
        assert not patterns[where].match("0"), where
        assert not patterns[where].match("0.00"), where
        assert patterns[where].match("0.00000001"), where
    assert patterns["spot_trade.fee"].match("0")


def test_examples_obey_their_message_schemas(document: dict[str, Any]) -> None:
    inbox = messages(document, "ledger.inbox")
    checked = 0
    for name, message in inbox.items():
        schema = payload(document, message)
        assert message.get("examples"), f"{name} has no example"
        for example in message["examples"]:
            record = example["payload"]
            assert record["type"] == name
            assert set(schema["required"]) <= set(record), name
            assert set(record) <= set(schema["properties"]), name
            for field, value in record.items():
                field_schema = resolve(document, schema["properties"][field])
                assert isinstance(value, str), f"{name}.{field}: every inbox value is a string"
                if "pattern" in field_schema:
                    assert re.match(field_schema["pattern"], value), f"{name}.{field}={value}"
                if "enum" in field_schema:
                    assert value in field_schema["enum"]
            checked += 1
    assert checked >= len(INBOX_TYPES)


def test_every_journal_type_is_a_message_with_the_common_fields_and_append_only_topic(
    document: dict[str, Any],
) -> None:
    journal = channel(document, "ledger.events")
    found = messages(document, "ledger.events")
    assert set(found) == {event.__struct_config__.tag for event in get_args(JournalEventType)}
    for name, message in found.items():
        schema = payload(document, message)
        assert set(JOURNAL_FIELDS) <= set(schema["properties"]), name
        assert set(JOURNAL_FIELDS) - {"account_id"} <= set(schema["required"]), name
        assert schema["properties"]["type"]["const"] == name
        # A newer ledger may add optional fields: the schema stays open to them.
        assert schema["additionalProperties"] is True, name
        assert set(message["headers"]["properties"]) == {"seq", "type", "hash"}, name
    binding = journal["bindings"]["kafka"]
    assert binding["partitions"] == 1
    assert binding["topicConfiguration"] == JOURNAL_TOPIC_CONFIG


def test_rejects_carry_reason_origin_and_original_value(document: dict[str, Any]) -> None:
    (reject,) = messages(document, "ledger.rejects").values()
    schema = payload(document, reject)
    # The ledger writes every field of a reject, null where it has no value.
    assert set(REJECT_FIELDS) <= set(schema["required"])
    encodings = resolve(document, schema["properties"]["value_encoding"])["enum"]
    assert sorted(encodings) == ["base64", "utf-8"]
    (example,) = reject["examples"]
    assert set(example["payload"]) == set(schema["required"])


def test_inbox_examples_are_accepted_by_the_decoder(document: dict[str, Any]) -> None:
    policy = load_policy(None)
    for name, message in messages(document, "ledger.inbox").items():
        for example in message["examples"]:
            record = decode_inbox(json.dumps(example["payload"]).encode(), policy)
            assert record.event_id == example["payload"]["event_id"], name


def test_the_reject_example_is_what_the_decoder_says(document: dict[str, Any]) -> None:
    (reject,) = messages(document, "ledger.rejects").values()
    (example,) = reject["examples"]
    with pytest.raises(Refusal) as refused:
        decode_inbox(example["payload"]["value"].encode(), load_policy(None))
    assert refused.value.reason_code == example["payload"]["reason_code"]
    assert refused.value.detail == example["payload"]["detail"]


def test_the_upstream_guides_kcat_lines_are_accepted_and_keyed_by_contract() -> None:
    guide = (DOCS / "upstream.md").read_text(encoding="utf-8")
    block = guide.split("-K '|'", 1)[1].split("<<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
    lines = block.splitlines()
    assert len(lines) >= 3
    policy = load_policy(None)
    for line in lines:
        key, value = line.split("|", 1)
        record = json.loads(value)
        decode_inbox(value.encode(), policy)
        key_field = KEY_FIELDS.get(record["type"], "account_id")
        assert key == record[key_field], line


def test_the_checkpoint_payload_is_what_the_ledger_signs(document: dict[str, Any]) -> None:
    (message,) = messages(document, "ledger.checkpoints").values()
    schema = payload(document, message)
    key = Ed25519PrivateKey.generate()
    written = json.loads(sign_checkpoint(7, "a" * 64, "2026-11-24T00:00:00Z", key))
    assert set(schema["required"]) == set(schema["properties"]) == set(written)
    assert schema["additionalProperties"] is False
    assert set(message["headers"]["properties"]) == {"number", "seq"}
