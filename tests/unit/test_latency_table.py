"""Latency tables: interpolation between measured widths, predictions for planned (shallower) architectures, the
JSON cache keyed by everything the numbers depend on, and the median absolute % error."""

from __future__ import annotations

from pathlib import Path

import pytest

from compression.latency_table import (
    ConvSlot,
    LatencyTable,
    LayerCosts,
    conv_slots,
    grid_widths,
    load_table,
    median_abs_pct_error,
    save_table,
    table_path,
)
from fer.model import default_arch


def _table() -> LatencyTable:
    arch = default_arch(width=0.125)
    layers = []
    for s in conv_slots(arch):
        ins = [s.dense_in] if s.index == 0 else [8, s.dense_in] if s.dense_in > 8 else [8]
        outs = [8, s.dense_out] if s.dense_out > 8 else [8]
        layers.append(LayerCosts(s, ins, outs, [[0.001 * (1 + s.index) + 1e-5 * a * b for b in outs] for a in ins]))
    return LatencyTable({"backend": "openvino", "precision": "int8", "threads": 1}, layers, rest_ms=0.05)


def test_costs_interpolate_between_grid_points_and_hold_at_the_edges() -> None:
    lc = LayerCosts(ConvSlot(1, "features.3", 48, 64, 64), [16, 64], [16, 64], [[1.0, 2.0], [3.0, 4.0]])
    assert lc.cost(16, 16) == 1.0 and lc.cost(64, 64) == 4.0
    assert lc.cost(40, 16) == pytest.approx(2.0) and lc.cost(40, 40) == pytest.approx(2.5)
    assert lc.cost(8, 8) == 1.0 and lc.cost(128, 128) == 4.0  # no extrapolation
    assert lc.floor_ms == 1.0


def test_grid_widths_keep_the_narrowest_and_the_dense_width() -> None:
    assert grid_widths(384, 8, 5) == [8, 104, 200, 288, 384]  # evenly spread over the 48 candidates
    assert grid_widths(20, 8, 5) == [8, 16, 20]


def test_a_removed_conv_costs_nothing_and_the_next_reads_its_input_width() -> None:
    t = _table()
    dense = default_arch(width=0.125)
    feats = list(dense["features"])
    conv_positions = [i for i, f in enumerate(feats) if f != "M"]
    cut = {**dense, "features": [f for i, f in enumerate(feats) if i != conv_positions[1]], "removed": [1]}
    costs = t.layer_costs(cut)
    assert costs[1] is None
    assert costs[2] == pytest.approx(t.layers[2].cost(8, 16))
    assert t.predict(dense) - t.predict(cut) == pytest.approx(t.layers[1].cost(8, 8))


def test_the_cache_round_trips_and_refuses_a_table_measured_under_another_key(tmp_path: Path) -> None:
    t = _table()
    path = table_path(tmp_path, t.key)
    save_table(path, t)
    back = load_table(path, t.key)
    assert back is not None and back.to_json() == t.to_json()
    assert load_table(path, {**t.key, "threads": 2}) is None
    assert table_path(tmp_path, {**t.key, "threads": 2}) != path
    path.write_text("{not json")
    assert load_table(path, t.key) is None


def test_median_absolute_percent_error() -> None:
    assert median_abs_pct_error([(1.1, 1.0), (0.5, 1.0), (2.0, 2.0)]) == pytest.approx(10.0)
    assert median_abs_pct_error([]) is None
