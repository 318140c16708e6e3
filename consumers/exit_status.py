"""The exit statuses of `ledger run` (docs/pipeline.md, "Exit statuses"). The relay process
ends with the same ones, and the service passes its status on."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_FENCED = 3  # another instance took over, or two writers met in the store
EXIT_UNDECIDABLE = 4  # an inbox record could not be decided: a fault in the ledger
EXIT_DIVERGED = 5  # the journal topic's tail is not the store's record: an alarm
EXIT_BROKER_UNREACHABLE = 6  # at start, the broker did not answer within the broker wait
