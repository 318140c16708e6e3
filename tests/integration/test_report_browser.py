"""The demo's HTML report, opened in a real headless Chromium.

`ledger demo` writes the report from a small simulated run; Chromium renders it to a
screenshot (kept in `out/report.png` for a person to look at) and dumps the DOM it built,
which must hold the three charts with their data points and figures that equal what the
journal in the demo's store says.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from app import html_report
from ledger import journal_events as je
from ledger import reporting
from ledger.money import quantize
from ledger.policy import load_policy
from ledger.store import LedgerStore

REPOSITORY = Path(__file__).resolve().parents[2]
ARTEFACTS = REPOSITORY / "out"
chromium_install_timeout_s = 900
chromium_run_timeout_s = 120
demo_timeout_s = 300
demo_accounts = 60
demo_days = 3
screenshot_bytes_min = 50_000
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,3000",
)


def chromium() -> str:
    """Debian's `chromium`, installed with apt-get when missing; a clear failure otherwise."""
    found = shutil.which("chromium")
    if found is not None:
        return found
    steps = (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"])
    for step in steps:
        result = subprocess.run(
            step,
            capture_output=True,
            text=True,
            timeout=chromium_install_timeout_s,
            check=False,
            env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        if result.returncode != 0:
            pytest.fail(
                f"chromium is not installed and `{' '.join(step)}` failed "
                f"(exit {result.returncode}); install Debian's chromium package and rerun:\n"
                f"{result.stderr[-2000:]}"
            )
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("apt-get installed chromium but no `chromium` command is on the PATH")
    return found


class Element:
    def __init__(self, tag: str, attributes: dict[str, str], parents: tuple[str, ...]) -> None:
        self.tag = tag
        self.attributes = attributes
        self.parents = parents  # data-chart / data-view names of enclosing elements
        self.text = ""


class DomReader(HTMLParser):
    """Every element of the dumped DOM with its attributes and its direct text."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        names = tuple(
            e.attributes.get("data-chart") or e.attributes.get("data-view") or ""
            for e in self._open
        )
        element = Element(tag, attributes, names)
        self.elements.append(element)
        if tag not in {"meta", "br", "wbr", "img", "input", "link", "polyline", "line"}:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index].tag == tag:
                del self._open[index:]
                return

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1].text += data

    def within(self, name: str, tag: str) -> list[Element]:
        return [e for e in self.elements if e.tag == tag and name in e.parents]

    def figure(self, name: str) -> str:
        found = [e for e in self.elements if e.attributes.get("data-figure") == name]
        assert len(found) == 1, f"the report shows figure {name} {len(found)} times"
        return found[0].text.strip()


def laid_out_dom(page: Path, width_px: int, height_px: int) -> str:
    """The DOM of `page` once Chromium has laid it out (and run its script) in a window of
    that size: a test's script there writes what it measured into the DOM."""
    flags = [f for f in CHROMIUM_FLAGS if not f.startswith("--window-size")]
    result = subprocess.run(
        [chromium(), *flags, f"--window-size={width_px},{height_px}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=chromium_run_timeout_s,
        check=True,
    )
    return result.stdout


def run_chromium(browser: str, profile: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments],
        capture_output=True,
        text=True,
        timeout=chromium_run_timeout_s,
        check=False,
    )
    assert result.returncode == 0, f"chromium exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result


def journal_counts(store_url: str) -> tuple[Counter[str], int, str, int]:
    """Event types, last seq, last hash and BTC marks, read straight from the store."""
    counts: Counter[str] = Counter()
    btc_marks = 0
    last_seq, last_hash = 0, ""
    with LedgerStore.open(store_url) as store:
        for entry in store.iter_journal():
            counts[entry.type] += 1
            event = je.decode_journal_record(entry.record)
            if isinstance(event, je.MarkPriceApplied) and event.instrument == "BTC":
                btc_marks += 1
            last_seq, last_hash = event.seq, event.hash
    return counts, last_seq, last_hash, btc_marks


@pytest.mark.integration
def test_the_report_renders_its_charts_with_the_journal_figures(tmp_path: Path) -> None:
    browser = chromium()
    folder = tmp_path / "demo"
    ledger_command = Path(sys.executable).with_name("ledger")
    arguments = [
        "--folder",
        str(folder),
        "--accounts",
        str(demo_accounts),
        "--days",
        str(demo_days),
    ]
    demo = subprocess.run(
        [str(ledger_command), "demo", *arguments],
        capture_output=True,
        text=True,
        timeout=demo_timeout_s,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr
    report = folder / "report.html"
    assert f"report: {report.resolve()}" in demo.stdout

    ARTEFACTS.mkdir(exist_ok=True)
    screenshot = ARTEFACTS / "report.png"
    screenshot.unlink(missing_ok=True)
    run_chromium(browser, tmp_path / "profile-shot", f"--screenshot={screenshot}", report.as_uri())
    assert screenshot.stat().st_size > screenshot_bytes_min, "the screenshot looks blank"
    dom = DomReader()
    dom.feed(run_chromium(browser, tmp_path / "profile-dom", "--dump-dom", report.as_uri()).stdout)

    store_url = f"sqlite:///{(folder / 'ledger.db').resolve()}"
    counts, last_seq, last_hash, btc_marks = journal_counts(store_url)
    assert counts["margin_call_issued"] > 0, "the demo run has no margin call to show"
    assert counts["liquidation_triggered"] > 0, "the demo run has no liquidation to show"

    # The mark chart: one line over every BTC mark, one marker count per journal event.
    (line,) = dom.within("btc-mark", "polyline")
    assert int(line.attributes["data-points"]) == btc_marks
    assert len(line.attributes["points"].split()) > 100
    markers = dom.within("btc-mark", "circle")
    calls = sum(
        int(m.attributes["data-count"]) for m in markers if "margin-call" in m.attributes["class"]
    )
    liquidations = sum(
        int(m.attributes["data-count"]) for m in markers if "liquidation" in m.attributes["class"]
    )
    assert calls == counts["margin_call_issued"]
    assert liquidations == counts["liquidation_triggered"]
    # The margin level distribution: stacked bars, and some fall below maintenance.
    bands = dom.within("margin-levels", "rect")
    assert len(bands) > 100
    assert {"margin call", "liquidating"} & {b.attributes["data-band"] for b in bands}
    # The LTV histogram: three series (before the fall, at the low, now) over every bucket.
    assert len(dom.within("ltv", "rect")) == 3 * len(html_report.LTV_BUCKET_LABELS)

    assert dom.figure("journal_seq") == str(last_seq)
    assert dom.figure("last_hash") == last_hash
    assert dom.figure("margin_calls_issued") == str(counts["margin_call_issued"])
    assert dom.figure("liquidations") == str(counts["liquidation_triggered"])
    met = dom.figure("margin_calls_met")
    assert int(met) <= counts["margin_call_cleared"]

    assert view_rows(dom, "margin-calls") == counts["margin_call_issued"]
    assert view_rows(dom, "liquidations") == counts["liquidation_triggered"]
    # The venue executed every liquidation: its fills are counted, none is left to execute.
    assert counts["liquidation_filled"] > 0, "the demo's venue executed nothing"
    assert dom.figure("venue_fills") == str(counts["liquidation_filled"])
    assert dom.figure("lots_to_execute") == "0"
    assert view_rows(dom, "platform-exposure") > 0
    check_margin_clients_table(dom, store_url)


def view_rows(dom: DomReader, view: str) -> int:
    (table,) = [e for e in dom.elements if e.attributes.get("data-view") == view]
    return int(table.attributes["data-rows"])


def check_margin_clients_table(dom: DomReader, store_url: str) -> None:
    """The weakest client shown has the figures `ledger query margin` gives for it."""
    (table,) = [e for e in dom.elements if e.attributes.get("data-view") == "margin-clients"]
    assert int(table.attributes["data-rows"]) > 0
    headers = [e.text.strip() for e in dom.within("margin-clients", "th")]
    cells = [e.text.strip() for e in dom.within("margin-clients", "td")][: len(headers)]
    first = dict(zip(headers, cells, strict=True))
    with LedgerStore.open(store_url) as store:
        book = reporting.book_as_of(store, None)
    margin = reporting.margin_view(book, load_policy(None), first["account_id"])
    # Changed: the table shows figures readable (cents, percentages), not their exact digits.
    assert Decimal(first["loan"].replace(",", "")) == quantize(Decimal(margin["loan"]), 2)
    assert first["status"] == margin["status"]
    level = margin["margin_level"]
    shown = "" if level is None else f"{quantize(Decimal(level).scaleb(2), 2):,}%"
    assert first["margin_level"] == shown
