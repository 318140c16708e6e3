"""docs/events.md "The digests", read literally: an auditor's own code recomputes every
`input_digest` and the policy's `digest` from the docs alone (the Python given there, on
the JSON Schema of docs/schemas/), without any part of the ledger."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from app.simulation import simulate
from ledger import journal_events as je
from ledger.inbox import decode_digested
from ledger.policy import load_policy
from ledger.rejections import Refusal
from tests.ledger_scenario import Scenario

DOCS = Path(__file__).parents[2] / "docs"
GOLDEN_INBOX = Path(__file__).parents[1] / "golden" / "crash_scenario.inbox.jsonl"
POLICY = load_policy(None)
SEED = 7
Recipe = Callable[[dict[str, Any], dict[str, Any]], str]


def _documented_recipe() -> Recipe:
    text = (DOCS / "events.md").read_text("utf-8")
    section = text.split("**The digests.**", 1)
    assert len(section) == 2, "docs/events.md lost its section on the digests"
    found = re.search(r"```python\n(.*?)```", section[1], re.DOTALL)
    assert found is not None, "docs/events.md's digests section lost its Python"
    namespace: dict[str, Any] = {}
    exec(found.group(1), namespace)  # noqa: S102  # the docs' own code, as an auditor runs it
    recipe: Recipe = namespace["input_digest"]
    return recipe


@pytest.fixture(scope="module")
def recipe() -> Recipe:
    return _documented_recipe()


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DOCS / "schemas" / "inbox.schema.json").read_bytes())
    return loaded


def test_the_documented_recipe_gives_the_digest_of_every_record_decided(
    recipe: Recipe, schema: dict[str, Any]
) -> None:
    """The golden crash scenario and three simulated days (every inbox type the simulator
    writes, the refused records left out: they have no digest in the journal)."""
    lines = GOLDEN_INBOX.read_bytes().splitlines() + list(simulate(SEED, 20, 3))
    types = set()
    for raw in lines:
        try:
            digest = decode_digested(raw, POLICY).digest
        except Refusal:
            continue
        record = json.loads(raw)
        types.add(record["type"])
        assert recipe(record, schema) == digest, record
    assert len(types) >= 12, types


@pytest.mark.parametrize(
    ("record", "same_as"),
    [
        (  # trailing zeros, an offset, a left-out default, a source
            {"type": "account_opened", "event_id": "a1", "account_id": "C1",
             "occurred_at": "2026-11-24T08:00:00+08:00", "investor_class": "retail"},
            {"type": "account_opened", "event_id": "a1", "account_id": "C1",
             "occurred_at": "2026-11-24T00:00:00Z", "investor_class": "retail",
             "credit_limit": "0.00", "source": None},
        ),
        (  # a negative zero rate, microseconds, a lower-case zone letter
            {"type": "funding_rate", "event_id": "f1", "market": "BTC-PERP", "rate": "-0.000",
             "funding_time": "2026-11-24t08:00:00.250z", "occurred_at": "2026-11-24T08:00:01Z",
             "source": "venue ü"},
            {"type": "funding_rate", "event_id": "f1", "market": "BTC-PERP", "rate": "0",
             "funding_time": "2026-11-24T08:00:00.25Z", "occurred_at": "2026-11-24T08:00:01Z",
             "source": "venue ü"},
        ),
        (  # more than 28 significant digits: rounded half-even to 28 first
            {"type": "mark_price", "event_id": "m1", "instrument": "BTC",
             "price": "123456789012345678.123456789050", "occurred_at": "2026-11-24T00:00:00Z"},
            {"type": "mark_price", "event_id": "m1", "instrument": "BTC",
             "price": "123456789012345678.123456789", "occurred_at": "2026-11-24T00:00:00Z"},
        ),
        (  # a whole number written with a point and zeros
            {"type": "deposit", "event_id": "d1", "account_id": "C1", "asset": "USD",
             "amount": "100.00", "occurred_at": "2026-11-24T00:00:00Z", "reference": "bank 1"},
            {"type": "deposit", "event_id": "d1", "account_id": "C1", "asset": "USD",
             "amount": "100", "occurred_at": "2026-11-24T00:00:00Z", "reference": "bank 1"},
        ),
    ],
)  # fmt: skip
def test_the_documented_recipe_gives_one_digest_to_one_content_written_two_ways(
    recipe: Recipe, schema: dict[str, Any], record: dict[str, Any], same_as: dict[str, Any]
) -> None:
    digest = decode_digested(json.dumps(record).encode(), POLICY).digest
    assert digest == decode_digested(json.dumps(same_as).encode(), POLICY).digest
    assert recipe(record, schema) == digest
    assert recipe(same_as, schema) == digest


def test_a_journals_policy_digest_is_the_sha256_of_the_policy_files_bytes() -> None:
    s = Scenario()
    s.mark("BTC", "60000")
    (adopted,) = s.events("policy_adopted")
    document = resources.files("ledger").joinpath("policies", "demo.toml").read_bytes()
    assert adopted["digest"] == hashlib.sha256(document).hexdigest()
    assert adopted["version"] == POLICY.version
    assert je.PolicyAdopted.__struct_config__.tag == "policy_adopted"
