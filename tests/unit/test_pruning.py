"""Structured pruning removes exactly the filters the criterion says; unstructured masks; bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from common.config import load_config
from common.errors import UserError
from compression.prune import (
    apply_soft_masks,
    magnitude_masks,
    n_pruned,
    sparsity_level,
    structured_prune,
    unstructured_prune,
)
from compression.variants import build_variants, requested_variants
from fer.checkpoint import load_model as load_dense_checkpoint
from fer.data import FerData, Split
from fer.model import arch_of, build_model, default_arch


def tiny_data(n_train: int = 64, n_eval: int = 32, seed: int = 0) -> FerData:
    rng = np.random.default_rng(seed)

    def split(n: int) -> Split:
        return Split(rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), rng.integers(0, 7, n).astype(np.int64))

    return FerData("tiny", split(n_train), split(n_eval), split(n_eval), synthetic=True)


def tiny_model(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return build_model(default_arch(width=0.125)).eval()


CFG = load_config(None, ["model.width=0.125", "train.batch_size=8", "compress.finetune_epochs=0"])


def test_l1_removes_exactly_the_smallest_l1_filters() -> None:
    model = tiny_model()
    conv = model.features[0]  # 8 filters of 1x3x3
    norms = [5.0, 1.0, 7.0, 2.0, 8.0, 3.0, 6.0, 4.0]
    with torch.no_grad():
        for i, n in enumerate(norms):
            conv.weight[i] = n / 9.0 * torch.sign(torch.randn(1, 3, 3))
    original = conv.weight.detach().clone()
    pruned = structured_prune(model, "l1", 0.5, tiny_data(), CFG.train)
    first: Any = pruned.features[0]
    kept = first.weight.detach()
    assert kept.shape[0] == 4
    expected = [i for i in range(8) if norms[i] > 4.0]  # the four largest L1 norms, in original order
    assert torch.equal(kept, original[expected])
    assert model.features[0].weight.shape[0] == 8  # the dense model is untouched


@pytest.mark.parametrize("steps", [1, 2])
def test_pruned_model_runs_with_expected_channels(steps: int) -> None:
    model = tiny_model()
    dense_arch = arch_of(model)
    pruned = structured_prune(model, "l1", 0.5, tiny_data(), CFG.train, steps=steps)
    arch = arch_of(pruned)
    expect = [c if c == "M" else c - n_pruned(c, 0.5) for c in dense_arch["features"]]
    assert arch["features"] == expect
    assert arch["hidden"] == dense_arch["hidden"] - n_pruned(dense_arch["hidden"], 0.5)
    assert arch["num_classes"] == 7  # the output layer is never pruned
    out = pruned(torch.rand(3, 1, 48, 48))
    assert out.shape == (3, 7)
    rebuilt = build_model(arch)
    rebuilt.load_state_dict(pruned.state_dict())  # the arch dict describes the pruned model exactly


def test_global_scope_prunes_layers_unevenly_but_never_empties_one() -> None:
    model = tiny_model()
    pruned = structured_prune(model, "l1", 0.5, tiny_data(), CFG.train, scope="global")
    convs = [c for c in arch_of(pruned)["features"] if c != "M"]
    dense = [c for c in arch_of(model)["features"] if c != "M"]
    ratios = {round(1 - a / b, 2) for a, b in zip(convs, dense, strict=True)}
    assert len(ratios) > 1 and min(convs) >= 1
    assert sum(convs) < sum(dense)


def test_soft_masks_zero_the_lowest_norm_filters_and_their_bn() -> None:
    model = tiny_model()
    conv, bn = model.features[0], model.features[1]
    norms = conv.weight.detach().flatten(1).norm(dim=1)
    apply_soft_masks(model, 0.5)
    zeroed = (conv.weight.detach().flatten(1).abs().sum(1) == 0).nonzero().flatten().tolist()
    assert sorted(zeroed) == sorted(torch.argsort(norms)[:4].tolist())
    assert torch.all(bn.weight[zeroed] == 0) and torch.all(bn.bias[zeroed] == 0)


def test_tgpp_removes_soft_pruned_filters() -> None:
    pruned = structured_prune(tiny_model(), "tgpp", 0.5, tiny_data(), CFG.train, finetune_epochs=1)
    assert [c for c in arch_of(pruned)["features"] if c != "M"][:2] == [4, 4]
    assert pruned(torch.rand(2, 1, 48, 48)).shape == (2, 7)


def test_unstructured_threshold_reaches_sparsity_and_survives_finetuning() -> None:
    model = tiny_model()
    masks = magnitude_masks(model, 0.6)
    w = model.features[0].weight.detach().abs()
    thr = w.flatten().kthvalue(int(0.6 * w.numel())).values
    assert torch.equal(masks["features.0.weight"], w > thr)  # Eq. 5: |w| below the threshold -> 0
    pruned, _ = unstructured_prune(model, 0.6, tiny_data(), CFG.train, finetune_epochs=1)
    s = sparsity_level(pruned)
    assert 0.58 <= s <= 0.62  # Eq. 3: S = 1 - N_remaining / N_original
    assert arch_of(pruned) == arch_of(model)  # no channel is removed: no speedup on dense kernels


def test_unknown_method_lists_the_valid_ones() -> None:
    with pytest.raises(UserError, match="valid methods: l1, cdcp, sfpga, drcp, tgpp"):
        requested_variants(CFG, ["foo-int8"])


def test_bad_input_leaves_no_artifact(tmp_path) -> None:
    data = tiny_data()
    cfg = load_config(None, ["model.width=0.125", "compress.calibration_size=1000"])
    with pytest.raises(UserError, match="calibration_size = 1000: larger than the training set"):
        build_variants(cfg, data, tiny_model(), tmp_path / "out")
    with pytest.raises(UserError, match="not a VGG16-FER"):
        build_variants(CFG, data, nn.Linear(2, 2), tmp_path / "out")  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_failure_while_writing_removes_the_temp_dir(tmp_path) -> None:
    from compression.writer import write_variant

    def boom(path) -> None:
        path.write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_variant(tmp_path, "l1-int8", {"model.pt": boom}, {"variant": "l1-int8"})
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_loading_refuses_bad_files(tmp_path) -> None:
    good = tmp_path / "dense.pt"
    model = tiny_model()
    torch.save({"arch": arch_of(model), "state_dict": model.state_dict()}, good)
    assert arch_of(load_dense_checkpoint(good)) == arch_of(model)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(UserError, match="cannot be loaded safely"):
        load_dense_checkpoint(truncated)
    code = tmp_path / "code.pt"
    torch.save({"arch": arch_of(model), "state_dict": model.state_dict(), "x": nn.ReLU()}, code)
    with pytest.raises(UserError, match="cannot be loaded safely"):
        load_dense_checkpoint(code)
    other = tmp_path / "other.pt"
    torch.save({"arch": arch_of(model), "state_dict": nn.Linear(2, 2).state_dict()}, other)
    with pytest.raises(UserError, match="not a VGG16-FER state"):
        load_dense_checkpoint(other)
