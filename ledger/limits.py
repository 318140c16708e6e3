"""Every bound the ledger enforces, in one place; units last."""

inbox_record_bytes_max = 16_384
event_id_chars_max = 128
amount_exclusive_max = 10**18
inbox_batch_records_max = 2_000
journal_read_batch_events_max = 5_000
