"""Schedules of the recipe: cubic pruning steps, the cosine that spans pruning steps, epoch scaling, budget plan."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from common.config import load_config
from compression.prune import structured_prune
from compression.schedule import (
    CosineAcrossSteps,
    CostModel,
    PlanEta,
    PointCost,
    cosine_factor,
    cubic_sparsities,
    epoch_scale,
    expected_reduction,
    finetune_epochs,
    macs_targets,
    plan_epochs,
    split_epochs,
)
from fer.data import FerData, Split
from fer.model import arch_of, build_model, default_arch


def test_cubic_schedule_per_step_sparsities() -> None:
    # Zhu & Gupta: s_t = s_f (1 - (1 - t/n)^3); for s_f = 0.8, n = 4 by hand:
    expected = [0.0, 0.8 * (1 - 0.75**3), 0.8 * (1 - 0.5**3), 0.8 * (1 - 0.25**3), 0.8]
    assert cubic_sparsities(0.8, 4) == pytest.approx(expected)
    assert expected[1:] == pytest.approx([0.4625, 0.7, 0.7875, 0.8])
    assert cubic_sparsities(0.5, 1) == [0.0, 0.5]
    # in MAC space: 16x over 2 steps -> MAC sparsity 15/16 (1 - 0.125) at step 1, then all of it
    assert macs_targets(16, 2) == pytest.approx([1 - 15 / 16 * 0.875, 1 / 16])


def test_pruning_steps_follow_the_cubic_schedule() -> None:
    torch.manual_seed(0)
    model = build_model(default_arch(width=0.25)).eval()  # 16 .. 128 channels
    cfg = load_config(None, ["compress.finetune_epochs=0"])
    lines: list[str] = []
    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (8, 48, 48), dtype=np.uint8), np.arange(8) % 7)
    structured_prune(model, "l1", 0.8, FerData("t", split, split, split), cfg.train, steps=4, progress=lines.append)
    steps = [eval(line.split("-> ")[1]) for line in lines if "pruning step" in line]  # channel lists
    dense = [c for c in arch_of(model)["features"] if c != "M"]
    for step, s in zip(steps, [0.4625, 0.7, 0.7875, 0.8], strict=True):
        assert step == [c - (c - int(c * (1 - s))) for c in dense]


def test_epochs_split_over_the_steps_and_the_last_step_gets_its_share() -> None:
    assert split_epochs(3, 3) == [1, 1, 1]  # the even split (later steps get the remainder)
    assert split_epochs(5, 3) == [1, 2, 2]
    assert split_epochs(3, 3, 0.5) == [0, 1, 2]  # at least ceil(0.5 * 3) = 2 after the last step
    assert split_epochs(5, 3, 0.5) == [1, 1, 3]
    assert split_epochs(6, 3, 0.5) == [1, 2, 3]
    assert split_epochs(5, 3, 1.0) == [0, 0, 5]
    assert split_epochs(6, 3, 0.2) == [2, 2, 2]  # the even split already gives the last step its share
    assert split_epochs(4, 1, 0.5) == [4] and split_epochs(0, 3, 0.5) == [0, 0, 0]


@given(total=st.integers(0, 60), steps=st.integers(1, 10), share=st.floats(0.0, 1.0))
def test_the_split_keeps_every_epoch_and_never_shorts_the_last_step(total: int, steps: int, share: float) -> None:
    split = split_epochs(total, steps, share)
    assert len(split) == steps and sum(split) == total and min(split) >= 0
    assert split[-1] >= min(total, math.ceil(share * total - 1e-9))
    assert split[-1] >= split_epochs(total, steps)[-1]
    assert split[:-1] == sorted(split[:-1])  # later steps get more


def test_pruning_gives_the_last_step_its_share_of_the_epochs() -> None:
    torch.manual_seed(0)
    model = build_model(default_arch(width=0.25)).eval()
    cfg = load_config(None, ["train.epochs=1", "train.augment=false"])
    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (16, 48, 48), dtype=np.uint8), np.arange(16) % 7)
    for share, expected in ((0.0, [1, 1, 1]), (0.5, [0, 1, 2])):
        lines: list[str] = []
        structured_prune(model, "l1", 0.5, FerData("t", split, split, split), cfg.train, steps=3, finetune_epochs=3,
                         last_step_share=share, progress=lines.append)
        per_step = [0]
        for line in lines[lines.index(next(x for x in lines if "pruning step 1/3" in x)) + 1:]:
            if "pruning step" in line:
                per_step.append(0)
            elif "fine-tune epoch" in line:
                per_step[-1] += 1
        assert per_step == expected, lines


def test_cosine_goes_from_one_to_the_floor() -> None:
    assert cosine_factor(0, 100, 0.01) == pytest.approx(1.0)
    assert cosine_factor(50, 100, 0.01) == pytest.approx(0.505)
    assert cosine_factor(100, 100, 0.01) == pytest.approx(0.01)


def test_one_cosine_spans_the_fit_calls_of_the_pruning_steps() -> None:
    plan = CosineAcrossSteps(total_epochs=4, floor=0.0)
    rates = []
    for epochs in (1, 1, 2):  # three pruning steps' fine-tuning, 10 optimizer steps per epoch
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = plan.segment(epochs)(opt, 10 * epochs)
        for _ in range(10 * epochs):
            rates.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    assert rates == pytest.approx([cosine_factor(i, 40, 0.0) for i in range(40)])


def test_sparser_points_get_more_epochs_by_the_documented_rule() -> None:
    assert epoch_scale(4) == 1.0 and epoch_scale(16) == 2.0 and epoch_scale(32) == 2.5
    assert expected_reduction(0.5, 0) == pytest.approx(4.0)  # the paper's point: ~4x fewer MACs
    assert finetune_epochs(3, 4, True) == 3
    assert finetune_epochs(3, 16, True) == 6
    assert finetune_epochs(3, 32, True) == 8  # round(7.5)
    assert finetune_epochs(3, 32, False) == 3
    assert finetune_epochs(0, 32, True) == 0


def test_budget_plan_fits_and_cuts_finetuning_first() -> None:
    model = CostModel(train_s_per_image=0.01, images=1000, fixed_s=0.0)  # a dense epoch: 10 s
    pts = [PointCost("a-fp32", 16.0), PointCost("a-int8", 16.0, finetunes=False, qat=True),
           PointCost("b-int8", 4.0, qat=True), PointCost("c-int8", 8.0, qat=True, cached=True)]
    free = plan_epochs(pts, model, 6, 2, 0.0, True, True)
    assert (free.base_epochs, free.qat_epochs, free.fits) == (6, 2, True)
    tight = plan_epochs(pts, model, 6, 2, free.seconds / 2, True, True)
    assert tight.fits and tight.seconds <= free.seconds / 2 and tight.base_epochs < 6 and tight.qat_epochs == 2
    hopeless = plan_epochs(pts, model, 6, 2, 1.0, True, True)
    assert (hopeless.base_epochs, hopeless.qat_epochs, hopeless.fits) == (1, 1, False)
    # the estimate: a cached point costs nothing; the int8 sibling pays QAT only
    assert model.point_seconds(pts[3], 6, 2, True) == 0.0
    assert model.point_seconds(pts[1], 6, 2, True) == pytest.approx(2 * 10 * (1 / 16) * 2.0)


def test_eta_corrects_itself_by_the_finished_points() -> None:
    eta = PlanEta({"a": 100.0, "b": 100.0, "c": 200.0})
    assert eta.text() == "ETA 6.7 min (3 to build)"
    eta.done("a", 200.0)  # took twice the estimate
    assert eta.remaining_s() == pytest.approx(600.0)
    eta.done("b", 0.0)
    eta.done("c", 400.0)
    assert eta.text() == "done"
