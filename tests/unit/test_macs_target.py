"""Pruning to a MAC target: met within 5% (Torch-Pruning's own counter and the layer table), per-layer cap,
channels rounded to a multiple of round_to, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch_pruning as tp

from common.config import load_config
from common.errors import UserError
from compression.prune import max_macs_reduction, model_macs, structured_prune
from fer.data import FerData, Split
from fer.model import arch_of, build_model, default_arch
from harness.cli import main

CFG = load_config(None, ["compress.finetune_epochs=0"])


def _data() -> FerData:
    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (8, 48, 48), dtype=np.uint8), np.arange(8) % 7)
    return FerData("t", split, split, split)


@pytest.fixture(scope="module")
def dense() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(default_arch(width=0.5)).eval()  # 32 .. 256 channels, hidden 256


def _widths(model: torch.nn.Module) -> list[int]:
    a = arch_of(model)
    return [c for c in a["features"] if c != "M"] + [a["hidden"]]


@pytest.mark.parametrize(("reduction", "steps"), [(8.0, 1), (16.0, 3)])
def test_pruned_model_meets_its_mac_target_within_5_percent(dense: torch.nn.Module, reduction: float,
                                                           steps: int) -> None:
    pruned = structured_prune(dense, "l1", 0.0, _data(), CFG.train, scope="global", steps=steps,
                              macs_reduction=reduction, round_to=8, max_layer_sparsity=0.9)
    x = torch.zeros(1, 1, 48, 48)
    tp_dense, _ = tp.utils.count_ops_and_params(dense, x)
    tp_pruned, _ = tp.utils.count_ops_and_params(pruned, x)
    assert reduction * 0.95 <= tp_dense / tp_pruned <= reduction * 1.05  # Torch-Pruning's counter
    got = model_macs(dense) / model_macs(pruned)  # the layer table's count (what the search aims with)
    assert reduction <= got <= reduction * 1.05
    widths, dense_widths = _widths(pruned), _widths(dense)
    assert all(w % 8 == 0 for w in widths)
    assert all(w >= 0.1 * d - 1e-9 for w, d in zip(widths, dense_widths, strict=True))  # cap 0.9 per layer
    assert len({round(w / d, 2) for w, d in zip(widths, dense_widths, strict=True)}) > 1  # global: uneven
    assert pruned(torch.rand(2, 1, 48, 48)).shape == (2, 7)
    assert _widths(dense) == dense_widths  # the dense model is untouched


def test_local_scope_prunes_every_layer_alike(dense: torch.nn.Module) -> None:
    pruned = structured_prune(dense, "l1", 0.0, _data(), CFG.train, scope="local", macs_reduction=4.0)
    ratios = [w / d for w, d in zip(_widths(pruned), _widths(dense), strict=True)]
    assert max(ratios) - min(ratios) < 0.05
    assert 4.0 <= model_macs(dense) / model_macs(pruned) <= 4.2


def test_a_target_the_cap_forbids_is_one_line_error(dense: torch.nn.Module) -> None:
    with pytest.raises(UserError, match=r"compress.macs_reduction = 500: cannot reach .* raise the cap"):
        structured_prune(dense, "l1", 0.0, _data(), CFG.train, scope="global", macs_reduction=500.0,
                         max_layer_sparsity=0.5)
    with pytest.raises(UserError, match="supports method l1, not 'cdcp'"):
        structured_prune(dense, "cdcp", 0.0, _data(), CFG.train, scope="global", macs_reduction=8.0)


def test_config_rejects_a_reduction_of_one_or_less() -> None:
    with pytest.raises(UserError, match=r"compress.macs_reduction = 0.5: must be 0 .* or above 1"):
        load_config(None, ["compress.macs_reduction=0.5"])


@pytest.mark.parametrize(("round_to", "cap"), [(8, 0.9), (1, 0.5)])
def test_the_largest_reachable_target_is_what_pruning_reaches(dense: torch.nn.Module, round_to: int,
                                                              cap: float) -> None:
    """`max_macs_reduction` (from the architecture alone) is the boundary real pruning meets: just below it is
    reached, just above it is refused."""
    most = max_macs_reduction(arch_of(dense), round_to, cap)
    assert most > 2.0
    kw = {"scope": "global", "round_to": round_to, "max_layer_sparsity": cap}
    pruned = structured_prune(dense, "l1", 0.0, _data(), CFG.train, macs_reduction=most * 0.99, **kw)
    assert model_macs(dense) / model_macs(pruned) >= most * 0.99
    with pytest.raises(UserError, match="cannot reach"):
        structured_prune(dense, "l1", 0.0, _data(), CFG.train, macs_reduction=most * 1.01, **kw)


def test_a_sweep_with_an_unreachable_target_exits_2_before_any_training(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The quickstart's quarter-width model reaches 16.5x with round_to 8: `--macs-reduction 8,24` fails at once,
    naming the largest target, with nothing trained or built (it used to fail after 16 minutes of building)."""
    code = main(["sweep", "--macs-reduction", "8,24", "--set", "compress.round_to=8", "--set", "model.width=0.25",
                 "--set", f"store.cache_dir={tmp_path}/cache"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "--macs-reduction 24: this model (model.width = 0.25) reaches at most 16.5x fewer MACs" in err
    assert not (tmp_path / "cache" / "models").exists()
