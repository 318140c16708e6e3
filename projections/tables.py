"""The view tables: their names, columns and keys (docs/views.md describes each column).

Every figure is a decimal written as text by `money.format_decimal` (so no float ever
touches money and a view's bytes are deterministic); journal positions are integers.
A table is rewritten per batch by *scope*: the rows of each scope value that a batch
touched (an account, a call, a liquidation, a business date) are deleted and written
again; a table without a scope is small (one row per asset or market) and rewritten whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

ColumnKind = Literal["text", "decimal", "integer"]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: ColumnKind


@dataclass(frozen=True, slots=True)
class Table:
    view: str  # the name `ledger report VIEW` takes
    sql_name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    scope: str | None  # the column a batch rewrites by; None: rewritten whole
    # The table of older code this one replaced (its columns changed): views where it holds
    # rows were written by that code, and are rebuilt (`ViewDatabase._create`).
    replaces: str | None = None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


def _columns(spec: str) -> tuple[Column, ...]:
    """`name:kind` words; a bare name is a decimal, `#name` an integer, `$name` text."""
    columns = []
    for word in spec.split():
        if word.startswith("#"):
            columns.append(Column(word[1:], "integer"))
        elif word.startswith("$"):
            columns.append(Column(word[1:], "text"))
        else:
            columns.append(Column(word, "decimal"))
    return tuple(columns)


BALANCES = Table(
    "balances",
    "view_balances",
    _columns("$account_id $asset balance mark_price market_value"),
    ("account_id", "asset"),
    "account_id",
)
POSITIONS = Table(
    "positions",
    "view_positions",
    _columns(
        "$account_id $market size entry_price mark_price unrealized_pnl notional "
        "initial_margin maintenance_margin liquidation_price"
    ),
    ("account_id", "market"),
    "account_id",
)
MARGIN_CLIENTS = Table(
    "margin-clients",
    "view_margin_clients_triggers",
    _columns(
        "$account_id $investor_class credit_limit market_value eligible_collateral_value "
        "haircut_value lending_value unrealized_pnl loan loan_principal loan_interest ltv "
        "equity initial_requirement maintenance_requirement liquidation_requirement excess "
        "available margin_level $status $call_id call_amount $call_issued_at $call_deadline "
        "call_age_hours $call_trigger"
    ),
    ("account_id",),
    "account_id",
    replaces="view_margin_clients",  # before the call_trigger column
)
COLLATERAL_CONCENTRATION = Table(
    "collateral-concentration",
    # Renamed from view_collateral_concentration when the limit columns were added: an
    # existing store's views fill the new table at their next batch (it is rewritten whole).
    "view_collateral_concentration_limits",
    _columns(
        "$asset #clients quantity mark_price market_value share top5_market_value top5_share "
        "$largest_client largest_client_share share_limit share_headroom "
        "largest_client_share_limit largest_client_headroom $status"
    ),
    ("asset",),
    None,
)
MARGIN_CALLS = Table(
    "margin-calls",
    "view_margin_calls_triggers",
    _columns(
        "$call_id $account_id #issued_seq $issued_at amount $deadline equity_at_issue "
        "maintenance_requirement_at_issue liquidation_requirement_at_issue $outcome "
        "#closed_seq $closed_at $liquidation_id $trigger loan_at_issue limit_amount"
    ),
    ("call_id",),
    "call_id",
    replaces="view_margin_calls",  # before the trigger columns
)
LIQUIDATIONS = Table(
    "liquidations",
    "view_liquidations",
    _columns(
        "$liquidation_id $account_id #triggered_seq $triggered_at $trigger equity "
        "initial_requirement maintenance_requirement liquidation_requirement loan "
        "market_value #steps closed_notional proceeds fees loan_repaid equity_after "
        "$status_after insurance_fund_drawn auto_deleveraged bad_debt_loan bad_debt_cash "
        "#fills fills_paid_to_fund"
    ),
    ("liquidation_id",),
    "liquidation_id",
)
LIQUIDATION_STEPS = Table(
    "liquidation-steps",
    "view_liquidation_steps",
    _columns(
        "$liquidation_id #step $account_id $kind $instrument quantity price proceeds fee "
        "loan_repaid"
    ),
    ("liquidation_id", "step"),
    "liquidation_id",
)
PERPS_EXPOSURE = Table(
    "perps-exposure",
    "view_perps_exposure",
    _columns(
        "$market mark_price long_open_interest short_open_interest open_interest_difference "
        "client_long client_short platform_long platform_short #long_accounts #short_accounts "
        "funding_paid funding_received funding_residue #retail_accounts_exposed $check"
    ),
    ("market",),
    None,
)
PLATFORM_EXPOSURE = Table(
    "platform-exposure",
    "view_platform_exposure",
    _columns(
        "$account_id $item $kind $instrument $liquidation_id $liquidated_account_id quantity "
        "entry_price mark_price market_value notional unrealized_pnl"
    ),
    ("account_id", "item"),
    None,
)
STALE_MARKS = Table(
    "stale-marks",
    "view_stale_marks",
    _columns("$item $kind $instrument $account_id mark_price $observed_at #age_minutes"),
    ("item",),
    None,
)
CLIENT_ASSETS = Table(
    "client-assets",
    "view_client_assets",
    _columns(
        "$asset client_balances client_negative_balances platform_balances custody_in "
        "custody_out custody_net custody_account_balance difference $status"
    ),
    ("asset",),
    None,
)
LENDING_LIMITS = Table(
    "lending-limits",
    "view_lending_limits",
    _columns("$item $account_id amount limit_amount utilisation headroom $status"),
    ("item",),
    None,
)
DAILY_STATEMENT = Table(
    "daily-statement",
    "view_daily_statement",
    _columns(
        "$business_date $account_id #closed_seq $closed_at $investor_class $balances "
        "$positions market_value unrealized_pnl loan_principal loan_interest loan "
        "interest_accrued equity initial_requirement maintenance_requirement margin_level "
        "$status $call_id"
    ),
    ("business_date", "account_id"),
    "business_date",
)

TABLES: tuple[Table, ...] = (
    BALANCES,
    POSITIONS,
    MARGIN_CLIENTS,
    COLLATERAL_CONCENTRATION,
    MARGIN_CALLS,
    LIQUIDATIONS,
    LIQUIDATION_STEPS,
    PERPS_EXPOSURE,
    PLATFORM_EXPOSURE,
    STALE_MARKS,
    CLIENT_ASSETS,
    LENDING_LIMITS,
    DAILY_STATEMENT,
)
TABLES_BY_VIEW: dict[str, Table] = {table.view: table for table in TABLES}

Cell: TypeAlias = str | int | None
Row: TypeAlias = tuple[Cell, ...]

# The history the API's `as_of` account reads are answered from (projections/history.py):
# each client account's balances, positions, loan and margin call after every event that
# changed them, and every mark, by journal seq. Appended to, never rewritten; kept only by
# views stored next to the journal, not by scratch views in memory.
HISTORY_START = Table(
    "history-start",
    "history_start",
    _columns("$projection #first_seq"),
    ("projection",),
    "projection",
)
HISTORY_KEYS = Table(
    "history-keys",
    "history_keys",
    _columns("$account_id $kind $item #ordinal #first_seq"),
    ("account_id", "kind", "item"),
    None,
)
HISTORY_VALUES = Table(
    "history-values",
    "history_values",
    _columns("$account_id $kind $item #seq value extra"),
    ("account_id", "kind", "item", "seq"),
    None,
)
HISTORY_ACCOUNTS = Table(
    "history-accounts",
    "history_accounts",
    _columns(
        "$account_id #seq loan_principal loan_interest $call_id $call_issued_at "
        "$call_deadline call_amount $call_trigger"
    ),
    ("account_id", "seq"),
    None,
)
HISTORY_TABLES: tuple[Table, ...] = (HISTORY_START, HISTORY_KEYS, HISTORY_VALUES, HISTORY_ACCOUNTS)
