"""Pruning: structured (Torch-Pruning, channels physically removed) and unstructured (Eq. 5 masks).

Structured: `structured_prune(dense, method, ...)` copies the dense model, ranks filters with the
method's criterion (importance.py) and removes `sparsity` of the filters of every conv and of the hidden
linear (local scope: per layer, the paper's setting; global scope: one ranking across layers), one-shot
or in `steps` iterations, fine-tuning after each step. The final classifier layer is never pruned.
`tgpp` first trains with soft filter masks whose sparsity follows the AGP cubic schedule (soft filter
pruning: masked filters are zeroed after each mask update but may regrow), then removes the zeroed
filters physically.

Unstructured: `unstructured_prune` zeroes weights with |w| below a magnitude threshold (paper Eq. 5)
and keeps them at zero through fine-tuning; the tensors stay dense, so it gives no speedup on dense
kernels — report it by S = 1 - N_remaining / N_original (Eq. 3), not by latency.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

from common.config import TrainConfig
from compression.importance import (
    NEEDS_ACTIVATIONS,
    NEEDS_GRADIENTS,
    ActivationCriterion,
    agp_sparsity,
    make_importance,
    prunable_layers,
)
from fer.data import FerData
from fer.model import VGG16FER
from fer.train import epoch_steps, fit

Progress = Callable[[str], None]
SCORE_IMAGES = {"cdcp": 512, "drcp": 256}  # images the activation criteria look at (HRank: "a few hundred")
TAYLOR_BATCHES = 8
GLOBAL_MAX_RATIO = 0.9  # global scope: never remove more than this fraction of one layer


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


def _split_epochs(total: int, steps: int) -> list[int]:
    """Fine-tuning epochs after each of `steps` pruning steps, summing to `total` (later steps get more)."""
    base, extra = divmod(total, steps)
    return [base + (1 if i >= steps - extra else 0) for i in range(steps)]


def make_pruner(model: VGG16FER, importance: tp.importance.Importance, sparsity: float, steps: int,
                scope: str) -> tp.pruner.BasePruner:
    """Torch-Pruning's pruner over every conv and the hidden linear; the output layer is ignored."""
    example = torch.zeros(1, int(model.arch["in_channels"]), 48, 48)
    return tp.pruner.BasePruner(
        model,
        example,
        importance=importance,
        pruning_ratio=sparsity,
        ignored_layers=[model.classifier[3]],
        iterative_steps=steps,
        global_pruning=scope == "global",
        max_pruning_ratio=GLOBAL_MAX_RATIO if scope == "global" else 1.0,
    )


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
) -> VGG16FER:
    """A pruned, fine-tuned copy of `dense` (channels physically removed); `dense` is left untouched."""
    say = progress or (lambda _m: None)
    model = copy.deepcopy(dense).eval()
    if sparsity <= 0:
        fit(model, data.train, data.val, train_cfg, epochs=finetune_epochs, lr=lr)
        return model
    if method == "tgpp":
        return _tgpp(model, sparsity, data, train_cfg, scope=scope, epochs=finetune_epochs, lr=lr, say=say)
    importance = make_importance(method, scope)
    pruner = make_pruner(model, importance, sparsity, steps, scope)
    for step, epochs in enumerate(_split_epochs(finetune_epochs, steps)):
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
        if epochs:
            fit(model, data.train, data.val, train_cfg, epochs=epochs, lr=lr,
                on_epoch=lambda log: say(f"{method}: fine-tune epoch {log.epoch} val {log.val_accuracy:.3f}"))
    model.eval()
    return model


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
          lr: float | None, say: Progress) -> VGG16FER:
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
                       progress: Progress | None = None) -> tuple[VGG16FER, dict[str, torch.Tensor]]:
    """A copy of `dense` with Eq. 5 magnitude masks applied and kept through fine-tuning; (model, masks)."""
    say = progress or (lambda _m: None)
    model = copy.deepcopy(dense).eval()
    masks = magnitude_masks(model, sparsity, scope)
    apply_masks(model, masks)
    if finetune_epochs:
        fit(model, data.train, data.val, replace(train_cfg, l1_lambda=0.0), epochs=finetune_epochs, lr=lr,
            after_step=lambda m: apply_masks(m, masks),
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
