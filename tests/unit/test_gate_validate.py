"""`bench gate validate`: false alarms and planted-step detection replayed on a stored same-config history."""

from __future__ import annotations

import json

import numpy as np
import pytest

import harness.cli.entry as cli
from harness.gate.regression import cell_key, process_p50s, run_p50
from harness.gate.validate import scale_run
from harness.history.store import ResultsStore

SMALL = {"backends": ("openvino", "onnxruntime"), "variants": ("l1-int8",), "batch_sizes": (1,), "n": 120}


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", ("gate", "compare"))
    return cli.main


def test_a_planted_step_scales_whole_runs_and_keeps_their_noise(make_run):
    run = make_run("r", **SMALL)
    slow = scale_run(run, 1.2)
    for a, b in zip(run["results"], slow["results"], strict=True):
        if a["status"] != "ok":
            continue
        assert cell_key(a) == cell_key(b)
        assert np.allclose(np.asarray(b["samples_ms"]) / np.asarray(a["samples_ms"]), 1.2)
        assert process_p50s(b) == pytest.approx([1.2 * v for v in process_p50s(a)])
        assert run_p50(b) == pytest.approx(1.2 * run_p50(a))  # type: ignore[operator]
        assert b["latency_ms"]["cov"] == a["latency_ms"]["cov"]  # relative spread unchanged
        assert b["throughput_fps"] == pytest.approx(a["throughput_fps"] / 1.2)
    assert run["results"][0]["samples_ms"][0] != slow["results"][0]["samples_ms"][0]  # a copy, the input kept


def _store(tmp_path, make_run, n: int) -> str:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    with ResultsStore(url) as store:
        for i in range(n):
            store.save_run(make_run(f"r{i}", seed=i, created=f"2026-01-{i + 1:02d}T00:00:00Z", **SMALL))
    return url


def test_gate_validate_prints_false_alarms_detection_and_mde(tmp_path, make_run, bench, capsys):
    url = _store(tmp_path, make_run, 12)
    capsys.readouterr()
    assert bench(["gate", "validate", "--store", url, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["runs"] == 12 and len(doc["cells"]) == 4
    base, hist = doc["baseline"], doc["history"]
    assert base["tested"] > 0 and hist["tested"] > 0
    assert base["alarms"] == 0 and hist["alarms"] == 0  # quiet same-config runs: no false alarm
    plants = {round(p["factor"], 2): p for p in doc["plants"]}
    assert set(plants) == {1.05, 1.1, 1.2}
    big = plants[1.2]
    assert big["plants"] == 4 * 7  # 4 cells x onsets 3..9 (3 runs before, 3 slowed runs after each)
    assert big["found_by"] == [0, 28, 28]  # never on the first slowed run (one run cannot tell), all by the second
    assert big["first_nonzero"] == 28 and big["pair_found"] == big["pair_tested"] > 0
    assert all(c["mde_baseline"] is not None and c["mde_baseline"] < 0.1 for c in doc["cells"])
    assert bench(["gate", "validate", "--store", url]) == 0
    out = capsys.readouterr().out
    for text in ("false alarms per cell comparison", "planted steps", "+20%", "MDE --baseline",
                 "openvino/l1-int8 latency b1"):
        assert text in out


def test_gate_validate_needs_enough_same_config_runs(tmp_path, make_run, bench, capsys):
    url = _store(tmp_path, make_run, 4)
    assert bench(["gate", "validate", "--store", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "needs >= 6 same-config runs" in err and err.count("\n") == 1
