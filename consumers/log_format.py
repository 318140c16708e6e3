"""The one log line format of the ledger's processes: `ledger` commands, `ledger run` and
its relay process write the same key=value lines to stderr."""

import logging
import sys

LOG_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
# The Kafka client writes the same line again at most this often (log record time).
client_line_repeat_s = 60.0
# Lines remembered for that; past this many distinct lines the memory starts afresh.
client_lines_remembered_max = 1_000
_CLIENT_LOGGER = "aiokafka"


class RepeatedClientLines(logging.Filter):
    """Writes a line of the Kafka client once per `client_line_repeat_s`, then the next
    one with how many alike it held back.

    The client logs every failed attempt: while a broker restarted for 17 s, `ledger run`
    wrote 2,018 such lines (`Unable connect to node with id 1`, `Failed fetch messages`),
    about a hundred a second, burying the ledger's own lines. The ledger's lines pass
    untouched."""

    def __init__(self) -> None:
        super().__init__()
        self._written: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != _CLIENT_LOGGER and not record.name.startswith(_CLIENT_LOGGER + "."):
            return True
        key = (record.name, record.levelno, record.getMessage())
        last = self._written.get(key)
        if last is not None and record.created - last[0] < client_line_repeat_s:
            self._written[key] = (last[0], last[1] + 1)
            return False
        if len(self._written) >= client_lines_remembered_max:
            self._written.clear()
        self._written[key] = (record.created, 0)
        if last is not None and last[1]:
            record.msg = f"{key[2]} (and {last[1]} alike held back since the last one)"
            record.args = None
        return True


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RepeatedClientLines())
    logging.basicConfig(level=level, format=LOG_FORMAT, handlers=[handler])
