"""The `ledger` console script and `python -m app`: the command line of `app.cli`, with a
Ctrl-C while its modules load ending as a Ctrl-C during the command does (exit status 130,
no traceback). Loading them takes about half a second, longer on a busy machine, and an
interrupt then was Python's traceback of whatever module was loading."""

from __future__ import annotations

EXIT_INTERRUPTED = 130  # the shell's status for a command ended by SIGINT (docs/cli.md)


def main() -> int:
    try:
        from app import cli  # noqa: PLC0415 (loaded here, so that Ctrl-C meanwhile is caught)

        return cli.main()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
