"""Time `write_report` on a run of the default size (>50,000 latency samples): the report should stay a few
seconds on a 2-core CPU. A benchmark, not a test (shared machines are noisy). Run: python benchmarks/report_render.py
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from test_report import sample_run

from reports.report import write_report


def main(repeats: int = 3) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = sample_run(Path(tmp))
        times = []
        for i in range(repeats):
            t0 = time.perf_counter()
            write_report(run, Path(tmp) / f"out{i}")
            times.append(time.perf_counter() - t0)
    print(f"write_report: median {statistics.median(times):.2f} s over {repeats} (min {min(times):.2f}, "
          f"max {max(times):.2f})")


if __name__ == "__main__":
    main()
