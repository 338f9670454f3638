"""Other machines' hardware-aware choices (harness/orchestrate/foreign_plans.py): a stored architecture back to a
Plan and to the same arch, which stored runs count as another machine's comparable choice, and the store read."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from compression.allocate import LayerChoice, Plan
from compression.latency_table import LatencyTable, LayerCosts, conv_slots
from fer.model import Arch, default_arch
from harness.history.store import ResultsStore
from harness.orchestrate.foreign_plans import (
    foreign_plans,
    machine_label,
    reconstruct,
    run_dense_arch,
    variant_name,
)
from reports.frontier import foreign_plan_table

DENSE = default_arch(width=0.25)
NAME = "l1-t0.50-int8"


def _plan(dense: Arch, widths: dict[int, int], removed: set[int]) -> Plan:
    """A plan on `dense`: conv i at widths[i] (dense width when not given), the convs in `removed` gone."""
    layers = [LayerChoice(s.index, s.name, s.dense_out, 0 if s.index in removed else widths.get(s.index, s.dense_out),
                          s.index in removed, 0.0) for s in conv_slots(dense)]
    return Plan(layers, 0.0, 0.0, 0.0)


def _stored(plan: Plan, dense: Arch) -> dict[str, Any]:
    """What a sweep stores of a plan (latency_sweep.point_fields' architecture)."""
    f = plan.fields()
    return {"widths": f["widths"], "removed_layers": f["removed_layers"], "features": plan.arch(dense)["features"]}


def _table(dense: Arch) -> LatencyTable:
    """A table whose conv costs 0.001 ms per output channel, rest 0.5 ms."""
    layers = [LayerCosts(s, [1, s.dense_in], [1, s.dense_out], [[0.001, 0.001 * s.dense_out]] * 2)
              for s in conv_slots(dense)]
    return LatencyTable({"machine": "here"}, layers, 0.5)


def _header(run_id: str, machine: str, plan: Plan, dense: Arch = DENSE, backend: str = "openvino",
            path: str = "amx") -> dict[str, Any]:
    return {"run_id": run_id, "created": "2026-12-07T10:00:00Z",
            "fingerprint": {"id": f"fp-{machine}", "machine_id": machine, "cpu": {"brand": f"CPU of {machine}"},
                            "isa": {"int8_path": path}},
            "config": {"model": {"in_channels": 1, "width": 0.25, "dropout": 0.5, "pretrained": ""}},
            "sweep": {"dense_arch": dense, "latency": {"points": {NAME: {
                "backend": backend, "target_ms": 1.0, "predicted_ms": 0.9, "measured_p50_ms": 1.1,
                "architecture": _stored(plan, dense)}}}}}


PLAN_A = _plan(DENSE, {12: 64, 11: 96}, {1, 5})
PLAN_B = _plan(DENSE, {12: 32}, {3})


def test_a_stored_architecture_round_trips_through_a_plan() -> None:
    stored = _stored(PLAN_A, DENSE)
    plan = reconstruct(stored, DENSE)
    assert plan is not None
    assert plan.arch(DENSE) == PLAN_A.arch(DENSE)
    assert plan.widths == PLAN_A.widths and plan.removed == [1, 5]
    assert _stored(plan, DENSE) == stored


def test_the_prediction_comes_from_this_machines_table() -> None:
    table = _table(DENSE)
    plan = reconstruct(_stored(PLAN_A, DENSE), DENSE, table)
    assert plan is not None
    assert plan.predicted_ms == pytest.approx(table.predict(PLAN_A.arch(DENSE)))
    assert [c.cost_ms == 0.0 for c in plan.layers] == [c.removed for c in plan.layers]


@pytest.mark.parametrize("break_it", ["wider than dense", "missing conv", "first conv removed", "features"])
def test_an_architecture_that_does_not_fit_the_dense_model_is_none(break_it: str) -> None:
    stored = _stored(PLAN_A, DENSE)
    first, last = conv_slots(DENSE)[0].name, conv_slots(DENSE)[-1].name
    if break_it == "wider than dense":
        stored["widths"][last] = 10_000
    elif break_it == "missing conv":
        del stored["widths"][last]
    elif break_it == "first conv removed":
        stored["widths"][first] = 0
        stored["removed_layers"].append(first)
    else:
        stored["features"] = stored["features"][1:]
    assert reconstruct(stored, DENSE) is None


def test_another_machines_choice_is_found_labelled_and_named() -> None:
    (fp,) = foreign_plans([_header("r1", "m-a1b2c3d4", PLAN_A)], "m-here", DENSE, NAME, "openvino")
    assert fp.machine_id == "m-a1b2c3d4" and fp.label == "amx-a1b2c3" and fp.hardware == "CPU of m-a1b2c3d4"
    assert fp.plan.arch(DENSE) == PLAN_A.arch(DENSE)
    assert variant_name(NAME, "int8", fp.label) == "l1-t0.50-for-amx-a1b2c3-int8"
    assert machine_label({"fingerprint": {"machine_id": "zen3-quiet!"}}) == ("zen3qu", "unknown")


def test_the_same_machine_is_not_foreign() -> None:
    assert foreign_plans([_header("r1", "m-here", PLAN_A)], "m-here", DENSE, NAME, "openvino") == []


def test_a_different_dense_architecture_is_skipped() -> None:
    other = default_arch(width=0.5)
    header = _header("r1", "m-other", _plan(other, {}, {1}), dense=other)
    assert foreign_plans([header], "m-here", DENSE, NAME, "openvino") == []
    del header["sweep"]["dense_arch"]  # an older run: the dense arch of its model config
    header["config"]["model"]["width"] = 0.5
    assert run_dense_arch(header) == other
    assert foreign_plans([header], "m-here", DENSE, NAME, "openvino") == []
    header["config"]["model"]["pretrained"] = "imported.onnx"  # an imported model's shape cannot be told
    assert run_dense_arch(header) is None


def test_another_backend_or_point_is_not_the_same_request() -> None:
    assert foreign_plans([_header("r1", "m-o", PLAN_A, backend="onnxruntime")], "m-here", DENSE, NAME,
                         "openvino") == []
    assert foreign_plans([_header("r1", "m-o", PLAN_A)], "m-here", DENSE, "l1-t0.25-int8", "openvino") == []


def test_newest_per_machine_identical_architectures_once_own_left_out_and_capped() -> None:
    headers = [_header("new", "m-x", PLAN_A), _header("old", "m-x", PLAN_B),  # m-x: its newest only
               _header("y", "m-y", PLAN_A, path="avx2"),  # the same architecture as m-x's: built once
               _header("z", "m-z", PLAN_B), _header("w", "m-w", _plan(DENSE, {12: 16}, set()))]
    got = foreign_plans(headers, "m-here", DENSE, NAME, "openvino")
    assert [f.run_id for f in got] == ["new", "z", "w"]
    assert [f.run_id for f in foreign_plans(headers, "m-here", DENSE, NAME, "openvino", limit=2)] == ["new", "z"]
    mine = foreign_plans(headers, "m-here", DENSE, NAME, "openvino", own=PLAN_A.arch(DENSE))
    assert [f.run_id for f in mine] == ["z", "w"]


def test_the_store_reads_other_machines_headers_newest_first(tmp_path: Path) -> None:
    with ResultsStore(f"sqlite:///{tmp_path}/h.sqlite") as store:
        for rid, mid, created in (("a", "m-here", "2026-12-07T10:00:00Z"), ("b", "m-x", "2026-12-07T11:00:00Z"),
                                  ("c", "m-y", "2026-12-07T12:00:00Z")):
            h = copy.deepcopy(_header(rid, mid, PLAN_A))
            store.save_run({**h, "created": created, "results": []})
        assert [h["run_id"] for h in store.headers(exclude_machine="m-here")] == ["c", "b"]
        assert [h["run_id"] for h in store.headers(limit=1)] == ["c"]


def test_the_report_sets_their_choice_beside_ours() -> None:
    entry = {"variant": "l1-t0.50-for-amx-a1b2c3-int8", "own_variant": NAME,
             "chosen_for": {"machine_id": "m-a1b2c3d4", "hardware": "CPU X"}, "architecture": _stored(PLAN_A, DENSE),
             "measured_p50_ms": 1.2, "measured_p50_ci_ms": [1.1, 1.3], "val_accuracy": 0.5, "test_accuracy": 0.4,
             "own_measured_p50_ms": 1.0, "own_measured_p50_ci_ms": [0.9, 1.1], "own_val_accuracy": 0.5,
             "own_test_accuracy": 0.45, "p50_ratio_vs_own": 1.2, "p50_ratio_vs_own_ci95": [1.0, 1.44]}
    table = foreign_plan_table({"run_id": "r", "results": [], "sweep": {"latency": {"points": {}, "foreign": [entry]}}})
    assert table is not None
    (row,) = table.rows
    assert row[0] == entry["variant"] and "1.20x [1.00, 1.44]" in row and "m-a1b2c3d4 (CPU X)" in row


def _row(variant: str, p50s: list[float]) -> dict[str, Any]:
    ordered = sorted(p50s)
    return {"backend": "openvino", "variant": variant, "scenario": "latency", "status": "ok", "valid": True,
            "latency_ms": {"p50": ordered[len(ordered) // 2]}, "p50_ci_ms": [ordered[0], ordered[-1]],
            "rounds": [{"round": i, "n": 100, "p50_ms": v} for i, v in enumerate(p50s)]}


def test_the_summary_sets_their_p50_over_ours_with_an_interval_that_holds_it() -> None:
    from harness.cli.sweep import foreign_summary
    from harness.orchestrate.foreign_plans import foreign_build
    from harness.orchestrate.latency_sweep import LatencyBuild

    table = _table(DENSE)
    fields = {"backend": "openvino", "target_ms": 1.0, "target_fraction_of_paper": 0.5, "table": "t.json",
              "objective": "this machine's own: not shared"}
    own = LatencyBuild(NAME, "int8", PLAN_B, PLAN_B.arch(DENSE), 1.0, table, Path("t.json"), fields)
    (fp,) = foreign_plans([_header("r1", "m-a1b2c3d4", PLAN_A)], "m-here", DENSE, NAME, "openvino", table=table)
    fb = foreign_build(own, fp, DENSE)
    assert "objective" not in fb.fields and fb.fields["chosen_for"]["run_id"] == "r1"
    results = {"results": [_row(NAME, [1.0, 1.1, 0.9, 1.0, 1.05]), _row(fb.name, [1.5, 1.6, 1.4, 1.5, 1.55])],
               "sweep": {"artifacts": {NAME: {"val_accuracy": 0.6, "test_accuracy": 0.55},
                                       fb.name: {"val_accuracy": 0.62, "test_accuracy": 0.5}}}}
    (s,) = foreign_summary(results, own, [fb])
    assert s["variant"] == "l1-t0.50-for-amx-a1b2c3-int8" and s["own_variant"] == NAME
    assert s["p50_ratio_vs_own"] == pytest.approx(1.5)
    lo, hi = s["p50_ratio_vs_own_ci95"]
    assert lo <= 1.5 <= hi and s["p50_ratio_vs_own_ci_level"] > 0.5
    assert (s["val_accuracy"], s["own_test_accuracy"]) == (0.62, 0.55)
    assert s["architecture"]["features"] == PLAN_A.arch(DENSE)["features"]
    assert s["predicted_ms_here"] == pytest.approx(table.predict(PLAN_A.arch(DENSE)), abs=1e-6)


def test_bench_select_names_a_per_machine_model(tmp_path: Path, make_run: Any) -> None:
    """Variants are names in stored rows: a model chosen for another machine is ranked like any other."""
    from reports.select import Constraints, select

    run = make_run("run-1")
    name = "l1-t0.50-for-amx-a1b2c3-int8"
    run["results"] += [{**copy.deepcopy(r), "variant": name} for r in run["results"] if r["variant"] == "l1-int8"]
    with ResultsStore(f"sqlite:///{tmp_path}/h.sqlite") as store:
        store.save_run(run)
        rows = store.all_results_typed()
    sel = select(rows, Constraints(min_accuracy=0.0))
    assert name in {ch.variant for ch in sel.ranked}
    assert name in {ch["variant"] for ch in sel.to_dict()["ranked"]}
