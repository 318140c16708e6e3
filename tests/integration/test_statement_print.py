"""A client statement printed to PDF by a real headless Chromium: A4 pages, every one.

The statement of a small hand-made day is written by `ledger statements daily`, then
Chromium prints it (`--print-to-pdf`, as a person's print-to-PDF does); every page of the
PDF must be A4 (595.28 x 841.89 points) and the statement must fit its pages (the PDF is
kept in `out/statement.pdf` for a person to look at).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from app.cli import main
from tests.integration.test_report_browser import ARTEFACTS, CHROMIUM_FLAGS, chromium, laid_out_dom
from tests.ledger_scenario import Scenario

A4_POINTS = (595.28, 841.89)  # float-ok: PDF page sizes in points, not money
points_tolerance = 1.0
chromium_print_timeout_s = 120
_MEDIA_BOX = re.compile(rb"/MediaBox\s*\[\s*([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s*\]")


def _statement(tmp_path: Path, trades: int = 1) -> Path:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    s = Scenario(url)
    s.mark("BTC", "60000")
    s.mark("BTC-PERP", "60000")
    s.open("C-1001")
    s.deposit("C-1001", "BTC", "2")
    s.deposit("C-1001", "USD", "25000")
    s.send("loan_draw_requested", account_id="C-1001", amount="15000")
    for number in range(trades):
        s.send(
            "perp_trade",
            account_id="C-1001",
            trade_id=f"t{number + 1}" if number == 0 else f"venue-2026-11-24:fill:{number:010}",
            market="BTC-PERP",
            side="buy",
            quantity="0.5" if number == 0 else "12.29063552",
            price="60000",
            fee="3" if number == 0 else "421.86",
        )
    s.at(20)
    s.send("day_closed", business_date="2026-11-24")
    s.store.close()
    out = tmp_path / "statements"
    assert (
        main(["--store", url, "statements", "daily", "--date", "2026-11-24", "--out", str(out)])
        == 0
    )
    (page,) = out.glob("statement-*.html")
    return page


@pytest.mark.integration
def test_a_statement_prints_on_a4_pages_in_chromium(tmp_path: Path) -> None:
    page = _statement(tmp_path)
    pdf = tmp_path / "statement.pdf"
    flags = [f for f in CHROMIUM_FLAGS if not f.startswith("--window-size")]
    subprocess.run(
        [chromium(), *flags, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri()],
        capture_output=True,
        timeout=chromium_print_timeout_s,
        check=True,
    )
    content = pdf.read_bytes()
    ARTEFACTS.mkdir(exist_ok=True)
    (ARTEFACTS / "statement.pdf").write_bytes(content)
    boxes = _MEDIA_BOX.findall(content)
    assert boxes, "the PDF has no page"
    for box in boxes:
        width, height = float(box[2]) - float(box[0]), float(box[3]) - float(box[1])
        assert abs(width - A4_POINTS[0]) < points_tolerance, box
        assert abs(height - A4_POINTS[1]) < points_tolerance, box
    # One account, one day: balances, a few movements and the figures fit on two pages.
    assert len(boxes) <= 2


# Marks, after the page has laid out, each figure cell whose text takes more than one line.
_WRAPPED_FIGURES_SCRIPT = """<script>
const wrapped = [...document.querySelectorAll("td.n")].filter((cell) => {
  const range = document.createRange();
  range.selectNodeContents(cell);
  return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size > 1;
});
document.body.setAttribute("data-wrapped", wrapped.map((c) => c.textContent).join(" "));
document.body.setAttribute("data-figures", document.querySelectorAll("td.n").length);
const page = document.documentElement;
document.body.setAttribute("data-overflow", page.scrollWidth - page.clientWidth);
</script>"""
# 210 mm less 12 mm margins each side at 96 px an inch (703), plus the screen's body margins
# (24 px each side: print has none) and a scroll bar.
a4_printable_width_px = 703 + 2 * 24 + 15


@pytest.mark.integration
def test_no_figure_of_a_statement_breaks_across_lines_at_a4_width(tmp_path: Path) -> None:
    """Every cell could break anywhere (overflow-wrap: anywhere), so the long detail column
    squeezed the figures: seq 44547 read '4454' over '7' and a quantity '12.2906355' over '2'
    on the demo's statements, in a browser and in print. Nor may a table be wider than the
    page (print cuts what overflows): the margin figures are one a line."""
    page = _statement(tmp_path, trades=3)
    probe = tmp_path / "probe.html"
    probe.write_text(
        page.read_text(encoding="utf-8").replace("</body>", _WRAPPED_FIGURES_SCRIPT + "</body>")
    )
    dom = laid_out_dom(probe, a4_printable_width_px, 2000)
    body = re.search(
        r'<body data-wrapped="([^"]*)" data-figures="(\d+)" data-overflow="(-?\d+)"',
        dom,
    )
    assert body is not None, dom[-2000:]
    assert int(body.group(2)) > 20  # the movements, collateral and figures were measured
    assert body.group(1) == ""
    assert int(body.group(3)) <= 0
