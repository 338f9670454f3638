"""The `bench` command line: the entry point (`entry.py`: parser, exit codes, signals) and one module per
subcommand (`run.py`, `compare.py`, ...), each exposing `HELP`, `add_arguments(parser)` and `run(args) -> int`.

The only room that may import every other room of harness/ and reports/: it turns flags into the small settings
objects the rooms below take, and their results into tables and exit codes.
"""

from harness.cli.entry import main

__all__ = ["main"]
