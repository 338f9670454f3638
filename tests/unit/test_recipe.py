"""The recipe reaches the artifacts: the manifest records it, a MAC-target variant reaches its target, and the sweep's
cost accounting charges an fp32/int8 pair's fine-tuning once."""

from __future__ import annotations

import json

import numpy as np
import torch

from common.config import load_config
from compression.points import SweepPoint, macs_point
from compression.variants import build_variants
from fer.data import FerData, Split
from fer.model import build_model, default_arch
from harness.orchestrate.sweep import plan_build, point_costs


def _data() -> FerData:
    rng = np.random.default_rng(0)

    def split(n: int) -> Split:
        return Split(rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), np.arange(n, dtype=np.int64) % 7)

    return FerData("tiny", split(32), split(16), split(16), synthetic=True)


def test_manifest_records_the_recipe_and_the_mac_reduction_reached(tmp_path) -> None:
    torch.manual_seed(0)
    dense = build_model(default_arch(width=0.125)).eval()
    cfg = load_config(None, ["model.width=0.125", "train.batch_size=16", "train.bf16=false", "compress.scope=global",
                             "compress.macs_reduction=3", "compress.round_to=1", "compress.finetune_epochs=1",
                             "compress.kd_weight=0.5", "compress.kd_temperature=3", "compress.prune_steps=2"])
    path = build_variants(cfg, _data(), dense, tmp_path, ["l1-fp32"])["l1-fp32"]
    r = json.loads((path / "manifest.json").read_text())["recipe"]
    assert r["macs_reduction"] >= 3.0 and r["macs_reduction_target"] == 3.0 and 0.2 < r["channel_sparsity"] < 0.9
    assert (r["kd_weight"], r["kd_temperature"], r["prune_steps"], r["prune_schedule"]) == (
        0.5, 3.0, 2, "cubic (Zhu & Gupta)")
    assert (r["finetune_schedule"], r["finetune_epochs_base"], r["max_layer_sparsity"]) == ("cosine", 1, 0.9)
    assert (r["finetune_epochs_per_step"], r["last_step_share"]) == ([0, 1], 0.0)  # 1 epoch, after the last step


def test_sweep_costs_charge_a_pairs_finetuning_once_and_no_budget_changes_nothing(tmp_path) -> None:
    cfg = load_config(None, [f"store.cache_dir={tmp_path}"])
    pts = [SweepPoint("l1", "local", 0.5, "fp32"), SweepPoint("l1", "local", 0.5, "int8"),
           macs_point("l1", 16, "int8")]
    costs = point_costs(cfg, _data(), pts)
    assert [(c.finetunes, c.qat, c.cached) for c in costs] == [(True, False, False), (False, True, False),
                                                                (True, True, False)]
    assert costs[0].reduction == 4.0 and costs[2].reduction == 16.0
    same, estimates = plan_build(cfg, _data(), torch.nn.Linear(1, 1), pts, lambda _m: None)  # type: ignore[arg-type]
    assert same is cfg and estimates == {}


def test_a_budget_cuts_the_epochs_and_prints_the_plan(tmp_path) -> None:
    torch.manual_seed(0)
    dense = build_model(default_arch(width=0.125)).eval()
    cfg = load_config(None, [f"store.cache_dir={tmp_path}", "model.width=0.125", "compress.finetune_epochs=4",
                             "compress.qat_epochs=2", "compress.budget_minutes=0.001"])
    pts = [SweepPoint("l1", "local", 0.5, "int8"), macs_point("l1", 16, "int8")]
    lines: list[str] = []
    planned, estimates = plan_build(cfg, _data(), dense, pts, lines.append)
    assert (planned.compress.finetune_epochs, planned.compress.qat_epochs) == (1, 1)
    assert set(estimates) == {"l1-s0.50-int8", "l1-m16-int8"} and all(v > 0 for v in estimates.values())
    assert len(lines) == 1 and lines[0].startswith("budget 0.001 min: plan ")
    assert "finetune_epochs 4 -> 1, qat_epochs 2 -> 1" in lines[0] and "does NOT fit" in lines[0]
    roomy = load_config(None, [f"store.cache_dir={tmp_path}", "model.width=0.125", "compress.budget_minutes=10000"])
    planned, _ = plan_build(roomy, _data(), dense, pts, lines.append)
    assert planned.compress == roomy.compress and " fits; 2 of 2 points to build, ETA " in lines[-1]
