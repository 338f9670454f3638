"""Layer sensitivity: a masked pass of the dense model IS the pruned (or conv-removed) model, so each measured loss
increase equals the real model's; the curve is non-increasing and 0 at the dense width; and a plan chosen on it
keeps a layer whose narrowing costs accuracy wide where summed filter norms cut it to the narrowest width."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from compression.allocate import allocate, score_values, sensitivity_values
from compression.depth import prune_widths, remove_convs
from compression.latency_table import ConvSlot, LatencyTable, LayerCosts, candidate_widths
from compression.sensitivity import LayerSensitivity, layer_sensitivity, measured_widths
from fer.model import build_model, default_arch


def _loss(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float(F.cross_entropy(model.eval()(torch.from_numpy(x)), torch.from_numpy(y)))


@pytest.fixture(scope="module")
def model_and_data() -> tuple[torch.nn.Module, np.ndarray, np.ndarray]:
    torch.manual_seed(0)
    model = build_model(default_arch(width=0.125)).eval()
    for m in model.modules():  # non-trivial BN statistics, so that a wrong mask would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (40, 1, 48, 48)).astype(np.float32)
    y = rng.integers(0, 7, 40).astype(np.int64)
    return model, x, y


def test_each_measured_loss_increase_is_the_really_pruned_models(model_and_data) -> None:  # type: ignore[no-untyped-def]
    model, x, y = model_and_data
    before = copy.deepcopy(model.state_dict())
    sens = layer_sensitivity(model, x, y, group=4, batch_size=16)  # 3 batches: the sums span batches
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # left unchanged
    base = _loss(model, x, y)
    dense = [s.dense for s in sens]
    assert len(sens) == 13 and dense[0] == 8
    for k in (0, 4, 11):
        for w, d in zip(sens[k].widths, sens[k].delta, strict=True):
            pruned = copy.deepcopy(model)
            prune_widths(pruned, [w if i == k else c for i, c in enumerate(dense)])
            assert d == pytest.approx(_loss(pruned, x, y) - base, abs=2e-5)
    for k in (1, 12):  # equal input and output widths: removable
        gone = remove_convs(copy.deepcopy(model), [k])
        assert sens[k].removed == pytest.approx(_loss(gone, x, y) - base, abs=2e-5)
    assert sens[2].removed is None  # 8 -> 16 channels: cannot become the identity


def _recalibrated_loss(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, cal: np.ndarray, first_bn: int,
                       batch: int) -> float:
    """The loss after re-estimating the model's BNs from the `first_bn`-th on (cumulative average over `cal`'s
    batches of `batch` images): what a pruned model's adaptive-BN evaluation is, written independently."""
    model = copy.deepcopy(model).eval()
    bns = [m for m in model.features if isinstance(m, torch.nn.BatchNorm2d)][first_bn:]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    with torch.no_grad():
        for i in range(0, len(cal), batch):
            model.features(torch.from_numpy(cal[i : i + batch]))
    for bn in bns:
        bn.eval()
    return _loss(model, x, y)


def test_with_adaptive_bn_each_value_is_the_pruned_model_with_its_later_bns_reestimated(  # type: ignore[no-untyped-def]
        model_and_data) -> None:
    model, x, y = model_and_data
    cal = np.random.default_rng(1).uniform(0, 1, (24, 1, 48, 48)).astype(np.float32)
    sens = layer_sensitivity(model, x, y, group=4, calibration=cal, batch_size=8)
    base = _recalibrated_loss(model, x, y, cal, 0, 8)
    dense = [s.dense for s in sens]
    for k in (0, 6):
        for w, d in zip(sens[k].widths, sens[k].delta, strict=True):
            pruned = copy.deepcopy(model)
            prune_widths(pruned, [w if i == k else c for i, c in enumerate(dense)])
            assert d == pytest.approx(_recalibrated_loss(pruned, x, y, cal, k + 1, 8) - base, abs=1e-4)
    gone = remove_convs(copy.deepcopy(model), [12])  # its BN is gone: the later ones start at index 12
    assert sens[12].removed == pytest.approx(_recalibrated_loss(gone, x, y, cal, 12, 8) - base, abs=1e-4)
    raw = layer_sensitivity(model, x, y, group=4)
    changed = [abs(a - b) for s, r in zip(sens, raw, strict=True) for a, b in zip(s.delta, r.delta, strict=True)]
    assert max(changed) > 10 * 1e-4  # the re-estimation changed the values beyond the tolerance above


def test_the_curve_never_rises_with_width_and_is_zero_when_dense() -> None:
    s = LayerSensitivity("features.0", 32, [8, 16, 24], [0.5, 0.7, -0.1], 1.0)  # noisy: 16 above 8, 24 below 0
    c = s.curve()
    assert len(c) == 33 and c[32] == 0.0 and c[24] == 0.0
    assert np.all(np.diff(c) <= 0) and c[8] == pytest.approx(0.7) and c[0] == pytest.approx(0.7)
    assert measured_widths(48, 8) == [8, 16, 24, 32] and measured_widths(8, 8) == []


def test_a_plan_on_sensitivity_keeps_the_layer_that_costs_accuracy() -> None:
    # two 16-wide convs; conv 0 costs 4x as much per channel (the high-resolution layer): 0.64 + 0.16 ms dense
    dense, group = 16, 4
    layers = []
    for i, per_channel in enumerate((0.04, 0.01)):
        ins = [1] if i == 0 else candidate_widths(dense, group)
        outs = candidate_widths(dense, group)
        layers.append(LayerCosts(ConvSlot(i, f"features.{3 * i}", 8, ins[-1] if i else 1, dense), ins, outs,
                                 [[per_channel * b for b in outs] for _ in ins]))
    table = LatencyTable({"backend": "synthetic"}, layers, 0.0)
    budget = 0.4  # half of dense
    by_norm = allocate(table, score_values([np.ones(dense), np.ones(dense)]), budget, group, removable=[])
    assert by_norm is not None and by_norm.widths == [4, 16]  # equal norms: the costly layer goes to the minimum
    fragile = LayerSensitivity("features.0", dense, [4, 8, 12], [3.0, 1.0, 0.2], None)
    robust = LayerSensitivity("features.3", dense, [4, 8, 12], [0.3, 0.1, 0.02], None)
    by_loss = allocate(table, sensitivity_values([fragile, robust]), budget, group, removable=[])
    # enumerated: (8, 8) loses 1.0 + 0.1 nats; (4, 16) loses 3.0; (12, any) does not fit
    assert by_loss is not None and by_loss.widths == [8, 8] and by_loss.predicted_ms <= budget + 1e-9
    assert by_loss.importance == pytest.approx(-1.1)
