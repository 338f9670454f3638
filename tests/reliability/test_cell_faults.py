"""A backend process that segfaults, hangs, exhausts its memory limit or exits without a result costs that
cell only: the cell is stored as error/timeout with the reason, every other cell completes and is stored.

Faults are real (a NULL read, an endless sleep, allocations under RLIMIT_AS), injected through the
documented FER_BENCH_FAULT test hook (harness/faults.py) into the real `python -m harness.measure.cell` processes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import psutil
import pytest

from backends.registry import get_backend_class
from common.config import load_config
from fer.data import FerData, Split
from harness.history.store import ResultsStore
from harness.measure.faults import ENV, inject_fault
from harness.orchestrate.runner import run_grid

HEALTHY = "openvino"
BACKENDS = ("onnxruntime", "torch-eager", HEALTHY)

pytestmark = pytest.mark.skipif(
    not all(get_backend_class(b).probe().available for b in BACKENDS),
    reason="needs the onnxruntime and openvino backends (pip install -e .[openvino,onnxruntime])")


def _data() -> FerData:
    rng = np.random.default_rng(0)

    def split(n: int) -> Split:
        return Split(rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), np.arange(n, dtype=np.int64) % 7)

    return FerData("tiny-random", split(14), split(14), split(14), synthetic=True)


def _grid(tmp_path: Path, artifact: Path, *sets: str) -> dict[str, list[dict]]:
    """Run the real grid (one subprocess per cell), store it, read it back: {backend: stored rows}."""
    cfg = load_config(None, ["benchmark.min_duration_s=0.05", "benchmark.min_iterations=5", "benchmark.warmup_s=0",
                             "benchmark.batch_sizes=[2]", "benchmark.threads=1", "benchmark.accuracy=true", *sets])
    cfg = dataclasses.replace(cfg, benchmark=dataclasses.replace(
        cfg.benchmark, backends=list(BACKENDS), variants=["dense-fp32"]))
    results = run_grid(cfg, {"dense-fp32": artifact}, _data(), run_dir=tmp_path / "runs" / "r1")
    with ResultsStore(f"sqlite:///{tmp_path / 'h.sqlite'}") as store:
        store.save_run(results)
        run = store.load_run(results["run_id"])
    by_backend: dict[str, list[dict]] = {}
    for r in run["results"]:
        by_backend.setdefault(r["backend"], []).append(r)
    assert sorted(by_backend) == sorted(BACKENDS)
    assert all(len(rows) == 2 for rows in by_backend.values())  # latency + throughput rows of every cell stored
    for r in by_backend[HEALTHY]:  # the healthy cell completed and kept its measurements
        assert r["status"] == "ok", r["reason"]
        assert r["accuracy"] is not None and r["samples_ms"]
    return by_backend


def _failed(rows: list[dict], status: str, *reason_has: str) -> None:
    for r in rows:
        assert r["status"] == status, r
        for text in reason_has:
            assert text in r["reason"], r["reason"]


def _no_cell_left() -> None:
    me = psutil.Process()
    left = [p for p in me.children(recursive=True) if "harness.measure.cell" in " ".join(p.cmdline())]
    assert not left, left


@pytest.mark.slow
def test_segfault_and_exit_cost_one_cell_each(tmp_path: Path, tiny_artifact: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "onnxruntime:segfault,torch-eager:exit")
    rows = _grid(tmp_path, tiny_artifact)
    _failed(rows["onnxruntime"], "error", "cell crashed (signal 11)")
    _failed(rows["torch-eager"], "error", "cell crashed (exit code 3)")


@pytest.mark.slow
def test_hang_times_out_and_oom_stays_in_its_cell(tmp_path: Path, tiny_artifact: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "onnxruntime:hang,torch-eager:oom")
    rows = _grid(tmp_path, tiny_artifact, "benchmark.cell_timeout_s=20", "benchmark.cell_memory_mb=4096")
    _failed(rows["onnxruntime"], "timeout", "benchmark.cell_timeout_s = 20 s", "killed")
    _failed(rows["torch-eager"], "error", "out of memory (benchmark.cell_memory_mb = 4096)", "MemoryError")
    _no_cell_left()


def test_oom_hook_refuses_to_run_without_a_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hook can never eat the machine's memory: without an address-space limit it refuses."""
    import resource

    assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY
    monkeypatch.setenv(ENV, "x:oom")
    with pytest.raises(RuntimeError, match="refused without a memory limit"):
        inject_fault("x")
    inject_fault("y")  # another backend: nothing happens


def test_memory_limit_is_applied_to_the_cell_process(tmp_path: Path) -> None:
    """The limit really reaches the child: read back from /proc of a process started the same way."""
    import subprocess
    import sys

    from harness.measure.launcher import _memory_limit

    out = subprocess.run([sys.executable, "-c", "import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0])"],
                         preexec_fn=_memory_limit(1234), capture_output=True, text=True, check=True)
    assert int(out.stdout) == 1234 * 1024 * 1024
    assert _memory_limit(0) is None
