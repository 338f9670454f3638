"""Pruning: structured (Torch-Pruning, channels physically removed) and unstructured (Eq. 5 masks).

Structured: `structured_prune(dense, method, ...)` copies the dense model, ranks filters with the
method's criterion (importance.py) and removes `sparsity` of the filters of every conv and of the hidden
linear (local scope: per layer, the paper's setting; global scope: one ranking across layers, no layer beyond
`max_layer_sparsity`), one-shot or in `steps` iterations on Zhu & Gupta's cubic schedule (schedule.py),
fine-tuning after each step; `round_to` keeps every layer's channel count a multiple of it. The final
classifier layer is never pruned. With `macs_reduction` R > 1 the target is a MAC count instead (as Torch-Pruning's
benchmarks/main.py `--speed-up`): each gradual step removes the fewest channels that bring the model's MACs (the
layer table's count, compression/storage.py) to that step's cubic-schedule target, the last one dense MACs / R
(`prune_to_macs`).
`tgpp` first trains with soft filter masks whose sparsity follows the AGP cubic schedule (soft filter
pruning: masked filters are zeroed after each mask update but may regrow), then removes the zeroed
filters physically.

Unstructured: `unstructured_prune` zeroes weights with |w| below a magnitude threshold (paper Eq. 5)
and keeps them at zero through fine-tuning; the tensors stay dense, so it gives no speedup on dense
kernels — report it by S = 1 - N_remaining / N_original (Eq. 3), not by latency.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn
from torch_pruning.pruner.algorithms.scheduler import linear_scheduler

from common.config import TrainConfig
from common.errors import UserError
from compression.importance import (
    NEEDS_ACTIVATIONS,
    NEEDS_GRADIENTS,
    ActivationCriterion,
    agp_sparsity,
    make_importance,
    prunable_layers,
)
from compression.points import MAC_METHODS
from compression.schedule import CosineAcrossSteps, cubic_sparsities, macs_targets, split_epochs
from compression.storage import gmac, layer_infos
from fer.data import FerData
from fer.model import VGG16FER, Arch, arch_of
from fer.train import ExtraLoss, SchedulerFactory, epoch_steps, fit

Progress = Callable[[str], None]
SCORE_IMAGES = {"cdcp": 512, "drcp": 256}  # images the activation criteria look at (HRank: "a few hundred")
TAYLOR_BATCHES = 8
GLOBAL_MAX_RATIO = 0.9  # global scope: never remove more than this fraction of one layer (compress.max_layer_sparsity)


def _sample(data: FerData, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `n` training images of a fixed shuffle, as float [n, C, 48, 48] and labels [n]."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data.train), generator=g)[:n].numpy()
    x = torch.from_numpy(data.train.as_float()[idx])
    y = torch.from_numpy(data.train.labels[idx].astype("int64"))
    return x, y


def _accumulate_taylor_gradients(model: nn.Module, data: FerData, batch_size: int) -> None:
    """loss.backward() on a few training batches so that TaylorImportance sees dL/dw."""
    model.train()
    model.zero_grad(set_to_none=True)
    x, y = _sample(data, TAYLOR_BATCHES * batch_size, seed=1)
    for i in range(0, len(x), batch_size):
        loss = F.cross_entropy(model(x[i : i + batch_size]), y[i : i + batch_size])
        loss.backward()
    model.eval()


class _Pruner(tp.pruner.BasePruner):
    """Torch-Pruning's BasePruner whose `round_to` never rounds a layer below `round_to` channels (the library
    rounds the kept count down, to 0 for a layer that keeps fewer than `round_to`)."""

    def _round_to(self, n_pruned: int, current_channels: int, round_to: int) -> int:
        keep = current_channels - n_pruned
        rounded = keep - keep % round_to
        if rounded < round_to:
            rounded = min(current_channels, max(keep, round_to))
        return max(current_channels - rounded, 0)


def make_pruner(model: VGG16FER, importance: tp.importance.Importance, sparsity: float, steps: int,
                scope: str, *, round_to: int = 1, max_layer_sparsity: float = GLOBAL_MAX_RATIO,
                cubic: bool = True) -> tp.pruner.BasePruner:
    """Torch-Pruning's pruner over every conv and the hidden linear; the output layer is ignored. `steps` > 1
    follows the cubic schedule (linear with cubic=False, Torch-Pruning's default: the MAC-target micro steps)."""
    example = torch.zeros(1, int(model.arch["in_channels"]), 48, 48)
    return _Pruner(
        model,
        example,
        importance=importance,
        pruning_ratio=sparsity,
        ignored_layers=[model.classifier[3]],
        iterative_steps=steps,
        iterative_pruning_ratio_scheduler=cubic_sparsities if cubic else linear_scheduler,
        global_pruning=scope == "global",
        max_pruning_ratio=max_layer_sparsity if scope == "global" else 1.0,
        round_to=round_to if round_to > 1 else None,
    )


def model_macs(model: VGG16FER) -> int:
    """Multiply-accumulates per image of the conv and linear layers (the layer table's count)."""
    return round(gmac(arch_of(model)) * 1e9)


def _segment(schedule: CosineAcrossSteps | None, epochs: int) -> SchedulerFactory | None:
    return schedule.segment(epochs) if schedule is not None else None


def structured_prune(
    dense: VGG16FER,
    method: str,
    sparsity: float,
    data: FerData,
    train_cfg: TrainConfig,
    *,
    scope: str = "local",
    steps: int = 1,
    finetune_epochs: int = 0,
    lr: float | None = None,
    progress: Progress | None = None,
    round_to: int = 1,
    max_layer_sparsity: float = GLOBAL_MAX_RATIO,
    macs_reduction: float = 0.0,
    extra_loss: ExtraLoss | None = None,
    schedule: CosineAcrossSteps | None = None,
    last_step_share: float = 0.0,
) -> VGG16FER:
    """A pruned, fine-tuned copy of `dense` (channels physically removed); `dense` is left untouched.

    `extra_loss` (distillation) is added to every fine-tuning batch; `schedule` (one cosine over all
    `finetune_epochs`) replaces train.schedule; `macs_reduction` > 1 prunes to a MAC target (see the module);
    `last_step_share` of the epochs go after the last step (`schedule.split_epochs`)."""
    say = progress or (lambda _m: None)
    model = copy.deepcopy(dense).eval()

    def finetune(epochs: int, what: str) -> None:
        if epochs:
            fit(model, data.train, data.val, train_cfg, epochs=epochs, lr=lr, extra_loss=extra_loss,
                make_scheduler=_segment(schedule, epochs),
                on_epoch=lambda log: say(f"{what} epoch {log.epoch} val {log.val_accuracy:.3f}"))

    if macs_reduction > 1:
        return _prune_to_macs(model, method, macs_reduction, scope, steps,
                              split_epochs(finetune_epochs, steps, last_step_share), round_to, max_layer_sparsity,
                              finetune, say)
    if sparsity <= 0:
        finetune(finetune_epochs, f"{method}: fine-tune")
        return model.eval()
    if method == "tgpp":
        return _tgpp(model, sparsity, data, train_cfg, scope=scope, epochs=finetune_epochs, lr=lr, say=say,
                     extra_loss=extra_loss, schedule=schedule)
    importance = make_importance(method, scope)
    pruner = make_pruner(model, importance, sparsity, steps, scope, round_to=round_to,
                         max_layer_sparsity=max_layer_sparsity)
    for step, epochs in enumerate(split_epochs(finetune_epochs, steps, last_step_share)):
        if method in NEEDS_GRADIENTS:
            _accumulate_taylor_gradients(model, data, min(train_cfg.batch_size, 64))
        if method in NEEDS_ACTIVATIONS:
            if not isinstance(importance, ActivationCriterion):
                raise RuntimeError('internal: expected isinstance(importance, ActivationCriterion)')
            x, y = _sample(data, min(SCORE_IMAGES[method], len(data.train)))
            importance.refresh(model, x, y)
        pruner.step()
        model.zero_grad(set_to_none=True)
        say(f"{method}: pruning step {step + 1}/{steps} -> {_channels(model)}")
        finetune(epochs, f"{method}: fine-tune")
    model.eval()
    return model


def _prune_to_macs(model: VGG16FER, method: str, reduction: float, scope: str, steps: int, epochs_per_step: list[int],
                   round_to: int, max_layer_sparsity: float, finetune: Callable[[int, str], None],
                   say: Progress) -> VGG16FER:
    """Gradual pruning to dense MACs / `reduction` on the cubic schedule, fine-tuning after each step."""
    if method not in MAC_METHODS:
        raise UserError(f"compress.macs_reduction: pruning to a MAC target supports method "
                        f"{', '.join(sorted(MAC_METHODS))}, not {method!r}; sweep it by sparsity instead")
    dense_arch = arch_of(model)
    dense_macs = model_macs(model)
    dense_channels = [li.out_channels for li in layer_infos(dense_arch)][:-1]  # every prunable layer
    for step, (fraction, epochs) in enumerate(zip(macs_targets(reduction, steps), epochs_per_step, strict=True)):
        keep = prune_to_macs(model, make_importance(method, scope), fraction * dense_macs, scope=scope,
                             dense_channels=dense_channels, round_to=round_to, max_layer_sparsity=max_layer_sparsity)
        if keep is None:
            raise UserError(f"compress.macs_reduction = {reduction:g}: cannot reach {1 / fraction:.1f}x fewer MACs "
                            f"with compress.max_layer_sparsity = {max_layer_sparsity:g} and compress.round_to = "
                            f"{round_to}; raise the cap or lower the target")
        model.zero_grad(set_to_none=True)
        say(f"{method}: pruning step {step + 1}/{steps} -> {dense_macs / model_macs(model):.1f}x fewer MACs "
            f"(target {1 / fraction:.1f}x), channels {_channels(model)}")
        finetune(epochs, f"{method}: fine-tune")
    return model.eval()


def _layers(model: VGG16FER) -> list[nn.Conv2d | nn.Linear]:
    """The prunable layers in order: every conv, then the hidden linear (the output layer is never pruned)."""
    fc = model.classifier[0]
    if not isinstance(fc, nn.Linear):
        raise RuntimeError("internal: classifier.0 must be a Linear layer")
    return [m for m in model.features if isinstance(m, nn.Conv2d)] + [fc]


def _floor_keep(dense: int, current: int, round_to: int, cap: float) -> int:
    """The fewest channels a layer may keep: (1 - cap) of its dense count, at least 1, rounded UP to round_to."""
    lo = max(1, math.ceil((1.0 - cap) * dense - 1e-9))
    if round_to > 1:
        lo = math.ceil(lo / round_to) * round_to
    return min(current, lo)


def _kept(current: int, removed: int, floor: int, round_to: int) -> int:
    """Channels a layer keeps when `removed` are asked for: rounded DOWN to round_to (Torch-Pruning's round_to),
    never below `floor`; a layer asked to lose nothing keeps all."""
    if removed <= 0:
        return current
    keep = current - removed
    if round_to > 1:
        keep -= keep % round_to
    return min(current, max(floor, keep))


def _macs_of(arch: Arch, keep: list[int]) -> int:
    """MACs per image of `arch` with its prunable layers at the widths `keep` (convs in order, then hidden)."""
    it = iter(keep)
    feats = [item if item == "M" else next(it) for item in arch["features"]]
    return round(gmac({**arch, "features": feats, "hidden": next(it)}) * 1e9)


def max_macs_reduction(arch: Arch, round_to: int = 1, max_layer_sparsity: float = GLOBAL_MAX_RATIO) -> float:
    """The largest dense MACs / pruned MACs a MAC-target point can reach on the dense `arch`: every prunable layer
    at its floor (the cap and the rounding, as `prune_to_macs` applies them; MAC points rank globally). Known from
    the architecture alone, so a sweep checks its targets before it trains or builds anything."""
    channels = [li.out_channels for li in layer_infos(arch)][:-1]
    floors = [_floor_keep(c, c, round_to, max_layer_sparsity) for c in channels]
    return gmac(arch) * 1e9 / _macs_of(arch, floors)


def prune_to_macs(model: VGG16FER, importance: tp.importance.Importance, target_macs: float, *, scope: str,
                  dense_channels: list[int], round_to: int = 1, max_layer_sparsity: float = GLOBAL_MAX_RATIO
                  ) -> list[int] | None:
    """Remove the fewest channels that bring `model` to <= `target_macs` MACs per image (in place); returns the
    channels kept per prunable layer, or None (nothing pruned) when the cap and rounding cannot get there.

    Global scope: one threshold on the criterion's scores (mean-normalised per layer), the smallest that reaches
    the target, found by bisection over the sorted scores with the MACs counted from the resulting layer widths
    (exact, no trial pruning: Torch-Pruning's own loop of small pruner steps to a MAC target costs ~1 s per step
    on a 2-core CPU, hundreds of steps per point). Local scope: one ratio for every layer, by bisection too.
    Per layer: at most `max_layer_sparsity` of its dense channels removed, kept channels rounded down to a
    multiple of `round_to` (never below it); the lowest-scoring channels of each layer go, through Torch-Pruning's
    dependency graph (the next layer's inputs and the BN follow)."""
    layers = _layers(model)
    arch = arch_of(model)
    example = torch.zeros(1, int(arch["in_channels"]), 48, 48)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)

    def out_fn(layer: nn.Module) -> object:
        return tp.prune_conv_out_channels if isinstance(layer, nn.Conv2d) else tp.prune_linear_out_channels

    current = [int(m.out_channels if isinstance(m, nn.Conv2d) else m.out_features) for m in layers]
    scores = []
    for layer, c in zip(layers, current, strict=True):
        group = graph.get_pruning_group(layer, out_fn(layer), list(range(c)))
        s = importance(group)
        if s is None:
            raise RuntimeError(f"internal: no importance for {type(layer).__name__}")
        scores.append(s.detach().float().cpu())
    cap = max_layer_sparsity if scope == "global" else 1.0 - 1e-9
    floors = [_floor_keep(d, c, round_to, cap) for d, c in zip(dense_channels, current, strict=True)]

    def keep_at(knob: float) -> list[int]:
        if scope == "global":  # knob: score threshold; channels scoring below it go
            removed = [int((s < knob).sum()) for s in scores]
        else:  # knob: fraction of each layer's dense channels to remove
            removed = [c - int(d * (1.0 - knob)) for d, c in zip(dense_channels, current, strict=True)]
        return [_kept(c, r, f, round_to) for c, r, f in zip(current, removed, floors, strict=True)]

    if scope == "global":
        knobs = [*torch.unique(torch.cat(scores)).tolist(), math.inf]
    else:
        knobs = [i / 1000 for i in range(1001)]
    if _macs_of(arch, keep_at(knobs[-1])) > target_macs:
        return None
    lo, hi = 0, len(knobs) - 1  # macs(keep_at(knobs[hi])) <= target: find the smallest such index
    while lo < hi:
        mid = (lo + hi) // 2
        if _macs_of(arch, keep_at(knobs[mid])) <= target_macs:
            hi = mid
        else:
            lo = mid + 1
    keep = keep_at(knobs[lo])
    for layer, s, c, k in zip(layers, scores, current, keep, strict=True):
        if k < c:
            idxs = torch.argsort(s)[: c - k].tolist()
            graph.get_pruning_group(layer, out_fn(layer), idxs).prune()
    return keep


def _channels(model: VGG16FER) -> list[int]:
    """Output channels of every conv (for progress lines)."""
    return [int(m.out_channels) for m in model.features if isinstance(m, nn.Conv2d)]


def n_pruned(channels: int, ratio: float) -> int:
    """Channels Torch-Pruning removes from a layer of `channels` at `ratio` (same rounding as its pruner)."""
    return channels - int(channels * (1 - ratio))


@torch.no_grad()
def apply_soft_masks(model: VGG16FER, ratio: float) -> None:
    """Soft filter pruning: zero the `ratio` lowest-L2 filters of every prunable layer (and their BN)."""
    feats = list(model.features)
    for layer, _relu in prunable_layers(model):
        if not isinstance(layer, nn.Conv2d | nn.Linear):
            raise RuntimeError('internal: expected isinstance(layer, nn.Conv2d | nn.Linear)')
        w = layer.weight
        k = n_pruned(int(w.shape[0]), ratio)
        if k <= 0:
            continue
        idx = torch.argsort(w.flatten(1).norm(dim=1))[:k]
        w[idx] = 0
        if layer.bias is not None:
            layer.bias[idx] = 0
        if isinstance(layer, nn.Conv2d):
            bn = feats[feats.index(layer) + 1]
            if not isinstance(bn, nn.BatchNorm2d):
                raise RuntimeError('internal: expected isinstance(bn, nn.BatchNorm2d)')
            bn.weight[idx] = 0
            bn.bias[idx] = 0


def _tgpp(model: VGG16FER, sparsity: float, data: FerData, train_cfg: TrainConfig, *, scope: str, epochs: int,
          lr: float | None, say: Progress, extra_loss: ExtraLoss | None = None,
          schedule: CosineAcrossSteps | None = None) -> VGG16FER:
    """Progressive soft filter pruning (AGP cubic schedule over the first 3/4 of training), then removal."""
    steps_per_epoch = epoch_steps(len(data.train), train_cfg)
    total = epochs * steps_per_epoch
    ramp = max(1, int(0.75 * total))
    every = max(1, steps_per_epoch // 4)
    state = {"step": 0}

    def after_step(m: nn.Module) -> None:
        state["step"] += 1
        if state["step"] % every == 0 or state["step"] >= ramp:
            if not isinstance(m, VGG16FER):
                raise RuntimeError('internal: expected isinstance(m, VGG16FER)')
            apply_soft_masks(m, agp_sparsity(state["step"], ramp, sparsity))

    if total:
        fit(model, data.train, data.val, train_cfg, epochs=epochs, lr=lr, after_step=after_step,
            extra_loss=extra_loss, make_scheduler=_segment(schedule, epochs),
            on_epoch=lambda log: say(f"tgpp: soft-pruning epoch {log.epoch} val {log.val_accuracy:.3f}"))
    apply_soft_masks(model, sparsity)  # final masks: exactly the filters removed below
    pruner = make_pruner(model, make_importance("tgpp", "local"), sparsity, 1, "local")
    pruner.step()
    say(f"tgpp: removed soft-pruned filters -> {_channels(model)}")
    return model.eval()


# ---------------------------------------------------------------- unstructured (paper Eq. 5)

def magnitude_masks(model: nn.Module, sparsity: float, scope: str = "local") -> dict[str, torch.Tensor]:
    """Eq. 5: keep w where |w| >= threshold; threshold = the `sparsity` quantile of |w| per layer (local)
    or over all conv/linear weights (global). Returns {parameter name: bool keep-mask}."""
    weights = {f"{name}.weight": m.weight.detach() for name, m in model.named_modules()
               if isinstance(m, nn.Conv2d | nn.Linear)}
    masks: dict[str, torch.Tensor] = {}
    if scope == "global":
        allw = torch.cat([w.abs().flatten() for w in weights.values()])
        k = int(sparsity * allw.numel())
        thr = allw.kthvalue(k).values if k > 0 else torch.tensor(-1.0)
        for name, w in weights.items():
            masks[name] = w.abs() > thr
    else:
        for name, w in weights.items():
            k = int(sparsity * w.numel())
            thr = w.abs().flatten().kthvalue(k).values if k > 0 else torch.tensor(-1.0)
            masks[name] = w.abs() > thr
    return masks


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the masked-out weights in place."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        params[name].mul_(mask.to(device=params[name].device, dtype=params[name].dtype))


def unstructured_prune(dense: VGG16FER, sparsity: float, data: FerData, train_cfg: TrainConfig, *,
                       scope: str = "local", finetune_epochs: int = 0, lr: float | None = None,
                       progress: Progress | None = None, extra_loss: ExtraLoss | None = None,
                       schedule: CosineAcrossSteps | None = None) -> tuple[VGG16FER, dict[str, torch.Tensor]]:
    """A copy of `dense` with Eq. 5 magnitude masks applied and kept through fine-tuning; (model, masks)."""
    say = progress or (lambda _m: None)
    model = copy.deepcopy(dense).eval()
    masks = magnitude_masks(model, sparsity, scope)
    apply_masks(model, masks)
    if finetune_epochs:
        fit(model, data.train, data.val, replace(train_cfg, l1_lambda=0.0), epochs=finetune_epochs, lr=lr,
            after_step=lambda m: apply_masks(m, masks), extra_loss=extra_loss,
            make_scheduler=_segment(schedule, finetune_epochs),
            on_epoch=lambda log: say(f"unstructured: fine-tune epoch {log.epoch} val {log.val_accuracy:.3f}"))
    return model.eval(), masks


def sparsity_level(model: nn.Module) -> float:
    """Eq. 3: S = 1 - N_remaining / N_original over conv and linear weights (zeros count as removed)."""
    total = nonzero = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            total += m.weight.numel()
            nonzero += int(torch.count_nonzero(m.weight))
    return 1.0 - nonzero / max(1, total)
