"""The one log line format of the ledger's processes: `ledger` commands, `ledger run` and
its relay process write the same key=value lines to stderr."""

import logging
import sys

LOG_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)
