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
    assert set(plants) == {1.0, 1.05, 1.1, 1.2}  # the unslowed replay beside the planted steps
    big, null = plants[1.2], plants[1.0]
    assert big["plants"] == null["plants"] == 4 * 7  # 4 cells x onsets 3..9 (3 runs before, 3 slowed after each)
    # never on the first slowed run (one run cannot tell); nearly all by the second (the change point's p is
    # adjusted for the chosen split, which costs a run now and then), all by the third
    assert big["found_by"][0] == 0 and big["found_by"][1] >= 26 and big["found_by"][2] == 28
    assert null["found_by"] == [0, 0, 0] and null["pair_found"] == 0  # the same events with nothing slowed
    assert big["first_nonzero"] == 28 and big["pair_found"] + big["pair_inconclusive"] == big["plants"]
    assert big["pair_found"] > 0 and big["pair_found_ci"][0] < big["pair_found"] / 28 <= big["pair_found_ci"][1]
    # inconclusive comparisons stay in the denominator; every rate carries its Clopper-Pearson interval
    assert base["judged"] == base["tested"] + base["inconclusive"] and base["rate"] == 0 and base["rate_ci"][0] == 0
    assert base["nights"] == 11 and base["night_rate_ci"][1] < 0.35
    # the MDE replayed through the rule: the smallest planted step called in >= 90% of onsets
    # (over the onsets with enough A/A history before them); a planted step below it is missed more often
    assert all(c["mde_baseline"] is not None and c["mde_baseline"] <= 0.2 for c in doc["cells"])
    assert all(c["mde_baseline"] <= 0.1 and c["mde_history"] <= 0.1 for c in doc["cells"] if "latency" in c["cell"])
    assert bench(["gate", "validate", "--store", url]) == 0
    out = capsys.readouterr().out
    for text in ("false alarms", "rate per night", "planted steps", "+20%", "unslowed", "MDE --baseline",
                 "openvino/l1-int8 latency b1", "Holm"):
        assert text in out


def test_gate_validate_needs_enough_same_config_runs(tmp_path, make_run, bench, capsys):
    url = _store(tmp_path, make_run, 4)
    assert bench(["gate", "validate", "--store", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "needs >= 6 same-config runs" in err and err.count("\n") == 1


def test_validate_paired_reports_night_false_alarms_and_detection_beside_the_unslowed_rate() -> None:
    """`validate_paired` on simulated A/A paired runs (4-mode machine): no night with an alarm, +20% found in
    most cells, the unslowed row beside it, a measured slowed run through the same API."""
    import gate_sim as gs

    from harness.gate.validate import validate_paired

    c, r = gs.paired_nights(21, 12, 3, 20)
    runs = [gs.paired_run(c[i], r[i], run_id=f"p{i}") for i in range(12)]
    cs, rs = gs.paired_nights(22, 2, 3, 20, slow=1.10)
    measured = [(1.10, gs.paired_run(cs[i], rs[i], run_id=f"m{i}")) for i in range(2)]
    v = validate_paired(runs, real=measured)
    d = v.to_dict()
    assert v.runs == 12 and v.cells == 36 and v.nights_alarmed == 0 and d["night_rate_ci"][1] < 0.27
    rows = {(p.factor, p.real): p for p in v.plants}
    assert rows[(1.0, False)].pair_found == 0 and rows[(1.2, False)].pair_found >= 0.85 * 36
    assert rows[(1.1, True)].plants == 6 and rows[(1.1, True)].pair_found >= 5
    assert all(len(p["pair_found_ci"]) == 2 for p in d["plants"]) and d["correction"] == "holm"


def test_gate_validate_on_a_multimodal_machine_and_paired(tmp_path, bench, capsys):
    """Realistic runs (4 modes, a mix per run, a shared night effect; tests/unit/gate_sim.py): no false alarm per
    night, +20% called by the one-pair test beside 0% unslowed; `--paired` validates the stored paired runs."""
    import gate_sim as gs

    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    x = gs.nights(41, 12, 3, 20)
    c, r = gs.paired_nights(42, 4, 3, 20)
    with ResultsStore(url) as store:
        for i in range(12):
            store.save_run(gs.plain_run(x[i], f"n{i}", f"2026-12-{i + 1:02d}T00:00:00Z"))
    capsys.readouterr()
    assert bench(["gate", "validate", "--store", url, "--json", "n11"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["baseline"]["nights_alarmed"] == 0 and doc["history"]["nights_alarmed"] == 0
    plants = {(round(p["factor"], 2)): p for p in doc["plants"]}
    assert plants[1.0]["pair_found"] == 0 and plants[1.2]["pair_found"] >= 0.6 * plants[1.2]["plants"]
    assert bench(["gate", "validate", "--store", url, "--paired", "n11"]) == 2  # no paired run stored yet
    assert "no stored paired run" in capsys.readouterr().err
    with ResultsStore(url) as store:
        for i in range(4):
            run = gs.paired_run(c[i], r[i], run_id=f"p{i}")
            run.update(created=f"2026-12-2{i}T00:00:00Z", fingerprint={"id": "fp", "machine_id": "m"},
                       config_hash="c")
            store.save_run(run)
    assert bench(["gate", "validate", "--store", url, "--paired", "p3"]) == 0
    out = capsys.readouterr().out
    for text in ("4 paired A/A run(s)", "night (whole comparison", "0.0% [0.0, 60.2]", "+10%", "Holm"):
        assert text in out, text


def test_gate_validate_paired_judges_runs_named_slowed_as_measured_detection(tmp_path, monkeypatch, capsys) -> None:
    """`bench gate validate --paired --slowed RUN=1.2`: the named run (its candidate a slowdown built as a file)
    is judged as measured detection and is not counted as an A/A night; a bad --slowed is one error line, exit 2."""
    import gate_sim as gs

    monkeypatch.setattr(cli, "COMMANDS", ("gate",))
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    c, r = gs.paired_nights(41, 6, 2, 20)
    cs, rs = gs.paired_nights(42, 1, 2, 20, slow=1.2)
    meta = {"schema_version": 2, "config_hash": "c", "fingerprint": {"id": "fp", "machine_id": "m"}, "config": {}}
    with ResultsStore(url) as store:
        for i in range(6):
            store.save_run({**gs.paired_run(c[i], r[i], run_id=f"aa{i}"), **meta,
                            "created": f"2026-12-0{i + 1}T02:00:00Z"})
        store.save_run({**gs.paired_run(cs[0], rs[0], run_id="slow"), **meta, "created": "2026-12-07T02:00:00Z"})
    capsys.readouterr()
    assert cli.main(["gate", "validate", "latest", "--store", url, "--paired", "--slowed", "slow=1.2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["runs"] == 6  # the slowed run is not an A/A night
    measured = [p for p in doc["plants"] if p["real"]]
    assert len(measured) == 1 and measured[0]["factor"] == 1.2 and measured[0]["plants"] == 2
    assert measured[0]["pair_found"] == 2  # both cells of the +20% run called regressions
    assert cli.main(["gate", "validate", "latest", "--store", url, "--paired", "--slowed", "slow=0.9"]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and err[0].startswith("error: --slowed")
