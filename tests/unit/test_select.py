"""`bench select` honours every constraint, explains every loss, and uses the latest measurement."""

from __future__ import annotations

import itertools
import json

import pytest

import harness.cli as cli
from common.errors import UserError
from harness.store import ResultsStore
from reports.select import Constraints, parse_min_accuracy, select

MY_COMMANDS = ("history", "report", "compare", "select")


@pytest.fixture
def rows(tmp_path, make_run):
    """Stored results of two machines; the laptop's openvino/l1-int8 cell is INVALID."""
    with ResultsStore(f"sqlite:///{tmp_path / 'h.sqlite'}") as store:
        store.save_run(make_run("xeon-1", created="2026-01-01T00:00:00Z", seed=1))
        store.save_run(make_run("laptop-1", created="2026-01-02T00:00:00Z", seed=2, fingerprint="fp-l",
                                cpu="Intel Core i7-1185G7", factors={k: 1.6 for k in [
                                    ("openvino", "dense-fp32"), ("openvino", "l1-fp32"),
                                    ("openvino", "dense-int8"), ("onnxruntime", "l1-int8")]},
                                invalid=(("openvino", "l1-int8"),)))
        yield store.all_results()


def _meets(ch, c: Constraints) -> bool:
    return ((c.max_latency_ms is None or ch.p99_ms <= c.max_latency_ms)
            and (c.min_accuracy is None or ch.accuracy >= c.min_accuracy)
            and (c.max_storage_mb is None or ch.storage_mb <= c.max_storage_mb))


@pytest.mark.parametrize("objective", ["latency", "throughput", "storage"])
def test_every_constraint_is_honoured(rows, objective):
    grid = itertools.product([None, 0.35, 1.2, 5.0], [None, 0.85, 0.855], [None, 4.0, 20.0], [1, 32])
    for max_lat, min_acc, max_st, batch in grid:
        c = Constraints(max_latency_ms=max_lat, min_accuracy=min_acc, max_storage_mb=max_st, batch=batch,
                        objective=objective)
        sel = select(rows, c)
        assert all(_meets(ch, c) for ch in sel.ranked), c
        for ch, why in sel.rejected:  # everything rejected broke a rule, and says which
            assert why
            if not why.startswith(("status", "invalid measurement", "not measured")):
                assert not _meets(ch, c), (c, ch, why)
        assert len(sel.ranked) + len(sel.rejected) == 2 * 16  # 2 machines x 4 backends x 4 variants
        key = {"latency": lambda ch: ch.p50_ms, "throughput": lambda ch: -ch.throughput_fps,
               "storage": lambda ch: ch.storage_mb}[objective]
        values = [key(ch) for ch in sel.ranked]
        assert values == sorted(values)
        if sel.ranked:
            assert sel.recommended is sel.ranked[0]
            assert all(sel.lost[i].startswith(f"ranked #{i + 1}") for i in range(1, len(sel.ranked)))
        else:
            assert sel.message.startswith("nothing feasible")


def test_recommendation_and_reasons(rows):
    sel = select(rows, Constraints(max_latency_ms=1.0, min_accuracy=0.85, objective="latency"))
    best = sel.recommended
    assert (best.backend, best.variant, best.hardware) == ("openvino", "l1-fp32",
                                                            "Intel Xeon Platinum 8481C (2 cores)")
    why = {(ch.backend, ch.variant, ch.hardware.split()[1]): w for ch, w in sel.rejected}
    assert why[("openvino", "l1-int8", "Xeon")].startswith("accuracy 84.80% < min 85.00%")
    assert why[("torch-eager", "dense-fp32", "Xeon")].startswith("p99 ")
    assert why[("openvino", "l1-int8", "Core")] == "invalid measurement: CoV 0.31 above max_cov 0.25"
    assert why[("tensorrt", "l1-int8", "Core")].startswith("status unavailable: tensorrt is not installed")
    d = sel.to_dict()
    assert set(d["recommended"]) >= {"backend", "variant", "hardware", "batch_size", "p50_ms", "p99_ms",
                                     "throughput_fps", "accuracy", "storage_mb", "run_id"}
    assert d["ranked"][0]["why"] == "recommended" and all(r["why"] for r in d["rejected"])


def test_nothing_feasible_names_the_binding_constraint(rows):
    sel = select(rows, Constraints(max_latency_ms=0.1))
    assert sel.recommended is None
    assert "--max-latency-ms" in sel.message and "binds" in sel.message and "0.3" in sel.message
    sel = select(rows, Constraints(max_latency_ms=0.5, min_accuracy=0.855))
    assert sel.recommended is None and sel.message.count("--") == 2


def test_latest_measurement_wins(tmp_path, make_run):
    with ResultsStore(f"sqlite:///{tmp_path / 'h.sqlite'}") as store:
        store.save_run(make_run("old", created="2026-01-01T00:00:00Z", backends=("openvino",)))
        store.save_run(make_run("new", created="2026-01-05T00:00:00Z", backends=("openvino",),
                                factors={("openvino", "l1-int8"): 3.0}))
        store.save_run(make_run("b32-only", created="2026-01-09T00:00:00Z", backends=("openvino",),
                                batch_sizes=(32,)))  # also has batch-1 latency cells
        rows = store.all_results()
    sel = select(rows, Constraints(objective="latency"))
    assert {ch.run_id for ch in sel.ranked} == {"b32-only"}
    rows = [r for r in rows if r["run_id"] != "b32-only"]
    sel = select(rows, Constraints(objective="latency"))
    l1 = next(ch for ch in sel.ranked if ch.variant == "l1-int8")
    assert l1.run_id == "new" and l1.p50_ms == pytest.approx(0.81, rel=0.1)
    assert sel.recommended.variant == "l1-fp32"  # the slowed-down int8 lost its first place


def test_batch_without_measurement_is_rejected(rows):
    sel = select(rows, Constraints(batch=8))
    assert sel.recommended is None
    assert all(why.startswith(("not measured at batch 8", "status")) for _, why in sel.rejected)


def test_bad_constraints_are_user_errors():
    with pytest.raises(UserError, match="--objective"):
        Constraints(objective="cost")
    with pytest.raises(UserError, match="--batch"):
        Constraints(batch=0)
    with pytest.raises(UserError, match="--max-latency-ms"):
        Constraints(max_latency_ms=-1.0)
    with pytest.raises(UserError, match="--min-accuracy"):
        parse_min_accuracy(150.0)
    assert parse_min_accuracy(85.0) == pytest.approx(0.85) and parse_min_accuracy(0.85) == 0.85


def test_select_command(tmp_path, make_run, monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMANDS", MY_COMMANDS)
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    assert cli.main(["select", "--store", url]) == 2  # empty store
    assert "holds no results" in capsys.readouterr().err
    with ResultsStore(url) as store:
        store.save_run(make_run("r"))
    assert cli.main(["select", "--store", url, "--min-accuracy", "85", "--max-storage-mb", "20",
                     "--batch", "32", "--objective", "throughput", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rec = data["recommended"]
    assert rec["batch_size"] == 32 and rec["accuracy"] >= 0.85 and rec["storage_mb"] <= 20
    assert rec["throughput_fps"] == max(r["throughput_fps"] for r in data["ranked"])
    assert cli.main(["select", "--store", url, "--max-latency-ms", "0.01"]) == 1
    captured = capsys.readouterr()
    assert "nothing feasible" in captured.err and "--max-latency-ms" in captured.err
    assert cli.main(["select", "--store", url, "--batch", "0"]) == 2


def test_a_row_that_disagrees_with_the_reference_is_rejected_and_why(make_run):
    run = make_run("r-1")
    for r in run["results"]:
        if (r["backend"], r["variant"]) == ("openvino", "l1-int8") and r["status"] == "ok":
            r.update(agreement=0.6, agrees=False, agreement_reason="top-1 agreement 0.6000 with the PyTorch "
                     "reference is below 0.99 (benchmark.min_agreement_int8)")
    rows = [{**r, "run_id": "r-1", "created": run["created"], "hardware": "x"} for r in run["results"]]
    sel = select(rows, Constraints(batch=1))
    why = {ch.name: w for ch, w in sel.rejected}
    assert "disagrees with the PyTorch reference: top-1 agreement 0.6000" in why["openvino/l1-int8 on x"]
    assert all((ch.backend, ch.variant) != ("openvino", "l1-int8") for ch in sel.ranked)


def test_max_storage_uses_the_loaded_file_bytes(make_run):
    run = make_run("r-1", backends=("openvino",), variants=("l1-int8",))
    for r in run["results"]:
        r["file_bytes"] = 9_000_000  # the file on disk is larger than the parameter formula says
    rows = [{**r, "run_id": "r-1", "created": run["created"], "hardware": "x"} for r in run["results"]]
    assert rows[0]["storage_mb"] < 9.0
    sel = select(rows, Constraints(batch=1, max_storage_mb=8.0))
    assert sel.recommended is None
    assert "file size 9 MB > max 8 MB" in sel.rejected[0][1]
    ok = select(rows, Constraints(batch=1, max_storage_mb=10.0)).recommended
    assert ok is not None and ok.storage_mb == 9.0 and ok.storage_source == "file"
