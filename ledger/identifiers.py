"""The one rule for identifiers, and the one way text from the inbox is shown to a person.

An identifier (`event_id`, `account_id`, `trade_id`, `liquidation_id`, `source`,
`reference`) is compared byte for byte and printed in reports, CSV files and terminals.
So it must be text a person can read and re-type: printable characters only (no control,
format, bidi, separator other than the space, private-use or unassigned code point:
Python's `str.isprintable`), not blank (spaces only), in Unicode NFC, and within its
field's length. Anything else is refused `invalid_identifier` (docs/upstream.md
"Identifiers").

Look-alike letters from other scripts (a Cyrillic A, U+0410, for a Latin A) are printable
NFC text and are accepted: they name a different account, and a report shows them as
they are. An upstream that must prevent such ids restricts its own alphabet.
"""

from __future__ import annotations

import re
import unicodedata

_ESCAPE_ASCII_MAX = 0x7F  # escaped as \xHH
_ESCAPE_BMP_MAX = 0xFFFF  # escaped as \uHHHH; beyond, \UHHHHHHHH
_NUMBER_DIGITS_MAX = 18  # 999,999,999,999,999,999 < 2**63: any seq, offset or port
_FORMULA_STARTS = ("=", "+", "-", "@")  # what spreadsheets read as the start of a formula
_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def is_ascii_number(text: str) -> bool:
    """Whether `text` is a number a person typed (a seq, an offset, a port): ASCII digits
    only, at most 18 of them (a signed 64-bit seq or offset). `str.isdigit` also takes a
    superscript two (U+00B2), which `int` refuses, and Arabic-Indic digits (U+0661 U+0660),
    which `int` reads as 10; `int` refuses more than 4,300 digits."""
    return len(text) <= _NUMBER_DIGITS_MAX and text.isascii() and text.isdigit()


def identifier_problem(text: str) -> str | None:
    """Why `text` is not a valid identifier, as a phrase; None when it is one."""
    if text.isspace():
        # Printable, yet it reads as nothing: `account   is not in the ledger`.
        return "is blank: spaces only"
    if text.isascii() and text.isprintable():
        return None  # the common case: printable ASCII is always NFC
    for position, character in enumerate(text):
        if not character.isprintable():
            return (
                f"holds the unprintable character U+{ord(character):04X} "
                f"({unicodedata.category(character)}) at position {position}"
            )
    if not unicodedata.is_normalized("NFC", text):
        return "is not in Unicode NFC (normalise it before sending)"
    return None


def account_id_problem(account_id: str) -> str | None:
    """Why an account id a person gave (a command's argument, an API path) names no account,
    as a sentence; None when it may name one. An empty or blank id is said to be so, never
    looked up: no inbox record can open such an account."""
    if account_id and not account_id.isspace():
        return None
    what = "blank (spaces only)" if account_id else "empty"
    return f"the account id is {what}: name an account, such as C-1 or platform:house"


def printable(text: str) -> str:
    """`text` safe for a terminal, a table or a CSV cell: each unprintable character is
    written as an escape (`\\x1b`, `\\u202e`), so nothing read from the inbox can move
    the cursor, reorder a line or hide itself."""
    if text.isprintable():
        return text
    return "".join(
        character if character.isprintable() else _escape(character) for character in text
    )


def spreadsheet_cell(text: str) -> str:
    """`text` as a CSV cell: `printable`, and a cell a spreadsheet would run as a formula
    (one beginning `=`, `+`, `-` or `@`: an identifier from the inbox such as
    `=HYPERLINK(...)`) gets a leading apostrophe, so the spreadsheet shows it instead. A
    number (`-5.00`, a balance) is left as it is; JSON and Parquet keep every text exact."""
    cell = printable(text)
    if cell.startswith(_FORMULA_STARTS) and _NUMBER.fullmatch(cell) is None:
        return "'" + cell
    return cell


def _escape(character: str) -> str:
    code = ord(character)
    if code <= _ESCAPE_ASCII_MAX:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= _ESCAPE_BMP_MAX else f"\\U{code:08x}"
