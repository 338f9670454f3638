"""Filter-importance criteria behind one interface (Torch-Pruning's `tp.importance.Importance`).

Every criterion maps a dependency group (root = a conv's output channels, or the hidden linear's outputs)
to one score per channel; Torch-Pruning removes the lowest-scoring channels.

  l1    L1 norm of each conv filter (Li et al. 2017, the paper's FPTQ): MagnitudeImportance(p=1, "first").
  cdcp  CDP (class-discriminative pruning): TF-IDF of per-class mean post-ReLU activations.
  sfpga first-order Taylor |w * dL/dw| summed over the group (Molchanov et al. 2019): needs gradients.
  drcp  HRank: average rank of each post-ReLU feature map over a few hundred images, recomputed per step.
  tgpp  progressive soft filter pruning on the AGP cubic schedule (see prune.py); the final physical
        removal ranks filters by L2 norm, so filters zeroed by the soft phase go first.

Activation-based criteria (`ActivationCriterion` subclasses) are refreshed with `refresh(model, x, y)`
before each pruning step. With `normalize=True` (global scope) each layer's scores are divided by their
mean so that one ranking across layers compares like with like.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from fer.model import VGG16FER

METHODS: tuple[str, ...] = ("l1", "cdcp", "sfpga", "drcp", "tgpp")
NEEDS_GRADIENTS: frozenset[str] = frozenset({"sfpga"})
NEEDS_ACTIVATIONS: frozenset[str] = frozenset({"cdcp", "drcp"})


def _mean_normalize(scores: torch.Tensor) -> torch.Tensor:
    return scores / scores.mean().clamp_min(1e-12)


def prunable_layers(model: VGG16FER) -> list[tuple[nn.Module, nn.Module]]:
    """(layer, the ReLU that follows it) for every conv and the hidden linear, in order."""
    pairs: list[tuple[nn.Module, nn.Module]] = []
    feats = list(model.features)
    for i, m in enumerate(feats):
        if isinstance(m, nn.Conv2d):
            pairs.append((m, feats[i + 2]))
    pairs.append((model.classifier[0], model.classifier[1]))
    return pairs


@contextmanager
def capture_post_relu(model: VGG16FER) -> Iterator[dict[nn.Module, list[torch.Tensor]]]:
    """Collect each prunable layer's post-ReLU output (detached) during forward passes in the block."""
    store: dict[nn.Module, list[torch.Tensor]] = {}
    handles = []
    for layer, relu in prunable_layers(model):
        store[layer] = []

        def hook(_m: nn.Module, _i: Any, out: torch.Tensor, key: nn.Module = layer) -> None:
            store[key].append(out.detach().clone())

        handles.append(relu.register_forward_hook(hook))
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


class ActivationCriterion(tp.importance.Importance):
    """Scores computed from activations on sample images, looked up per group root module."""

    def __init__(self, normalize: bool = False, batch_size: int = 64) -> None:
        self.normalize = normalize
        self.batch_size = batch_size
        self.scores: dict[nn.Module, torch.Tensor] = {}

    def layer_scores(self, acts: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """Per-channel score from one layer's post-ReLU activations [N, C, (H, W)]."""
        raise NotImplementedError

    @torch.no_grad()
    def refresh(self, model: VGG16FER, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Recompute every layer's scores on `images` (float [N, C, 48, 48]) with `labels` [N]."""
        was_training = model.training
        model.eval()
        partial: dict[nn.Module, list[torch.Tensor]] = {}
        for i in range(0, len(images), self.batch_size):
            with capture_post_relu(model) as store:
                model(images[i : i + self.batch_size])
            for layer, outs in store.items():
                partial.setdefault(layer, []).append(self.reduce_batch(outs[0]))
        self.scores = {layer: self.finish(torch.cat(parts), labels) for layer, parts in partial.items()}
        model.train(was_training)

    def reduce_batch(self, acts: torch.Tensor) -> torch.Tensor:
        """Per-image, per-channel statistic [N, C] of a batch of activations (kept small in memory)."""
        return acts.flatten(2).mean(2) if acts.dim() == 4 else acts

    def finish(self, stats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.layer_scores(stats, labels)

    def __call__(self, group: Any) -> torch.Tensor | None:
        dep, idxs = group[0]
        layer = dep.target.module
        if layer not in self.scores:
            return None
        s = self.scores[layer]
        if s.shape[0] != _out_channels(layer):
            raise RuntimeError("importance scores are stale: call refresh() after every pruning step")
        s = s[list(idxs)]
        return _mean_normalize(s) if self.normalize else s


def _out_channels(layer: nn.Module) -> int:
    return int(layer.out_channels if isinstance(layer, nn.Conv2d) else layer.out_features)  # type: ignore[arg-type]


def cdp_scores(class_means: torch.Tensor) -> torch.Tensor:
    """CDP's TF-IDF score per filter from its mean post-ReLU activation per class, [C_filters, K_classes].

    TF[c, k] = a[c, k] / sum_c' a[c', k]  (share of class k's total response carried by filter c);
    a filter is "relevant" to class k when a[c, k] exceeds the layer's mean response to k; with df[c]
    the number of such classes, IDF[c] = log((1 + K) / (1 + df[c])) + 1 (smoothed, always > 0);
    score[c] = sum_k TF[c, k] * IDF[c]. A silent filter scores 0; a filter that responds strongly to
    few classes beats one responding equally to all.
    """
    a = class_means.clamp_min(0).double()
    k = a.shape[1]
    tf = a / a.sum(0, keepdim=True).clamp_min(1e-12)
    relevant = a > a.mean(0, keepdim=True)
    df = relevant.sum(1).double()
    idf = torch.log((1.0 + k) / (1.0 + df)) + 1.0
    return (tf.sum(1) * idf).float()


class CDPImportance(ActivationCriterion):
    """cdcp (CDP): TF-IDF of per-class mean post-ReLU activations (Wang et al. 2021)."""

    def layer_scores(self, acts: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        num_classes = int(labels.max()) + 1 if len(labels) else 1
        means = []
        for k in range(num_classes):
            sel = labels == k
            means.append(acts[sel].mean(0) if sel.any() else torch.zeros(acts.shape[1]))
        return cdp_scores(torch.stack(means, 1))


def feature_map_rank(acts: torch.Tensor) -> torch.Tensor:
    """Rank of each feature map: [N, C, H, W] -> [N, C] (float)."""
    n, c, h, w = acts.shape
    ranks = torch.linalg.matrix_rank(acts.reshape(n * c, h, w).float())
    return ranks.reshape(n, c).float()


class HRankImportance(ActivationCriterion):
    """drcp (HRank, Lin et al. 2020): mean rank of each filter's post-ReLU feature maps.

    Ties (frequent on the 3x3 maps of the last block) are broken by the mean activation; the hidden
    linear layer has vector outputs, where rank is undefined, so it is ranked by mean activation alone.
    """

    def reduce_batch(self, acts: torch.Tensor) -> torch.Tensor:
        if acts.dim() == 4:
            rank = feature_map_rank(acts)
            mean = acts.flatten(2).mean(2)
            return torch.stack([rank, mean], 2)  # [N, C, 2]
        return torch.stack([torch.zeros_like(acts), acts.abs()], 2)

    def finish(self, stats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        rank = stats[:, :, 0].mean(0)
        mean = stats[:, :, 1].mean(0)
        tiebreak = mean / mean.max().clamp_min(1e-12)  # in [0, 1]: below one rank step
        return rank + 1e-3 * tiebreak


class FilterNormImportance(tp.importance.Importance):
    """L2 norm of each root layer's output filters (tgpp's final removal: soft-pruned filters score ~0)."""

    def __init__(self, normalize: bool = False) -> None:
        self.normalize = normalize

    @torch.no_grad()
    def __call__(self, group: Any) -> torch.Tensor | None:
        dep, idxs = group[0]
        layer = dep.target.module
        if not isinstance(layer, nn.Conv2d | nn.Linear):
            return None
        s = layer.weight.detach().flatten(1).norm(dim=1)[list(idxs)]
        return _mean_normalize(s) if self.normalize else s


def make_importance(method: str, scope: str = "local") -> tp.importance.Importance:
    """The criterion object for `method` (see METHODS); `scope="global"` normalises per layer."""
    normalize = scope == "global"
    if method == "l1":
        return tp.importance.MagnitudeImportance(p=1, normalizer="mean" if normalize else None,
                                                 group_reduction="first")
    if method == "sfpga":
        return tp.importance.TaylorImportance(group_reduction="first", normalizer="mean" if normalize else None)
    if method == "cdcp":
        return CDPImportance(normalize=normalize)
    if method == "drcp":
        return HRankImportance(normalize=normalize)
    if method == "tgpp":
        return FilterNormImportance(normalize=normalize)
    raise ValueError(f"unknown pruning method {method!r}; valid: {', '.join(METHODS)}")


def l1_filter_norms(conv: nn.Conv2d) -> torch.Tensor:
    """L1 norm of each output filter of `conv` (what the l1 criterion ranks)."""
    return conv.weight.detach().abs().flatten(1).sum(1)


def agp_sparsity(step: int, total: int, final: float, initial: float = 0.0) -> float:
    """AGP cubic schedule (Zhu & Gupta 2017): s_t = s_f + (s_i - s_f)(1 - t/T)^3, clamped to [s_i, s_f]."""
    if total <= 0:
        return final
    t = min(max(step / total, 0.0), 1.0)
    return final + (initial - final) * math.pow(1.0 - t, 3)
