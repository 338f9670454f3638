"""Schedules of a compression recipe: how far each pruning step goes, how the learning rate falls while the
pruned model recovers, how many epochs a point gets, and how a time budget cuts them.

* Gradual pruning (Zhu & Gupta 2017): step t of n reaches s_t = s_f * (1 - (1 - t/n)^3): big steps while the
  network still has slack, small ones near the target; fine-tuning runs between steps.
* Recovery: one cosine from the fine-tuning lr down to lr * floor over ALL the fine-tuning epochs of a point,
  across its pruning steps (each step's fit continues the same curve). Torch-Pruning's VGG logs show most of the
  accuracy returning when the rate drops, not at a constant rate.
* Epochs: a point with MAC reduction R fine-tunes finetune_epochs * max(1, log2(R) / 2) epochs: x1 up to 4x fewer
  MACs (the paper's point, l1 at 0.5 per layer, is ~4x), x2 at 16x, x2.5 at 32x.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from compression.importance import agp_sparsity


def cubic_sparsities(final: float, steps: int) -> list[float]:
    """[s_0 = 0, s_1, ..., s_n = final]: Zhu & Gupta's cubic schedule at the n pruning steps. The signature
    and the leading 0 are Torch-Pruning's `iterative_pruning_ratio_scheduler`'s."""
    n = max(1, int(steps))
    return [agp_sparsity(t, n, final) for t in range(n + 1)]


def macs_targets(reduction: float, steps: int) -> list[float]:
    """Fraction of the dense MACs left after each of `steps` gradual steps towards `reduction` (dense / pruned):
    the cubic schedule applied to the MAC sparsity 1 - 1/reduction; the last entry is 1/reduction."""
    return [1.0 - s for s in cubic_sparsities(1.0 - 1.0 / reduction, steps)[1:]]


def expected_reduction(sparsity: float, macs_reduction: float) -> float:
    """The MAC reduction a point aims at: its target, or for a sparsity point 1/(1-s)^2 (uniform per-layer
    pruning removes s of the outputs and s of the inputs of every inner layer)."""
    if macs_reduction > 0:
        return macs_reduction
    return 1.0 / max(1e-6, (1.0 - sparsity)) ** 2


def epoch_scale(reduction: float) -> float:
    """Fine-tuning epochs multiplier of a point with MAC reduction `reduction`: max(1, log2(R) / 2)."""
    return max(1.0, math.log2(max(1.0, reduction)) / 2.0)


def finetune_epochs(base: int, reduction: float, scale: bool) -> int:
    """The fine-tuning epochs of a point: `base`, scaled by `epoch_scale` when `scale` (0 stays 0)."""
    if base <= 0 or not scale:
        return max(0, base)
    return max(1, round(base * epoch_scale(reduction)))


def split_epochs(total: int, steps: int, last_share: float = 0.0) -> list[int]:
    """Fine-tuning epochs after each of `steps` pruning steps, summing to `total` (later steps get more).

    `last_share` > 0 gives the last step at least ceil(last_share * total) of them (the recovery at the final
    sparsity: with an even split, 3 epochs in 3 steps leave 1 epoch at the end of the cosine, and the sparsest
    full-width points ended 1.2-3.7 points below dense); the earlier steps split the rest the same way."""
    if steps <= 1:
        return [max(0, total)]
    base, extra = divmod(total, steps)
    even = [base + (1 if i >= steps - extra else 0) for i in range(steps)]
    last = max(even[-1], min(total, math.ceil(last_share * total - 1e-9)))
    if last == even[-1]:
        return even
    return [*split_epochs(total - last, steps - 1), last]


def cosine_factor(step: int, total: int, floor: float) -> float:
    """lr multiplier at `step` of `total`: floor + (1 - floor) * (1 + cos(pi * step / total)) / 2."""
    if total <= 0:
        return 1.0
    t = min(max(step / total, 0.0), 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


SchedulerFactory = Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler]


class CosineAcrossSteps:
    """One cosine over `total_epochs` epochs, shared by consecutive fit calls (one per pruning step).

    `segment()` returns the `make_scheduler` of the next fit call: its steps continue where the previous call's
    ended. Epoch-based: a call of e epochs with k optimizer steps per epoch covers e epochs of the curve."""

    def __init__(self, total_epochs: int, floor: float) -> None:
        self.total_epochs = max(1, total_epochs)
        self.floor = floor
        self.done_epochs = 0

    def segment(self, epochs: int) -> SchedulerFactory:
        start = self.done_epochs
        self.done_epochs += epochs

        def make(opt: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
            per_epoch = total_steps / max(1, epochs)

            def factor(step: int) -> float:
                return cosine_factor(round(start * per_epoch) + step,
                                     round(self.total_epochs * per_epoch), self.floor)

            return torch.optim.lr_scheduler.LambdaLR(opt, factor)

        return make


# ------------------------------------------------------------------------------------------------ budget
@dataclass(frozen=True)
class PointCost:
    """What building one point costs: the fine-tuning of its pruned model (fp32 and int8 siblings share it: the
    first pays), its QAT (int8), or nothing when it is already built."""

    name: str
    reduction: float  # dense MACs / final MACs
    finetunes: bool = True
    qat: bool = False
    cached: bool = False


@dataclass(frozen=True)
class CostModel:
    """Seconds of training per image of the dense model (forward + backward + step), measured once, at the batch
    size training uses (`fer.train.probe_images_per_s`: a probe at batch 8 once read a half-width model 2.4x slower
    per image than it trains at batch 64, and the planner cut 8 fine-tuning epochs to 3 in a budget the builds
    then used less than half of).

    A fine-tuning epoch of a model with MAC fraction f costs about n * f * train_s_per_image; the student's MACs
    shrink over the gradual steps, so a mean fraction is used; QAT's fake-quant doubles the step cost; a teacher
    epoch (distillation, not cached yet) is one dense forward, a third of a training step. Small models cost more
    than their MACs say (per-step overhead): the ETA corrects itself from the points already built."""

    train_s_per_image: float  # dense model: one training step's seconds / batch size
    images: int  # training images per epoch
    qat_overhead: float = 2.0
    fixed_s: float = 20.0  # per point: pruning, evaluation, export, verification

    def point_seconds(self, p: PointCost, base_epochs: int, qat_epochs: int, scale: bool) -> float:
        if p.cached:
            return 0.0
        final = 1.0 / max(1.0, p.reduction)
        epoch = self.images * self.train_s_per_image
        s = self.fixed_s
        if p.finetunes:
            mean_fraction = (1.0 + 3.0 * final) / 4.0  # the cubic schedule removes most MACs in the first steps
            s += epoch * finetune_epochs(base_epochs, p.reduction, scale) * mean_fraction
        if p.qat:
            s += epoch * qat_epochs * final * self.qat_overhead
        return s

    def teacher_seconds(self, epochs: int) -> float:
        return epochs * self.images * self.train_s_per_image / 3.0


@dataclass(frozen=True)
class Plan:
    base_epochs: int  # compress.finetune_epochs to build with (before epoch scaling)
    qat_epochs: int
    seconds: float  # estimated
    fits: bool  # within the budget (False: even the smallest plan is over it)


def plan_epochs(points: list[PointCost], model: CostModel, base_epochs: int, qat_epochs: int, budget_s: float,
                scale: bool, distill: bool) -> Plan:
    """The most epochs (finetune first down to 1, then QAT down to 1) whose estimated time fits `budget_s`;
    budget_s <= 0 means no budget. Epochs already 0 stay 0."""

    def cost(b: int, q: int) -> float:
        todo = [p for p in points if not p.cached]
        s = sum(model.point_seconds(p, b, q, scale) for p in todo)
        if distill and todo:
            s += model.teacher_seconds(max([finetune_epochs(b, p.reduction, scale) for p in todo if p.finetunes]
                                           + [q if any(p.qat for p in todo) else 0]))
        return s

    b, q = base_epochs, qat_epochs
    if budget_s <= 0:
        return Plan(b, q, cost(b, q), True)
    while cost(b, q) > budget_s and (b > 1 or q > 1):
        if b > 1:
            b -= 1
        else:
            q -= 1
    return Plan(b, q, cost(b, q), cost(b, q) <= budget_s)


class PlanEta:
    """Remaining time from the plan's per-point estimates, corrected by how far off the finished points were."""

    def __init__(self, estimates: dict[str, float]) -> None:
        self.estimates = dict(estimates)
        self.spent_est = 0.0
        self.spent_real = 0.0

    def done(self, name: str, seconds: float) -> None:
        est = self.estimates.pop(name, 0.0)
        if est > 0:
            self.spent_est += est
            self.spent_real += seconds

    def remaining_s(self) -> float:
        ratio = self.spent_real / self.spent_est if self.spent_est > 0 else 1.0
        return ratio * sum(self.estimates.values())

    def text(self) -> str:
        left = len([v for v in self.estimates.values() if v > 0])
        if left == 0:
            return "done"
        s = self.remaining_s()
        return f"ETA {s / 60:.1f} min ({left} to build)" if s >= 60 else f"ETA {s:.0f} s ({left} to build)"
