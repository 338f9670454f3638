"""scripts/nightly.sh measures the paper's model and, once a run is accepted, measures the accepted files beside
tonight's and gates within the run (`--reference accepted`, then `bench compare --paired latest`).

The measuring step is the one part replaced here: the full-width nightly grid takes an hour, so `bench run` is a
recorder that stores a prepared paired run (the arms a real `--reference` run stores; its own tests are in
tests/integration/test_reference_arm.py). Every other step (history, accept, compare, exit codes) is the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gate_sim as gs

from common.stats.modes import GATE_PROCESSES

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "nightly.sh"
RECORDER = '''
import json, os, sys
args = sys.argv[1:]
if "run" in args:
    with open(os.environ["RECORD"], "a") as f:
        f.write(json.dumps(args) + "\\n")
    from harness.history.store import ResultsStore
    with ResultsStore(os.environ["BENCH_STORE_URL"]) as store:
        store.save_run(json.load(open(os.environ["TONIGHT"])))
    sys.exit(0)
from harness.cli import main
sys.exit(main(args))
'''


def _nightly(tmp: Path, url: str, tonight: dict, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    (tmp / "tonight.json").write_text(json.dumps(tonight))
    (tmp / "bench.py").write_text(RECORDER)
    record = tmp / "record.jsonl"
    record.unlink(missing_ok=True)
    e = dict(os.environ, BENCH_STORE_URL=url, BENCH=f"{sys.executable} {tmp / 'bench.py'}", RECORD=str(record),
             TONIGHT=str(tmp / "tonight.json"), NIGHTLY_OUT=str(tmp / "cmp.json"), BENCH_HISTORY="10",
             NIGHTLY_SITE="", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **env)
    done = subprocess.run(["bash", str(SCRIPT)], env=e, capture_output=True, text=True, timeout=300, cwd=tmp)
    runs = [json.loads(line) for line in record.read_text().splitlines()] if record.is_file() else []
    return done, (runs[0] if runs else [])


def _stamp(run: dict, run_id: str, created: str) -> dict:
    return {**run, "run_id": run_id, "created": created, "schema_version": 1, "config_hash": "c",
            "fingerprint": {"id": "fp", "machine_id": "m"}, "config": {}}


def test_nightly_measures_the_accepted_files_beside_tonights_and_gates_within_the_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    c, r = gs.paired_nights(7, 3, 2, GATE_PROCESSES)
    first = _stamp(gs.plain_run(c[0], "n1", "2026-01-01T02:30:00Z"), "n1", "2026-01-01T02:30:00Z")
    done, args = _nightly(tmp_path, url, first)
    assert done.returncode == 0 and "nothing to compare yet" in done.stderr, done.stderr
    assert args[args.index("--profile") + 1] == "nightly"  # the paper's full-width model
    assert "--reference" not in args  # nothing accepted yet: no reference to measure

    from harness.cli import main
    assert main(["accept", "n1", "--store", url, "--reason", "the level we ship"]) == 0
    same = _stamp(gs.paired_run(c[1], r[1]), "n2", "2026-01-02T02:30:00Z")
    done, args = _nightly(tmp_path, url, same)
    assert args[args.index("--reference") + 1] == "accepted"
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "cmp.json").read_text())["correction"] == "holm"  # the paired gate judged it

    c2, r2 = gs.paired_nights(8, 1, 2, GATE_PROCESSES, slow=1.10)
    slow = _stamp(gs.paired_run(c2[0], r2[0]), "n3", "2026-01-03T02:30:00Z")
    done, args = _nightly(tmp_path, url, slow)
    assert done.returncode == 1 and "REGRESSION" in done.stderr, done.stderr
    assert json.loads((tmp_path / "cmp.json").read_text())["regressions"] == 2
    done, args = _nightly(tmp_path, url, slow, NIGHTLY_REFERENCE="none")
    assert "--reference" not in args  # asked not to: the history gate alone
