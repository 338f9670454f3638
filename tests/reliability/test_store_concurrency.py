"""Several `bench run` processes writing to one SQLite store at once lose nothing and duplicate nothing."""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import numpy as np

from harness.store import ResultsStore

RUNS_PER_WRITER = 12
WRITERS = 2
CELLS = (("openvino", "l1-int8"), ("openvino", "dense-fp32"), ("onnxruntime", "l1-int8"),
         ("torch-eager", "dense-fp32"))


def sample_run(run_id: str, seed: int) -> dict[str, Any]:
    """A small but complete results dict with 1500 raw samples per cell (a non-trivial transaction)."""
    rng = np.random.default_rng(seed)
    results = []
    for backend, variant in CELLS:
        for scenario, batch in (("latency", 1), ("throughput", 32)):
            s = 0.3 * batch ** 0.8 * np.exp(rng.normal(0, 0.05, 1500))
            results.append({
                "backend": backend, "variant": variant, "device": "cpu", "precision": variant[-4:],
                "scenario": scenario, "batch_size": batch, "status": "ok", "reason": "",
                "latency_ms": {"p50": float(np.median(s)), "p99": float(np.percentile(s, 99))},
                "throughput_fps": float(1000 * batch / np.median(s)), "valid": True, "invalid_reasons": [],
                "accuracy": 0.85, "samples_ms": s.tolist(), "confusion": [[10, 1], [2, 9]],
            })
    return {"schema_version": 1, "run_id": run_id, "created": f"2026-03-01T00:00:{seed % 60:02d}Z",
            "fingerprint": {"id": "fp-x", "cpu": {"brand": "Test CPU"}}, "config": {"data": {"dataset": "synthfer"}},
            "config_hash": "cfg", "results": results, "agreement": []}


def _writer(url: str, worker: int, start: Any, out: Any) -> None:
    store = ResultsStore(url)  # every process opens (and maybe creates) the store itself
    start.wait(timeout=60)
    for i in range(RUNS_PER_WRITER):
        seed = worker * 100 + i
        store.save_run(sample_run(f"w{worker}-{i:02d}", seed))
    store.close()
    out.put(worker)


def test_concurrent_writers_lose_and_duplicate_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'runs' / 'history.sqlite'}"
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(WRITERS)
    done = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, w, start, done)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    assert sorted(done.get(timeout=5) for _ in procs) == list(range(WRITERS))

    with ResultsStore(url) as store:
        runs = store.list_runs()
        ids = [r["run_id"] for r in runs]
        expected = {f"w{w}-{i:02d}" for w in range(WRITERS) for i in range(RUNS_PER_WRITER)}
        assert len(ids) == len(set(ids)) == WRITERS * RUNS_PER_WRITER  # nothing duplicated
        assert set(ids) == expected  # nothing lost
        assert len(store.all_results()) == WRITERS * RUNS_PER_WRITER * len(CELLS) * 2
        for w in range(WRITERS):  # every run complete and bit-exact, samples included
            for i in (0, RUNS_PER_WRITER - 1):
                assert store.load_run(f"w{w}-{i:02d}") == sample_run(f"w{w}-{i:02d}", w * 100 + i)
