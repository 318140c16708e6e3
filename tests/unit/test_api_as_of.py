"""`as_of` reads run in a bounded pool of worker processes, beside the API's other answers.

How fast `/health` answers while 50 `as_of` requests are in flight is a benchmark's figure
(`tests/benchmarks/read_bench.py`, a row of `make bench`), not a timing asserted here: these
tests assert what the answers are.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.api import create_app
from app.api_as_of import AsOfReader, AsOfSource, as_of_requests_in_flight_max
from app.commands import ingest_stream
from app.simulation import simulate
from ledger import reporting
from ledger.adopted_policies import AdoptedPolicies
from ledger.application import LedgerApplication
from ledger.policy import load_policy
from ledger.store import LedgerStore
from tests.api_process import ledger_api
from tests.api_security import AUDITOR, api_security

POLICY = load_policy(None)
as_of_requests = 50
health_probes = 9
request_timeout_s = 300.0
requests_sent_s = 0.5


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('as_of') / 'ledger.db'}"
    inbox = b"\n".join(simulate(11, 8, 1))
    with LedgerStore.open(url) as store:
        ingest_stream(LedgerApplication(store, POLICY, snapshot_events=500), io.BytesIO(inbox), "t")
    return url


def _app(store: LedgerStore, url: str) -> Litestar:
    return create_app(store, AdoptedPolicies.of(POLICY), api_security(), AsOfSource(url, None))


async def _probe_health(client: httpx.AsyncClient) -> int:
    return (await client.get("/health")).status_code


@pytest.mark.asyncio
async def test_health_and_50_as_of_requests_in_flight_all_answer_right(
    store_url: str, tmp_path: Path
) -> None:
    with LedgerStore.open(store_url) as store:
        last = store.last_seq()
        client_id = sorted(a.account_id for a in reporting.book_as_of(store, None).clients())[0]
    seqs = [last * (n + 1) // as_of_requests for n in range(as_of_requests)]
    paths = [
        "/reports/margin-clients" if n % 2 else f"/accounts/{client_id}/balances"
        for n in range(as_of_requests)
    ]
    limits = httpx.Limits(max_connections=as_of_requests + 1)
    with ledger_api(store_url, tmp_path / "api.log") as base:
        async with httpx.AsyncClient(
            base_url=base, timeout=request_timeout_s, limits=limits
        ) as client:
            pending = [
                asyncio.create_task(client.get(path, params={"as_of": str(seq)}))
                for path, seq in zip(paths, seqs, strict=True)
            ]
            await asyncio.sleep(requests_sent_s)  # let every request reach the server
            probes = [await _probe_health(client) for _ in range(health_probes)]
            answers: list[httpx.Response] = await asyncio.gather(*pending)
    assert probes == [200] * health_probes
    assert [a.status_code for a in answers] == [200] * as_of_requests
    assert [a.json()["as_of_seq"] for a in answers] == seqs


@pytest.mark.asyncio
async def test_as_of_past_the_bound_is_503_and_bad_as_of_is_400(store_url: str) -> None:
    with LedgerStore.open(store_url) as store:
        app = _app(store, store_url)
        async with AsyncTestClient(app) as client:
            client.headers.update(AUDITOR)
            reader: AsOfReader = app.state.as_of
            bad = await client.get("/reports/margin-clients", params={"as_of": "yesterday"})
            assert bad.status_code == 400
            assert "as_of 'yesterday'" in bad.json()["detail"]
            reader.in_flight = as_of_requests_in_flight_max  # as if that many were running
            busy = await client.get("/reports/margin-clients", params={"as_of": "1"})
            reader.in_flight = 0
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "1"
