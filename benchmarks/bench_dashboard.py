"""Time and size of the history dashboard (`bench report --history`) on a store of 1,000 runs x 100 cells.

Builds a synthetic store (one machine, one config; 4 backends x 5 variants x 5 scenario/batch cells; p50s with 3%
run-to-run noise, three processes per row with an interval, per-image correctness for the paired accuracy test;
a +20% step planted in 10 cells at run 700), then times the two halves of the build: the gate over every cell's
series (store -> `compare_runs`, as `bench compare --history`) and the rendering, and reports the site's size.
Not part of `make test` (a measurement, not a check):

  python benchmarks/bench_dashboard.py                      # 1000 runs x 100 cells in a temporary SQLite store
  python benchmarks/bench_dashboard.py --runs 200 --store postgresql+psycopg://user@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BACKENDS = ("openvino", "onnxruntime", "torch-eager", "torch-compile")
VARIANTS = ("dense-fp32", "l1-fp32", "dense-int8", "l1-int8", "l1-s0.75-int8")
SCENARIOS = (("latency", 1), ("throughput", 1), ("throughput", 8), ("throughput", 32), ("throughput", 64))
STEP_AT, STEP = 0.7, 1.20  # a +20% step from 70% of the runs on, in every 10th cell


def _bits(rng: np.random.Generator, acc: float, n: int = 2100) -> dict[str, Any]:
    from common.stats.accuracy import pack_correct

    correct = rng.random(n) < acc
    return pack_correct(correct, np.repeat(np.arange(7), n // 7))


def make_run(i: int, runs: int, rng: np.random.Generator, bits: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Run i of `runs`: 100 rows without raw samples (the dashboard never reads them)."""
    results = []
    for c, (backend, variant, (scenario, batch)) in enumerate(
            (b, v, s) for b in BACKENDS for v in VARIANTS for s in SCENARIOS):
        base = (1.0 + c % 7) * (batch * 0.6 if batch > 1 else 1.0)
        level = base * (STEP if c % 10 == 0 and i >= STEP_AT * runs else 1.0)
        p50 = level * float(np.exp(rng.normal(0.0, 0.03)))
        rounds = [{"round": k, "p50_ms": p50 * float(np.exp(rng.normal(0.0, 0.01))), "p99_ms": p50 * 1.4, "n": 400,
                   "noisy": "steal 9%" if rng.random() < 0.01 else ""} for k in range(3)]
        ps = sorted(r["p50_ms"] for r in rounds)
        results.append({
            "backend": backend, "variant": variant, "device": "cpu", "scenario": scenario, "batch_size": batch,
            "status": "ok", "reason": "", "valid": bool(rng.random() > 0.01), "invalid_reasons": [],
            "latency_ms": {"p50": ps[1], "p99": p50 * 1.4}, "p50_ci_ms": [ps[0], ps[2]], "p50_ci_level": 0.75,
            "throughput_fps": 1000.0 * batch / p50, "rounds": rounds, "accuracy": 0.85,
            "correct_bits": bits[variant],
        })
    return {"schema_version": 1, "run_id": f"r{i:05d}",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_767_225_600 + 86_400 * i)),  # nightly
            "fingerprint": {"id": "fp-bench", "machine_id": "bench-host", "cpu": {"brand": "Bench CPU"},
                            "git": {"commit": f"{i:07x}abc", "dirty": False}},
            "config": {"model": {"width": 0.25}}, "config_hash": "cfg-bench", "results": results}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--store", default=None, help="an empty store URL (default: a temporary SQLite file)")
    ap.add_argument("--out", default=None, help="site folder (default: a temporary folder)")
    args = ap.parse_args(argv)

    from harness.cli._dashboard_data import Selection, build_cells
    from harness.history.store import ResultsStore
    from reports.dashboard import write_site

    tmp = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    url = args.store or f"sqlite:///{tmp / 'history.sqlite'}"
    out = Path(args.out) if args.out else tmp / "site"
    rng = np.random.default_rng(0)
    bits = {v: _bits(rng, 0.85) for v in VARIANTS}
    t0 = time.perf_counter()
    with ResultsStore(url) as store:
        if store.count_runs():
            print(f"error: {url} is not empty", file=sys.stderr)
            return 2
        for i in range(args.runs):
            store.save_run(make_run(i, args.runs, rng, bits))
        t1 = time.perf_counter()
        cells = build_cells(store, Selection())
    t2 = time.perf_counter()
    paths = write_site(cells, out)
    t3 = time.perf_counter()
    sizes = [p.stat().st_size for p in paths]
    regs = sum(1 for c in cells if c.verdict == "regression")
    print(f"store: {args.runs} runs x {len(cells)} cells written in {t1 - t0:.1f} s ({url})")
    print(f"store -> gate -> cells: {t2 - t1:.1f} s; rendering: {t3 - t2:.1f} s; total build {t3 - t1:.1f} s")
    print(f"site: {len(paths)} files, {sum(sizes) / 1e6:.1f} MB; index {sizes[0] / 1e3:.0f} kB; "
          f"largest cell page {max(sizes[1:]) / 1e3:.0f} kB; {regs} cells with an open regression "
          f"(planted: {sum(1 for c in range(len(cells)) if c % 10 == 0)})")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:  # what a CI artifact upload ships
        for p in paths:
            z.write(p, p.relative_to(out))
    print(f"zipped (deflate, as a CI artifact): {buf.tell() / 1e6:.1f} MB")
    print(f"index: {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
