"""`python -m app` runs the same command line as the `ledger` script."""

from app.entry import main

raise SystemExit(main())
