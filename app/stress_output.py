"""`ledger stress` output: a stress or a ladder as a JSON-ready document and as text tables."""

from __future__ import annotations

import html
from decimal import Decimal
from typing import Any

from ledger.money import (
    DECIMAL_CONTEXT,
    DERIVED_FIGURE_SCALE,
    USD_SCALE,
    format_decimal,
    quantize,
)
from ledger.stress import AccountStress, LadderResult, StressResult
from projections.figures import ScaleOf, readable
from projections.render import text_table


def _utilisation(amount: Decimal, limit: Decimal) -> str:
    return format_decimal(quantize(DECIMAL_CONTEXT.divide(amount, limit), DERIVED_FIGURE_SCALE))


def _totals(values: list[dict[str, Decimal]]) -> dict[str, str]:
    totals: dict[str, Decimal] = {}
    for value in values:
        for name, amount in value.items():
            totals[name] = totals.get(name, Decimal(0)) + amount
    return {name: format_decimal(amount) for name, amount in sorted(totals.items())}


def _figures(values: dict[str, Decimal]) -> dict[str, str]:
    return {name: format_decimal(amount) for name, amount in sorted(values.items())}


def account_document(stressed: AccountStress) -> dict[str, Any]:
    return {
        "account_id": stressed.account_id,
        "called": stressed.called,
        "liquidated": stressed.liquidated,
        "equity_at_shock": format_decimal(stressed.equity_at_shock),
        "equity_after": format_decimal(stressed.equity_after),
        "collateral_sold": _figures(stressed.collateral_sold),
        "sale_proceeds": format_decimal(stressed.sale_proceeds),
        "perps_closed": _figures(stressed.perps_closed),
        "liquidation_fees": format_decimal(stressed.liquidation_fees),
        "loan_repaid": format_decimal(stressed.loan_repaid),
        "shortfall": format_decimal(stressed.shortfall),
        "insurance_fund_drawn": format_decimal(stressed.insurance_fund_drawn),
        "auto_deleveraged": format_decimal(stressed.auto_deleveraged),
        "bad_debt_loan": format_decimal(stressed.bad_debt_loan),
        "bad_debt_cash": format_decimal(stressed.bad_debt_cash),
    }


def stress_document(result: StressResult) -> dict[str, Any]:
    accounts = [result.accounts[a] for a in sorted(result.accounts)]
    largest = result.largest_client_loan_after
    return {
        "shock": result.shock.label,
        "journal_seq": result.journal_seq,
        "marks": [
            {"instrument": i, "mark_before": format_decimal(b), "mark_shocked": format_decimal(a)}
            for i, b, a in result.marks
        ],
        "accounts_called": result.called,
        "accounts_liquidated": result.liquidated,
        "collateral_sold": _totals([s.collateral_sold for s in accounts]),
        "perps_closed": _totals([s.perps_closed for s in accounts]),
        "shortfall": format_decimal(sum((s.shortfall for s in accounts), Decimal(0))),
        "insurance_fund": {
            "before": format_decimal(result.insurance_fund_before),
            "drawn": format_decimal(result.insurance_fund_drawn),
            "after": format_decimal(result.insurance_fund_after),
            "uncovered_perps_deficit": format_decimal(result.uncovered_perps_deficit),
            "sufficient": result.insurance_fund_sufficient,
        },
        "bad_debt": {
            "loan": format_decimal(sum((s.bad_debt_loan for s in accounts), Decimal(0))),
            "cash": format_decimal(sum((s.bad_debt_cash for s in accounts), Decimal(0))),
            "total": format_decimal(result.bad_debt),
        },
        "lending_limits_after": {
            "firm_total_loans": format_decimal(result.firm_loans_after),
            "firm_total_loans_max": format_decimal(result.firm_loans_max),
            "firm_utilisation": _utilisation(result.firm_loans_after, result.firm_loans_max),
            "largest_client_loan": None if largest is None else format_decimal(largest[1]),
            "largest_client_loan_account": None if largest is None else largest[0],
            "client_loan_max": format_decimal(result.client_loan_max),
            "within": result.firm_loans_after <= result.firm_loans_max
            and (largest is None or largest[1] <= result.client_loan_max),
        },
        "accounts": [account_document(s) for s in accounts],
    }


def ladder_document(result: LadderResult) -> dict[str, Any]:
    exhausted = result.exhausted_at
    return {
        "insurance_fund_exhausted_at": None if exhausted is None else exhausted.shock.label,
        "rungs": [_rung(rung) for rung in result.rungs],
    }


def _rung(result: StressResult) -> dict[str, Any]:
    return {
        "shock": result.shock.label,
        "journal_seq": result.journal_seq,
        "accounts_called": len(result.called),
        "accounts_liquidated": len(result.liquidated),
        "insurance_fund_drawn": format_decimal(result.insurance_fund_drawn),
        "insurance_fund_after": format_decimal(result.insurance_fund_after),
        "uncovered_perps_deficit": format_decimal(result.uncovered_perps_deficit),
        "bad_debt": format_decimal(result.bad_debt),
        "insurance_fund_sufficient": result.insurance_fund_sufficient,
    }


def stress_table(document: dict[str, Any], scale_of: ScaleOf) -> str:
    """A stress as people read it: money at the cent with thousands separators, quantities
    at their asset's scale, ratios as percentages (`ledger query`'s figures; JSON keeps
    every digit)."""
    fund, debt, limits = (
        document["insurance_fund"],
        document["bad_debt"],
        document["lending_limits_after"],
    )

    def usd(value: str | None) -> str:
        return _cell("amount", value, scale_of)

    lines = [f"stress {document['shock']} at journal seq {document['journal_seq']}"]
    lines += [
        f"  mark {m['instrument']}: {usd(m['mark_before'])} -> {usd(m['mark_shocked'])}"
        for m in document["marks"]
    ]
    sold = _pairs(document["collateral_sold"], "balance", "asset", scale_of)
    closed = _pairs(document["perps_closed"], "size", "market", scale_of)
    utilisation = _cell("utilisation", limits["firm_utilisation"], scale_of)
    lines += [
        f"accounts called      {len(document['accounts_called']):,}",
        f"accounts liquidated  {len(document['accounts_liquidated']):,}",
        f"collateral sold      {sold}",
        f"perps closed         {closed}",
        f"shortfall            {usd(document['shortfall'])} USD",
        f"insurance fund       {usd(fund['before'])} - drawn {usd(fund['drawn'])} -> "
        f"{usd(fund['after'])} USD: " + _sufficiency(fund, scale_of),
        f"bad debt             {usd(debt['total'])} USD (loan {usd(debt['loan'])}, cash "
        f"{usd(debt['cash'])})",
        f"firm loans after     {usd(limits['firm_total_loans'])} of "
        f"{usd(limits['firm_total_loans_max'])} USD (utilisation {utilisation})",
        f"largest client loan  {usd(limits['largest_client_loan'])} "
        f"({limits['largest_client_loan_account'] or '-'}) of {usd(limits['client_loan_max'])} USD",
    ]
    rows = [a for a in document["accounts"] if a["called"] or a["liquidated"]]
    columns = (
        "account_id",
        "called",
        "liquidated",
        "equity_at_shock",
        "equity_after",
        "shortfall",
        "insurance_fund_drawn",
        "auto_deleveraged",
        "bad_debt_loan",
    )
    lines += _columns(columns, [[_cell(c, row[c], scale_of) for c in columns] for row in rows])
    return "\n".join(lines) + "\n"


def _sufficiency(fund: dict[str, Any], scale_of: ScaleOf) -> str:
    if fund["sufficient"]:
        return "sufficient"
    uncovered = _cell("amount", fund["uncovered_perps_deficit"], scale_of)
    return f"NOT sufficient, {uncovered} USD uncovered"


def ladder_table(document: dict[str, Any], scale_of: ScaleOf) -> str:
    columns = (
        "shock",
        "accounts_called",
        "accounts_liquidated",
        "insurance_fund_drawn",
        "insurance_fund_after",
        "uncovered_perps_deficit",
        "bad_debt",
        "insurance_fund_sufficient",
    )
    rows = [[_cell(c, rung[c], scale_of) for c in columns] for rung in document["rungs"]]
    verdict = ladder_verdict(document["insurance_fund_exhausted_at"])
    return "\n".join(_columns(columns, rows)) + "\ninsurance fund " + verdict + "\n"


def _pairs(values: dict[str, str], column: str, unit: str, scale_of: ScaleOf) -> str:
    """`BTC 132.51308858, ETH 1,289.75019512`: each asset's (or market's) quantity."""
    shown = (
        f"{name} {readable(column, amount, {unit: name}, scale_of)}"
        for name, amount in values.items()
    )
    return ", ".join(shown) or "-"


# The stress tables' columns of text and of yes/no (left-aligned); the others are figures.
_TEXT_COLUMNS = frozenset(
    {"shock", "account_id", "called", "liquidated", "insurance_fund_sufficient"}
)


def _cell(column: str, value: Any, scale_of: ScaleOf) -> str:
    """A table cell: yes/no, `-` for none, a count with separators, text as it is, a figure
    as `ledger query` shows it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    if column in _TEXT_COLUMNS:
        return str(value)
    return readable(column, str(value), {}, scale_of)


def _columns(names: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    """The header and rows, figures right-aligned (the text table of `ledger report`)."""
    return text_table(list(names), rows, frozenset(names) - _TEXT_COLUMNS)


chart_width_px = 900
chart_height_px = 360
chart_margin_px = 60


def ladder_html(document: dict[str, Any], scale_of: ScaleOf) -> str:
    """Every ladder of a `ledger stress` document as a self-contained page: per ladder, the
    insurance fund left and the deficit it could not cover at each rung (an SVG chart), and
    the rung table."""
    sections = [ladder_section(ladder, scale_of) for ladder in document["ladders"]]
    title = f"Stress ladder at journal seq {document['journal_seq']}"
    style = (
        "body{font:13px system-ui,sans-serif;margin:24px}table{border-collapse:collapse}"
        "td,th{border-bottom:1px solid #ddd;padding:2px 8px;text-align:right}"
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{style}</style></head><body><h1>{title}</h1>"
        f"<p>Policy {html.escape(document['policy_version'])}. {LADDER_LEGEND}</p>"
        + "".join(sections)
        + "</body></html>\n"
    )


LADDER_LEGEND = (
    "Blue: the insurance fund left after each rung's liquidations; red: the deficit it could "
    "not cover (deleveraged or written off), USD."
)


def ladder_verdict(exhausted_at: str | None) -> str:
    """What a ladder says of the insurance fund, given its first rung that exhausts it."""
    return f"exhausted at {exhausted_at}" if exhausted_at else "not exhausted within the ladder"


def ladder_section(ladder: dict[str, Any], scale_of: ScaleOf) -> str:
    """One ladder of `ladder_document`: its verdict as a heading, the chart (styled by its own
    attributes, so that any page can hold it) and the rung table."""
    verdict = ladder_verdict(ladder["insurance_fund_exhausted_at"])
    columns = tuple(ladder["rungs"][0]) if ladder["rungs"] else ()
    rows = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(_cell(c, r[c], scale_of))}</td>" for c in columns)
        + "</tr>"
        for r in ladder["rungs"]
    )
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    return (
        f"<h2>Insurance fund {html.escape(verdict)}</h2>{_ladder_svg(ladder['rungs'])}"
        f"<table><tr>{head}</tr>{rows}</table>"
    )


def _first_move(shock: str) -> str:
    """`BTC=-5%,ETH=-5%` -> `-5%`: an axis label (the rung table names every move)."""
    return shock.split(",", 1)[0].split("=", 1)[1]


_TICK_ATTRIBUTES = 'font-size="11" fill="#555"'
_LINE_ATTRIBUTES = 'fill="none" stroke-width="2"'


def _ladder_svg(rungs: list[dict[str, Any]]) -> str:
    if not rungs:
        return ""
    funds = [Decimal(r["insurance_fund_after"]) for r in rungs]
    gaps = [Decimal(r["uncovered_perps_deficit"]) for r in rungs]
    top = max([*funds, *gaps, Decimal(1)])
    plot_width = chart_width_px - 2 * chart_margin_px
    plot_height = chart_height_px - 2 * chart_margin_px
    step = Decimal(plot_width) / max(len(rungs) - 1, 1)

    def point(index: int, value: Decimal) -> str:
        x = chart_margin_px + step * index
        y = chart_margin_px + plot_height - value / top * plot_height
        return f"{x:.1f},{y:.1f}"

    labels = "".join(
        f'<text {_TICK_ATTRIBUTES} x="{chart_margin_px + step * i:.1f}" '
        f'y="{chart_height_px - chart_margin_px + 18}" text-anchor="middle">'
        f"{html.escape(_first_move(r['shock']))}</text>"
        for i, r in enumerate(rungs)
    )
    fund = " ".join(point(i, v) for i, v in enumerate(funds))
    gap = " ".join(point(i, v) for i, v in enumerate(gaps))
    # The scale as every other figure of the page reads: at the cent, thousands separated.
    scale = (
        f'<text {_TICK_ATTRIBUTES} class="scale" x="4" y="{chart_margin_px}">'
        f"{quantize(top, USD_SCALE):,f} USD</text>"
        f'<text {_TICK_ATTRIBUTES} class="scale" x="4" y="{chart_margin_px + plot_height}">'
        "0 USD</text>"
    )
    return (
        f'<svg data-chart="stress-ladder" viewBox="0 0 {chart_width_px} {chart_height_px}" '
        f'width="{chart_width_px}" height="{chart_height_px}" role="img">{scale}'
        f'<polyline class="fund" {_LINE_ATTRIBUTES} stroke="{_FUND_COLOUR}" points="{fund}"/>'
        f'<polyline class="gap" {_LINE_ATTRIBUTES} stroke="{_GAP_COLOUR}" points="{gap}"/>'
        f"{labels}{_ladder_key()}</svg>"
    )


_FUND_COLOUR = "#1f4e79"
_GAP_COLOUR = "#c0392b"


def _ladder_key() -> str:
    """Which line is which, above the plot."""
    return "".join(
        f'<rect x="{x}" y="16" width="12" height="4" fill="{colour}"/>'
        f'<text {_TICK_ATTRIBUTES} x="{x + 18}" y="22">{name}</text>'
        for x, colour, name in (
            (chart_margin_px, _FUND_COLOUR, "insurance fund left"),
            (chart_margin_px + 180, _GAP_COLOUR, "deficit it does not cover"),
        )
    )
