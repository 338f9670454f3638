"""The latency allocation on synthetic tables with known right answers: a per-layer floor that only layer removal
gets under, widths where widths suffice, and the exact optimum of small random tables found by enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from compression.allocate import allocate, removable_convs, score_values
from compression.latency_table import ConvSlot, LatencyTable, LayerCosts, candidate_widths


def _table(dense: list[int], cost: object, rest: float = 0.0, in0: int = 1) -> LatencyTable:
    layers, c_in = [], in0
    for i, d in enumerate(dense):
        ins = [c_in] if i == 0 else candidate_widths(c_in, 4)
        outs = candidate_widths(d, 4)
        ms = [[cost(i, a, b) for b in outs] for a in ins]  # type: ignore[operator]
        layers.append(LayerCosts(ConvSlot(i, f"features.{3 * i}", 8, c_in, d), ins, outs, ms))
        c_in = d
    return LatencyTable({"backend": "synthetic"}, layers, rest)


def test_a_per_layer_floor_leaves_layer_removal_as_the_only_way_to_the_target() -> None:
    # every conv costs 1 ms at any width (the AMX floor): 3 convs cost 3 ms; a 2.5 ms target needs one gone
    table = _table([8, 8, 8], lambda i, a, b: 1.0, rest=0.2)
    scores = [np.ones(8), np.full(8, 2.0), np.full(8, 0.5)]  # conv 2 holds the least importance
    plan = allocate(table, score_values(scores), budget_ms=2.5, group=4)
    assert plan is not None
    assert plan.removed == [2] and plan.predicted_ms == pytest.approx(2.2) and plan.predicted_ms <= 2.5
    assert plan.widths == [8, 8]  # narrowing buys nothing under a floor, so every kept conv stays whole
    roomy = allocate(table, score_values(scores), budget_ms=3.5, group=4)
    assert roomy is not None and roomy.removed == [] and roomy.widths == [8, 8, 8]
    tight = allocate(table, score_values(scores), budget_ms=1.5, group=4)
    assert tight is not None and tight.removed == [1, 2]
    assert allocate(table, score_values(scores), budget_ms=1.1, group=4) is None  # conv 0 reads the image


def test_where_latency_scales_with_width_narrowing_is_chosen_over_removal() -> None:
    table = _table([16, 16, 16], lambda i, a, b: 0.01 * a * b / 16, rest=0.0, in0=16)
    scores = [np.linspace(2.0, 0.1, 16)] * 3
    # dense: 3 x 0.16 ms; removing one conv saves 0.16 but loses all its importance, narrowing all three is cheaper
    plan = allocate(table, score_values(scores), budget_ms=0.3, group=4)
    assert plan is not None and plan.removed == [] and plan.predicted_ms <= 0.3
    assert sum(plan.widths) < 48


def _brute(table: LatencyTable, scores: list[np.ndarray], budget: float) -> float:
    best = -1.0
    cands = [candidate_widths(lc.slot.dense_out, 4) for lc in table.layers]
    options = [[(w, False) for w in c] + ([(0, True)] if i else []) for i, c in enumerate(cands)]
    for combo in itertools.product(*options):
        c_in, cost, imp, ok = table.layers[0].slot.dense_in, table.rest_ms, 0.0, True
        for lc, s, (w, rm) in zip(table.layers, scores, combo, strict=True):
            if rm:
                if c_in > lc.slot.dense_out:
                    ok = False
                continue
            cost += lc.cost(c_in, w)
            imp += float(np.sum(s[:w]))
            c_in = w
        if ok and cost <= budget:
            best = max(best, imp)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_the_plan_is_the_enumerated_optimum_of_small_random_tables(seed: int) -> None:
    rng = np.random.default_rng(seed)
    floors = rng.uniform(0.1, 1.0, 4)
    slopes = rng.uniform(0.0, 0.01, 4)
    table = _table([12, 12, 16, 16], lambda i, a, b: floors[i] + slopes[i] * a * b, rest=0.3, in0=3)
    scores = [np.sort(rng.exponential(1.0, d))[::-1] for d in (12, 12, 16, 16)]
    budget = float(rng.uniform(1.0, 3.0))
    plan = allocate(table, score_values(scores), budget_ms=budget, group=4, bins=4000)
    want = _brute(table, scores, budget)
    if want < 0:
        assert plan is None
        return
    assert plan is not None and plan.predicted_ms <= budget + 1e-9
    # costs are rounded up to budget bins: the DP may only lose plans within 4 bins of the budget
    assert plan.importance >= _brute(table, scores, budget * (1 - 4 / 4000)) - 1e-9
    assert plan.importance <= want + 1e-9


def test_every_stage_keeps_its_first_conv() -> None:
    from fer.model import default_arch

    assert removable_convs(default_arch()) == [1, 3, 5, 6, 8, 9, 11, 12]
