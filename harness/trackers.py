"""What a cell records beside its timings: other processes' CPU share during a timed loop, and peak memory."""

from __future__ import annotations

import os
import resource
import sys
import time


def cpu_snapshot() -> tuple[float, float, float]:
    """(wall s, CPU s busy on the whole machine, CPU s used by this process) for `other_cpu_fraction`."""
    import psutil

    t = psutil.cpu_times()
    busy = sum(getattr(t, f) for f in t._fields if f not in ("idle", "iowait", "guest", "guest_nice"))
    me = psutil.Process().cpu_times()
    return time.monotonic(), float(busy), float(me.user + me.system)


def other_cpu_fraction(before: tuple[float, float, float], after: tuple[float, float, float]) -> float | None:
    """Share of the machine's CPU capacity that *other* processes used between two snapshots: a timing taken
    while the machine was busy with something else is not a measurement of the backend."""
    wall = after[0] - before[0]
    if wall <= 0:
        return None
    others = (after[1] - before[1]) - (after[2] - before[2])
    return max(0.0, others / (wall * (os.cpu_count() or 1)))


def peak_rss_bytes() -> int:
    """This process's peak resident set size (ru_maxrss; current RSS via psutil as a floor)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    try:
        import psutil

        peak = max(peak, psutil.Process().memory_info().rss)
    except Exception:
        pass
    return int(peak)
