"""Views built by older code in PostgreSQL, without the margin-calls trigger columns or the
margin-clients call_trigger, are rebuilt from the journal
(tests/unit/test_margin_call_triggers.py does SQLite)."""

from __future__ import annotations

import pytest

from tests.unit.test_margin_call_triggers import (
    OLDER_CALLS,
    OLDER_CLIENTS,
    OlderTable,
    check_older_views_are_rebuilt,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("older", [OLDER_CALLS, OLDER_CLIENTS], ids=lambda o: o.table.view)
def test_postgres_views_of_older_code_are_rebuilt_with_the_reason_columns(
    pg_schema_url: str, older: OlderTable, capsys: pytest.CaptureFixture[str]
) -> None:
    check_older_views_are_rebuilt(pg_schema_url, older, capsys)
