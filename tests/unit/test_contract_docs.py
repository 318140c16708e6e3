"""The contract documents of docs/ are what the code generates, and every field, record type
and reason code has a meaning written for its readers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from app import contract_docs
from app.api import openapi_schema
from app.cli import build_parser
from ledger.inbox import decode_inbox
from ledger.policy import load_policy
from ledger.rejections import ReasonCode

REPOSITORY = Path(__file__).resolve().parents[2]
DOCS = REPOSITORY / "docs"


def test_the_generated_documents_are_what_the_code_generates() -> None:
    stale = [
        str(path.relative_to(REPOSITORY))
        for path in contract_docs.stale_documents(DOCS, build_parser())
    ]
    assert stale == [], f"stale: {stale}; run `make docs` and commit the result"


def test_every_field_type_shape_and_reason_code_has_a_meaning() -> None:
    missing = contract_docs.undocumented()
    assert missing == [], f"add their meaning to app/contract_glossary.py: {missing}"


def test_every_reason_code_is_in_the_events_document() -> None:
    text = (DOCS / "events.md").read_text(encoding="utf-8")
    assert [code for code in ReasonCode if f"| `{code}` |" not in text] == []


def test_the_hashes_are_hex_strings_in_the_events_document_not_decimal_figures() -> None:
    """docs/events.md said `hash` and `prev_hash` were decimal strings (any string with a
    pattern was): a reader told to parse decimal strings as decimals cannot parse a hash."""
    text = (DOCS / "events.md").read_text(encoding="utf-8")
    for field in ("hash", "prev_hash"):
        assert f"| `{field}` | hex string (SHA-256) | yes |" in text
        assert f"| `{field}` | decimal string |" not in text


def test_a_changed_record_makes_the_documents_stale(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    for path in contract_docs.generated_documents(DOCS, build_parser()):
        target = docs / path.relative_to(DOCS)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    events = docs / "events.md"
    events.write_text(events.read_text().replace("| `trade_id` |", "| `trade_ref` |", 1))
    journal_schema = docs / "schemas" / "journal.schema.json"
    journal_schema.write_text("{}\n")
    assert set(contract_docs.stale_documents(docs, build_parser())) == {events, journal_schema}
    contract_docs.write_documents(docs, build_parser())
    assert contract_docs.stale_documents(docs, build_parser()) == []


def test_the_inbox_schema_refuses_what_the_decoder_refuses() -> None:
    """The published patterns give the decoder's form rules: zero is no positive amount."""
    schema = json.loads((DOCS / "schemas" / "inbox.schema.json").read_text())
    pattern = schema["$defs"]["Deposit"]["properties"]["amount"]["pattern"]
    for text, accepted in [("0.25", True), ("0", False), ("0.00", False), ("1e5", False)]:
        assert bool(re.match(pattern, text)) is accepted, text
    record = b'{"event_id":"d","type":"deposit","occurred_at":"2026-11-24T00:00:00Z",'
    record += b'"account_id":"C-1","asset":"USD","amount":"0.25"}'
    assert decode_inbox(record, load_policy(None)).event_id == "d"


def test_the_openapi_document_is_what_the_api_serves() -> None:
    document = json.loads((DOCS / "openapi.json").read_text(encoding="utf-8"))
    assert document == json.loads(json.dumps(openapi_schema()))
    assert {"/accounts/{account_id}/margin", "/health", "/metrics"} <= set(document["paths"])


def test_ledger_schema_prints_the_documents_text() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "app", "schema", "journal"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed == (DOCS / "schemas" / "journal.schema.json").read_text(encoding="utf-8")


def test_the_openapi_document_gives_each_answers_schema() -> None:
    document = json.loads((DOCS / "openapi.json").read_text(encoding="utf-8"))
    schemas = document["components"]["schemas"]
    margin = schemas["MarginDocument"]
    assert {"equity", "margin_level", "status", "positions"} <= set(margin["required"])
    answers = {
        path: operation["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        for path, operation in document["paths"].items()
        if "get" in operation and path != "/metrics"
    }
    assert answers["/accounts/{account_id}/margin"] == {
        "$ref": "#/components/schemas/MarginDocument"
    }
    assert answers["/reports/{view}"] == {"$ref": "#/components/schemas/ViewDocument"}
