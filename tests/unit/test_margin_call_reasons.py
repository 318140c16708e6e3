"""An account's open margin call says why it was issued wherever the account's figures are
shown: `ledger query margin ID` and the API's `GET /accounts/{id}/margin` (docs/api.md,
"Margin calls"), now and as of a past position. A limit call stands on an account whose
status is `healthy`; its trigger is the reason the risk officer reads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from app.api import create_app
from app.cli import main
from ledger.adopted_policies import AdoptedPolicies
from ledger.policy import load_policy
from ledger.store import LedgerStore
from tests.api_security import AUDITOR, api_security
from tests.unit.test_margin_call_triggers import two_calls

# The calls of `two_calls`, as an account's figures show them at the journal's end (BTC
# at 36,000): C1 healthy (equity 33,970 above 32,400) with its credit-limit call of
# 20,030 - 15,000 = 5,030.00; C2 in margin call for 21,600 - 21,000 = 600.00.
EXPECTED_AT_END = {
    "C1": ("healthy", "33970.00000000", "5030.00", "credit_limit_exceeded"),
    "C2": ("margin_call", "21000.00000000", "600.00", "below_maintenance_requirement"),
}


def _shown(document: dict[str, Any]) -> tuple[str, str, str, str]:
    call = document["margin_call"]
    return (document["status"], document["equity"], call["amount"], call["trigger"])


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    two_calls(url)
    return url


def _issue_seq(url: str, account_id: str) -> int:
    """The seq of the account's margin_call_issued."""
    with LedgerStore.open(url, read_only=True) as store:
        for entry in store.iter_journal():
            event = json.loads(entry.record)
            if event["type"] == "margin_call_issued" and event["account_id"] == account_id:
                return int(event["seq"])
    raise AssertionError(f"no margin call of {account_id}")


def _query(url: str, account_id: str, capsys: pytest.CaptureFixture[str], *as_of: str) -> Any:
    arguments = ["--store", url, "query", "margin", account_id, "--format", "json", *as_of]
    assert main(arguments) == 0
    return json.loads(capsys.readouterr().out)


def test_query_margin_names_the_open_calls_trigger(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for account_id, expected in EXPECTED_AT_END.items():
        assert _shown(_query(url, account_id, capsys)) == expected
    # Right after C1's call (BTC at 60,000): equity 69,970 above 54,000, healthy, called.
    at_issue = _query(url, "C1", capsys, "--as-of", str(_issue_seq(url, "C1")))
    assert _shown(at_issue) == ("healthy", "69970.00000000", "5030.00", "credit_limit_exceeded")


@pytest.fixture
def client(url: str) -> Iterator[TestClient[Litestar]]:
    with (
        LedgerStore.open(url, read_only=True) as store,
        TestClient(create_app(store, AdoptedPolicies.of(load_policy(None)), api_security())) as api,
    ):
        api.headers.update(AUDITOR)
        yield api


def test_the_apis_margin_names_the_open_calls_trigger_now_and_as_of(
    url: str, client: TestClient[Litestar], capsys: pytest.CaptureFixture[str]
) -> None:
    for account_id, expected in EXPECTED_AT_END.items():
        response = client.get(f"/accounts/{account_id}/margin")
        assert response.status_code == 200
        assert _shown(response.json()) == expected
    # As of C1's call, from the accounts' history kept with the stored views.
    views = str(Path(url.removeprefix("sqlite:///")).parent / "margin-calls.txt")
    assert main(["--store", url, "report", "margin-calls", "--out", views]) == 0
    capsys.readouterr()
    seq = _issue_seq(url, "C1")
    response = client.get("/accounts/C1/margin", params={"as_of": seq})
    assert response.status_code == 200
    assert _shown(response.json()) == (
        "healthy",
        "69970.00000000",
        "5030.00",
        "credit_limit_exceeded",
    )
