"""`ledger run` and `ledger publish`: the commands that talk to Kafka.

Registered by `app.cli` (it discovers `app.kafka_commands.register`). aiokafka is
imported inside the handlers only, so every other command starts without it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.commands import (
    EXIT_OK,
    EXIT_REFUSED,
    CommandError,
    checkpoint_key_env,
    make_default_store_folder,
    policy_of,
    port_max,
    require_file,
    snapshot_events_setting,
    standard_input,
)
from consumers.health import health_port_default
from ledger import checkpoints
from ledger.identifiers import is_ascii_number
from ledger.limits import inbox_record_bytes_max
from ledger.store import StoreUrlError

health_port_env = "LEDGER_HEALTH_PORT"
drain_timeout_env = "LEDGER_DRAIN_TIMEOUT"
broker_wait_env = "LEDGER_BROKER_WAIT"
checkpoint_interval_env = "LEDGER_CHECKPOINT_INTERVAL"
health_host_env = "LEDGER_HEALTH_HOST"
# Loopback unless told otherwise: a container sets LEDGER_HEALTH_HOST=0.0.0.0 for its probe.
health_host_default = "127.0.0.1"


class _ClientRefusal(logging.Handler):
    """The Kafka client's reason for a broker that answered and refused: wrong SCRAM
    credentials or a certificate not trusted. The client logs it and then raises only
    'Unable to bootstrap', which read as a broker that is down."""

    _REFUSALS = ("SaslAuthenticationFailed", "CERTIFICATE_VERIFY_FAILED", "SSL")

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.detail: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(refusal in message for refusal in self._REFUSALS):
            self.detail = message.split(": ", 1)[-1]


@contextmanager
def broker_faults(bootstrap: str, *, client_logs: bool = False) -> Iterator[None]:
    """A broker that cannot be reached, or a topic that is missing, is one line and
    exit status 1, never a traceback. A command (not the service) also keeps the Kafka
    client's own connection errors out of stderr unless `client_logs`: that one line
    says it all."""
    from aiokafka.errors import (  # noqa: PLC0415 - only Kafka commands load it
        ClusterAuthorizationFailedError,
        GroupAuthorizationFailedError,
        KafkaConnectionError,
        KafkaError,
        TopicAuthorizationFailedError,
        TransactionalIdAuthorizationFailed,
        UnknownTopicOrPartitionError,
    )

    not_allowed = (
        ClusterAuthorizationFailedError,
        GroupAuthorizationFailedError,
        TopicAuthorizationFailedError,
        TransactionalIdAuthorizationFailed,
    )

    client_log = logging.getLogger("aiokafka")
    level, propagate = client_log.level, client_log.propagate
    refusal = _ClientRefusal()
    client_log.addHandler(refusal)
    if not client_logs:
        client_log.setLevel(logging.ERROR)
        client_log.propagate = False  # the one line below says it all
    try:
        yield
    except KafkaConnectionError as error:
        if refusal.detail is not None:
            raise CommandError(
                f"the Kafka broker at {bootstrap} refused the connection: {refusal.detail} "
                "(check LEDGER_KAFKA_USERNAME, LEDGER_KAFKA_PASSWORD_FILE and "
                "LEDGER_KAFKA_CA_FILE: docs/security.md)",
                EXIT_REFUSED,
            ) from error
        # The client's text is a repr of its address list: say what it means instead.
        raise CommandError(
            f"the Kafka broker at {bootstrap} cannot be reached: no broker answered "
            "(is it running, and are the address and port right?)",
            EXIT_REFUSED,
        ) from error
    except UnknownTopicOrPartitionError as error:
        # Upstream's publish before the ledger ever ran, on a broker where upstream may not
        # create topics: '[Error 3] UnknownTopicOrPartitionError' said nothing of the cause.
        raise CommandError(
            f"the Kafka broker at {bootstrap} has no such topic, and this principal may not "
            "create it: `ledger run` creates the ledger's topics when it first starts, or an "
            "administrator makes them (docs/security.md)",
            EXIT_REFUSED,
        ) from error
    except not_allowed as error:
        # The reader's credentials given to `ledger publish` said only
        # '[Error 31] ClusterAuthorizationFailedError'.
        raise CommandError(
            f"the Kafka broker at {bootstrap} does not allow this principal to do that "
            f"({type(error).__name__}): its ACLs are for another use (check "
            "LEDGER_KAFKA_USERNAME: docs/security.md lists each principal's rights)",
            EXIT_REFUSED,
        ) from error
    except KafkaError as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CommandError(
            f"the Kafka broker at {bootstrap} cannot be used: {detail}", EXIT_REFUSED
        ) from error
    finally:
        client_log.removeHandler(refusal)
        client_log.setLevel(level)
        client_log.propagate = propagate


def _run(args: argparse.Namespace) -> int:
    # Until the service takes SIGTERM (run_service), it stops a start as Ctrl-C does
    # (status 0, app.cli), instead of killing the process mid-start.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    from consumers.exit_status import EXIT_BROKER_UNREACHABLE  # noqa: PLC0415
    from consumers.service import (  # noqa: PLC0415
        BrokerUnreachable,
        HealthAddressRefused,
        ServiceSettings,
        broker_wait_default_s,
        run_service,
        shutdown_drain_timeout_s,
    )
    from consumers.topics import TopicNames, TopicsNotOurs, require_bootstrap  # noqa: PLC0415

    require_bootstrap(args.bootstrap)  # before the store is opened or made
    health_port = _port(args.health_port)
    if args.inbox_partitions < 1 or args.replication_factor < 1:
        raise CommandError("--inbox-partitions and --replication-factor must be 1 or more")
    try:
        key = (
            None
            if args.checkpoint_key is None
            else checkpoints.load_private_key(Path(args.checkpoint_key))
        )
    except checkpoints.CheckpointError as error:
        raise CommandError(f"--checkpoint-key: {error}") from error
    settings = ServiceSettings(
        store_url=args.store,
        bootstrap=args.bootstrap,
        names=TopicNames(args.topic_prefix),
        policy=policy_of(args),
        health_host=args.health_host,
        health_port=health_port,
        inbox_partitions=args.inbox_partitions,
        replication_factor=args.replication_factor,
        snapshot_events=snapshot_events_setting(),
        checkpoint_key=key,
        drain_timeout_s=_seconds(
            args.drain_timeout, "--drain-timeout", drain_timeout_env, shutdown_drain_timeout_s
        ),
        broker_wait_s=_seconds(
            args.broker_wait, "--broker-wait", broker_wait_env, broker_wait_default_s
        ),
        checkpoint_interval_s=_seconds(
            args.checkpoint_interval,
            "--checkpoint-interval",
            checkpoint_interval_env,
            checkpoints.checkpoint_interval_default_s,
        ),
    )
    make_default_store_folder(args.store)
    try:
        with broker_faults(args.bootstrap, client_logs=True):
            return asyncio.run(run_service(settings))
    except BrokerUnreachable as error:
        raise CommandError(str(error), EXIT_BROKER_UNREACHABLE) from error
    except (HealthAddressRefused, TopicsNotOurs) as error:
        raise CommandError(str(error)) from error
    except StoreUrlError as error:
        raise CommandError(f"{error}: check --store or LEDGER_STORE") from error


def _seconds(
    text: str | None,
    flag: str,
    env: str,
    default_s: float,  # float-ok: seconds
) -> float:
    """A duration option (or its environment variable) in seconds above 0, else the default.
    Read when `ledger run` starts, so a bad value never breaks another command."""
    if text is None:
        return default_s
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise CommandError(f"{flag} {text!r} (${env}) is not a number of seconds above 0")
    return seconds


def _port(text: str) -> int:
    if not (is_ascii_number(text) and int(text) <= port_max):
        raise CommandError(
            f"--health-port {text!r} (${health_port_env}) is not a port (0 disables)"
        )
    return int(text)


def _publish(args: argparse.Namespace) -> int:
    from consumers.publish import Acknowledged, InboxLines, publish_records  # noqa: PLC0415
    from consumers.topics import TopicNames, ensure_inbox_topic  # noqa: PLC0415

    names = TopicNames(args.topic_prefix)
    lines = InboxLines(send_malformed=args.send_malformed)

    async def publish(stream: Any) -> int:
        await ensure_inbox_topic(
            args.bootstrap,
            names,
            inbox_partitions=args.inbox_partitions,
            replication_factor=args.replication_factor,
        )
        return await publish_records(
            args.bootstrap, names.inbox, lines.records(stream), acknowledged
        )

    acknowledged = Acknowledged()
    with broker_faults(args.bootstrap, client_logs=args.log_level is not None):
        try:
            if args.file == "-":
                sent = asyncio.run(publish(standard_input()))
            else:
                path = Path(args.file)
                require_file(path, "inbox")
                with path.open("rb") as stream:
                    sent = asyncio.run(publish(stream))
        except KeyboardInterrupt:
            print(
                f"ledger: interrupted after the broker acknowledged "
                f"{counted(acknowledged.count, 'record')} to {names.inbox}: publishing the "
                "same records again is safe (the ledger books a repeated event_id with the "
                "same content once)",
                file=sys.stderr,
            )
            raise
    print(f"published {counted(sent, 'record')} to {names.inbox}")
    refusals = [
        (
            lines.oversized,
            f"longer than an inbox record may be ({inbox_record_bytes_max} bytes)",
        ),
        (lines.not_objects, "not a JSON object (--send-malformed sends them anyway)"),
    ]
    for refused, why in refusals:
        if refused.count:
            more = ", ..." if refused.count > len(refused.numbers) else ""
            print(
                f"ledger: {counted(refused.count, 'line')} not sent, {why}: "
                f"line {', '.join(map(str, refused.numbers))}{more}",
                file=sys.stderr,
            )
    return EXIT_REFUSED if lines.oversized.count or lines.not_objects.count else EXIT_OK


def counted(count: int, noun: str) -> str:
    """`1 record`, `2 records`: digits only, as scripts read them."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _topic_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--inbox-partitions",
        type=int,
        default=1,
        help="partitions of a new inbox topic (1: byte-identical re-runs; docs/pipeline.md)",
    )
    parser.add_argument(
        "--replication-factor", type=int, default=1, help="of new topics (3 in production)"
    )


def register(sub: Any) -> None:
    run = sub.add_parser("run", help="the service: inbox from Kafka, journal to Kafka")
    run.add_argument(
        "--health-port",
        default=os.environ.get(health_port_env) or str(health_port_default),
        help=f"GET /health on this port (0 disables; ${health_port_env})",
    )
    run.add_argument(
        "--health-host",
        default=os.environ.get(health_host_env) or health_host_default,
        help=f"address the health endpoint binds (${health_host_env})",
    )
    run.add_argument(
        "--drain-timeout",
        default=os.environ.get(drain_timeout_env) or None,
        help="seconds from SIGTERM to exit, at most (default 30): the batch in hand is "
        f"finished and the relays publish what they can meanwhile (${drain_timeout_env})",
    )
    run.add_argument(
        "--broker-wait",
        default=os.environ.get(broker_wait_env) or None,
        help="seconds to wait at start for the Kafka broker to answer (default 60); then "
        f"one line naming it and exit status 6 (${broker_wait_env})",
    )
    run.add_argument(
        "--checkpoint-key",
        default=os.environ.get(checkpoint_key_env) or None,
        help="Ed25519 private key (PEM) to sign a checkpoint of the journal's end with, kept "
        f"in the store and on <prefix>.checkpoints; none: no checkpoints (${checkpoint_key_env})",
    )
    run.add_argument(
        "--checkpoint-interval",
        default=os.environ.get(checkpoint_interval_env) or None,
        help=f"seconds between signed checkpoints (default "
        f"{checkpoints.checkpoint_interval_default_s:g}), each taken when the journal moved "
        f"(${checkpoint_interval_env})",
    )
    _topic_options(run)
    run.set_defaults(handler=_run)

    publish = sub.add_parser("publish", help="send JSON-lines inbox records to the inbox topic")
    publish.add_argument("file", help="a JSON-lines file, or - for stdin")
    publish.add_argument(
        "--send-malformed",
        action="store_true",
        help="send lines that are not JSON objects too (without a key), to exercise the "
        "ledger's rejects; by default they are refused and counted (exit status 1)",
    )
    _topic_options(publish)
    publish.set_defaults(handler=_publish)
