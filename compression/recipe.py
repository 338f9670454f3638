"""The fine-tuning recipe of one compressed variant, from the config: the pruning keywords (target, rounding,
per-layer cap, epochs, schedule, distillation) and the QAT keywords, and the manifest block that records them.

Kept apart from variants.py (which only wires it in) so that the recipe can change without touching the
artifact-building code.
"""

from __future__ import annotations

from typing import Any

from common.config import Config
from compression.distill import kd_for
from compression.schedule import CosineAcrossSteps, epoch_scale, expected_reduction, finetune_epochs, split_epochs
from compression.storage import gmac, layer_infos
from fer.data import FerData
from fer.model import VGG16FER, Arch
from fer.train import ExtraLoss


def point_reduction(cfg: Config) -> float:
    """The MAC reduction the configured point aims at (its target, or the estimate from its sparsity)."""
    c = cfg.compress
    return expected_reduction(c.sparsity, c.macs_reduction)


def point_finetune_epochs(cfg: Config) -> int:
    """compress.finetune_epochs, scaled for sparser points when compress.scale_epochs."""
    c = cfg.compress
    return finetune_epochs(c.finetune_epochs, point_reduction(cfg), c.scale_epochs)


def distillation(cfg: Config, key: str, dense: VGG16FER, data: FerData) -> ExtraLoss | None:
    """The distillation term for fine-tuning and QAT (None when compress.kd_weight = 0)."""
    return kd_for(cfg.compress, key, dense, data.train, cfg.train)


def prune_kwargs(cfg: Config, key: str, dense: VGG16FER, data: FerData) -> dict[str, Any]:
    """Keywords of `structured_prune` / `unstructured_prune` beyond the method, sparsity and scope."""
    c = cfg.compress
    epochs = point_finetune_epochs(cfg)
    schedule = CosineAcrossSteps(epochs, c.finetune_lr_floor) if c.finetune_schedule == "cosine" else None
    kw: dict[str, Any] = {"finetune_epochs": epochs, "extra_loss": distillation(cfg, key, dense, data),
                          "schedule": schedule}
    if not c.unstructured:
        kw.update(steps=c.prune_steps, round_to=c.round_to, max_layer_sparsity=c.max_layer_sparsity,
                  macs_reduction=c.macs_reduction, last_step_share=c.last_step_share)
    return kw


def recipe_fields(cfg: Config, method: str, arch: Arch, dense_arch: Arch) -> dict[str, Any]:
    """The manifest's `recipe` block: how the variant was fine-tuned, the MAC reduction it reached and the share of
    prunable channels it removed (a MAC-target point's sparsity is an outcome, not a setting)."""
    c = cfg.compress
    if method == "dense":
        return {"macs_reduction": 1.0}
    arch_gmac, dense_gmac = gmac(arch), gmac(dense_arch)
    kept = sum(li.out_channels for li in layer_infos(arch)[:-1])
    total = sum(li.out_channels for li in layer_infos(dense_arch)[:-1])
    return {
        "macs_reduction": round(dense_gmac / arch_gmac, 4) if arch_gmac > 0 else None,
        "channel_sparsity": round(1.0 - kept / total, 4) if total else None,
        "macs_reduction_target": c.macs_reduction or None,
        "prune_steps": c.prune_steps, "prune_schedule": "cubic (Zhu & Gupta)" if c.prune_steps > 1 else "one-shot",
        "round_to": c.round_to, "max_layer_sparsity": c.max_layer_sparsity if c.scope == "global" else None,
        "finetune_epochs": point_finetune_epochs(cfg), "finetune_epochs_base": c.finetune_epochs,
        "finetune_epochs_per_step": ([point_finetune_epochs(cfg)] if c.unstructured or method == "tgpp"  # one fit
                                     else split_epochs(point_finetune_epochs(cfg), c.prune_steps, c.last_step_share)),
        "last_step_share": c.last_step_share,
        "epoch_scale": round(epoch_scale(point_reduction(cfg)), 4) if c.scale_epochs else 1.0,
        "finetune_schedule": c.finetune_schedule,
        "finetune_lr_floor": c.finetune_lr_floor if c.finetune_schedule == "cosine" else None,
        "kd_weight": c.kd_weight, "kd_temperature": c.kd_temperature if c.kd_weight > 0 else None,
        "qat_epochs": c.qat_epochs,
    }
