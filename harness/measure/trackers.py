"""What a cell records beside its timings: the noise sources of each timed loop (CPU steal, other processes'
CPU share, CPU frequency, load average; all against this process's CPU affinity), and peak memory."""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

# A process whose timed loop ran under more steal or foreign load than this is marked noisy: counted like every
# other process and reported; a cell whose processes are all noisy is INVALID. Steal: the hypervisor gave our
# CPUs to another guest.
MAX_STEAL = 0.10
MAX_OTHER_CPU = 0.25


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity), not the machine's count."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


class NoiseProbe:
    """Snapshots around a timed loop; `finish()` gives the noise fields of that loop.

    steal_fraction and other_cpu_fraction are shares of the capacity of the allowed CPUs over the loop's wall
    time (per-CPU counters of /proc/stat via psutil, summed over the affinity set only); cpu_mhz is the mean
    current frequency of the allowed CPUs where the kernel exposes it (often not on VMs: then None)."""

    def __init__(self) -> None:
        self.cpus = allowed_cpus()
        self._start = self._snap()

    def _snap(self) -> tuple[float, float, float, float]:
        import psutil

        per = psutil.cpu_times(percpu=True)
        busy = steal = 0.0
        for i in self.cpus:
            if i >= len(per):
                continue
            t = per[i]
            busy += sum(getattr(t, f) for f in t._fields if f not in ("idle", "iowait", "guest", "guest_nice",
                                                                       "steal"))
            steal += float(getattr(t, "steal", 0.0))
        me = psutil.Process().cpu_times()
        return time.monotonic(), busy, steal, float(me.user + me.system)

    def finish(self) -> dict[str, Any]:
        end = self._snap()
        wall = end[0] - self._start[0]
        cap = wall * max(1, len(self.cpus))
        others = (end[1] - self._start[1]) - (end[3] - self._start[3])
        steal = end[2] - self._start[2]
        try:
            load1 = float(os.getloadavg()[0])
        except OSError:
            load1 = None
        out: dict[str, Any] = {
            "other_cpu_fraction": max(0.0, others / cap) if cap > 0 else None,
            "steal_fraction": max(0.0, steal / cap) if cap > 0 else None,
            "cpu_mhz": cpu_mhz(self.cpus),
            "loadavg_1m": load1,
            "cpus_allowed": len(self.cpus),
        }
        out["noisy"] = noisy_reason(out)
        return out


def noisy_reason(noise: dict[str, Any]) -> str:
    """Why a timed loop's machine state disqualifies it from the estimate ("" when it does not)."""
    steal, other = noise.get("steal_fraction"), noise.get("other_cpu_fraction")
    if isinstance(steal, int | float) and steal > MAX_STEAL:
        return f"CPU steal {steal:.0%} of the allowed CPUs (> {MAX_STEAL:.0%})"
    if isinstance(other, int | float) and other > MAX_OTHER_CPU:
        return f"other processes used {other:.0%} of the allowed CPUs (> {MAX_OTHER_CPU:.0%})"
    return ""


def cpu_mhz(cpus: list[int]) -> float | None:
    """Mean current frequency (MHz) of `cpus` from cpufreq sysfs; None where the kernel does not expose it."""
    vals = []
    for i in cpus:
        f = Path(f"/sys/devices/system/cpu/cpu{i}/cpufreq/scaling_cur_freq")
        try:
            vals.append(int(f.read_text().strip()) / 1000.0)
        except (OSError, ValueError):
            continue
    return sum(vals) / len(vals) if vals else None


def peak_rss_bytes() -> int:
    """This process's peak resident set size (ru_maxrss; current RSS via psutil as a floor)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    try:
        import psutil

        peak = max(peak, psutil.Process().memory_info().rss)
    except Exception:
        pass
    return int(peak)
