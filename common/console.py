"""Terminal output: rich progress bars on a terminal, plain lines otherwise, nothing with --quiet.

On a pipe (CI, `make bench > log`) there are no carriage-return bars. A `phase` runs a heartbeat that prints a line
whenever nothing was printed for PIPE_INTERVAL_S: the running progress task's line (done, rate, ETA), else that the
phase is still running; so a log never goes silent for longer than that (a silent log looks like a hang), and never
gets more than one progress line per interval. Each phase's time is kept for the summary at the end.
"""

from __future__ import annotations

import math
import sys
import threading
import time
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
# On a pipe, the longest a long step stays silent (kept under 30 s; tests set it to a fraction of a second).
PIPE_INTERVAL_S = 25.0
_last_line = time.monotonic()  # when `info` last printed
_phases: list[tuple[str, float]] = []  # finished phases (name, seconds), in order
_active: list[str] = []  # open phases, innermost last
_task: _PlainTask | None = None  # the progress task running on a pipe, which the heartbeat reports
_lock = threading.Lock()


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def info(msg: str) -> None:
    """A status line on stderr (stdout stays clean for --json output). Printed literally: messages carry
    reasons such as `pip install .[tensorrt]`, which rich markup would swallow."""
    global _last_line
    if not _quiet:
        with _lock:
            err_console.print(msg, markup=False)
            _last_line = time.monotonic()


def duration(seconds: float) -> str:
    """Seconds as people read them: "42 s", "7 min 5 s", "1 h 3 min"."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def about(seconds: float) -> str:
    """An estimate, rounded as honestly as it is known: "~40 s", "~7 min", "~1.5 h"."""
    if seconds < 90:
        return f"~{max(10, 10 * round(seconds / 10))} s"
    if seconds < 5400:
        return f"~{max(2, round(seconds / 60))} min"
    return f"~{seconds / 3600:.1f} h"


class _PlainTask:
    """Off a terminal a step counter is noise (a `make bench` log had ~1,100 step lines): one line at most every
    PIPE_INTERVAL_S with what is done, the rate and the ETA, and one line when it ends. `scale`/`unit` turn steps
    into what the reader counts (a training step of 32 images: scale 32, unit "img")."""

    def __init__(self, desc: str, total: float | None, scale: float = 1.0, unit: str = "steps") -> None:
        self.desc, self.total, self.done, self.scale, self.unit = desc, total, 0.0, scale, unit
        self.start = self.last = time.monotonic()

    def advance(self, n: float = 1.0, **fields: Any) -> None:
        self.done += n
        if _active:  # a phase's heartbeat prints this task's line when it is due
            return
        now = time.monotonic()
        if now - max(self.last, _last_line) >= 0.8 * PIPE_INTERVAL_S and not _quiet:
            self.last = now
            info(self.line(now - self.start))

    def line(self, elapsed: float) -> str:
        done, unit = self.done * self.scale, self.unit
        rate = done / elapsed if elapsed > 0 else math.nan
        text = f"{self.desc}: {done:,.0f}"
        if self.total:
            total = self.total * self.scale
            eta = (total - done) / rate if rate > 0 else math.nan
            text += f"/{total:,.0f} {unit} ({100 * done / total:.0f}%), {rate:.1f} {unit}/s"
            text += f", ETA {duration(eta)}" if math.isfinite(eta) else ""
        else:
            text += f" {unit}, {rate:.1f} {unit}/s"
        return text

    def finish(self) -> None:
        if not _quiet:
            elapsed = time.monotonic() - self.start
            rate = self.done * self.scale / elapsed if elapsed > 0 else 0.0
            info(f"{self.desc}: done, {self.done * self.scale:,.0f} {self.unit} in {duration(elapsed)} "
                 f"({rate:.1f} {self.unit}/s)")


class _RichTask:
    def __init__(self, progress: Progress, desc: str, total: float | None) -> None:
        self.progress, self.id = progress, progress.add_task(desc, total=total, status="")

    def advance(self, n: float = 1.0, **fields: Any) -> None:
        status = " ".join(f"{k}={v}" for k, v in fields.items())
        self.progress.update(self.id, advance=n, status=status)


@contextmanager
def progress_task(desc: str, total: float | None, scale: float = 1.0, unit: str = "steps") -> Iterator[Any]:
    """A progress bar (rich on a terminal, plain lines on a pipe, silent when quiet); `.advance(n, **fields)`."""
    global _task
    if _quiet or not err_console.is_terminal:
        task = _PlainTask(desc, total, scale, unit)
        outer, _task = _task, task
        try:
            yield task
        finally:
            _task = outer
        task.finish()
        return
    cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"))
    with Progress(*cols, console=err_console, transient=False) as prog:
        yield _RichTask(prog, desc, total)


def _heartbeat(stop: threading.Event, started: float) -> None:
    """While a phase runs on a pipe: whenever nothing was printed for PIPE_INTERVAL_S, the running progress task's
    line (done, rate, ETA), else that the innermost phase is still running."""
    while not stop.wait(min(1.0, PIPE_INTERVAL_S / 4)):
        now = time.monotonic()
        if now - _last_line >= PIPE_INTERVAL_S and _active:
            task = _task
            if task is not None:
                info(task.line(now - task.start))
            else:
                info(f"{_active[-1]}: still running, {duration(now - started)} elapsed")


@contextmanager
def phase(name: str) -> Iterator[None]:
    """A long step of a command (data, training, compression, grid, report): on a pipe the outermost phase runs a
    heartbeat (see PIPE_INTERVAL_S) naming the innermost one; its time goes into `phase_times()`."""
    t0 = time.monotonic()
    stop = threading.Event()
    beat = None
    if not _active and not _quiet and not err_console.is_terminal:
        beat = threading.Thread(target=_heartbeat, args=(stop, t0), name="console-heartbeat", daemon=True)
        beat.start()
    _active.append(name)
    try:
        yield
    finally:
        _active.pop()
        stop.set()
        if beat is not None:
            beat.join()
        _phases.append((name, time.monotonic() - t0))


def phase_times() -> list[tuple[str, float]]:
    """(name, seconds) of every phase finished in this process, in order."""
    return list(_phases)


def phase_summary() -> str:
    """One line: the time of each phase and the total ("" when none ran)."""
    if not _phases:
        return ""
    parts = ", ".join(f"{n} {duration(s)}" for n, s in _phases)
    return f"time per phase: {parts} (total {duration(sum(s for _, s in _phases))})"
