"""pytest-benchmark over every available backend x variant, through the same Backend contract as `bench run`.

    pytest tests/benchmarks --benchmark-only --benchmark-autosave
    pytest-benchmark compare

Not part of `make test`. Set FER_BENCH_ARTIFACTS to a folder of real variant directories to benchmark the
trained models; by default tiny (width 0.125) artifacts are built. Threads: FER_BENCH_THREADS (default 2).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backends.artifact import load_artifact
from backends.base import Backend, BackendOptions
from backends.registry import backend_names, get_backend_class, probe

VARIANTS = ("dense-fp32", "l1-fp32", "dense-int8", "l1-int8")
THREADS = int(os.environ.get("FER_BENCH_THREADS", "2"))


@pytest.fixture(params=backend_names())
def backend_name(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    a = probe(name)
    if not a.available:
        pytest.skip(a.reason)
    return name


def _loaded(name: str, path: Path, scenario: str, batch_sizes: tuple[int, ...]) -> Iterator[Backend]:
    b = get_backend_class(name)()
    b.load(load_artifact(path), BackendOptions(threads=THREADS, batch_sizes=batch_sizes, scenario=scenario))
    try:
        yield b
    finally:
        b.close()


@pytest.mark.parametrize("variant", VARIANTS)
def test_latency_batch1(benchmark: Any, backend_name: str, variant: str, artifacts: dict[str, Path]) -> None:
    if variant not in artifacts:
        pytest.skip(f"no artifact for {variant}")
    x = np.random.default_rng(0).random((1, 1, 48, 48), dtype=np.float32)
    for b in _loaded(backend_name, artifacts[variant], "latency", (1,)):
        benchmark.group = f"latency-b1-{variant}"
        benchmark.extra_info.update(b.describe())
        out = benchmark(b.infer, x)
        assert out.shape == (1, 7)


@pytest.mark.parametrize("variant", VARIANTS)
def test_throughput_batch32(benchmark: Any, backend_name: str, variant: str, artifacts: dict[str, Path]) -> None:
    if variant not in artifacts:
        pytest.skip(f"no artifact for {variant}")
    for b in _loaded(backend_name, artifacts[variant], "throughput", (1, 32)):
        k = b.preferred_requests()
        batches = [np.random.default_rng(i).random((32, 1, 48, 48), dtype=np.float32) for i in range(k)]
        benchmark.group = f"throughput-b32-{variant}"
        benchmark.extra_info.update(b.describe(), images_per_round=32 * k)
        outs = benchmark(b.infer_many, batches)
        assert len(outs) == k and outs[0].shape == (32, 7)
