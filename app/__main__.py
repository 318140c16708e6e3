"""`python -m app` runs the same command line as the `ledger` script."""

from app.cli import main

raise SystemExit(main())
