"""Error types shared by every package.

`UserError` is the one exception that means "the user's input is wrong": the CLI prints its message as a
single `error: ...` line and exits with code 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (config, data files, model files, CLI flags): one line, exit code 2."""

    exit_code = 2


class CheckFailed(Exception):
    """A check the user asked for did not pass (e.g. a performance regression): exit code 1."""

    exit_code = 1
