"""Files a command writes whole, or not at all.

An output written straight into its file and cut short (a full disk, Ctrl-C, the store
failing mid-journal) left a shorter file that reads as a whole one: an exported journal
that verifies, ends early and says nothing of it, or a report missing its last rows. Each
output is written into a temporary file beside it and renamed over it once complete, so
the file named is the old one or the new one, never part of either; the temporary file is
removed when the writing fails, and the failure names the file the person named (the
command line's one line for a file that cannot be written, exit status 1). A folder of
statements is written the same way, its files moved into the folder once every one of them
is complete. Output to stdout is written in pieces for the same reason (`write_stdout`).
A device or a pipe named as the output (`--out /dev/null`) is written into directly.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Characters per write to stdout: at most 4 bytes each in UTF-8, so a piece always fits the
# 8 KiB buffer of Python's stdout and goes through its flush, which writes on after a short
# write and raises the disk's error.
stdout_piece_chars_max = 1024


def write_stdout(text: str) -> None:
    """`text` on stdout in pieces. Python's stdout took one write larger than its buffer
    that the disk accepted only in part (8 KiB left on it) as written whole: `ledger report
    > file` on a full disk exited 0 with the report cut, where a written file (above) or a
    run of smaller writes said 'No space left on device'."""
    try:
        for start in range(0, len(text), stdout_piece_chars_max):
            sys.stdout.write(text[start : start + stdout_piece_chars_max])
        sys.stdout.flush()
    except BrokenPipeError:
        raise  # the reader left (`| head`): the command line ends quietly
    except OSError as error:
        raise OSError(error.errno, error.strerror or str(error), "stdout") from error


def _partial(path: Path) -> Path:
    """The temporary name beside `path`: hidden, and this process's own."""
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


def _named(error: OSError, partial: Path, path: Path) -> OSError | None:
    """`error` of a write into `partial` (or inside it) as an error of `path`; None for an
    error of anything else the block did."""
    if error.filename is not None and not str(error.filename).startswith(str(partial)):
        return None
    return OSError(error.errno, error.strerror or str(error), str(path))


def _is_stream(path: Path) -> bool:
    """A device or a pipe (`--out /dev/null`, a FIFO): nothing to write whole, and a file
    renamed over it would replace it (run as root, the machine's /dev/null itself)."""
    return path.is_char_device() or path.is_block_device() or path.is_fifo()


@contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """The path to write `path`'s content into; renamed onto `path` when the block ends
    without an exception, removed when it does not. A device or a pipe is written into
    directly."""
    if _is_stream(path):
        yield path
        return
    partial = _partial(path)
    try:
        yield partial
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        named = _named(error, partial, path)
        if named is None:
            raise
        raise named from error
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


@contextmanager
def folder_written_whole(folder: Path) -> Iterator[Path]:
    """A temporary folder inside `folder` to write files into; they are moved into
    `folder` when the block ends without an exception, and the temporary folder removed
    either way."""
    partial = _partial(folder / "output")
    try:
        partial.mkdir()
        yield partial
        for written in sorted(partial.iterdir()):
            written.replace(folder / written.name)
    except OSError as error:
        named = _named(error, partial, folder)
        if named is None:
            raise
        raise named from error
    finally:
        shutil.rmtree(partial, ignore_errors=True)
