"""`python -m ledger` runs the same command line as the `ledger` script."""

from ledger.cli import main

raise SystemExit(main())
