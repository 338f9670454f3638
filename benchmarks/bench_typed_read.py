"""Typed reads of the results store cost no more than dict reads, measured in one process on one store.

Part `runs_like`: 1,000 stored runs read as dicts (`ResultsStore.runs_like`, what `compare --history` reads) and
as typed runs (`runs_like_typed`).

Part `select`: `bench select`'s read + choose path over every stored row, the dict path (`all_results()` and
reports/select.py as it was before the typed read, loaded from git at DICT_SELECT_COMMIT) against the typed path
(`all_results_typed()`: slim `SelectionRow`s, and reports/select.py now). The two selections must be equal. The
rows are padded to a real row's size with the per-process rounds, describe and memory of a real stored row
(tests/fixtures/results_v1_export.jsonl), the parts select never reads but a read must pass over.

A benchmark, not a test (shared machines are noisy: compare the ratio, not the seconds). CPU time of this process,
which other processes on a shared machine disturb less than wall time; the two paths alternate (ABBA) so drift
of a loaded machine hits both alike. Run:
    python benchmarks/bench_typed_read.py [N_RUNS] [REPEATS] [--part runs_like|select|all]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))

from conftest import build_run  # the unit tests' full-size synthetic run (3 backends x 4 variants x 3 rows)

from harness.history.store import ResultsStore, _no_gc_pauses
from reports import select as typed_select

ROOT = Path(__file__).resolve().parents[1]
DICT_SELECT_COMMIT = "d4ba2bc5c707540b47ce983595ccb497888f4094"  # the last reports/select.py that read dict rows
REAL_RUN = ROOT / "tests" / "fixtures" / "results_v1_export.jsonl"


def dict_select_module() -> types.ModuleType:
    """reports/select.py as it read dict rows, from git (the same code `bench select` ran before the typed read)."""
    src = subprocess.run(["git", "show", f"{DICT_SELECT_COMMIT}:reports/select.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    mod = types.ModuleType("reports_select_dicts")
    sys.modules[mod.__name__] = mod  # dataclasses look their module up
    exec(compile(src, f"reports/select.py@{DICT_SELECT_COMMIT[:7]}", "exec"), mod.__dict__)
    return mod


def real_size(run: dict[str, Any]) -> dict[str, Any]:
    """`run` with every row padded to a real row's size: the real row's rounds, memory, roofline and describe
    (its threads kept), which select does not read."""
    real = json.loads(REAL_RUN.read_text(encoding="utf-8").splitlines()[0])["results"][0]
    pad = {k: real[k] for k in ("rounds", "memory", "roofline", "precision_reason", "arithmetic_intensity",
                                "fraction_of_peak", "gmac_per_s", "loaded_bytes", "p50_ci_level", "p99_ci_level")}
    for r in run["results"]:
        if r["status"] == "ok":
            r.update(pad, describe={**real["describe"], **r["describe"]})
    return run


def fill(store: ResultsStore, n_runs: int, shape: Callable[[int], dict[str, Any]]) -> None:
    t0 = time.perf_counter()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    shapes = [shape(k) for k in range(10)]  # 10 distinct runs, stored n_runs / 10 times each
    for i in range(n_runs):
        created = (start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        store.save_run({**shapes[i % len(shapes)], "run_id": f"r{i:05d}", "created": created})
    print(f"stored {n_runs} runs in {time.perf_counter() - t0:.1f} s")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()  # the garbage of the path before is not this one's to collect
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def ratio_line(what: str, base: list[float], new: list[float], base_name: str, new_name: str) -> str:
    b, n = statistics.median(base), statistics.median(new)
    each = ", ".join(f"{y / x:.2f}" for x, y in zip(base, new, strict=True))
    return (f"{what}: {base_name} {b:.2f} CPU s, {new_name} {n:.2f} CPU s, {new_name}/{base_name} = {n / b:.2f} "
            f"(median of {len(base)}; each repeat: {each})")


def bench_runs_like(tmp: Path, n_runs: int, repeats: int) -> None:
    with ResultsStore(f"sqlite:///{tmp / 'runs_like.sqlite'}") as store:
        fill(store, n_runs, lambda k: build_run("shape", seed=k, n=100))
        newest = store.load_run("latest")
        newest_typed = store.load_run_typed("latest")
        for samples in (False, True):
            dict_s, typed_s = [], []
            for i in range(repeats):
                for which in ("dict", "typed") if i % 2 == 0 else ("typed", "dict"):
                    if which == "dict":
                        s, dicts = timed(lambda s=samples: store.runs_like(newest, n_runs, samples=s))
                        dict_s.append(s)
                    else:
                        s, typed = timed(lambda s=samples: store.runs_like_typed(newest_typed, n_runs, samples=s))
                        typed_s.append(s)
            assert len(dicts) == len(typed) == n_runs - 1
            print(ratio_line(f"runs_like samples={samples}: {n_runs - 1} runs", dict_s, typed_s, "dict", "typed"))


def bench_select(tmp: Path, n_runs: int, repeats: int) -> None:
    old = dict_select_module()
    c_old, c_new = old.Constraints(), typed_select.Constraints()
    with ResultsStore(f"sqlite:///{tmp / 'select.sqlite'}") as store:
        fill(store, n_runs, lambda k: real_size(build_run("shape", seed=k, n=100)))
        n_rows = len(store.all_results())
        with store.engine.connect() as conn:
            mean_len = conn.exec_driver_sql("SELECT avg(length(row)) FROM results").scalar()
        print(f"{n_rows} rows, stored row JSON {mean_len:.0f} characters on average")

        def dict_read() -> Any:
            return store.all_results()

        def dict_read_no_gc() -> Any:
            with _no_gc_pauses():
                return store.all_results()

        def typed_read() -> Any:
            return store.all_results_typed()

        paths: dict[str, Callable[[], Any]] = {
            "dict": lambda: old.select(old.filter_rows(dict_read(), None, None), c_old),
            "dict, GC held while reading": lambda: old.select(old.filter_rows(dict_read_no_gc(), None, None), c_old),
            "typed": lambda: typed_select.select(typed_select.filter_rows(typed_read(), None, None), c_new),
        }
        reads = {"dict": dict_read, "dict, GC held while reading": dict_read_no_gc, "typed": typed_read}
        total: dict[str, list[float]] = {k: [] for k in paths}
        read: dict[str, list[float]] = {k: [] for k in paths}
        chosen: dict[str, Any] = {}
        for i in range(repeats):
            for name in list(paths) if i % 2 == 0 else list(paths)[::-1]:
                s, sel = timed(paths[name])
                total[name].append(s)
                chosen[name] = sel.to_dict()
                s, _rows = timed(reads[name])
                read[name].append(s)
                del _rows
        assert chosen["dict"] == chosen["typed"] == chosen["dict, GC held while reading"], "the paths chose apart"
        print(f"bench select (read + choose) over {n_runs} runs, recommended: {chosen['typed']['message'][:90]}...")
        for name in ("typed", "dict, GC held while reading"):
            print(ratio_line(f"  read + choose, {name} vs dict", total["dict"], total[name], "dict", name))
            print(ratio_line(f"  read only,     {name} vs dict", read["dict"], read[name], "dict", name))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=int, nargs="?", default=1000, help="stored runs (default 1000)")
    p.add_argument("repeats", type=int, nargs="?", default=3, help="timed repeats of each path (default 3)")
    p.add_argument("--part", choices=("runs_like", "select", "all"), default="all")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("runs_like", "all"):
            bench_runs_like(Path(tmp), args.runs, args.repeats)
        if args.part in ("select", "all"):
            bench_select(Path(tmp), args.runs, args.repeats)


if __name__ == "__main__":
    main()
