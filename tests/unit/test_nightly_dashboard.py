"""scripts/nightly.sh writes the history dashboard after the gate (NIGHTLY_SITE), and a dashboard that cannot be
written is reported without changing the gate's exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness.history.store import ResultsStore

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "nightly.sh"


def _nightly(url: str, tmp: Path, site: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, BENCH_STORE_URL=url, BENCH=f"{sys.executable} -m harness.cli", NIGHTLY_RUN="0",
               NIGHTLY_OUT=str(tmp / "cmp.json"), BENCH_HISTORY="10", NIGHTLY_SITE=site)
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300, cwd=tmp)


def test_nightly_writes_the_dashboard_and_keeps_the_gates_exit_code(tmp_path: Path, make_run) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    kw = {"backends": ("openvino",), "variants": ("l1-int8",), "batch_sizes": (), "n": 60}
    with ResultsStore(url) as store:
        store.save_run(make_run("n1", created="2026-01-01T02:30:00Z", seed=1, **kw))
    first = _nightly(url, tmp_path, str(tmp_path / "site"))
    assert first.returncode == 0 and "nothing to compare yet" in first.stderr  # the first night, as before
    assert "dashboard in" in first.stderr and (tmp_path / "site" / "index.html").is_file()
    with ResultsStore(url) as store:
        store.save_run(make_run("n2", created="2026-01-02T02:30:00Z", seed=2, **kw))
    (tmp_path / "blocker").write_text("a file where the site's folder would go")
    short = _nightly(url, tmp_path, str(tmp_path / "blocker" / "site"))
    assert short.returncode == 3 and "INCONCLUSIVE" in short.stderr  # the gate's code, not the dashboard's
    assert "the dashboard could not be written" in short.stderr
    off = _nightly(url, tmp_path, "")
    assert off.returncode == 3 and "dashboard" not in off.stderr
