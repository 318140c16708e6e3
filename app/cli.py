"""The `ledger` command (docs/cli.md): settings, sub-commands, one-line errors."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import (
    api_commands,
    commands,
    demo,
    kafka_commands,
    risk_commands,
    statement_commands,
    store_commands,
    view_commands,
)
from consumers.kafka_security import KafkaSecurityError
from consumers.log_format import configure_logging
from consumers.topics import BootstrapError, TopicPrefixError
from ledger import snapshots
from ledger.policy import PolicyError
from ledger.store import InterfaceError, OperationalError, PersistenceError
from ledger.store_privileges import STORE_LAYOUT
from projections import resume

DISTRIBUTION = "collateral-ledger"
DESCRIPTION = """\
An event-sourced collateral and position ledger for Hong Kong licensed virtual-asset
brokers: it decides deposits, withdrawals, margin loans, spot and perpetual trades, marks,
funding and day closes from an inbox (Kafka, or a JSON-lines file), journals every decision
with the inputs it was taken on in a hash chain, and serves the margin figures and the
regulatory views. Settings come from the options below or the environment; they are
accepted before or after the command (`ledger publish FILE --bootstrap HOST:PORT`)."""
EPILOG = "`ledger COMMAND --help` lists a command's options. Documents: docs/cli.md."

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Setting:
    """A setting every command may take: a flag, its environment variable, its default."""

    flag: str
    env: str
    default: str | None
    what: str
    metavar: str
    convert: Callable[[str], Any] = str

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    def help_text(self) -> str:
        default = self.default if self.default is not None else "none"
        return f"{self.what} (env {self.env}; default {default})"

    def value(self) -> Any:
        """The environment's value, else the default, converted."""
        text = os.environ.get(self.env) or self.default
        return None if text is None else self.convert(text)


SETTINGS = (
    Setting("--store", "LEDGER_STORE", commands.DEFAULT_STORE, "event store and views URL", "URL"),
    Setting(
        "--bootstrap", "LEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:9092", "Kafka brokers", "HOST:PORT"
    ),
    Setting("--topic-prefix", "LEDGER_TOPIC_PREFIX", "ledger", "topic name prefix", "PREFIX"),
    Setting(
        "--policy",
        "LEDGER_POLICY",
        None,
        "risk policy TOML file; a reader's: a file or folder, beyond those the store keeps; "
        "none: the demonstration policy",
        "FILE",
        Path,
    ),
    Setting(
        "--log-level",
        "LEDGER_LOG_LEVEL",
        None,
        "log level; none means INFO for `ledger run`, WARNING for the other commands",
        "LEVEL",
    ),
)
# The settings each command uses (all of them for a command not listed).
ALL_SETTINGS = frozenset(setting.flag for setting in SETTINGS)
_STORE = frozenset({"--store", "--policy", "--log-level"})
_KAFKA = frozenset({"--bootstrap", "--topic-prefix", "--log-level"})
COMMAND_SETTINGS: dict[str, frozenset[str]] = {
    "ledger ingest": _STORE,
    "ledger query": _STORE,
    "ledger simulate": frozenset({"--log-level"}),
    "ledger schema": frozenset({"--log-level"}),
    "ledger rejects": _STORE,
    "ledger api": _STORE,
    "ledger api-token": frozenset({"--log-level"}),
    "ledger journal export": _STORE,
    "ledger journal checkpoint": _STORE,  # signs the store's journal: no Kafka
    "ledger report": _STORE,
    "ledger audit verify": _STORE | _KAFKA,
    "ledger audit replay": _STORE,
    "ledger audit explain": _STORE,
    "ledger publish": _KAFKA,
    # Its Kafka topics are new ones of its own (demo-SEED-TIME.*): no --topic-prefix.
    "ledger demo": frozenset({"--bootstrap", "--policy", "--log-level"}),
    "ledger check": _STORE,
    "ledger stress": _STORE,
    "ledger statements daily": _STORE,
    "ledger statements monthly": _STORE,
    "ledger store init": _STORE,
    "ledger store snapshot": frozenset({"--store", "--log-level"}),  # applies, decides nothing
    "ledger inbox skip": _STORE,  # the position names its topic itself
}


def _settings(parser: argparse.ArgumentParser) -> None:
    for setting in SETTINGS:
        parser.add_argument(
            setting.flag,
            dest=setting.dest,
            default=setting.value(),
            type=setting.convert,
            metavar=setting.metavar,
            help=setting.help_text(),
        )


def _leaf_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every parser that runs a command (`ledger report`, `ledger audit verify`, ...)."""
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        yield parser
    for action in subcommands:
        for child in dict.fromkeys(action.choices.values()):
            yield from _leaf_parsers(child)


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Each option's help ends with its default, when it has one."""
    for action in parser._actions:
        if not action.option_strings or action.default in (None, False, argparse.SUPPRESS):
            continue
        if action.help is argparse.SUPPRESS or "default" in (action.help or ""):
            continue
        action.help = (
            f"{action.help} (default {action.default})"
            if action.help
            else (f"default {action.default}")
        )


def _settings_after_the_command(parser: argparse.ArgumentParser) -> None:
    """The settings a command uses, accepted after it too; given there, they win.

    Their default is SUPPRESS: a setting not given after the command keeps the value the
    top-level parser found (before the command, the environment or the default)."""
    for leaf in _leaf_parsers(parser):
        _show_defaults(leaf)
        used = COMMAND_SETTINGS.get(leaf.prog, ALL_SETTINGS)
        group = leaf.add_argument_group("settings")
        for setting in SETTINGS:
            if setting.flag in used:
                group.add_argument(
                    setting.flag,
                    dest=setting.dest,
                    default=argparse.SUPPRESS,
                    type=setting.convert,
                    metavar=setting.metavar,
                    help=setting.help_text(),
                )


def _default_log_level(command: str) -> str:
    # A service's progress, lag and health belong in its log; a command's output is enough.
    return "INFO" if command == "run" else "WARNING"


def registrars() -> list[Callable[[Any], None]]:
    """Every module that adds sub-commands; each imports its heavy parts only when run."""
    return [
        commands.register,
        api_commands.register,
        view_commands.register,
        kafka_commands.register,
        demo.register,
        risk_commands.register,
        statement_commands.register,
        store_commands.register,
    ]


def version_text() -> str:
    """The release, and the three things an upgrade rebuilds when its code changed them
    (docs/operations.md): compare an old and a new version's to know which steps work."""
    return "\n".join(
        [
            f"%(prog)s {importlib.metadata.version(DISTRIBUTION)}",
            STORE_LAYOUT,
            f"book snapshots {snapshots.CODE_DIGEST[:_DIGEST_SHOWN_CHARS]}",
            f"views state {resume.CODE_DIGEST[:_DIGEST_SHOWN_CHARS]}",
        ]
    )


_DIGEST_SHOWN_CHARS = 12  # of a SHA-256: enough to tell two releases apart by eye


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledger",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version_text())
    _settings(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in registrars():
        register(sub)
    _settings_after_the_command(parser)
    # `ledger schema --write-docs` documents this parser (docs/cli.md); the commands' modules
    # cannot import this one, which imports them.
    parser.set_defaults(build_parser=build_parser)
    return parser


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def main(
    argv: Sequence[str] | None = None, *, stopped_while_loading: signal.Signals | None = None
) -> int:
    """Run the command line; `stopped_while_loading` is a stop `app.entry` held while the
    modules loaded, acted on once the command is known."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if stopped_while_loading is not None:
        return _stopped(args.command, stopped_while_loading)
    level = (args.log_level or _default_log_level(args.command)).upper()
    if level not in _LOG_LEVELS:
        print(
            f"ledger: --log-level {args.log_level} is not a level: {', '.join(_LOG_LEVELS)}",
            file=sys.stderr,
        )
        return commands.EXIT_USAGE
    store = getattr(args, "store", None)
    if store is not None and store != store.strip():
        # `LEDGER_STORE="sqlite:///ledger.db "` from an env file named another file, made
        # by a writer as a new store that looks like the right one in every message.
        print(
            f"ledger: --store {store!r} (or LEDGER_STORE) begins or ends with white space: "
            "remove it",
            file=sys.stderr,
        )
        return commands.EXIT_USAGE
    configure_logging(level)
    handler: Handler = args.handler
    try:
        return _handle(handler, args)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return _stopped(args.command, signal.SIGINT)


def _stopped(command: str, signum: signal.Signals) -> int:
    """A stop before the command took its own signal handlers. `ledger run` has decided
    nothing yet: status 0, as for a stop while it starts (docs/pipeline.md). Any other
    command: 130 for a Ctrl-C, and SIGTERM ends it as it always did."""
    if command == "run":
        print("ledger: stopped while starting: nothing was decided yet", file=sys.stderr)
        return commands.EXIT_OK
    if signum == signal.SIGTERM:
        signal.raise_signal(signal.SIGTERM)  # the default action again: the process ends
    return commands.EXIT_INTERRUPTED


def _handle(handler: Handler, args: argparse.Namespace) -> int:
    """Run the command; every fault a person can act on becomes one line and a status."""
    try:
        return handler(args)
    except commands.CommandError as error:
        print(f"ledger: {error}", file=sys.stderr)
        return error.status
    except (PolicyError, KafkaSecurityError, TopicPrefixError, BootstrapError) as error:
        print(f"ledger: {error}", file=sys.stderr)
        return commands.EXIT_USAGE
    except (InterfaceError, OperationalError) as error:
        # The database is down, unreachable or locked by another writer: the person can
        # act on the sentence alone.
        where = commands.without_password(args.store)
        print(f"ledger: the store {where} cannot be reached: {_first_line(error)}", file=sys.stderr)
        return commands.EXIT_REFUSED
    except PersistenceError as error:
        where = commands.without_password(args.store)
        print(f"ledger: the store {where} cannot be used: {_first_line(error)}", file=sys.stderr)
        return commands.EXIT_REFUSED
    except BrokenPipeError:
        raise
    except OSError as error:
        # A file that cannot be read or written: a missing folder, a read-only disk.
        where = f" {error.filename}" if error.filename else ""
        print(f"ledger: cannot use{where}: {error.strerror or error}", file=sys.stderr)
        return commands.EXIT_REFUSED


def _first_line(error: BaseException) -> str:
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__
