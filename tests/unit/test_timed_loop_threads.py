"""While a loop is timed no thread of ours runs, and memory is read around phases, not sampled inside them."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from harness.measure.memory import RssWindow, process_peak_bytes
from harness.measure.scenarios import time_latency, time_throughput


class ThreadRecorder:
    """A backend whose every call records which Python threads are alive (the test hook inside the timed loop)."""

    def __init__(self) -> None:
        self.seen: list[set[str]] = []

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.seen.append({t.name for t in threading.enumerate()})
        return batch[:, :1, 0, :7]

    def infer_many(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        return [self.infer(b) for b in batches]

    def preferred_requests(self) -> int:
        return 2


SPEC = SimpleNamespace(warmup_s=0.01, min_duration_s=0.05, min_iterations=50, max_duration_s=None)


@pytest.mark.parametrize("scenario", ["latency", "throughput"])
def test_no_thread_of_ours_is_alive_during_the_timed_loop(scenario: str) -> None:
    before = {t.name for t in threading.enumerate()}
    backend = ThreadRecorder()
    images = np.zeros((8, 1, 48, 48), np.float32)
    entry: dict[str, Any] = {}
    if scenario == "latency":
        time_latency(SPEC, backend, images, entry)
    else:
        time_throughput(SPEC, backend, images, 4, entry)
    timed = backend.seen[-len(entry["samples_ms"]):]  # the calls of the timed loop (after the warm-up)
    assert len(timed) >= 50
    assert all(names == before for names in timed), {frozenset(n) - before for n in timed}
    assert entry["python_threads"] == sorted(before)
    assert entry["steady_rss_bytes"] > 0 and entry["loop_peak_rss_bytes"] >= entry["steady_rss_bytes"]


def test_the_window_peak_is_the_kernels_high_water_mark_not_before_and_after() -> None:
    """200 MB touched and freed inside the block: RSS before and after miss it, the reset VmHWM does not."""
    with RssWindow() as w:
        a = np.ones(200 * 2**20 // 8)
        del a
    assert w.peak_source == "VmHWM"  # Linux >= 4.0 accepts the reset (/proc/self/clear_refs)
    assert w.after < w.before + 100 * 2**20
    assert w.peak >= w.before + 150 * 2**20
    with RssWindow() as quiet:  # the next window starts from the current RSS, not from that old peak
        pass
    assert quiet.peak < w.peak - 100 * 2**20
    assert process_peak_bytes() >= w.peak  # the whole-process peak survives the resets
