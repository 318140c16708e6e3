"""The rows of every view, computed from the projection state with `ledger.risk`.

Pure functions of the state: the same state gives the same rows, byte for byte. Figures
are written by `money.format_decimal`; ratios (shares, utilisation, LTV, margin level) are
rounded half-even to 8 places, ages to 2.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from ledger import risk
from ledger.book import CUSTODY, LIQUIDATION, Account, Book
from ledger.journal import canonical_json, format_timestamp
from ledger.money import (
    DECIMAL_CONTEXT,
    DERIVED_FIGURE_SCALE,
    ONE,
    REPORTING_ASSET,
    ZERO,
    format_decimal,
    quantize,
)
from ledger.policy import Policy, is_virtual_asset
from projections.records import CallRecord, FundingTotals, LiquidationRecord
from projections.tables import Cell, Row

top_holders_count = 5  # the concentration view's "top clients"
largest_loans_count = 5  # the lending-limits view lists this many client loans
_MICROSECONDS_PER_HOUR = Decimal(3_600_000_000)


def ratio(numerator: Decimal, denominator: Decimal) -> str | None:
    """`numerator / denominator` to 8 places; None when the denominator is 0."""
    if denominator.is_zero():
        return None
    return format_decimal(
        quantize(DECIMAL_CONTEXT.divide(numerator, denominator), DERIVED_FIGURE_SCALE)
    )


def mark_of(book: Book, instrument: str) -> Decimal | None:
    return ONE if instrument == REPORTING_ASSET else book.marks.get(instrument)


def figures_of(
    account: Account, book: Book, policy: Policy, *, with_positions: bool = True
) -> risk.MarginFigures | None:
    """The account's figures at the book's marks; None while a held asset has no mark.
    Without `with_positions`, the account's figures alone (no position's, whose
    liquidation prices are most of the cost)."""
    try:
        return risk.margin_figures(
            account.holdings(), book.marks, policy, with_positions=with_positions
        )
    except risk.MissingMark:
        return None


def hours_between(start: str, end: str) -> str | None:
    if not start or not end:
        return None
    elapsed = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    microseconds = Decimal(elapsed.days * 86_400_000_000 + elapsed.seconds * 1_000_000)
    microseconds += elapsed.microseconds
    return format_decimal(quantize(microseconds / _MICROSECONDS_PER_HOUR, 2))


# -- per account ------------------------------------------------------------------------


def balance_rows(account: Account, book: Book) -> list[Row]:
    rows: list[Row] = []
    for asset, balance in sorted(account.balances.items()):
        mark = mark_of(book, asset)
        value = None if mark is None else balance * mark
        rows.append(
            (
                account.account_id,
                asset,
                format_decimal(balance),
                format_decimal(mark),
                format_decimal(value),
            )
        )
    return rows


def position_rows(account: Account, figures: risk.MarginFigures | None, book: Book) -> list[Row]:
    if figures is None:
        return [
            (
                account.account_id,
                market,
                format_decimal(p.size),
                format_decimal(p.entry_price),
                format_decimal(book.marks.get(market)),
                None,
                None,
                None,
                None,
                None,
            )
            for market, p in sorted(account.positions.items())
        ]
    return [
        (
            account.account_id,
            p.market,
            format_decimal(p.size),
            format_decimal(p.entry_price),
            format_decimal(p.mark_price),
            format_decimal(p.unrealized_pnl),
            format_decimal(p.notional),
            format_decimal(p.initial_margin),
            format_decimal(p.maintenance_margin),
            format_decimal(p.liquidation_price),
        )
        for p in figures.positions
    ]


def _positive_value(account: Account, book: Book) -> Decimal | None:
    total = ZERO
    for asset, balance in account.balances.items():
        if balance > ZERO:
            mark = mark_of(book, asset)
            if mark is None:
                return None
            total += balance * mark
    return total


def margin_client_row(
    account: Account, figures: risk.MarginFigures | None, book: Book, policy: Policy, clock: str
) -> Row:
    call = account.margin_call
    call_cells: Row = (
        (None, None, None, None, None, None)
        if call is None
        else (
            call.call_id,
            format_decimal(call.amount),
            call.issued_at,
            format_timestamp(call.deadline),
            hours_between(call.issued_at, clock),
            call.trigger,
        )
    )
    head: Row = (account.account_id, account.investor_class, format_decimal(account.credit_limit))
    loan_cells: Row = (
        format_decimal(account.loan),
        format_decimal(account.loan_principal),
        format_decimal(account.loan_interest),
    )
    if figures is None:
        empty: Row = (None,) * 5
        return head + empty + loan_cells + (None,) * 8 + ("unvalued",) + call_cells
    positive = _positive_value(account, book)
    haircut_value = None if positive is None else positive - figures.haircut_initial
    lending = risk.lending_value(account.balances, book.marks, policy)
    return (
        *head,
        format_decimal(figures.market_value),
        format_decimal(figures.eligible_collateral_value),
        format_decimal(haircut_value),
        format_decimal(lending),
        format_decimal(figures.unrealized_pnl),
        *loan_cells,
        format_decimal(figures.ltv),
        format_decimal(figures.equity),
        format_decimal(figures.initial_requirement),
        format_decimal(figures.maintenance_requirement),
        format_decimal(figures.liquidation_requirement),
        format_decimal(figures.excess),
        format_decimal(figures.available),
        format_decimal(figures.margin_level),
        str(figures.status),
        *call_cells,
    )


# -- registers ------------------------------------------------------------------------


def call_row(record: CallRecord) -> Row:
    figures = record.figures
    return (
        record.call_id,
        record.account_id,
        record.issued_seq,
        record.issued_at,
        format_decimal(record.amount),
        record.deadline,
        format_decimal(figures.equity),
        format_decimal(figures.maintenance_requirement),
        format_decimal(figures.liquidation_requirement),
        record.outcome,
        record.closed_seq,
        record.closed_at,
        record.liquidation_id,
        record.trigger,
        format_decimal(figures.loan),
        None if record.limit is None else format_decimal(record.limit),
    )


def liquidation_row(record: LiquidationRecord) -> Row:
    figures = record.inputs.figures
    closed_notional = proceeds = fees = repaid = ZERO
    for step in record.steps:
        if step.kind == "close_position":
            closed_notional += abs(step.quantity) * step.price
        proceeds += step.proceeds
        fees += step.fee
        repaid += step.loan_repaid
    after = record.figures_after
    return (
        record.liquidation_id,
        record.account_id,
        record.triggered_seq,
        record.triggered_at,
        record.trigger,
        format_decimal(figures.equity),
        format_decimal(figures.initial_requirement),
        format_decimal(figures.maintenance_requirement),
        format_decimal(figures.liquidation_requirement),
        format_decimal(figures.loan),
        format_decimal(figures.market_value),
        len(record.steps),
        format_decimal(closed_notional),
        format_decimal(proceeds),
        format_decimal(fees),
        format_decimal(repaid),
        None if after is None else format_decimal(after.equity),
        None if after is None else after.status,
        format_decimal(record.insurance_fund_drawn),
        format_decimal(record.auto_deleveraged),
        format_decimal(record.bad_debt_loan),
        format_decimal(record.bad_debt_cash),
        record.fills,
        format_decimal(record.fills_paid_to_fund),
    )


def liquidation_step_rows(record: LiquidationRecord) -> list[Row]:
    return [
        (
            record.liquidation_id,
            number,
            record.account_id,
            step.kind,
            step.instrument,
            format_decimal(step.quantity),
            format_decimal(step.price),
            format_decimal(step.proceeds),
            format_decimal(step.fee),
            format_decimal(step.loan_repaid),
        )
        for number, step in enumerate(record.steps, start=1)
    ]


# -- aggregates -----------------------------------------------------------------------


def concentration_rows(book: Book, policy: Policy) -> list[Row]:
    """Per asset, the clients' positive holdings: total, share of all client collateral
    (valued), the top-5 clients' share of the asset, and the policy's two concentration
    limits with their headroom (a share: `limit - share`)."""
    holdings: dict[str, list[tuple[Decimal, str]]] = {}
    for account in book.clients():
        for asset, balance in account.balances.items():
            if balance > ZERO:
                holdings.setdefault(asset, []).append((balance, account.account_id))
    values: dict[str, Decimal | None] = {}
    for asset, held in holdings.items():
        mark = mark_of(book, asset)
        values[asset] = None if mark is None else sum((b for b, _ in held), ZERO) * mark
    total = sum((v for v in values.values() if v is not None), ZERO)
    rows: list[Row] = []
    for asset in sorted(holdings):
        held = sorted(holdings[asset], key=lambda item: (-item[0], item[1]))
        quantity = sum((b for b, _ in held), ZERO)
        top = sum((b for b, _ in held[:top_holders_count]), ZERO)
        mark, value = mark_of(book, asset), values[asset]
        share = None if value is None or total.is_zero() else DECIMAL_CONTEXT.divide(value, total)
        largest_share = DECIMAL_CONTEXT.divide(held[0][0], quantity)
        rows.append(
            (
                asset,
                len(held),
                format_decimal(quantity),
                format_decimal(mark),
                format_decimal(value),
                None if value is None else ratio(value, total),
                None if mark is None else format_decimal(top * mark),
                ratio(top, quantity),
                held[0][1],
                ratio(held[0][0], quantity),
                *_concentration_limits(share, largest_share, policy),
            )
        )
    return rows


def _concentration_limits(
    share: Decimal | None, largest_share: Decimal, policy: Policy
) -> tuple[Cell, ...]:
    """(share_limit, share_headroom, largest_client_share_limit, largest_client_headroom,
    status): `within`, or the limits exceeded joined by `,`; `no_limit` without either."""
    asset_limit, client_limit = policy.max_asset_collateral_share, policy.max_client_asset_share
    exceeded = []
    if asset_limit is not None and share is not None and share > asset_limit:
        exceeded.append("asset_share_exceeded")
    if client_limit is not None and largest_share > client_limit:
        exceeded.append("client_share_exceeded")
    status = ",".join(exceeded) or (
        "no_limit" if asset_limit is None and client_limit is None else "within"
    )
    return (
        format_decimal(asset_limit),
        None if asset_limit is None or share is None else _share_text(asset_limit - share),
        format_decimal(client_limit),
        None if client_limit is None else _share_text(client_limit - largest_share),
        status,
    )


def _share_text(share: Decimal) -> str:
    return format_decimal(quantize(share, DERIVED_FIGURE_SCALE))


def perps_rows(book: Book, policy: Policy, funding: Mapping[str, FundingTotals]) -> list[Row]:
    markets = set(policy.markets) | set(funding)
    for account in book.accounts.values():
        markets.update(account.positions)
    return [_perps_row(book, funding.get(market), market) for market in sorted(markets)]


def _perps_row(book: Book, funding: FundingTotals | None, market: str) -> Row:
    client_long = client_short = platform_long = platform_short = ZERO
    long_accounts = short_accounts = retail = 0
    for account in book.accounts.values():
        position = account.positions.get(market)
        if position is None or position.size.is_zero():
            continue
        size = position.size
        if account.is_client:
            if size > ZERO:
                client_long, long_accounts = client_long + size, long_accounts + 1
            else:
                client_short, short_accounts = client_short - size, short_accounts + 1
            retail += account.investor_class != "professional"
        elif size > ZERO:
            platform_long += size
        else:
            platform_short -= size
    long_oi, short_oi = client_long + platform_long, client_short + platform_short
    problems = [] if long_oi == short_oi else ["open_interest_mismatch"]
    problems += ["retail_exposure"] if retail else []
    return (
        market,
        format_decimal(book.marks.get(market)),
        format_decimal(long_oi),
        format_decimal(short_oi),
        format_decimal(long_oi - short_oi),
        format_decimal(client_long),
        format_decimal(client_short),
        format_decimal(platform_long),
        format_decimal(platform_short),
        long_accounts,
        short_accounts,
        format_decimal(funding.paid if funding else ZERO),
        format_decimal(funding.received if funding else ZERO),
        format_decimal(funding.residue if funding else ZERO),
        retail,
        ",".join(problems) or "ok",
    )


def platform_exposure_rows(book: Book) -> list[Row]:
    """Every platform account's non-zero balances and open positions, valued at the marks,
    then what each liquidation still has to execute (`to_execute`, on the liquidation
    account, at its takeover price). `external:custody`, the outside world, is not one."""
    rows: list[Row] = []
    platform = sorted(a for a in book.accounts if a != CUSTODY and not book.accounts[a].is_client)
    for account_id in platform:
        account = book.accounts[account_id]
        for asset, balance in sorted(account.balances.items()):
            if not balance.is_zero():
                mark = mark_of(book, asset)
                value = None if mark is None else balance * mark
                head: Row = (account_id, f"balance:{asset}", "balance", asset, None, None)
                rows.append(
                    (
                        *head,
                        format_decimal(balance),
                        None,
                        format_decimal(mark),
                        format_decimal(value),
                        None,
                        None,
                    )
                )
        for market, position in sorted(account.positions.items()):
            head = (account_id, f"position:{market}", "position", market, None, None)
            rows.append(
                head + _exposure(position.size, position.entry_price, book.marks.get(market))
            )
    for lot in book.lots():
        if not lot.remaining.is_zero():
            liquidation_id, instrument = lot.liquidation_id, lot.instrument
            head = (
                LIQUIDATION,
                f"to_execute:{liquidation_id}:{instrument}",
                "to_execute",
                instrument,
                liquidation_id,
                lot.account_id,
            )
            mark = mark_of(book, instrument)
            rows.append(head + _exposure(lot.remaining, lot.takeover_price, mark))
    return rows


def stale_mark_rows(book: Book, policy: Policy, recorded_at: str) -> list[Row]:
    """Every mark older than the policy's `mark_max_age_minutes` at the ledger clock (the
    last event's `recorded_at`), then every account whose margin call or liquidation
    waits for a fresh one of them (`margin_decision_waiting`), one row per stale mark."""
    if not recorded_at:
        return []
    now = datetime.fromisoformat(recorded_at)
    limit_seconds = policy.mark_max_age_minutes * 60

    def row(item: str, kind: str, instrument: str, account_id: str | None) -> Row:
        observed = book.mark_times[instrument]
        age = int((now - observed).total_seconds()) // 60
        mark = format_decimal(book.marks[instrument])
        return (item, kind, instrument, account_id, mark, format_timestamp(observed), age)

    rows = [
        row(f"mark:{instrument}", "stale_mark", instrument, None)
        for instrument, observed in sorted(book.mark_times.items())
        if (now - observed).total_seconds() > limit_seconds
    ]
    for account_id, stale in sorted(book.waiting.items()):
        rows.extend(
            row(f"waiting:{account_id}:{i}", "waiting", i, account_id) for i in sorted(stale)
        )
    return rows


def _exposure(size: Decimal, entry_price: Decimal, mark: Decimal | None) -> Row:
    """(quantity, entry, mark, market value, notional, unrealised PnL) of a position or a
    lot: `notional = |size| * mark`, `unrealized_pnl = size * (mark - entry_price)`."""
    if mark is None:
        return (format_decimal(size), format_decimal(entry_price), None, None, None, None)
    return (
        format_decimal(size),
        format_decimal(entry_price),
        format_decimal(mark),
        None,
        format_decimal(abs(size) * mark),
        format_decimal(size * (mark - entry_price)),
    )


def client_asset_rows(
    book: Book, custody_in: Mapping[str, Decimal], custody_out: Mapping[str, Decimal]
) -> list[Row]:
    """Per asset: client and platform balances against what custody took in and paid out.
    Double entry makes `client + platform - (custody_in - custody_out)` zero."""
    clients: dict[str, Decimal] = {}
    negative: dict[str, Decimal] = {}
    platform: dict[str, Decimal] = {}
    for account in book.accounts.values():
        if account.account_id == CUSTODY:
            continue
        target = clients if account.is_client else platform
        for asset, balance in account.balances.items():
            target[asset] = target.get(asset, ZERO) + balance
            if account.is_client and balance < ZERO:
                negative[asset] = negative.get(asset, ZERO) + balance
    custody = book.accounts[CUSTODY]
    assets = set(clients) | set(platform) | set(custody_in) | set(custody.balances)
    rows: list[Row] = []
    for asset in sorted(assets):
        client, house = clients.get(asset, ZERO), platform.get(asset, ZERO)
        taken_in, paid_out = custody_in.get(asset, ZERO), custody_out.get(asset, ZERO)
        net = taken_in - paid_out
        difference = client + house - net
        held = custody.balance(asset)
        tied = difference.is_zero() and held == -net
        rows.append(
            (
                asset,
                format_decimal(client),
                format_decimal(negative.get(asset, ZERO)),
                format_decimal(house),
                format_decimal(taken_in),
                format_decimal(paid_out),
                format_decimal(net),
                format_decimal(held),
                format_decimal(difference),
                "tied" if tied else "break",
            )
        )
    return rows


def _limit_row(item: str, account_id: str | None, amount: Decimal, limit: Decimal) -> Row:
    status = "within" if amount <= limit else "exceeded"
    return (
        item,
        account_id,
        format_decimal(amount),
        format_decimal(limit),
        ratio(amount, limit),
        format_decimal(limit - amount),
        status,
    )


def lending_rows(book: Book, policy: Policy) -> list[Row]:
    funds = policy.shareholders_funds
    rows: list[Row] = [("shareholders_funds", None, format_decimal(funds), None, None, None, None)]
    rows.append(
        _limit_row(
            "firm_total_loans", None, book.total_loans, funds * policy.max_total_loans_multiple
        )
    )
    client_max = funds * policy.max_client_loan_share
    borrowers = sorted(
        ((a.loan, a.account_id) for a in book.clients() if a.loan > ZERO),
        key=lambda item: (-item[0], item[1]),
    )
    for rank, (loan, account_id) in enumerate(borrowers[:largest_loans_count], start=1):
        rows.append(_limit_row(f"largest_client_loan_{rank}", account_id, loan, client_max))
    groups = sorted(
        ((book.group_loans(g), g) for g in book.related_groups),
        key=lambda item: (-item[0], item[1]),
    )
    for loans, group_id in groups[:largest_loans_count]:
        if loans > ZERO:
            rows.append(_limit_row(f"related_group:{group_id}", None, loans, client_max))
    market_value, cover = _client_collateral(book, policy)
    loans = sum((a.loan for a in book.clients()), ZERO)
    rows.append(
        ("client_collateral_market_value", None, format_decimal(market_value)) + (None,) * 4
    )
    rows.append(
        (
            "client_collateral_va_full_haircut",
            None,
            format_decimal(cover),
            format_decimal(loans),
            ratio(loans, cover),
            format_decimal(cover - loans),
            "covered" if cover >= loans else "uncovered",
        )
    )
    return rows


def _client_collateral(book: Book, policy: Policy) -> tuple[Decimal, Decimal]:
    """(market value of the clients' positive holdings, their value after the initial
    haircut with every virtual asset at a 100% haircut); unmarked holdings count nothing."""
    market_value = cover = ZERO
    for account in book.clients():
        for asset, balance in account.balances.items():
            mark = mark_of(book, asset)
            if balance <= ZERO or mark is None:
                continue
            value = balance * mark
            market_value += value
            asset_policy = policy.asset(asset)
            if asset_policy.eligible and not is_virtual_asset(asset):
                cover += value * (ONE - asset_policy.haircut.initial)
    return market_value, cover


# -- statements -----------------------------------------------------------------------


def statement_rows(
    book: Book,
    policy: Policy,
    interest: Mapping[tuple[str, str], Decimal],
    closing: tuple[str, int, str],
) -> list[Row]:
    """Every client's statement for the business date `closing` = (date, seq, recorded_at)."""
    return [
        _statement_row(account, book, policy, interest, closing)
        for account in sorted(book.clients(), key=lambda a: a.account_id)
    ]


def _statement_row(
    account: Account,
    book: Book,
    policy: Policy,
    interest: Mapping[tuple[str, str], Decimal],
    closing: tuple[str, int, str],
) -> Row:
    business_date, closed_seq, closed_at = closing
    figures = figures_of(account, book, policy, with_positions=False)  # a statement shows none
    balances = {asset: format_decimal(b) for asset, b in sorted(account.balances.items())}
    positions = [
        {"market": m, "size": format_decimal(p.size), "entry_price": format_decimal(p.entry_price)}
        for m, p in sorted(account.positions.items())
    ]
    figure_cells: Row = (
        (None, None)
        if figures is None
        else (format_decimal(figures.market_value), format_decimal(figures.unrealized_pnl))
    ) + (
        format_decimal(account.loan_principal),
        format_decimal(account.loan_interest),
        format_decimal(account.loan),
        format_decimal(interest.get((business_date, account.account_id), ZERO)),
    )
    tail: Row = (
        (None, None, None, None, "unvalued")
        if figures is None
        else (
            format_decimal(figures.equity),
            format_decimal(figures.initial_requirement),
            format_decimal(figures.maintenance_requirement),
            format_decimal(figures.margin_level),
            str(figures.status),
        )
    )
    call = account.margin_call
    return (
        business_date,
        account.account_id,
        closed_seq,
        closed_at,
        account.investor_class,
        canonical_json(balances).decode(),
        canonical_json(positions).decode(),
        *figure_cells,
        *tail,
        None if call is None else call.call_id,
    )


def accounts_rows(
    book: Book, policy: Policy, account_ids: Iterable[str], clock: str
) -> tuple[list[str], list[Row], list[Row], list[Row]]:
    """(the accounts, their balance rows, position rows, and margin-clients rows)."""
    scopes = sorted(a for a in set(account_ids) if a in book.accounts)
    balances: list[Row] = []
    positions: list[Row] = []
    margin: list[Row] = []
    for account_id in scopes:
        account = book.accounts[account_id]
        figures = figures_of(account, book, policy)
        balances.extend(balance_rows(account, book))
        positions.extend(position_rows(account, figures, book))
        if account.is_client:
            margin.append(margin_client_row(account, figures, book, policy, clock))
    return scopes, balances, positions, margin
