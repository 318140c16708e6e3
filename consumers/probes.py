"""What `ledger run` asks the broker and the store every few seconds, so that /health and
/metrics say at once when either stops answering: the Kafka clients and the store's
connection pool retry by themselves and say nothing of an outage for 10 to 30 s or more,
or ever while nothing is to be decided or published. Each question is the cheapest its
server answers (docs/operations.md "Health"), and an outage and its end are each one log
line."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.protocol.metadata import MetadataRequest

from consumers.inbox import IngestState
from ledger.store import LedgerStore, store_probe_timeout_s

log = logging.getLogger("consumers.service")

broker_probe_interval_s = 5.0
broker_probe_timeout_s = 5.0  # no answer within this: the broker counts as unreachable
# The store's question is cheaper and the writer's pool slower to give up (10 s): asked
# more often, /health says `degraded` within about 4 s of a PostgreSQL outage.
store_probe_interval_s = 2.0

# Metadata of no topic: the brokers and the controller, a few hundred bytes, where the
# consumer's `topics()` asked for every topic of the cluster (thousands on a shared one).
# Never creating a topic by asking: auto-creation is off for this request.
_BROKERS_ONLY = MetadataRequest([], allow_auto_topic_creation=False)


async def ask_broker(consumer: Any) -> Any:
    """Ask the brokers the consumer knows, one after the other, for the metadata of no
    topic; the first answer, or KafkaError when none answers. aiokafka's consumer has no
    public call for one request: its client's `send` is the one its own metadata refresh
    uses."""
    client = consumer._client
    nodes = [broker.nodeId for broker in client.cluster.brokers()]
    for node in nodes:
        try:
            return await client.send(node, _BROKERS_ONLY)
        except KafkaError:
            continue
    raise KafkaConnectionError(f"no broker answered (asked {len(nodes)})")


async def probe_broker(consumer: Any, state: IngestState) -> None:
    """Ask the broker every `broker_probe_interval_s`; `state.broker_healthy` says whether
    it answered within `broker_probe_timeout_s`."""
    while True:
        await asyncio.sleep(broker_probe_interval_s)
        try:
            async with asyncio.timeout(broker_probe_timeout_s):
                await ask_broker(consumer)
        except (KafkaError, TimeoutError) as error:
            if state.broker_healthy:
                log.warning("broker_unreachable error=%s", type(error).__name__)
            state.broker_healthy = False
            continue
        if not state.broker_healthy:
            log.info("broker_answered")
        state.broker_healthy = True


async def probe_store(store: LedgerStore, state: IngestState) -> None:
    """Ask the store every `store_probe_interval_s` (`LedgerStore.answers`, on a connection
    of its own); `state.store_answered` says whether it answered. A question still
    unanswered past its bound counts as no answer; the next waits for it to end, so no
    more than one is ever in flight."""
    while True:
        await asyncio.sleep(store_probe_interval_s)
        question = asyncio.ensure_future(asyncio.to_thread(store.answers))
        done, _ = await asyncio.wait({question}, timeout=store_probe_timeout_s * 2)
        answered = question in done and question.result()
        if answered != state.store_answered:
            if answered:
                log.info("store_answered store=%s", store.describe())
            else:
                log.warning("store_unreachable store=%s", store.describe())
        state.store_answered = answered
        if not done:
            await question
