"""Per-backend sweep tables: MACs, val/test accuracy, p50 at batch 1 and 32, speedups with intervals; the frontier
figure marks the fastest variant within tolerance."""

from __future__ import annotations

from typing import Any

import pytest

from common.stats.intervals import ratio_ci
from reports.frontier import compute_frontier, frontier_tables
from reports.frontier_figures import frontier_figure
from reports.frontier_points import backend_points_table, best_within_tolerance, round_p50s, speedup


def _row(backend: str, variant: str, p50s: list[float], *, scenario: str = "latency", batch: int = 1,
         acc: float = 0.8, val: float | None = None) -> dict[str, Any]:
    """A latency/throughput row that agrees with its reference (choosable) and carries its validation accuracy."""
    p50 = sorted(p50s)[len(p50s) // 2]
    return {"backend": backend, "variant": variant, "scenario": scenario, "batch_size": batch, "status": "ok",
            "valid": True, "agrees": True, "val_accuracy": acc if val is None else val,
            "latency_ms": {"p50": p50}, "p50_ci_ms": [min(p50s), max(p50s)], "accuracy": acc,
            "precision": variant.rsplit("-", 1)[1], "gmac": 0.7 if variant.startswith("dense") else 0.044,
            "params": 100, "file_bytes": 1234,
            "rounds": [{"round": i, "p50_ms": v, "noisy": ""} for i, v in enumerate(p50s)]}


def _run() -> dict[str, Any]:
    rows = [_row("torch-eager", "dense-fp32", [10.0, 11.0, 10.5]),
            _row("openvino", "dense-fp32", [2.0, 2.1, 2.2]),
            _row("openvino", "l1-s0.50-int8", [0.8, 0.82, 0.84]),
            _row("openvino", "l1-m16-int8", [0.4, 0.41, 0.39], acc=0.795, val=0.81),
            _row("openvino", "l1-m16-int8", [5.0, 5.2, 5.1], scenario="throughput", batch=32)]
    run = {"results": rows,
           "sweep": {"points": [], "paper_point": "l1-s0.50-int8", "tolerance": 0.01, "baseline": "dense-fp32",
                     "artifacts": {"l1-m16-int8": {"val_accuracy": 0.81, "macs_reduction": 16.0}}}}
    run["frontier"] = compute_frontier(run, 0.01)
    return run


def test_speedups_carry_the_interval_over_both_cells_processes() -> None:
    run = _run()
    rows = {(r["backend"], r["variant"], r["scenario"]): r for r in run["results"]}
    ref, paper = rows[("torch-eager", "dense-fp32", "latency")], rows[("openvino", "l1-s0.50-int8", "latency")]
    m16 = rows[("openvino", "l1-m16-int8", "latency")]
    s = speedup(paper, m16)
    assert s is not None
    assert s == ratio_ci([0.8, 0.82, 0.84], [0.4, 0.41, 0.39])[:2]
    assert s[0] == pytest.approx(0.82 / 0.40) and s[1] is not None and s[1][0] <= s[0] <= s[1][1]
    t = backend_points_table(run, "openvino")
    assert t is not None
    cells = dict(zip(t.header, next(r for r in t.rows if r[0] == "l1-m16-int8"), strict=True))
    assert cells["MACs"] == "44.0 M (16.0x)" and cells["val accuracy"] == "81.00%"
    assert cells["speedup vs paper's point [CI]"].startswith(f"{0.82 / 0.40:.2f}x [")
    assert cells["speedup vs dense-fp32 torch-eager [CI]"].startswith(f"{10.5 / 0.40:.2f}x [")
    assert cells["p50 b32 ms [CI]"] == "5.10 [5.00, 5.20]"
    assert next(r for r in t.rows if r[0] == "l1-s0.50-int8")[-1] == "1 (the paper's point)"
    # an async-streams throughput cell (OpenVINO) has no per-call p50: its rate, never a bare "ok"
    b32 = rows[("openvino", "l1-m16-int8", "throughput")]
    b32.update(latency_ms=None, throughput_fps=6271.4)
    t = backend_points_table(run, "openvino")
    assert t is not None
    cells = dict(zip(t.header, next(r for r in t.rows if r[0] == "l1-m16-int8"), strict=True))
    assert cells["p50 b32 ms [CI]"] == "n/a (async: 6,271 img/s)"
    assert speedup(ref, {"status": "error"}) is None


def test_noisy_processes_are_left_out_as_the_runner_does() -> None:
    row = _row("openvino", "x-int8", [1.0, 9.0, 1.1])
    row["rounds"][1]["noisy"] = "steal 20%"
    assert round_p50s(row) == [1.0, 1.1]
    for r in row["rounds"]:
        r["noisy"] = "busy"
    assert round_p50s(row) == [1.0, 9.0, 1.1]  # all noisy: all used (the row is INVALID)


def test_sweep_report_has_one_points_table_per_backend_and_the_figure_renders() -> None:
    run = _run()
    titles = [t.title for t in frontier_tables(run)]
    assert "Sweep points on openvino" in titles and "Sweep points on torch-eager" in titles
    assert best_within_tolerance(run, "openvino") == "l1-m16-int8"
    png = frontier_figure(run)
    assert png is not None and png.startswith(b"\x89PNG")
