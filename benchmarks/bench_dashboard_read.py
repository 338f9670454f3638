"""The history dashboard's data build (`harness.cli._dashboard_data.build_cells`: store -> gate -> cells, what
`bench report --history` does before rendering) as it reads runs now (typed records) against the dict reader it
replaced (the module as of `--before REV`, loaded from git), on one synthetic store, in one process.

Each build reads every stored run of the configuration (candidate with its raw samples, its history without). The
two builds must give equal cells (checked); the figure is their CPU-time ratio now/before (below 1: faster), the
medians of alternated repeats, so that a loaded machine's drift hits both alike. A benchmark, not a test:

  python benchmarks/bench_dashboard_read.py [--runs 1000] [--repeats 3] [--before d4ba2bc]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_dashboard import VARIANTS, _bits, make_run  # noqa: E402  (the dashboard benchmark's synthetic store)

MODULE = "harness/cli/_dashboard_data.py"
DICT_READER = "d4ba2bc"  # the last commit whose dashboard data read stored runs as dicts


def module_at(rev: str) -> types.ModuleType:
    """`harness.cli._dashboard_data` as it was at git revision `rev` (its imports resolve to today's tree)."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{MODULE}"], check=True, capture_output=True,
                         text=True).stdout
    mod = types.ModuleType(f"dashboard_data_at_{rev}")
    sys.modules[mod.__name__] = mod  # dataclasses look their module up
    exec(compile(src, f"{rev}:{MODULE}", "exec"), mod.__dict__)  # our own file, at a commit
    return mod


def timed(mod: Any, store: Any) -> tuple[float, list[Any]]:
    t0 = time.process_time()
    cells = mod.build_cells(store, mod.Selection())
    return time.process_time() - t0, cells


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--before", default=DICT_READER, help=f"git revision of the reader to compare with "
                    f"(default {DICT_READER}, the dict reader)")
    args = ap.parse_args(argv)

    import harness.cli._dashboard_data as now
    from harness.history.store import ResultsStore

    before = module_at(args.before)
    rng = np.random.default_rng(0)
    bits = {v: _bits(rng, 0.85) for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp, ResultsStore(f"sqlite:///{Path(tmp) / 'h.sqlite'}") as store:
        t0 = time.perf_counter()
        for i in range(args.runs):
            store.save_run(make_run(i, args.runs, rng, bits))
        print(f"stored {args.runs} runs x 100 rows in {time.perf_counter() - t0:.1f} s")
        old_s, new_s = [], []
        for _ in range(args.repeats):
            s, old_cells = timed(before, store)
            old_s.append(s)
            s, new_cells = timed(now, store)
            new_s.append(s)
        assert old_cells == new_cells, "the two readers drew different cells"
    o, n = statistics.median(old_s), statistics.median(new_s)
    print(f"build_cells over {args.runs} runs, {len(new_cells)} cells: dict reader ({args.before}) {o:.2f} CPU s, "
          f"typed {n:.2f} CPU s, typed/dict = {n / o:.2f} (median of {args.repeats}; each: "
          f"{', '.join(f'{a:.2f}/{b:.2f}' for a, b in zip(old_s, new_s, strict=True))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
