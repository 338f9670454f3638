"""The frontier logic on synthetic rows: Pareto front, fastest within tolerance (valid, agreeing rows, on
validation accuracy), dense fallback, speedup with its interval over processes."""

from __future__ import annotations

from typing import Any

import pytest

from reports.frontier import compute_frontier, frontier_table, pareto, points_table
from reports.frontier_figures import render_sweep

N = 700  # test images: accuracies are counts / N, as in real rows


def row(backend: str, variant: str, p50: float, correct: int, *, status: str = "ok", scenario: str = "latency",
        valid: bool = True, precision: str = "int8", val_correct: int | None = None, agrees: bool | None = True,
        spread: float = 0.02) -> dict[str, Any]:
    """A latency row; its validation accuracy is `val_correct` / N (= the test accuracy unless given) and its
    three processes' p50s lie at p50 x (1 - spread, 1, 1 + spread)."""
    confusion = [[0] * 7 for _ in range(7)]
    confusion[0][0], confusion[0][1] = correct, N - correct
    val = (correct if val_correct is None else val_correct) / N
    rounds = [{"round": i, "p50_ms": p50 * f, "n": 100, "noisy": ""} for i, f in enumerate((1 - spread, 1, 1 + spread))]
    return {"backend": backend, "variant": variant, "scenario": scenario, "batch_size": 1, "status": status,
            "valid": valid, "latency_ms": {"p50": p50}, "accuracy": correct / N, "confusion": confusion,
            "precision": precision, "storage_mb": 1.0 + p50, "val_accuracy": val, "agrees": agrees,
            "agreement": None if agrees is None else 1.0 if agrees else 0.5, "rounds": rounds}


def run_of(rows: list[dict[str, Any]], tolerance: float = 0.01) -> dict[str, Any]:
    points = [{"variant": v, "method": "l1", "scope": "local", "sparsity": s, "precision": "int8"}
              for v, s in (("a", 0.8), ("b", 0.7), ("c", 0.5))]
    return {"run_id": "r", "results": rows, "sweep": {"points": points, "baseline": "dense-fp32",
                                                       "paper_point": "c", "tolerance": tolerance}}


def test_pareto_keeps_only_undominated_points_by_rising_latency() -> None:
    pts = [(1.0, 0.90), (2.0, 0.95), (3.0, 0.93), (0.5, 0.80), (2.0, 0.95), (0.5, 0.70), (4.0, 0.95)]
    # (3.0, .93) is beaten by (2.0, .95); the second (2.0, .95) and (4.0, .95) add nothing; (0.5, .70) loses
    # to (0.5, .80) at the same latency.
    assert pareto(pts) == [3, 0, 1]
    assert pareto([]) == []


ROWS = [
    row("torch-eager", "dense-fp32", 10.0, 630, precision="fp32"),
    row("openvino", "dense-fp32", 4.0, 630, precision="fp32"),
    row("openvino", "a", 0.2, 619),  # 1.57 points below dense: outside 1 point
    row("openvino", "b", 0.3, 623),  # exactly 1 point below dense: inside
    row("openvino", "c", 0.5, 665),  # more accurate than dense
    row("openvino", "z", 0.1, 700, status="error"),  # failed cells never count
    row("openvino", "c", 0.01, 700, scenario="throughput"),  # neither do throughput rows
]


def test_fastest_within_tolerance_counts_the_boundary_and_excludes_what_lies_beyond() -> None:
    f = compute_frontier(run_of(ROWS), 0.01)["openvino"]
    best = f["fastest_within_tolerance"]
    assert best["variant"] == "b"
    assert best["p50_ms"] == 0.3 and best["accuracy"] == 623 / N
    assert best["speedup_vs_dense_fp32_torch"] == pytest.approx(10.0 / 0.3)
    assert best["delta_accuracy"] == pytest.approx(-0.01) and best["delta_val_accuracy"] == pytest.approx(-0.01)
    lo, hi = best["accuracy_ci95"]
    assert lo < 623 / N < hi
    assert f["dense_accuracy"] == 630 / N and f["dense_accuracy_from"] == "openvino"
    assert f["pareto"] == ["a", "b", "c"]  # dense-fp32 (4 ms, 90%) is dominated by c (0.5 ms, 95%)


def test_tolerance_moves_the_choice() -> None:
    assert compute_frontier(run_of(ROWS), 0.02)["openvino"]["fastest_within_tolerance"]["variant"] == "a"
    assert compute_frontier(run_of(ROWS), 0.0)["openvino"]["fastest_within_tolerance"]["variant"] == "c"


def test_dense_accuracy_falls_back_to_torch_eager_and_speedup_needs_it() -> None:
    rows = [r for r in ROWS if not (r["backend"] == "openvino" and r["variant"] == "dense-fp32")]
    f = compute_frontier(run_of(rows), 0.01)
    assert f["openvino"]["dense_accuracy_from"] == "torch-eager"
    assert f["openvino"]["fastest_within_tolerance"]["variant"] == "b"
    no_ref = [r for r in ROWS if r["backend"] == "openvino"]
    best = compute_frontier(run_of(no_ref), 0.01)["openvino"]["fastest_within_tolerance"]
    assert best["variant"] == "b" and best["speedup_vs_dense_fp32_torch"] is None
    no_dense = [r for r in no_ref if r["variant"] != "dense-fp32"]
    f2 = compute_frontier(run_of(no_dense), 0.01)["openvino"]
    assert f2["fastest_within_tolerance"] is None and f2["pareto"] == ["a", "b", "c"]


def test_backends_without_rows_are_absent() -> None:
    rows = [*ROWS[:3], row("onnxruntime", "a", 0.2, 600, status="unavailable")]
    f = compute_frontier(run_of(rows), 0.01)
    assert "onnxruntime" not in f and set(f) == {"torch-eager", "openvino"}


@pytest.mark.parametrize("flaw, why", [
    ({"valid": False}, "INVALID timing"),
    ({"agrees": False}, "disagrees with its reference"),
    ({"agrees": None}, "unverified"),
    ({"val_correct": -1}, "no validation accuracy"),
])
def test_a_fast_row_that_is_invalid_disagrees_unverified_or_has_no_val_accuracy_is_never_chosen(
        flaw: dict[str, Any], why: str) -> None:
    kw = dict(flaw)
    no_val = kw.pop("val_correct", None) == -1
    bad = row("openvino", "fast", 0.05, 700, **kw)
    if no_val:
        bad["val_accuracy"] = None  # an imported ONNX file: its manifest has none
    f = compute_frontier(run_of([*ROWS, bad]), 0.01)["openvino"]
    assert f["fastest_within_tolerance"]["variant"] == "b"  # what wins without it
    assert "fast" not in f["pareto"] and f["excluded"]["fast"].startswith(why)


def test_the_choice_is_made_on_validation_accuracy_not_test_accuracy() -> None:
    rows = [
        row("torch-eager", "dense-fp32", 10.0, 630, precision="fp32"),
        # test accuracy high, validation accuracy 3 points below dense: a lucky test split, not a candidate
        row("openvino", "lucky", 0.1, 640, val_correct=609),
        # test accuracy 3 points below dense, validation accuracy within: chosen, its test accuracy reported
        row("openvino", "honest", 0.2, 609, val_correct=626),
    ]
    best = compute_frontier(run_of(rows), 0.01)["openvino"]["fastest_within_tolerance"]
    assert best["variant"] == "honest" and best["val_accuracy"] == 626 / N
    assert best["accuracy"] == 609 / N and best["delta_accuracy"] == pytest.approx(-21 / N)
    f = compute_frontier(run_of(rows), 0.01)["openvino"]
    assert f["chosen_on"] == "val_accuracy" and f["dense_val_accuracy"] == 630 / N
    assert f["pareto"] == ["lucky", "honest"]  # on validation accuracy: honest (89.4%) beats lucky (87.0%)


def test_the_speedup_carries_the_interval_of_the_ratio_of_process_medians() -> None:
    from common.stats.intervals import ratio_ci

    best = compute_frontier(run_of(ROWS), 0.01)["openvino"]["fastest_within_tolerance"]
    ref = [10.0 * f for f in (0.98, 1.0, 1.02)]
    mine = [0.3 * f for f in (0.98, 1.0, 1.02)]
    ratio, ci, _level = ratio_ci(ref, mine)
    assert best["speedup_vs_dense_fp32_torch"] == pytest.approx(ratio) == pytest.approx(10.0 / 0.3)
    assert best["speedup_ci95"] == pytest.approx(list(ci))
    lo, hi = best["speedup_ci95"]
    # resampling 3 processes per side: the extremes are the slowest reference over the fastest candidate etc.
    assert 10.0 * 0.98 / (0.3 * 1.02) - 1e-9 <= lo < ratio < hi <= 10.0 * 1.02 / (0.3 * 0.98) + 1e-9
    one = [dict(r, rounds=r["rounds"][:1]) if r["variant"] == "b" else r for r in ROWS]
    single = compute_frontier(run_of(one), 0.01)["openvino"]["fastest_within_tolerance"]
    assert single["speedup_ci95"] is None  # one process: no interval, never a made-up one
    noisy = [dict(r, rounds=[*r["rounds"][:2], {"round": 2, "p50_ms": 99.0, "n": 100, "noisy": "steal 40%"}])
             if r["variant"] == "b" else r for r in ROWS]
    left_out = compute_frontier(run_of(noisy), 0.01)["openvino"]["fastest_within_tolerance"]
    assert left_out["speedup_ci95"][0] > 10.0 / 0.3 * 0.9  # the noisy process is left out, as in the headline
    invalid_ref = [dict(r, valid=False) if r["backend"] == "torch-eager" else r for r in ROWS]
    no_ref = compute_frontier(run_of(invalid_ref), 0.01)["openvino"]["fastest_within_tolerance"]
    assert no_ref["variant"] == "b" and no_ref["speedup_vs_dense_fp32_torch"] is None  # no speedup from bad timing


def test_tables_and_figures_name_the_choice() -> None:
    run = run_of(ROWS)
    run["frontier"] = compute_frontier(run, 0.01)
    t = frontier_table(run)
    ov = next(r for r in t.rows if r[0] == "openvino")
    assert ov[2] == "b" and ov[5] == "-1.00 pts" and ov[6].startswith("33.3x [") and ov[7] == "a, b, c"
    assert "[" in ov[4]  # the accuracy carries its bootstrap interval
    pts = points_table(run)
    assert [r[0] for r in pts.rows] == ["dense-fp32", "a", "b", "c", "z"]
    z = pts.rows[-1]
    assert z[-2:] == ["not run", "error"]  # columns: torch-eager, openvino
    assert pts.rows[0][-2:] == ["10.0 (1.0x)", "4.00 (2.5x)"]
    figs = render_sweep(run)
    assert set(figs) == {"frontier.png", "sweep_storage_vs_accuracy.png", "speedup_vs_sparsity.png"}
    assert all(png is not None and png.startswith(b"\x89PNG") for _c, png in figs.values())
    assert render_sweep({"results": ROWS}) == {}  # not a sweep: no sweep figures
