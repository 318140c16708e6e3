"""Views built by older code in PostgreSQL, without the margin-calls trigger columns, are
rebuilt from the journal (tests/unit/test_margin_call_triggers.py does SQLite)."""

from __future__ import annotations

import pytest

from tests.unit.test_margin_call_triggers import check_older_views_are_rebuilt

pytestmark = pytest.mark.integration


def test_postgres_views_of_older_code_are_rebuilt_with_the_trigger_columns(
    pg_schema_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    check_older_views_are_rebuilt(pg_schema_url, capsys)
