"""The `ledger` command (INTERFACE.md): settings, sub-commands, one-line errors."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from app import api_commands, commands, demo, kafka_commands, risk_commands, view_commands
from ledger.policy import PolicyError
from ledger.store import InterfaceError, OperationalError

DEFAULT_STORE = "sqlite:///.ledger/ledger.db"

Handler = Callable[[argparse.Namespace], int]


def _settings(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument(
        "--store", default=env("LEDGER_STORE", DEFAULT_STORE), help="event store URL"
    )
    parser.add_argument(
        "--bootstrap", default=env("LEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:9092"), help="Kafka"
    )
    parser.add_argument("--topic-prefix", default=env("LEDGER_TOPIC_PREFIX", "ledger"))
    parser.add_argument("--policy", type=Path, default=_optional_path(env("LEDGER_POLICY")))
    parser.add_argument(
        "--log-level",
        default=env("LEDGER_LOG_LEVEL"),
        help="INFO for `ledger run` (its progress and lag), WARNING for the other commands",
    )


def _default_log_level(command: str) -> str:
    # A service's progress, lag and health belong in its log; a command's output is enough.
    return "INFO" if command == "run" else "WARNING"


def _without_password(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _optional_path(text: str | None) -> Path | None:
    return Path(text) if text else None


def registrars() -> list[Callable[[Any], None]]:
    """Every module that adds sub-commands; each imports its heavy parts only when run."""
    return [
        commands.register,
        api_commands.register,
        view_commands.register,
        kafka_commands.register,
        demo.register,
        risk_commands.register,
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledger", description=__doc__)
    _settings(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in registrars():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=(args.log_level or _default_log_level(args.command)).upper(),
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
        stream=sys.stderr,
    )
    handler: Handler = args.handler
    try:
        return handler(args)
    except (commands.CommandError, PolicyError) as error:
        print(f"ledger: {error}", file=sys.stderr)
        return 2
    except (InterfaceError, OperationalError) as error:
        # The database is down or unreachable: the person can act on the sentence alone.
        where = _without_password(args.store)
        print(f"ledger: the store {where} cannot be reached: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
