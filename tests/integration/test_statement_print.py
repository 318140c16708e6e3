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
from tests.integration.test_report_browser import ARTEFACTS, CHROMIUM_FLAGS, chromium
from tests.ledger_scenario import Scenario

A4_POINTS = (595.28, 841.89)  # float-ok: PDF page sizes in points, not money
points_tolerance = 1.0
chromium_print_timeout_s = 120
_MEDIA_BOX = re.compile(rb"/MediaBox\s*\[\s*([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s*\]")


def _statement(tmp_path: Path) -> Path:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    s = Scenario(url)
    s.mark("BTC", "60000")
    s.mark("BTC-PERP", "60000")
    s.open("C-1001")
    s.deposit("C-1001", "BTC", "2")
    s.deposit("C-1001", "USD", "25000")
    s.send("loan_draw_requested", account_id="C-1001", amount="15000")
    s.send(
        "perp_trade",
        account_id="C-1001",
        trade_id="t1",
        market="BTC-PERP",
        side="buy",
        quantity="0.5",
        price="60000",
        fee="3",
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
