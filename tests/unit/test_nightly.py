"""scripts/nightly.sh's regression gate (NIGHTLY_RUN=0: gate only) on a real store: the first night passes with
nothing to compare, an unchanged night passes, too short a history and a single slow night exit 3, the second
slow night exits 1 and writes the comparison JSON."""

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
               NIGHTLY_OUT=str(out), BENCH_HISTORY="10", NIGHTLY_SITE="")
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
    short = _gate(url, out)  # two runs in the history: too short to test, never a pass
    assert short.returncode == 3 and "INCONCLUSIVE" in short.stderr and "too few runs: 2" in short.stderr
    assert json.loads(out.read_text())["regressions"] == 0
    with ResultsStore(url) as store:
        store.save_run(make_run("n3", created="2026-01-03T02:30:00Z", seed=3))
        store.save_run(make_run("n4", created="2026-01-04T02:30:00Z", seed=4))
    assert _gate(url, out).returncode == 0  # four same-config nights: tested, no change
    slow = {("openvino", "l1-int8"): 1.5}
    with ResultsStore(url) as store:
        store.save_run(make_run("n5", created="2026-01-05T02:30:00Z", seed=5, factors=slow))
    once = _gate(url, out)  # one slow night: a step or an outlier, the next night tells
    assert once.returncode == 3 and "openvino/l1-int8" in once.stderr and "the next run decides" in once.stderr
    with ResultsStore(url) as store:
        store.save_run(make_run("n6", created="2026-01-06T02:30:00Z", seed=6, factors=slow))
    bad = _gate(url, out)
    assert bad.returncode == 1 and "REGRESSION" in bad.stderr and "openvino/l1-int8" in bad.stderr
    assert json.loads(out.read_text())["regressions"] >= 1


def test_nightly_profile_measures_the_papers_full_width_model() -> None:
    """`--profile nightly` times the full-width VGG16-FER (the model the paper measures, where a 10% change is
    resolvable), trained like `--profile full` so both reuse one cached model; the quickstart stays quarter width."""
    from common.config import load_config, profile_overrides

    nightly, full, quick = (load_config(None, profile_overrides(p)) for p in ("nightly", "full", None))
    assert nightly.model.width == 1.0 and quick.model.width == 0.25
    assert nightly.section_hash("model", "train", "compress") == full.section_hash("model", "train", "compress")
    from common.stats.modes import GATE_PROCESSES

    assert nightly.benchmark.rounds == GATE_PROCESSES and nightly.benchmark.min_duration_s == 3.0
