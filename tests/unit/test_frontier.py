"""The frontier logic on synthetic rows: Pareto front, fastest within tolerance, dense fallback, speedup."""

from __future__ import annotations

from typing import Any

import pytest

from reports.frontier import compute_frontier, frontier_table, pareto, points_table
from reports.frontier_figures import render_sweep

N = 700  # test images: accuracies are counts / N, as in real rows


def row(backend: str, variant: str, p50: float, correct: int, *, status: str = "ok", scenario: str = "latency",
        valid: bool = True, precision: str = "int8") -> dict[str, Any]:
    confusion = [[0] * 7 for _ in range(7)]
    confusion[0][0], confusion[0][1] = correct, N - correct
    return {"backend": backend, "variant": variant, "scenario": scenario, "batch_size": 1, "status": status,
            "valid": valid, "latency_ms": {"p50": p50}, "accuracy": correct / N, "confusion": confusion,
            "precision": precision, "storage_mb": 1.0 + p50}


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
    assert best["delta_accuracy"] == pytest.approx(-0.01)
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


def test_invalid_fastest_is_flagged_and_backends_without_rows_are_absent() -> None:
    rows = [*ROWS[:3], row("openvino", "b", 0.3, 623, valid=False), row("onnxruntime", "a", 0.2, 600,
                                                                        status="unavailable")]
    f = compute_frontier(run_of(rows), 0.01)
    assert f["openvino"]["fastest_within_tolerance"]["valid"] is False
    assert "onnxruntime" not in f and set(f) == {"torch-eager", "openvino"}


def test_tables_and_figures_name_the_choice() -> None:
    run = run_of(ROWS)
    run["frontier"] = compute_frontier(run, 0.01)
    t = frontier_table(run)
    ov = next(r for r in t.rows if r[0] == "openvino")
    assert ov[2] == "b" and ov[5] == "-1.00 pts" and ov[6] == "33.3x" and ov[7] == "a, b, c"
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
