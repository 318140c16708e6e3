"""The Kafka client's repeated lines are written once a minute, with a count, while the
ledger's own lines all pass: a broker restart must not bury the log."""

from __future__ import annotations

import logging
import subprocess
import sys

from consumers.log_format import RepeatedClientLines, client_line_repeat_s

CLIENT_FLOOD = """
import logging
from consumers.log_format import configure_logging
configure_logging("INFO")
client = logging.getLogger("aiokafka.consumer.fetcher")
for _ in range(500):
    logging.getLogger("aiokafka").error("Unable connect to node with id %s", 1)
    client.error("Failed fetch messages from 1: NodeNotReadyError")
for _ in range(2):
    logging.getLogger("consumers.service").info("progress seq=7")
"""


def test_a_broker_outages_flood_of_client_lines_is_one_line_each() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CLIENT_FLOOD], capture_output=True, text=True, check=True
    )
    lines = [line.split(" level=", 1)[1] for line in done.stderr.splitlines()]
    assert lines == [
        "ERROR logger=aiokafka Unable connect to node with id 1",
        "ERROR logger=aiokafka.consumer.fetcher Failed fetch messages from 1: NodeNotReadyError",
        "INFO logger=consumers.service progress seq=7",
        "INFO logger=consumers.service progress seq=7",
    ]


def _client_line(created: float) -> logging.LogRecord:
    record = logging.LogRecord(
        "aiokafka", logging.ERROR, __file__, 1, "Unable connect to node %s", (1,), None
    )
    record.created = created
    return record


def test_the_next_line_after_the_interval_says_how_many_were_held_back() -> None:
    lines = RepeatedClientLines()
    written = [
        record.getMessage()
        for record in map(_client_line, [0.0, 1.0, 2.0, client_line_repeat_s, 61.0, 200.0])
        if lines.filter(record)
    ]
    assert written == [
        "Unable connect to node 1",
        "Unable connect to node 1 (and 2 alike held back since the last one)",
        "Unable connect to node 1 (and 1 alike held back since the last one)",
    ]
