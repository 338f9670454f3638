"""Memory per phase of a cell: peak RSS while a model loads/compiles, steady RSS during a timed loop.

ru_maxrss is one number for the whole process (the accuracy pass and a second compiled model included), so
each phase is sampled on its own: a daemon thread reads this process's RSS (psutil) every `interval_s`
while the phase runs. The sampler's cost is one `memory_info()` call (~10 µs) per interval: invisible
beside a timed loop at 0.1 s. A second compiled model (the throughput one) reports its own load footprint,
and its loop's steady RSS without the first model's resident bytes.
"""

from __future__ import annotations

import statistics
import threading
from types import TracebackType
from typing import Any

LOAD_INTERVAL_S = 0.005
LOOP_INTERVAL_S = 0.1


def current_rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


class RssSampler:
    """`with RssSampler(0.1) as s: ...` -> s.before, s.peak, s.median (bytes) of this process's RSS."""

    def __init__(self, interval_s: float = LOOP_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.samples: list[int] = []
        self.before = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self.before = current_rss()
        self.samples.append(self.before)
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append(current_rss())

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.samples.append(current_rss())

    @property
    def peak(self) -> int:
        return max(self.samples)

    @property
    def median(self) -> int:
        return int(statistics.median(self.samples))


def load_record(sampler: RssSampler) -> dict[str, int]:
    """What a model load leaves in the cell result: RSS before, peak during, and the model's own growth."""
    return {"rss_before_bytes": sampler.before, "peak_rss_bytes": sampler.peak,
            "model_rss_bytes": max(0, sampler.samples[-1] - sampler.before)}


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
        "gpu_memory_bytes": desc.get("gpu_memory_bytes"),
        "second_model": second,
    }
