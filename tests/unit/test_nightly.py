"""scripts/nightly.sh's regression gate (NIGHTLY_RUN=0: gate only) on a real store: the first night passes with
nothing to compare, an unchanged night passes, a regressed night exits 1 and writes the comparison JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness.history.store import ResultsStore

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "nightly.sh"


def _gate(url: str, out: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, BENCH_STORE_URL=url, BENCH=f"{sys.executable} -m harness.cli", NIGHTLY_RUN="0",
               NIGHTLY_OUT=str(out), BENCH_HISTORY="3")
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_nightly_gate_exit_codes(tmp_path: Path, make_run) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    out = tmp_path / "cmp.json"
    with ResultsStore(url) as store:
        store.save_run(make_run("n1", created="2026-01-01T02:30:00Z", seed=1))
    first = _gate(url, out)
    assert first.returncode == 0 and "nothing to compare yet" in first.stderr
    with ResultsStore(url) as store:
        store.save_run(make_run("n2", created="2026-01-02T02:30:00Z", seed=2))
    same = _gate(url, out)
    assert same.returncode == 0, same.stderr
    assert json.loads(out.read_text())["regressions"] == 0
    with ResultsStore(url) as store:
        store.save_run(make_run("n3", created="2026-01-03T02:30:00Z", seed=3, factors={("openvino", "l1-int8"): 1.5}))
    short = _gate(url, out)  # two earlier runs: too short a history to test, never a pass
    assert short.returncode == 3 and "INCONCLUSIVE" in short.stderr and "too few runs" in short.stderr
