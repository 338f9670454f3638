"""`python -m harness.cli ...` is `bench ...`."""

from harness.cli.entry import main

raise SystemExit(main())
