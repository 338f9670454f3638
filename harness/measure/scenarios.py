"""The timed scenarios of a cell: latency (batch 1, synchronous `infer`) and throughput (batched `infer_many`
with as many requests in flight as the backend keeps). Never quote per-request latency from the throughput loop.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np

from harness.measure.memory import RssWindow
from harness.measure.trackers import NoiseProbe

LATENCY, THROUGHPUT = "latency", "throughput"
MIN_THROUGHPUT_ROUNDS = 10


def time_latency(spec: Any, backend: Any, images: np.ndarray, entry: dict[str, Any]) -> None:
    from harness.measure.loop import timed_loop, warmup

    x = np.ascontiguousarray(images[:1])

    def call() -> None:
        backend.infer(x)

    w0 = time.perf_counter()
    entry["warmup_iterations"] = warmup(call, spec.warmup_s)
    entry["warmup_s"] = time.perf_counter() - w0
    probe = NoiseProbe()
    entry["python_threads"] = python_threads()  # alive while the loop runs: none started by the harness
    with RssWindow() as rss:
        t = timed_loop(call, spec.min_duration_s, spec.min_iterations, spec.max_duration_s)
    _memory(entry, rss)
    entry.update(samples_ms=t.samples_ms, duration_s=t.duration_s, capped=t.capped, images_per_sample=1,
                 requests_in_flight=1, min_samples=spec.min_iterations, noise=probe.finish())


def time_throughput(spec: Any, backend: Any, images: np.ndarray, batch: int, entry: dict[str, Any]) -> None:
    from harness.measure.loop import timed_loop, warmup

    if batch <= 0:
        from common.errors import UserError

        raise UserError(f"batch size {batch}: must be >= 1")
    k = max(1, int(backend.preferred_requests()))
    batches = [batch_from(images, batch, offset=i * batch) for i in range(k)]

    def call() -> None:
        backend.infer_many(batches)

    per_round = k * batch
    rounds = max(math.ceil(spec.min_iterations / per_round), min(MIN_THROUGHPUT_ROUNDS, spec.min_iterations))
    w0 = time.perf_counter()
    entry["warmup_iterations"] = warmup(call, spec.warmup_s)
    entry["warmup_s"] = time.perf_counter() - w0
    probe = NoiseProbe()
    entry["python_threads"] = python_threads()
    with RssWindow() as rss:
        t = timed_loop(call, spec.min_duration_s, rounds, spec.max_duration_s)
    _memory(entry, rss)
    entry.update(samples_ms=t.samples_ms, duration_s=t.duration_s, capped=t.capped, images_per_sample=per_round,
                 requests_in_flight=k, min_samples=rounds, noise=probe.finish())


def time_pair(spec: Any, calls: tuple[Any, Any], entries: tuple[dict[str, Any], dict[str, Any]],
              per_sample: tuple[int, int], requests: tuple[int, int], min_samples: int) -> None:
    """Time two models' calls of one scenario in one process, in alternating blocks (loop.interleaved_loops;
    calls[0] leads), and fill each arm's scenario entry as `time_latency` / `time_throughput` would."""
    from harness.measure.loop import interleaved_loops, interleaved_warmup

    w0 = time.perf_counter()
    warm = interleaved_warmup(calls, spec.warmup_s)
    warm_s = time.perf_counter() - w0
    probe = NoiseProbe()
    threads = python_threads()
    with RssWindow() as rss:
        timings = interleaved_loops(calls, spec.min_duration_s, min_samples, spec.max_duration_s)
    noise = probe.finish()
    for entry, t, w, n, k in zip(entries, timings, warm, per_sample, requests, strict=True):
        entry.update(warmup_iterations=w, warmup_s=warm_s / 2, python_threads=threads)
        _memory(entry, rss)  # one window for both: they share the process
        entry.update(samples_ms=t.samples_ms, duration_s=t.duration_s, capped=t.capped, images_per_sample=n,
                     requests_in_flight=k, min_samples=min_samples, noise=noise, interleaved=True)


def latency_call(backend: Any, images: np.ndarray) -> Any:
    """The latency scenario's call: one image, synchronous `infer`."""
    x = np.ascontiguousarray(images[:1])
    return lambda: backend.infer(x)


def throughput_call(backend: Any, images: np.ndarray, batch: int) -> tuple[Any, int, int]:
    """The throughput scenario's call (every request the backend keeps in flight, one batch each), with the images
    per call and the rounds `time_throughput` would time."""
    k = max(1, int(backend.preferred_requests()))
    batches = [batch_from(images, batch, offset=i * batch) for i in range(k)]
    return (lambda: backend.infer_many(batches)), k, k * batch


def throughput_rounds(spec: Any, per_round: int) -> int:
    return max(math.ceil(spec.min_iterations / per_round), min(MIN_THROUGHPUT_ROUNDS, spec.min_iterations))


def python_threads() -> list[str]:
    """Names of this process's live Python threads (a runtime's own, e.g. OpenVINO's telemetry pool started at
    import, are there from the load on; the harness starts none)."""
    return sorted(t.name for t in threading.enumerate())


def _memory(entry: dict[str, Any], rss: RssWindow) -> None:
    """RSS after the loop (its steady state: what the loop allocated stays resident) and the loop's peak."""
    entry.update(steady_rss_bytes=rss.after, loop_peak_rss_bytes=rss.peak, rss_peak_source=rss.peak_source)


def batch_from(images: np.ndarray, batch: int, offset: int = 0) -> np.ndarray:
    idx = (np.arange(batch) + offset) % len(images)
    return np.ascontiguousarray(images[idx])
