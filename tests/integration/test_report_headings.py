"""The report's view tables in a real headless Chromium: a heading may wrap to let every
column fit, but only between the words of its name (after an underscore), never inside one.

`overflow-wrap: anywhere` on the headings broke them anywhere: the demo's liquidations table
read 'aut' 'o_de' 'lev' 'er' 'age' 'd' for `auto_deleveraged` and 'bad' '_de' 'bt_l' 'oan'.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.html_report import STYLE, Row, view_table
from projections.tables import TABLES_BY_VIEW
from tests.integration.test_report_browser import laid_out_dom

report_width_px = 1400  # the window the report's browser test lays the report out in

# Each heading's characters after which the line changed, but for an underscore.
_BROKEN_HEADINGS_SCRIPT = """<script>
const broken = [];
for (const heading of document.querySelectorAll("th")) {
  const text = heading.textContent;
  const range = document.createRange();
  let top = null;
  let offset = 0;
  for (const node of [...heading.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE)) {
    for (let i = 0; i < node.length; i++, offset++) {
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      const at = Math.round(range.getBoundingClientRect().top);
      if (top !== null && at !== top && text[offset - 1] !== "_") broken.push(text);
      top = at;
    }
  }
}
document.body.setAttribute("data-broken", [...new Set(broken)].join(" "));
document.body.setAttribute("data-headings", document.querySelectorAll("th").length);
</script>"""


def _liquidation_row() -> Row:
    """A liquidations row as the report shows it: every figure wide, as in the demo."""
    row: Row = {}
    for column in TABLES_BY_VIEW["liquidations"].columns:
        if column.kind == "decimal":
            row[column.name] = "-1234567.89"
        elif column.kind == "integer":
            row[column.name] = 57411
        else:
            row[column.name] = "below_liquidation_requirement"
    row["liquidation_id"] = "sim2-38826:liquidation:C000061"
    row["triggered_at"] = "2026-11-04T13:00:00Z"
    return row


@pytest.mark.integration
def test_a_view_tables_headings_break_only_between_words(tmp_path: Path) -> None:
    table = view_table("liquidations", [_liquidation_row()], lambda _asset: 2)
    page = tmp_path / "table.html"
    page.write_text(
        f"<!DOCTYPE html><html><head><style>{STYLE}</style></head>"
        f"<body>{table}{_BROKEN_HEADINGS_SCRIPT}</body></html>",
        encoding="utf-8",
    )
    dom = laid_out_dom(page, report_width_px, 1000)
    body = re.search(r'<body data-broken="([^"]*)" data-headings="(\d+)"', dom)
    assert body is not None, dom[-2000:]
    assert int(body.group(2)) == len(TABLES_BY_VIEW["liquidations"].columns)
    assert body.group(1) == ""
