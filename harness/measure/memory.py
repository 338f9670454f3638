"""Memory per phase of a cell: peak RSS while a model loads/compiles, RSS around each timed loop.

No thread of ours runs while a loop is timed (a sampler thread that wakes inside the loop takes the GIL and a
core from the code being timed). Each phase is instead bracketed: RSS is read before and after it, and its peak
is the kernel's high-water mark (VmHWM of /proc/self/status), reset to the current RSS at the phase's start by
writing 5 to /proc/self/clear_refs (Linux >= 4.0). Where the kernel refuses the reset, the peak is the larger
of before and after (`peak_source` says which). The reset also resets ru_maxrss, so the process-wide peak is
kept here (`process_peak_bytes`). A second compiled model (the throughput one) reports its own load footprint,
and its loop's RSS without the first model's resident bytes.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_process_peak = 0


def current_rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def vm_hwm() -> int | None:
    """This process's peak RSS since start or the last reset (VmHWM, bytes); None where the kernel has none."""
    try:
        for line in _STATUS.read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak() -> bool:
    """Reset the high-water mark to the current RSS (True when the kernel accepted it)."""
    _note_peak()
    try:
        _CLEAR_REFS.write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


def _note_peak() -> None:
    global _process_peak
    _process_peak = max(_process_peak, vm_hwm() or 0)


def process_peak_bytes() -> int:
    """The process's peak RSS over its whole life, across the resets of `reset_peak`."""
    _note_peak()
    return _process_peak


class RssWindow:
    """`with RssWindow() as w: ...` -> w.before, w.after, w.peak (bytes) of this process's RSS over the block;
    no thread, two reads of /proc and one write."""

    def __init__(self) -> None:
        self.before = self.after = self.peak = 0
        self.peak_source = ""
        self._reset = False

    def __enter__(self) -> RssWindow:
        self._reset = reset_peak()
        self.before = current_rss()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.after = current_rss()
        hwm = vm_hwm() if self._reset else None
        self.peak = max(self.before, self.after, hwm or 0)
        self.peak_source = "VmHWM" if hwm else "before/after"


def load_record(window: RssWindow) -> dict[str, Any]:
    """What a model load leaves in the cell result: RSS before, peak during, and the model's own growth."""
    return {"rss_before_bytes": window.before, "peak_rss_bytes": window.peak,
            "model_rss_bytes": max(0, window.after - window.before), "peak_source": window.peak_source}


def phase_memory(result: dict[str, Any], scenario: str, batch: int | None = None) -> dict[str, Any]:
    """The `memory` field of one row from a cell result: the load of the model this row timed (the second,
    throughput model where there was one), the steady RSS of its loop, and GPU memory where there is one."""
    second = scenario == "throughput" and isinstance(result.get("throughput_load_memory"), dict)
    load = result.get("throughput_load_memory" if second else "load_memory") or {}
    entry: dict[str, Any] = next((e for e in result.get("scenarios", []) if e.get("scenario") == scenario
                  and (batch is None or int(e.get("batch_size", 0)) == batch)), {})
    steady = entry.get("steady_rss_bytes")
    if second and isinstance(steady, int):
        first = result.get("load_memory") or {}
        # the first (latency) model is still resident: take its growth out so it is not counted twice
        steady -= int(first.get("model_rss_bytes", 0))
    desc = result.get("throughput_describe" if second else "describe") or {}
    return {
        "load_peak_rss_bytes": load.get("peak_rss_bytes"),
        "model_rss_bytes": load.get("model_rss_bytes"),
        "steady_rss_bytes": steady,
        "loop_peak_rss_bytes": entry.get("loop_peak_rss_bytes"),
        "gpu_memory_bytes": desc.get("gpu_memory_bytes"),
        "second_model": second,
    }
