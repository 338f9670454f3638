"""Apply a latency plan (compression/allocate.py) to a trained dense model: prune every conv to its planned width
(its lowest-L1 filters go, through Torch-Pruning's dependency graph, so the next layer's inputs and the BN follow)
and remove the planned convs.

Removing conv l replaces it by the identity: it is first pruned to exactly its input width (the plan guarantees
the two are equal), so the next conv's weights keep their shape and now read conv l-1's channels in the order conv
l's kept filters had; then its Conv/BN/ReLU modules are dropped and the model rebuilt from an `arch` that lists the
remaining convs and records the removed ones (`removed`: dense conv indices), so model.pt, the ONNX files, the
manifest and the layer table all describe the new depth. Fine-tuning with distillation (the sweep's recipe)
recovers what the identity changed.
"""

from __future__ import annotations

import copy

import torch
import torch_pruning as tp
from torch import nn

from compression.allocate import Plan
from fer.model import VGG16FER, arch_of, build_model


def prune_widths(model: VGG16FER, widths: list[int]) -> None:
    """Keep the `widths[l]` highest-L1 filters of conv l (in place); every conv in order."""
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    if len(widths) != len(convs):
        raise ValueError(f"{len(widths)} widths for {len(convs)} convs")
    example = torch.zeros(1, int(model.arch["in_channels"]), 48, 48)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    for conv, w in zip(convs, widths, strict=True):
        c = int(conv.out_channels)
        if not 1 <= w <= c:
            raise ValueError(f"width {w} for a conv of {c} channels")
        if w < c:
            l1 = conv.weight.detach().abs().flatten(1).sum(1)  # (no torch.no_grad: the graph traces autograd)
            drop = torch.argsort(l1)[: c - w].tolist()
            graph.get_pruning_group(conv, tp.prune_conv_out_channels, drop).prune()


@torch.no_grad()
def remove_convs(model: VGG16FER, removed: list[int]) -> VGG16FER:
    """A new model without the convs at positions `removed` (among the model's current convs, which must be the
    dense 13: apply once), each of which must have as many outputs as inputs; weights copied for the rest."""
    arch = arch_of(model)
    if arch.get("removed"):
        raise ValueError("the model already has removed layers")
    mods = list(model.features)
    convs = [i for i, m in enumerate(mods) if isinstance(m, nn.Conv2d)]
    drop: set[int] = set()
    for r in removed:
        conv = mods[convs[r]]
        if not isinstance(conv, nn.Conv2d) or conv.in_channels != conv.out_channels:
            raise ValueError(f"conv {r} has {conv.in_channels} inputs and {conv.out_channels} outputs: only a conv "
                             "with as many outputs as inputs can become the identity")
        drop.update((convs[r], convs[r] + 1, convs[r] + 2))  # Conv2d, BatchNorm2d, ReLU
    feats: list[int | str] = []
    k = 0
    for f in arch["features"]:
        if f == "M":
            feats.append("M")
        else:
            if k not in removed:
                feats.append(f)
            k += 1
    new = build_model({**arch, "features": feats, "removed": sorted(removed)})
    kept = [m for i, m in enumerate(mods) if i not in drop]
    for src, dst in zip(kept, new.features, strict=True):
        if type(src) is not type(dst):
            raise RuntimeError(f"internal: {type(src).__name__} maps to {type(dst).__name__}")
        dst.load_state_dict(src.state_dict())
    new.classifier.load_state_dict(model.classifier.state_dict())
    return new.eval()


def apply_plan(dense: VGG16FER, plan: Plan) -> VGG16FER:
    """A copy of `dense` at the plan's widths with the plan's convs removed (`dense` is left untouched)."""
    model = copy.deepcopy(dense).eval()
    c_in, widths = int(model.arch["in_channels"]), []
    for c in plan.layers:
        widths.append(c_in if c.removed else c.width)  # a removed conv first keeps exactly its input width
        if not c.removed:
            c_in = c.width
    prune_widths(model, widths)
    return remove_convs(model, plan.removed) if plan.removed else model
