"""Reading 1,000 stored runs as dicts (`ResultsStore.runs_like`, what `bench select` and `compare --history` read
today) and as typed runs (`runs_like_typed`) from the same store: the typed read should cost no more.

A benchmark, not a test (shared machines are noisy: compare the ratio, not the seconds). Run:
    python benchmarks/bench_typed_read.py [N_RUNS] [REPEATS]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))

from conftest import build_run  # the unit tests' full-size synthetic run (3 backends x 4 variants x 3 rows)

from harness.history.store import ResultsStore


def main(n_runs: int = 1000, repeats: int = 3) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'h.sqlite'}"
        with ResultsStore(url) as store:
            t0 = time.perf_counter()
            start = datetime(2026, 1, 1, tzinfo=UTC)
            shapes = [build_run("shape", seed=k, n=100) for k in range(10)]  # 10 distinct runs, stored 100x each
            for i in range(n_runs):
                created = (start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
                store.save_run({**shapes[i % len(shapes)], "run_id": f"r{i:05d}", "created": created})
            print(f"stored {n_runs} runs in {time.perf_counter() - t0:.1f} s")
            newest = store.load_run("latest")
            newest_typed = store.load_run_typed("latest")
            for samples in (False, True):
                dict_s, typed_s = [], []
                for _ in range(repeats):  # alternate, so drift of a loaded machine hits both alike; CPU time of
                    # this process, which other processes on a shared machine disturb less than wall time
                    t0 = time.process_time()
                    dicts = store.runs_like(newest, n_runs, samples=samples)
                    dict_s.append(time.process_time() - t0)
                    t0 = time.process_time()
                    typed = store.runs_like_typed(newest_typed, n_runs, samples=samples)
                    typed_s.append(time.process_time() - t0)
                assert len(dicts) == len(typed) == n_runs - 1
                d, t = statistics.median(dict_s), statistics.median(typed_s)
                print(f"samples={samples}: {len(dicts)} runs as dicts {d:.2f} CPU s, typed {t:.2f} CPU s, "
                      f"typed/dict = {t / d:.2f} (median of {repeats})")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
