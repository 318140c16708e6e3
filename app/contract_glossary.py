"""What each contract field and reason code means, for the documents generated from the code.

`app/contract_docs.py` writes these meanings into the JSON Schemas, the AsyncAPI document and
the field tables of docs/events.md; a test fails when a field or a reason code of the code
has none, so a new field is documented in the change that adds it.

A meaning is looked up as `type.field` first (the meaning in that record type), then as
`field` (the meaning wherever the name appears).
"""

from __future__ import annotations

from ledger.rejections import ReasonCode

FIELD_MEANINGS: dict[str, str] = {
    # -- common to every record -----------------------------------------------------------
    "event_id": "Unique per upstream fact: the ledger's idempotency key.",
    "type": "The record type.",
    "occurred_at": "When it happened upstream; the ledger's clock is the largest seen.",
    "source": "The upstream system's name.",
    "seq": "Position in the journal: 1, 2, 3, ... with no gaps and no repeats.",
    "recorded_at": "The ledger clock when it was recorded (the largest `occurred_at` seen), UTC.",
    "causation_id": "The inbox `event_id` that caused the event.",
    "input_digest": "SHA-256 of the causing inbox record's content in its normal form "
    '(docs/events.md "The digests"), on the first event it caused: a redelivery with the same '
    "`event_id` and content is a no-op, different content is `event_id_conflict`.",
    "prev_hash": "The `hash` of the record with `seq - 1`; 64 zeros for `seq` 1.",
    "hash": "Lowercase hex SHA-256 of `prev_hash` (ASCII) followed by the canonical JSON of "
    "the record without `hash`.",
    # -- identities -----------------------------------------------------------------------
    "account_id": "The client account (or a platform account) the record applies to.",
    "bankrupt_account_id": "The account whose deficit the deleveraging absorbs.",
    "trade_id": "The venue's trade id.",
    "call_id": "The margin call's id.",
    "liquidation_id": "The liquidation this belongs to.",
    "perp_trade.liquidation_id": "Set by the venue on its execution of a position a liquidation "
    "of the ledger took over: booked on `platform:liquidation`, never on the client "
    "(docs/risk-model.md).",
    "spot_trade.liquidation_id": "Set by the venue on its sale of collateral a liquidation of the "
    "ledger took over: booked on `platform:liquidation`, never on the client "
    "(docs/risk-model.md).",
    "liquidated_account_id": "The account the liquidation closed out.",
    "reference": "The upstream reference of the transfer.",
    # -- accounts and policy --------------------------------------------------------------
    "investor_class": "`professional` or `retail`: only professional accounts may increase "
    "perpetual exposure.",
    "credit_limit": "The credit team's approved margin-loan limit, USD.",
    "previous_credit_limit": "The limit before this change, USD.",
    "version": "The risk policy's version.",
    "digest": "SHA-256 of the risk policy file's bytes.",
    "policy_version": "The version of the risk policy the decision was taken under.",
    # -- what is booked -------------------------------------------------------------------
    "asset": "An asset code (USD, HKD, USDT, BTC, ETH, or a security VENUE:CODE).",
    "amount": "The amount, in the asset (USD where the record names no asset).",
    "margin_call_issued.amount": "What the call asks for: maintenance requirement minus "
    "equity, USD; for a call on a lending limit, the loan minus `limit`, rounded up to the cent.",
    "margin_call_issued.trigger": "`below_maintenance_requirement` (written only when another), "
    "or the lending limit a financed debit broke: `credit_limit_exceeded` or "
    "`lending_value_exceeded`.",
    "margin_call_issued.limit": "For a call on a lending limit: the limit the loan is above, USD.",
    "mark_price_applied.observed_at": "The mark's own `occurred_at` when earlier than the "
    "ledger clock: a mark's age (policy `mark_max_age_minutes`) counts from it.",
    "mark_price_applied.alert": "True when the mark moved more than the policy's "
    "`mark_alert_move` from the previous mark: booked all the same; absent when false.",
    "mark_price_applied.previous_price": "The previous mark, on an alert.",
    "margin_decision_waiting.stale_marks": "The marks the account holds that are older than "
    "`mark_max_age_minutes`; empty when the wait ends.",
    "margin_decision_waiting.mark_times": "When each stale mark was observed.",
    "margin_decision_waiting.limit_call": "True when a limit call (after a financed debit) "
    "waits too: the freshly marked collateral lends less than both the credit limit and the "
    "loan, so a stale mark could change it; it is decided when the wait ends.",
    "reason": "Why the correction was made, as the upstream system states it.",
    "original_seq": "The `seq` of the journal event this one reverses.",
    "trade_reversed.original_type": "`spot_trade_booked` or `perp_trade_booked`.",
    "trade_reversed.fee_refunded": "The original's fee, back to the client, USD.",
    "trade_reversed.realized_pnl_reversed": "The original's realised PnL, undone, USD.",
    "trade_reversed.size_after": "For a perpetual: the client's position after the reversal, "
    "the size before the busted trade.",
    "trade_reversed.entry_price_after": "For a perpetual: the entry price before the busted "
    "trade, restored.",
    "trade_reversed.house_realized_pnl": "For a perpetual: what the house realised trading the "
    "opposite back at the original price, USD.",
    "deposit_reversed.amount": "The deposit's amount, back to custody.",
    "debit_financed.amount": "The USD the client lacked, drawn on its margin loan.",
    "debit_financed.cause": "The journal event type whose debit took the client's USD below "
    "zero, such as `spot_trade_booked` or `funding_settled`.",
    "debit_financed.cause_seq": "The `seq` of that event.",
    "debit_financed.limits_broken": "Reason codes of the lending limits the draw broke (a fact "
    "is financed regardless); absent when none.",
    "funding_payment.amount": "Paid by the account, USD; negative when it receives.",
    "interest_accrued.amount": "The interest added to the loan, USD: a day's interest for "
    "each of the `days`, on that day's principal, each day rounded to the cent.",
    "interest_accrued.days": "Calendar days accrued, from `first_date` to `business_date` "
    "inclusive (a Monday after a Friday close accrues 3); absent means 1.",
    "interest_accrued.first_date": "The first calendar day accrued: the day after the last "
    "close (the close's own date at the ledger's first close).",
    "interest_accrued.principal": "The loan principal at the end of `business_date`, USD: "
    "what every day accrued on, unless `daily_principals` gives each day's.",
    "interest_accrued.daily_principals": "Each calendar day accrued (ISO date) with the loan "
    "principal at that day's end, when the days had different principals; absent when "
    "`principal` stood for every day.",
    "insurance_fund_drawn.amount": "What the fund paid towards the deficit, USD.",
    "loan_repaid.amount": "The repayment, USD.",
    "instrument": "An asset other than USD, or a perpetual market.",
    "market": "A linear perpetual market quoted and settled in USD, such as BTC-PERP.",
    "symbol": "A spot pair against USD, such as BTC/USD.",
    "side": "`buy` or `sell`.",
    "quantity": "Units of the base asset or contracts traded.",
    "liquidation_step.quantity": "Signed units that left the account (for a position, the "
    "size closed).",
    "price": "USD per unit.",
    "fee": "USD charged to the account.",
    "liquidation_step.fee": "The liquidation fee, USD, credited to the insurance fund.",
    "quote_amount": "USD moved by the trade: quantity times price.",
    "size": "Signed position size in contracts: positive long, negative short.",
    "size_after": "The signed position size after the trade.",
    "entry_price": "The position's volume-weighted entry price, USD.",
    "entry_price_after": "The entry price after the trade, USD.",
    "realized_pnl": "Profit or loss the trade realised into USD (zero when it only increased "
    "the position).",
    "interest_paid": "The part of the repayment that settled accrued interest, USD.",
    "principal_paid": "The part of the repayment that reduced the principal, USD.",
    "business_date": "The business day, YYYY-MM-DD.",
    "principal": "The loan principal interest was computed on, USD.",
    "annual_rate": "The policy's annual loan rate.",
    "day_count": "Days per year of the interest convention.",
    "rate": "The funding rate per interval; positive when longs pay shorts.",
    "funding_time": "The funding interval's time.",
    "mark_price": "The market's mark, USD per unit.",
    "payments": "One payment per open position.",
    "residue": "The rounding residue credited to the house account so that funding sums to "
    "zero, USD.",
    # -- decisions ------------------------------------------------------------------------
    "reason_code": "Why it was refused: a code from the closed list (docs/events.md).",
    "detail": "A sentence a person can act on.",
    "inputs": "What the decision was taken on: holdings, marks, policy version, figures.",
    "inputs_after": "The decision's inputs with the withdrawal applied.",
    "holdings": "The account's balances, loan and positions.",
    "balances": "Balance per asset.",
    "loan": "The margin loan: principal plus accrued interest, USD.",
    "positions": "Open perpetual positions.",
    "marks": "The marks the decision used, USD per unit, by instrument.",
    "figures": "The risk model's figures (docs/risk-model.md).",
    "figures_after": "The risk model's figures after the last step.",
    "limits": "The lending figures the draw was decided on.",
    "loan_before": "The loan before the draw, USD.",
    "loan_after": "The loan the draw would reach, USD.",
    "lending_value": "What the collateral may borrow: eligible non-cash collateral after the "
    "initial haircut, USD.",
    "firm_loans_after": "Every client's margin loan (principal plus accrued interest) with "
    "this draw, USD.",
    "firm_loans_max": "The firm's limit: shareholders' funds times the policy's multiple, USD.",
    "client_loan_max": "One client's limit: the policy's share of shareholders' funds, USD.",
    "group_limit": "The related-client group's loan figures, for an account in a group.",
    "group_id": "A group of related clients, held together to the per-client loan limit.",
    "previous_group_id": "The group the account was in before, if any.",
    "daily_statements": "`sent`, or `waived`: a professional investor's opt-out of daily "
    "statements (monthly ones are still sent).",
    "daily_statements_set.previous": "The preference before: `sent` or `waived`.",
    "members": "The group's accounts, in account order.",
    "group_loans_after": "Every member's loan with this draw, USD.",
    "group_loan_max": "The group's limit: the per-client share of shareholders' funds, USD.",
    "deadline": "When an unmet call turns into liquidation (issued time plus the policy's "
    "deadline hours).",
    "outcome": "`met` when the account is healthy again, `liquidated` when a liquidation "
    "closed the call.",
    "trigger": "`below_liquidation_requirement` or `margin_call_deadline`.",
    "steps": "Every step of the liquidation, in order.",
    "kind": "`close_position`, `cash_to_loan` or `sell_collateral`.",
    "proceeds": "USD credited to the account (for a position, the realised PnL).",
    "loan_repaid": "USD of the loan the step repaid.",
    "fund_balance_after": "The insurance fund's USD balance after the draw.",
    "size_reduced": "Contracts taken off the profitable position.",
    "bankruptcy_price": "The price at which the bankrupt account's equity is zero, USD.",
    "absorbed": "USD of the deficit this reduction absorbed.",
    "takeover_price": "The price at which the liquidation took the instrument over (the mark), "
    "USD.",
    "takeover_cost": "Collateral: the USD the liquidation paid for the quantity filled.",
    "gross_result": "Position: quantity closed times (fill price - takeover price); "
    "collateral: the quote amount less the takeover cost; USD.",
    "result": "The gross result less the fill's fee: the liquidation account's result, USD.",
    "insurance_fund_paid": "The result when positive, paid into the insurance fund, USD.",
    "remaining_after": "What the liquidation has left to execute in the instrument after the "
    "fill, signed like the position taken over.",
    "liquidation_filled.side": "The liquidation account's side: toward a zero lot.",
    "liquidation_filled.kind": "The step that took the instrument over: `close_position` or "
    "`sell_collateral`.",
    "liquidation_filled.fee": "USD charged by the venue for the fill, borne by the result.",
    "ranking": "Why this position was next in the auto-deleveraging queue: its figures.",
    "rank": "Its place in the queue: 1 was deleveraged first.",
    "pnl_ratio": "Unrealised PnL over the position's entry notional (|size| x entry price).",
    "notional": "|size| x mark, USD.",
    "deleveraging_rank.size": "The position's size before it was reduced.",
    "deleveraging_rank.equity": "The equity of the whole account, USD.",
    "effective_leverage": "Notional over the account's equity; null when equity is not "
    "positive (such a position comes after every scored one).",
    "score": "PnL ratio x effective leverage, 8 places: the queue's order, highest first.",
    "loan_written_off": "The margin loan's shortfall: the broker's credit loss, USD.",
    "cash_written_off": "A perpetuals deficit no profitable position could absorb, USD.",
    # -- the risk model's figures (docs/risk-model.md) ------------------------------------
    "market_value": "Sum of balance times mark over every asset, USD.",
    "unrealized_pnl": "Sum over positions of size times (mark - entry price), USD.",
    "equity": "Market value plus unrealised PnL minus the loan, USD.",
    "initial_requirement": "Initial haircuts of holdings plus positions' initial margin, USD.",
    "maintenance_requirement": "Maintenance haircuts of holdings plus positions' maintenance "
    "margin, USD.",
    "liquidation_requirement": "Liquidation haircuts of holdings plus positions' maintenance "
    "margin, USD.",
    "excess": "Equity minus the maintenance requirement, USD.",
    "available": "Equity minus the initial requirement: what the account can still commit.",
    "margin_level": "Equity over the maintenance requirement; null when the requirement is 0.",
    "ltv": "Loan over eligible collateral's market value; null when that is 0.",
    "status": "`healthy`, `margin_call` or `liquidating`.",
}

JOURNAL_TYPE_MEANINGS: dict[str, str] = {
    "policy_adopted": "The ledger started deciding under this risk policy.",
    "account_opened": "A client account was opened.",
    "credit_limit_set": "The account's credit limit changed.",
    "deposit_credited": "A deposit was credited to the account.",
    "withdrawal_approved": "A withdrawal was approved and debited; carries the figures after it.",
    "withdrawal_rejected": "A withdrawal was refused; carries the reason and, when valued, the "
    "figures it was refused on.",
    "loan_drawn": "A margin-loan draw was approved and its USD credited.",
    "debit_financed": "A booked fact took more USD than the client held: the shortfall was "
    "drawn on its margin loan in the same decision.",
    "loan_draw_rejected": "A margin-loan draw was refused, with the limit it broke.",
    "loan_repaid": "A repayment settled accrued interest first, then principal.",
    "interest_accrued": "Loan interest for every calendar day since the last close was added "
    "to the loan.",
    "spot_trade_booked": "A spot trade moved the base and quote balances.",
    "perp_trade_booked": "A perpetual trade changed a position and realised any PnL.",
    "mark_price_applied": "A mark was recorded; every holder is revalued at it.",
    "funding_settled": "Funding was paid between the positions of a market.",
    "day_closed": "A business day was closed.",
    "margin_call_issued": "Equity fell below the maintenance requirement: a margin call.",
    "trade_reversed": "A busted trade reversed exactly (every posting undone), linked to the "
    "original by `original_seq`.",
    "deposit_reversed": "A returned deposit reversed exactly, linked to the original by "
    "`original_seq`.",
    "margin_decision_waiting": "A margin call or liquidation the account calls for waits for "
    "fresh marks (or, with no stale marks, the wait ended).",
    "margin_call_cleared": "A margin call ended: met, or closed by a liquidation.",
    "liquidation_triggered": "A liquidation started, with the figures that triggered it.",
    "liquidation_completed": "A liquidation's steps, each with its price, and the figures after.",
    "liquidation_filled": "A venue fill executed part of what a liquidation took over, on "
    "`platform:liquidation`; a positive result paid into the insurance fund.",
    "insurance_fund_drawn": "The insurance fund covered (part of) a liquidation's deficit.",
    "auto_deleveraged": "A profitable opposite position was reduced at the bankrupt account's "
    "bankruptcy price.",
    "bad_debt_recorded": "What neither collateral, the insurance fund nor deleveraging covered.",
    "related_group_set": "The account joined a group of related clients, or left its group.",
    "daily_statements_set": "Whether the account gets daily statements: `sent`, or `waived` "
    "by a professional investor.",
}

# The shapes nested inside journal records, by their snake_case name.
SHAPE_MEANINGS: dict[str, str] = {
    "decision_inputs": "What a decision was taken on, so that `audit explain` can recompute it.",
    "holdings": "An account's balances, loan and positions: the inputs of the risk model.",
    "position_holding": "One open perpetual position.",
    "figures": "The risk model's figures for one account (docs/risk-model.md).",
    "loan_limits": "The lending figures a loan draw is decided on.",
    "group_loan_limit": "The related-client group a loan draw's account belongs to, held to "
    "the per-client loan limit for the group's total.",
    "funding_payment": "What one position paid or received at a funding.",
    "deleveraging_rank": "Where a profitable position stood in the auto-deleveraging queue "
    "(docs/risk-model.md).",
    "liquidation_step": "One step of a liquidation, booked against the platform's liquidation "
    "account.",
    "margin_status": "An account's margin status, one of:",
    "reason_code": "Why an input was refused, one of (meanings in the list of reason codes):",
}

REASON_MEANINGS: dict[ReasonCode, str] = {
    ReasonCode.RECORD_TOO_LARGE: "The record is larger than the inbox allows.",
    ReasonCode.INVALID_ENCODING: "The value is not UTF-8.",
    ReasonCode.MALFORMED_JSON: "The value is not one JSON document (or repeats a key, or "
    "nests too deep).",
    ReasonCode.NOT_AN_OBJECT: "The JSON value is not an object.",
    ReasonCode.UNKNOWN_TYPE: "`type` is missing or names no inbox record type.",
    ReasonCode.MISSING_FIELD: "A required field is absent.",
    ReasonCode.UNKNOWN_FIELD: "A field the type does not have.",
    ReasonCode.INVALID_FIELD: "A field has the wrong JSON type or a value outside its set.",
    ReasonCode.INVALID_EVENT_ID: "`event_id` is empty, too long or not printable text.",
    ReasonCode.INVALID_TIMESTAMP: "A timestamp is not RFC 3339 with an offset.",
    ReasonCode.NUMBER_NOT_STRING: "A figure is a JSON number; write it as a string.",
    ReasonCode.INVALID_DECIMAL: "A figure is not a plain decimal (exponent, sign, NaN, ...).",
    ReasonCode.NOT_POSITIVE: "An amount, quantity or price is zero or negative.",
    ReasonCode.AMOUNT_TOO_LARGE: "A figure is 10^18 or more.",
    ReasonCode.TOO_MANY_DECIMALS: "More decimal places than the asset's scale.",
    ReasonCode.UNKNOWN_ASSET: "An asset the risk policy does not know.",
    ReasonCode.UNKNOWN_MARKET: "A perpetual market the risk policy does not know.",
    ReasonCode.INVALID_SYMBOL: "A spot symbol that is not BASE/USD with a known base.",
    ReasonCode.TOO_DEEP: "Arrays or objects nested more than 64 deep; a record is one flat object.",
    ReasonCode.DUPLICATE_KEY: "A key written twice in one record (also when one is escaped).",
    ReasonCode.INVALID_IDENTIFIER: "An id or text field with an unprintable character "
    "(control, format, bidi), or not in Unicode NFC.",
    ReasonCode.EVENT_ID_CONFLICT: "The `event_id` was seen before with different content.",
    ReasonCode.UNKNOWN_ACCOUNT: "No account with that `account_id` was opened.",
    ReasonCode.ACCOUNT_ALREADY_EXISTS: "`account_opened` for an account already open.",
    ReasonCode.NOT_PROFESSIONAL_INVESTOR: "A retail account may not increase perpetual exposure.",
    ReasonCode.NO_MARK_PRICE: "The decision needs a mark the ledger has not received yet.",
    ReasonCode.INSUFFICIENT_BALANCE: "The balance does not cover the withdrawal.",
    ReasonCode.BELOW_INITIAL_REQUIREMENT: "After it, equity would be below the initial "
    "requirement.",
    ReasonCode.CREDIT_LIMIT_EXCEEDED: "The loan would exceed the account's credit limit.",
    ReasonCode.LENDING_VALUE_EXCEEDED: "The loan would exceed the collateral's lending value.",
    ReasonCode.FIRM_LENDING_LIMIT_EXCEEDED: "Total margin loans would exceed the firm's limit.",
    ReasonCode.CLIENT_LOAN_LIMIT_EXCEEDED: "One client's loan would exceed its share of "
    "shareholders' funds.",
    ReasonCode.GROUP_LOAN_LIMIT_EXCEEDED: "A related-client group's loans would exceed the "
    "per-client share of shareholders' funds the group is held to.",
    ReasonCode.REPAYMENT_EXCEEDS_LOAN: "The repayment is more than the loan and its interest.",
    ReasonCode.RESERVED_ACCOUNT: "The `account_id` names one of the platform's own accounts.",
    ReasonCode.UNKNOWN_LIQUIDATION: "A fill names no liquidation of the ledger in that "
    "instrument, or one of another account.",
    ReasonCode.LIQUIDATION_OVERFILLED: "A fill is larger than what the liquidation has left to "
    "execute.",
    ReasonCode.DAY_ALREADY_CLOSED: "A `day_closed` for a business date already closed, or "
    "earlier than the last one closed.",
    ReasonCode.MARGIN_CALL_OPEN: "A loan draw or withdrawal while the account has an open "
    "margin call (the policy's `advances_during_call` is false).",
    ReasonCode.FUNDING_ALREADY_SETTLED: "A `funding_rate` for a market and `funding_time` "
    "already settled.",
    ReasonCode.FUNDING_RATE_OUT_OF_BOUNDS: "A funding rate of larger magnitude than the "
    "policy's `max_funding_rate` for the market.",
    ReasonCode.UNKNOWN_TRADE: "`trade_busted` names no client trade the ledger booked.",
    ReasonCode.TRADE_ALREADY_BUSTED: "`trade_busted` for a trade already reversed.",
    ReasonCode.TRADE_NOT_REVERSIBLE: "The bust cannot be exact: a later trade changed the "
    "position, or the bought asset is no longer held; correct those first.",
    ReasonCode.UNKNOWN_DEPOSIT: "`deposit_returned` names no client deposit's `reference`.",
    ReasonCode.DEPOSIT_ALREADY_RETURNED: "`deposit_returned` for a deposit already reversed.",
    ReasonCode.LIQUIDATION_SIDE_MISMATCH: "A fill would add to what the liquidation took over "
    "instead of executing it.",
    ReasonCode.SKIPPED_BY_OPERATOR: "An operator moved past this record without deciding it "
    "(`ledger inbox skip`); the detail says why.",
}


def field_meaning(record_type: str, field: str) -> str | None:
    """The meaning of `field` in `record_type` (a type tag or a nested shape's name)."""
    return FIELD_MEANINGS.get(f"{record_type}.{field}") or FIELD_MEANINGS.get(field)
