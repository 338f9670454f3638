"""GPU timing split like trtexec: end-to-end host->host, and H2D, device compute and D2H apart.

trtexec reports "Latency" (host input to host output), "H2D Latency", "GPU Compute Time" and "D2H Latency"
separately, with pinned host buffers allocated once. `PinnedRunner` does the same with torch (which owns the
CUDA context and the stream; no pycuda): pinned host and device buffers are allocated once per batch size, and
CUDA events recorded on the stream bracket each phase; the end-to-end time is the host clock around the whole
request. `split_summary` (pure, testable without a GPU) turns the samples into medians and shares.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SplitSample:
    """One request: host clock end to end, and the three device phases from CUDA events (ms)."""

    end_to_end_ms: float
    h2d_ms: float
    compute_ms: float
    d2h_ms: float


def split_summary(samples: list[SplitSample]) -> dict[str, Any]:
    """Medians of each phase, plus the host overhead (end to end minus the three device phases)."""
    if not samples:
        return {"n": 0}
    med = {f: statistics.median(getattr(s, f) for s in samples)
           for f in ("end_to_end_ms", "h2d_ms", "compute_ms", "d2h_ms")}
    device = med["h2d_ms"] + med["compute_ms"] + med["d2h_ms"]
    return {
        "n": len(samples),
        "end_to_end_ms": med["end_to_end_ms"],
        "h2d_ms": med["h2d_ms"],
        "compute_ms": med["compute_ms"],
        "d2h_ms": med["d2h_ms"],
        "host_overhead_ms": max(0.0, med["end_to_end_ms"] - device),
        "compute_share": med["compute_ms"] / med["end_to_end_ms"] if med["end_to_end_ms"] > 0 else None,
        "pinned_host_buffers": True,
    }


class PinnedRunner:
    """Pinned host in/out buffers and device buffers, allocated once per batch size, on one torch CUDA stream.

    `compute(dev_in, dev_out)` enqueues the model on `stream` (TensorRT: set addresses + execute_async_v3;
    torch: dev_out.copy_(model(dev_in))). `run` returns the logits and one `SplitSample`.
    """

    def __init__(self, torch: Any, stream: Any, in_dtype: Any, out_dtype: Any, n_out: int) -> None:
        self._torch = torch
        self._stream = stream
        self._in_dtype, self._out_dtype, self._n_out = in_dtype, out_dtype, n_out
        self._buffers: dict[tuple[int, ...], tuple[Any, Any, Any, Any]] = {}
        self._events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]

    def _alloc(self, shape: tuple[int, ...]) -> tuple[Any, Any, Any, Any]:
        t = self._torch
        if shape not in self._buffers:
            out_shape = (shape[0], self._n_out)
            self._buffers[shape] = (
                t.empty(shape, dtype=self._in_dtype, pin_memory=True),
                t.empty(shape, dtype=self._in_dtype, device="cuda"),
                t.empty(out_shape, dtype=self._out_dtype, device="cuda"),
                t.empty(out_shape, dtype=self._out_dtype, pin_memory=True),
            )
        return self._buffers[shape]

    def run(self, batch: np.ndarray, compute: Callable[[Any, Any], None]) -> tuple[np.ndarray, SplitSample]:
        host_in, dev_in, dev_out, host_out = self._alloc(tuple(batch.shape))
        e0, e1, e2, e3 = self._events
        t0 = time.perf_counter()
        host_in.numpy()[...] = batch  # into the pinned buffer: the copy trtexec also pays on the host
        with self._torch.cuda.stream(self._stream):
            e0.record(self._stream)
            dev_in.copy_(host_in, non_blocking=True)
            e1.record(self._stream)
            compute(dev_in, dev_out)
            e2.record(self._stream)
            host_out.copy_(dev_out, non_blocking=True)
            e3.record(self._stream)
        e3.synchronize()
        out = host_out.float().numpy().copy()
        t1 = time.perf_counter()
        return out, SplitSample((t1 - t0) * 1e3, e0.elapsed_time(e1), e1.elapsed_time(e2), e2.elapsed_time(e3))


def measure_split(runner: PinnedRunner, batch: np.ndarray, compute: Callable[[Any, Any], None],
                  iterations: int = 200, warmup: int = 20) -> dict[str, Any]:
    """`iterations` requests through `runner` after `warmup`; the split summary."""
    for _ in range(warmup):
        runner.run(batch, compute)
    return split_summary([runner.run(batch, compute)[1] for _ in range(iterations)])
