"""Choose per-layer widths and whole conv layers to remove so that a model fits a latency budget on one machine,
keeping as much of the model's value (by default: its measured validation loss) as possible.

Which algorithm and why: HALP's objective (Shen et al. 2022: maximise the summed importance of the kept channel
groups subject to the summed per-layer latency from a measured table), solved EXACTLY by dynamic programming
instead of HALP's greedy knapsack or NetAdapt's iterations. A layer's latency depends on its own width AND its
input width (the previous kept layer's), which HALP approximates by holding the neighbours fixed and NetAdapt by
re-measuring after each small step (tens of fine-tunings: beyond a 45-minute sweep on 2 cores). VGG16-FER is a
chain of 13 convs with a few dozen candidate widths each, so a DP over (layer, input width, latency spent, in
budget bins) visits every choice: ~13 x 30 x 30 vector operations, well under a second. The budget is split into
`bins` steps and each layer's cost rounded UP to a step, so a chosen plan never exceeds the budget by the table's
own measure.

Layer removal: conv l may be replaced by the identity when its kept width equals its input width, so that every
later layer keeps its shapes; it then costs nothing and is worth its own `remove` value (its channels go). The DP
offers it beside every width, so a layer goes exactly when the latency it saves (at least its per-layer floor) buys
more value elsewhere than the layer itself holds; on CPUs where every conv costs a floor whatever its width, that is
the only way down to a tight budget. The first conv of each stage (between max-pools) always stays
(`removable_convs`): every stage keeps a conv for its pool to follow (the folded and int8 encodings attach the pool
to a conv), and the very first conv reads the image.

What the plan keeps (its objective, `LayerValue`: the worth of keeping w filters of a layer, and of removing it),
from one of two sources:
- `sensitivity_values` (the default of `bench sweep`): minus each layer's measured validation-loss increase
  (compression/sensitivity.py), so the DP finds the plan of least summed damage within the budget;
- `score_values`: per channel, the L1 norm of its filter divided by the layer's mean (Torch-Pruning's mean
  normaliser, as the global MAC-target points use), a layer at width w keeping its w best channels. HALP's own
  objective; measured, it cuts the costly early layers to 8 channels and loses 20 accuracy points at make sweep's
  width, which is why the sweep no longer uses it. Kept: the synthetic tables' known optima are stated in it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from compression.latency_table import LatencyTable, candidate_widths
from compression.sensitivity import LayerSensitivity
from fer.model import VGG16FER, Arch


@dataclass(frozen=True)
class LayerChoice:
    """What the plan does with one dense conv slot."""

    index: int
    name: str
    dense: int
    width: int  # kept output channels (0: removed)
    removed: bool
    cost_ms: float


@dataclass
class Plan:
    layers: list[LayerChoice]
    predicted_ms: float
    budget_ms: float
    importance: float  # the objective's value: summed channel scores, or minus the summed loss increase
    removable: list[int] = field(default_factory=list)

    @property
    def widths(self) -> list[int]:
        return [c.width for c in self.layers if not c.removed]

    @property
    def removed(self) -> list[int]:
        return [c.index for c in self.layers if c.removed]

    def arch(self, dense: Arch, hidden: int | None = None) -> Arch:
        """The planned architecture: `dense` with the kept convs at their widths, the removed ones dropped
        (recorded in `removed` by dense conv index), the hidden layer at `hidden` (default: dense)."""
        it = iter(self.layers)
        feats: list[int | str] = []
        for f in dense["features"]:
            if f == "M":
                feats.append("M")
                continue
            c = next(it)
            if not c.removed:
                feats.append(c.width)
        out = {**dense, "features": feats, "hidden": int(hidden if hidden is not None else dense["hidden"])}
        if self.removed:
            out["removed"] = self.removed
        return out

    def fields(self) -> dict[str, object]:
        return {"widths": {c.name: c.width for c in self.layers}, "removed_layers": [c.name for c in self.layers
                                                                                     if c.removed],
                "predicted_ms": round(self.predicted_ms, 6), "budget_ms": round(self.budget_ms, 6),
                "importance": round(self.importance, 4),
                "layer_ms": {c.name: round(c.cost_ms, 6) for c in self.layers}}


@dataclass(frozen=True)
class LayerValue:
    """The objective's worth of one conv: `keep[w]` for keeping w filters (w = 0..dense), `remove` for removing it
    (None: it cannot be removed)."""

    keep: np.ndarray
    remove: float | None = 0.0


def score_values(scores: list[np.ndarray]) -> list[LayerValue]:
    """Summed channel scores: keeping w filters is worth the w best scores (`scores[l]` sorted descending), removing
    a conv is worth nothing."""
    return [LayerValue(np.concatenate([[0.0], np.cumsum(s)])) for s in scores]


def sensitivity_values(sens: list[LayerSensitivity]) -> list[LayerValue]:
    """Minus the measured loss increase: the plan of greatest value is the one of least summed damage."""
    return [LayerValue(-s.curve(), None if s.removed is None else -max(0.0, s.removed)) for s in sens]


def channel_scores(model: VGG16FER) -> list[np.ndarray]:
    """Per conv (in order), its channels' L1 filter norms / the layer's mean, sorted from most to least important."""
    out = []
    for m in model.features:
        if isinstance(m, nn.Conv2d):
            s = m.weight.detach().abs().flatten(1).sum(1).double()
            s = s / max(float(s.mean()), 1e-12)
            out.append(torch.sort(s, descending=True).values.numpy())
    return out


def removable_convs(arch: Arch) -> list[int]:
    """Dense conv indices a plan may remove: every conv but the first of its stage."""
    out, k, first = [], 0, True
    for f in arch["features"]:
        if f == "M":
            first = True
            continue
        if not first:
            out.append(k)
        first, k = False, k + 1
    return out


def allocate(table: LatencyTable, values: list[LayerValue], budget_ms: float, group: int,
             bins: int = 1000, removable: list[int] | None = None) -> Plan | None:
    """The plan of greatest summed value whose predicted latency (table.predict) fits `budget_ms`; None when even
    the cheapest plan does not fit. `values[l]`: layer l's worth per kept width and removed (score_values,
    sensitivity_values); `removable`: the dense conv indices that may go (default every conv but the first)."""
    n = len(table.layers)
    if len(values) != n:
        raise ValueError(f"{len(values)} layer values for {n} conv layers")
    for lc, v in zip(table.layers, values, strict=True):
        if len(v.keep) != lc.slot.dense_out + 1:
            raise ValueError(f"{lc.slot.name}: {len(v.keep)} kept-width values for widths 0..{lc.slot.dense_out}")
    can_remove = set(range(1, n) if removable is None else removable)
    conv_budget = budget_ms - table.rest_ms
    if conv_budget <= 0:
        return None
    step = conv_budget / bins
    cands = [candidate_widths(lc.slot.dense_out, group) for lc in table.layers]
    in0 = table.layers[0].slot.dense_in
    states = sorted({in0, *(w for c in cands for w in c)})
    pos = {w: i for i, w in enumerate(states)}
    neg = -math.inf
    val = np.full((len(states), bins + 1), neg)
    val[pos[in0], 0] = 0.0
    # per layer, for each (state out, bins spent): the state in, the bins this layer used, whether it was removed
    backs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for layer_i, lc in enumerate(table.layers):
        new = np.full_like(val, neg)
        b_si = np.zeros(val.shape, dtype=np.int32)
        b_k = np.zeros(val.shape, dtype=np.int32)
        b_rm = np.zeros(val.shape, dtype=bool)
        for si, w_in in enumerate(states):
            row = val[si]
            if not np.isfinite(row).any():
                continue
            options = [(w, False) for w in cands[layer_i]]
            rm_value = values[layer_i].remove
            if layer_i in can_remove and rm_value is not None and w_in <= lc.slot.dense_out:
                options.append((w_in, True))
            for w_out, rm in options:
                gain = float(rm_value or 0.0) if rm else float(values[layer_i].keep[w_out])
                k = 0 if rm else math.ceil(lc.cost(w_in, w_out) / step - 1e-9)
                if k > bins:
                    continue
                so = pos[w_out]
                shifted = np.full(bins + 1, neg)
                shifted[k:] = row[: bins + 1 - k] + gain
                better = shifted > new[so]
                new[so][better] = shifted[better]
                b_si[so][better], b_k[so][better], b_rm[so][better] = si, k, rm
        val = new
        backs.append((b_si, b_k, b_rm))
    best = np.unravel_index(np.argmax(val), val.shape)
    if not np.isfinite(val[best]):
        return None
    so, b = int(best[0]), int(best[1])
    picks: list[tuple[int, bool]] = []
    for b_si, b_k, b_rm in reversed(backs):
        si, k, rm = int(b_si[so, b]), int(b_k[so, b]), bool(b_rm[so, b])
        picks.append((states[so], rm))
        so, b = si, b - k
    picks.reverse()
    layers, c_in = [], in0
    for lc, (w, rm) in zip(table.layers, picks, strict=True):
        cost = 0.0 if rm else lc.cost(c_in, w)
        layers.append(LayerChoice(lc.slot.index, lc.slot.name, lc.slot.dense_out, 0 if rm else w, rm, cost))
        if not rm:
            c_in = w
    imp = float(sum(float(values[i].remove or 0.0) if c.removed else float(values[i].keep[c.width])
                    for i, c in enumerate(layers)))
    predicted = sum(c.cost_ms for c in layers) + table.rest_ms
    return Plan(layers, predicted, budget_ms, imp, sorted(can_remove))

