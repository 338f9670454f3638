"""Timing loops, statistics and the VALID/INVALID verdict.

The loop is deliberately bare (perf_counter_ns around one call, a list append): its own cost per iteration
is measured by `harness_overhead_us` (the same loop around a no-op) and reported with every run. Warm-up
is by time; the timed loop stops only when BOTH `min_duration_s` and `min_iterations` are met (or a hard
`max_duration_s` cap is hit, which the verdict then reports). Every derived number is computed from the
raw samples (kept in the results), so it can be recomputed later.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

P99_MIN_SAMPLES = 100  # fewer samples than this and a p99 is just the maximum of a handful


@dataclass(frozen=True)
class Timing:
    """Raw result of one timed loop: per-call samples in ms and the loop's wall time in s."""

    samples_ms: list[float]
    duration_s: float
    capped: bool = False  # stopped by max_duration_s before min_iterations


@dataclass(frozen=True)
class Stats:
    """Summary of latency samples (ms)."""

    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    mean: float
    stdev: float
    iqr: float
    cov: float  # stdev / mean: reported, but a handful of scheduler preemptions dominate it on sub-ms cells
    rcov: float  # robust CoV, 1.4826 * MAD / median: the spread of the bulk, what the verdict tests

    @classmethod
    def from_samples(cls, samples_ms: list[float] | np.ndarray) -> Stats:
        a = np.asarray(samples_ms, dtype=np.float64)
        if a.size == 0:
            raise ValueError("no samples")
        p25, p50, p75, p90, p95, p99 = np.percentile(a, [25, 50, 75, 90, 95, 99])
        mean = float(a.mean())
        stdev = float(a.std(ddof=1)) if a.size > 1 else 0.0
        mad = float(np.median(np.abs(a - p50)))
        return cls(
            min=float(a.min()), p50=float(p50), p90=float(p90), p95=float(p95), p99=float(p99), mean=mean,
            stdev=stdev, iqr=float(p75 - p25), cov=stdev / mean if mean > 0 else math.inf,
            rcov=1.4826 * mad / float(p50) if p50 > 0 else math.inf,
        )

    def to_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in ("min", "p50", "p90", "p95", "p99", "mean", "stdev", "iqr", "cov", "rcov")}


def warmup(fn: Callable[[], Any], seconds: float) -> int:
    """Call `fn` until `seconds` have passed (at least once); returns the number of calls."""
    n = 0
    end = time.perf_counter() + seconds
    while True:
        fn()
        n += 1
        if time.perf_counter() >= end:
            return n


def timed_loop(fn: Callable[[], Any], min_duration_s: float, min_iterations: int,
               max_duration_s: float | None = None) -> Timing:
    """Time `fn()` call by call until both `min_duration_s` and `min_iterations` are met."""
    clock = time.perf_counter_ns
    samples: list[int] = []
    append = samples.append
    start = clock()
    deadline = start + int(min_duration_s * 1e9)
    hard = start + int(max_duration_s * 1e9) if max_duration_s else None
    n = 0
    capped = False
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        append(t1 - t0)
        n += 1
        if n >= min_iterations and t1 >= deadline:
            break
        if hard is not None and t1 >= hard:
            capped = n < min_iterations
            break
    wall = (clock() - start) / 1e9
    return Timing([s / 1e6 for s in samples], wall, capped)


BLOCK_CALLS = 40  # calls per block when two models share a process: ~10-20 ms of a sub-ms model
BLOCK_DROP = 5  # the first calls of a block re-warm the caches after the other model's block: not kept


def interleaved_warmup(fns: tuple[Callable[[], Any], Callable[[], Any]], seconds: float,
                       block: int = BLOCK_CALLS) -> tuple[int, int]:
    """Warm two models up in alternating blocks until `seconds` have passed (at least one block each)."""
    counts = [0, 0]
    end = time.perf_counter() + seconds
    k = 0
    while True:
        i = k % 2
        for _ in range(block):
            fns[i]()
        counts[i] += block
        k += 1
        if k >= 2 and time.perf_counter() >= end:
            return counts[0], counts[1]


def interleaved_loops(fns: tuple[Callable[[], Any], Callable[[], Any]], min_duration_s: float, min_iterations: int,
                      max_duration_s: float | None = None, block: int = BLOCK_CALLS,
                      drop: int = BLOCK_DROP) -> tuple[Timing, Timing]:
    """Time two models in one process in alternating blocks (fns[0] first), until each has met `min_duration_s`
    of kept calls and `min_iterations` kept samples.

    Why: on shared VMs one file's per-process latency lands in modes up to 2x apart (which mode is set when the
    process starts), so two models timed in two processes differ by their modes as much as by their cost; in one
    process both sit in the same mode, and the per-process ratio of their medians varied 1-2% where the medians
    varied 2x (docs/measuring.md). Blocks, not single alternating calls, so each model runs with warm caches as it
    does alone; the first `drop` calls of each block, which re-warm them, are not kept. Each Timing's duration is
    the sum of its own kept calls' block time, not the wall time of both."""
    clock = time.perf_counter_ns
    samples: tuple[list[int], list[int]] = ([], [])
    spent = [0, 0]
    start = clock()
    need_ns = int(min_duration_s * 1e9)
    hard = start + int(max_duration_s * 1e9) if max_duration_s else None
    capped = False
    k = 0
    while True:
        i = k % 2
        fn, out = fns[i], samples[i]
        b0 = clock()
        for j in range(block):
            t0 = clock()
            fn()
            t1 = clock()
            if j >= drop:
                out.append(t1 - t0)
        spent[i] += clock() - b0
        k += 1
        if i == 1 and all(len(samples[a]) >= min_iterations and spent[a] >= need_ns for a in (0, 1)):
            break
        if hard is not None and clock() >= hard:
            capped = any(len(x) < min_iterations for x in samples)
            break
    return tuple(Timing([s / 1e6 for s in samples[a]], spent[a] / 1e9, capped) for a in (0, 1))  # type: ignore[return-value]


class NullBackend:
    """Stands in for a backend whose `infer` costs nothing: the harness's own overhead is what remains."""

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return batch


def harness_overhead_us(iterations: int = 20_000, repeats: int = 5) -> float:
    """The loop's own cost per iteration in µs: `timed_loop` around `NullBackend().infer(x)` (the same call
    shape the cells time), best of `repeats`."""
    null = NullBackend()
    x = np.zeros((1, 1, 48, 48), dtype=np.float32)

    def call() -> None:
        null.infer(x)

    best = math.inf
    for _ in range(repeats):
        t = timed_loop(call, 0.0, iterations)
        best = min(best, t.duration_s / len(t.samples_ms) * 1e6)
    return best


def verdict(timing: Timing, min_duration_s: float, min_iterations: int, max_cov: float,
            need_p99: bool = True, stats: Stats | None = None) -> tuple[bool, list[str]]:
    """(valid, reasons): INVALID when there are too few samples for the reported percentile, the minimum
    duration or iteration count was not reached, or the samples vary too much (robust CoV above `max_cov`).

    The dispersion test uses the robust CoV (MAD / median), not stdev / mean: on a 0.3 ms model a dozen
    5 ms preemptions among 5,000 samples push the classic CoV past 0.3 while the bulk varies by 2%; the
    tail is reported separately as p99. Measured on a default run: classic CoV 0.2-0.5, robust 0.02-0.07."""
    reasons: list[str] = []
    n = len(timing.samples_ms)
    if need_p99 and n < P99_MIN_SAMPLES:
        reasons.append(f"too few samples for p99: {n} < {P99_MIN_SAMPLES}")
    if n < min_iterations:
        reasons.append(f"iterations not reached: {n} < {min_iterations}" + (" (time cap hit)" if timing.capped else ""))
    if timing.duration_s < min_duration_s:
        reasons.append(f"duration not reached: {timing.duration_s:.3f} s < {min_duration_s} s")
    s = stats or (Stats.from_samples(timing.samples_ms) if n else None)
    if s is not None and s.rcov > max_cov:
        reasons.append(f"robust CoV (MAD/median) {s.rcov:.3f} > benchmark.max_cov {max_cov}")
    return not reasons, reasons
