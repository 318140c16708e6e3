"""Every bound the ledger enforces, in one place; units last."""

inbox_record_bytes_max = 16_384
inbox_json_depth_max = 64  # a record is one flat object; deeper is refused before reading
event_id_chars_max = 128
amount_exclusive_max = 10**18
inbox_batch_records_max = 2_000
journal_read_batch_events_max = 5_000
account_id_chars_max = 128
trade_id_chars_max = 128
group_id_chars_max = 128  # a related-client group's id
# A liquidation id is the ledger's own: `{event_id}:liquidation:{account_id}`.
liquidation_id_chars_max = event_id_chars_max + len(":liquidation:") + account_id_chars_max
perp_quantity_decimal_places_max = 8  # perpetual sizes: venues trade down to 10^-8 of a coin
price_decimal_places_max = 18  # prices and rates keep full precision, up to this many places
# Journal events between two book snapshots: a restart or a read replays at most this many.
snapshot_interval_events = 10_000
