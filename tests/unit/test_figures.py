"""The report's figures tell the truth at a glance: read back from the matplotlib artists, INVALID points are
hollow (any row of the cell), disagreeing points are a red x, the Pareto front joins only valid agreeing points,
number labels do not overlap, and the roofline puts each row under both of its roofs."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.markers import MarkerStyle

from harness.measure.roofline import attach_roofline
from harness.measure.traffic import Traffic
from reports.figures import DISAGREE_MARKER, FRONT_GID, accuracy_vs_latency, accuracy_vs_latency_figure, pareto_front
from reports.roofline_figure import roofline_figure, roofline_figure_obj


def _run(make_run: Any) -> dict[str, Any]:
    run = make_run("fig")
    for r in run["results"]:
        if (r["backend"], r["variant"], r["scenario"], r["batch_size"]) == ("openvino", "l1-int8", "throughput", 32):
            r["valid"] = False  # INVALID in one of its three rows only: the point is INVALID
        if (r["backend"], r["variant"]) == ("onnxruntime", "l1-int8"):
            r["agrees"] = False  # disagrees with the reference
        if (r["backend"], r["variant"]) == ("onnxruntime", "dense-int8"):
            r["accuracy"] = 0.9  # fast and accurate, but it will disagree: never on the front
            r["agrees"] = False
    return run


def _points(fig: Any) -> dict[int, Any]:
    ax = fig.axes[0]
    return {int(c.get_gid().split("-")[1]): c for c in ax.collections if str(c.get_gid()).startswith("point-")}


def _marker_path(marker: str) -> np.ndarray:
    m = MarkerStyle(marker)
    return m.get_path().transformed(m.get_transform()).vertices


def test_markers_say_invalid_and_disagreeing_and_the_front_skips_them(make_run: Any) -> None:
    from reports.figures import latency_points

    run = _run(make_run)
    pts = latency_points(run)
    fig = accuracy_vs_latency_figure(run)
    assert fig is not None
    drawn = _points(fig)
    assert sorted(drawn) == list(range(1, len(pts) + 1))
    by_name = {p["name"]: (i, p) for i, p in enumerate(pts, 1)}
    i_inv, p_inv = by_name["openvino/l1-int8"]
    assert p_inv["invalid"] and not p_inv["disagrees"]
    face = drawn[i_inv].get_facecolors()
    assert len(face) == 0 or face[0][3] == 0.0  # facecolors 'none': hollow
    for name in ("onnxruntime/l1-int8", "onnxruntime/dense-int8"):
        i, p = by_name[name]
        assert p["disagrees"]
        assert np.allclose(drawn[i].get_paths()[0].vertices, _marker_path(DISAGREE_MARKER))
        assert np.allclose(drawn[i].get_edgecolors()[0], to_rgba("tab:red")) or \
            np.allclose(drawn[i].get_facecolors()[0], to_rgba("tab:red"))
    for i, p in enumerate(pts, 1):
        if not p["invalid"] and not p["disagrees"]:
            assert drawn[i].get_facecolors()[0][3] == 1.0  # filled
            assert np.allclose(drawn[i].get_paths()[0].vertices, _marker_path("o"))
    front = next(line for line in fig.axes[0].lines if line.get_gid() == FRONT_GID)
    good = [p for p in pts if not p["invalid"] and not p["disagrees"]]
    expect = [good[k] for k in pareto_front([(p["x"], p["y"]) for p in good])]
    assert list(front.get_xdata()) == [p["x"] for p in expect]
    assert list(front.get_ydata()) == [p["y"] for p in expect]
    assert all(not p["invalid"] and not p["disagrees"] for p in expect)
    on_front = {(p["x"], p["y"]) for p in expect}
    assert (p_inv["x"], p_inv["y"]) not in on_front
    table = next(t for t in fig.texts if t.get_gid() == "point-table").get_text()
    assert f"{i_inv:>2}  {p_inv['name']} INVALID" in table and "DISAGREES" in table


def test_number_labels_do_not_overlap_each_other_nor_leave_the_axes(make_run: Any) -> None:
    fig = accuracy_vs_latency_figure(_run(make_run))
    assert fig is not None
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.texts if t.get_text().isdigit()]
    assert len(labels) == len(_points(fig))
    boxes = [t.get_window_extent(renderer) for t in labels]
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
    frame = ax.get_window_extent(renderer)
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)


def test_the_png_renders(make_run: Any) -> None:
    png = accuracy_vs_latency(_run(make_run))
    assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n"


def test_roofline_figure_one_point_per_row_under_both_roofs(make_run: Any) -> None:
    run = make_run("roof")
    peaks = {"fp32": 900.0, "int8": 1800.0, "bandwidth_gb_per_s": {"dram": 120.0, "cache": 600.0},
             "llc_bytes": 32 << 20, "threads": 2}
    t = Traffic(macs=80_000_000, weights=3_700_000, biases=2_000, activations=500_000, layers=15)
    for r in run["results"]:
        if r["status"] == "ok":
            r["gmac_per_s"] = r["gmac"] * r["throughput_fps"]
    attach_roofline(run["results"], peaks, {v: t for v in ("dense-fp32", "l1-fp32", "dense-int8", "l1-int8")})
    run["machine_peak_gmac_per_s"] = peaks
    fig = roofline_figure_obj(run)
    assert fig is not None
    ax = fig.axes[0]
    rows = [r for r in run["results"] if r["status"] == "ok"]
    points = [c for c in ax.collections if str(c.get_gid()).startswith("row-")]
    assert len(points) == len(rows)
    gids = {line.get_gid() for line in ax.lines}
    assert {"roof-fp32-dram", "roof-fp32-cache", "roof-int8-dram", "roof-int8-cache"} <= gids
    for line in ax.lines:  # each roof is min(compute peak, bandwidth x intensity)
        _, p, level = str(line.get_gid()).split("-")
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        assert np.allclose(y, np.minimum(peaks[p], peaks["bandwidth_gb_per_s"][level] * x))
    for r in rows:
        assert r["gmac_per_s"] <= r["attainable_gmac_per_s"]  # these sample rows sit under their roof
    assert roofline_figure(run)[:4] == b"\x89PNG"
    assert roofline_figure(make_run("no-roofline")) is None  # old results: no figure rather than a made-up one


def test_points_carry_the_intervals_the_tables_have(make_run: Any) -> None:
    """Each point's horizontal bar spans its p50 interval over processes (the tables' [low, high]) and its vertical
    bar its accuracy interval: two points inside each other's noise look it."""
    from common.records import as_row
    from common.stats.accuracy import accuracy_ci
    from reports.figures import latency_points

    run = make_run("fig")
    for r in run["results"]:
        if r["status"] == "ok" and r["scenario"] == "latency":
            p50 = r["latency_ms"]["p50"]
            r["p50_ci_ms"] = [0.9 * p50, 1.2 * p50]
    pts = latency_points(run)
    fig = accuracy_vs_latency_figure(run)
    assert fig is not None
    ax = fig.axes[0]
    checked = 0
    for i, p in enumerate(pts, 1):
        bars = [c for c in ax.collections if c.get_gid() == f"ci-point-{i}"]
        row = as_row(p["row"])
        if not bars or row.p50_ci_ms is None:
            continue
        segs = [np.asarray(s) for c in bars for s in c.get_segments()]
        horiz = [s for s in segs if np.isclose(s[0][1], s[1][1]) and not np.isclose(s[0][0], s[1][0])]
        vert = [s for s in segs if np.isclose(s[0][0], s[1][0]) and not np.isclose(s[0][1], s[1][1])]
        assert horiz and np.allclose(sorted([horiz[0][0][0], horiz[0][1][0]]), row.p50_ci_ms)
        ci = accuracy_ci({"confusion": row.confusion})
        if ci is not None:
            assert vert and np.allclose(sorted([vert[0][0][1], vert[0][1][1]]), [100 * ci.low, 100 * ci.high])
        checked += 1
    assert checked == len(pts) > 0
