"""Terminal output: rich progress bars on a terminal, plain lines otherwise, nothing with --quiet."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# Piped output (CI logs, `| tee`) gets a wide table instead of rich's 80-column default, and status lines on a
# pipe are never wrapped (soft_wrap): a log line stays one line, whatever its length.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())
_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def info(msg: str) -> None:
    """A status line on stderr (stdout stays clean for --json output). Printed literally: messages carry
    reasons such as `pip install .[tensorrt]`, which rich markup would swallow."""
    if not _quiet:
        err_console.print(msg, markup=False)


class _PlainTask:
    """Off a terminal a step counter is noise (a `make bench` log had ~1,100 step lines): the caller's
    per-epoch/per-phase `info` lines carry the progress, and this task prints one line when it ends."""

    def __init__(self, desc: str, total: float | None) -> None:
        self.desc, self.total, self.done = desc, total, 0.0

    def advance(self, n: float = 1.0, **fields: Any) -> None:
        self.done += n

    def finish(self) -> None:
        if not _quiet:
            info(f"{self.desc}: done ({self.done:g}/{self.total or '?'} steps)")


class _RichTask:
    def __init__(self, progress: Progress, desc: str, total: float | None) -> None:
        self.progress, self.id = progress, progress.add_task(desc, total=total, status="")

    def advance(self, n: float = 1.0, **fields: Any) -> None:
        status = " ".join(f"{k}={v}" for k, v in fields.items())
        self.progress.update(self.id, advance=n, status=status)


@contextmanager
def progress_task(desc: str, total: float | None) -> Iterator[Any]:
    """A progress bar (rich on a terminal, plain lines on a pipe, silent when quiet); `.advance(n, **fields)`."""
    if _quiet or not err_console.is_terminal:
        task = _PlainTask(desc, total)
        yield task
        task.finish()
        return
    cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"))
    with Progress(*cols, console=err_console, transient=False) as prog:
        yield _RichTask(prog, desc, total)
