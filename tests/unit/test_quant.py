"""Fake quantization, LSQ gradients, calibration methods and the int8 weights that get stored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compression.fold import fold_model, folded_layers
from compression.quant import (
    ActQuant,
    WeightQuant,
    calibrate,
    entropy_threshold,
    export_layers,
    fake_quant,
    quantize_folded,
    weight_range,
)
from fer.model import build_model, default_arch


def test_fake_quant_values_lie_on_the_grid_and_clip() -> None:
    x = torch.tensor([-1.0, 0.0, 0.26, 1.0, 3.0])
    y = fake_quant(x, torch.tensor(0.1), torch.tensor(0.0), 0, 20)
    assert torch.allclose(y, torch.tensor([0.0, 0.0, 0.3, 1.0, 2.0]))


def test_lsq_scale_gradient() -> None:
    s = torch.tensor(0.1, requires_grad=True)
    x = torch.tensor([0.26, 5.0])  # inside the range; clipped at qmax=20
    fake_quant(x, s, torch.tensor(0.0), 0, 20).sum().backward()
    # LSQ: round(x/s) - x/s inside, qmax outside
    assert s.grad is not None
    assert abs(float(s.grad) - ((3 - 2.6) + 20)) < 1e-4


@pytest.mark.parametrize(("bits", "qmax"), [(7, 63), (8, 127)])
def test_weight_quant_per_channel_symmetric(bits: int, qmax: int) -> None:
    w = torch.randn(6, 4, 3, 3) * torch.arange(1, 7).float()[:, None, None, None]
    wq = WeightQuant(w, bits=bits)
    assert torch.allclose(wq.scale, w.flatten(1).abs().max(1).values / qmax, rtol=1e-5)
    q = wq.quantize(w)
    assert q.dtype == torch.int8 and int(q.min()) >= -qmax and int(q.max()) <= qmax
    assert int(q.abs().amax()) == qmax  # every channel's largest weight lands on the edge of the range
    assert torch.equal(wq(w), q.float() * wq.scale[:, None, None, None])  # fake-quant = what gets stored
    err = (w - wq(w)).abs()
    assert torch.all(err <= wq.scale[:, None, None, None] / 2 + 1e-6)  # Eq. 9 error is at most half a step


def test_default_weights_are_7_bit_so_no_int16_pair_sum_saturates() -> None:
    """u8 x s8 without VNNI adds two products in int16: 255 * |w| * 2 must stay <= 32767 for every weight."""
    assert weight_range() == (-63, 63) and weight_range(7, symmetric=False) == (-64, 63)
    assert weight_range(8) == (-127, 127) and weight_range(8, symmetric=False) == (-128, 127)
    for lo, hi in (weight_range(), weight_range(7, symmetric=False)):
        assert 255 * max(-lo, hi) * 2 <= 32767
    assert 255 * 127 * 2 > 32767  # why 8 bits is not the default
    with pytest.raises(ValueError, match="allowed values are 7, 8"):
        weight_range(6)
    torch.manual_seed(0)
    model = build_model(default_arch(width=0.125)).eval()
    q = quantize_folded(fold_model(model), folded_layers(model), torch.rand(8, 1, 48, 48), "minmax")
    assert max(int(ql.w_int8.abs().max()) for ql in export_layers(q)) == 63


@pytest.mark.parametrize(("bits", "lo", "hi"), [(7, -64, 63), (8, -128, 127)])
def test_asymmetric_weights_use_a_zero_point(bits: int, lo: int, hi: int) -> None:
    w = torch.rand(3, 8) + 0.5  # all positive: asymmetric range beats symmetric
    asym, sym = WeightQuant(w, symmetric=False, bits=bits), WeightQuant(w, bits=bits)
    assert bool(asym.zero_point.ne(0).any())
    assert (w - asym(w)).abs().mean() < (w - sym(w)).abs().mean()
    q = asym.quantize(w)
    assert int(q.min()) >= lo and int(q.max()) <= hi and int(q.max()) == hi  # the whole range, not beyond


def test_act_quant_input_grid_is_lossless_for_pixels() -> None:
    pixels = torch.arange(256).float() / 255
    aq = ActQuant(1.0, learn=False)
    assert torch.allclose(aq(pixels), pixels, atol=1e-6)


def test_calibration_methods_order() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.exponential(1.0, 100_000), [80.0]]).astype(np.float32)  # one outlier
    t = entropy_threshold(values)
    assert 1.0 < t < 40.0  # KL calibration clips the outlier
    torch.manual_seed(0)
    model = build_model(default_arch(width=0.125)).eval()
    folded = fold_model(model)
    x = torch.rand(32, 1, 48, 48)
    mm, pc = calibrate(folded, x, "minmax"), calibrate(folded, x, "percentile")
    assert mm["features.0"] == pc["features.0"] == 1.0
    assert all(pc[k] <= mm[k] for k in mm)
    with pytest.raises(ValueError, match="valid: minmax, percentile, entropy"):
        calibrate(folded, x, "mse")


def test_ptq_model_tracks_fp32_and_exports_int8() -> None:
    torch.manual_seed(0)
    model = build_model(default_arch(width=0.125)).eval()
    folded, layers = fold_model(model), folded_layers(model)
    x = torch.rand(64, 1, 48, 48)
    q = quantize_folded(folded, layers, x, "minmax")
    with torch.no_grad():
        ref, out = folded(x), q(x)
    rel = (out - ref).abs().max() / ref.abs().max()
    assert rel < 0.1
    qls = export_layers(q)
    assert [ql.name for ql in qls] == folded.names
    assert all(ql.w_int8.dtype == torch.int8 and ql.w_scale.shape == (ql.w_int8.shape[0],) for ql in qls)
    assert all(ql.act_zero_point == 0 and ql.weight_error > 0 for ql in qls)


def test_weight_bits_is_part_of_the_artifact_cache_key() -> None:
    """Artifacts built with 8-bit weights are never reused for 7 (or back): the setting is in every cache key."""
    from common.config import load_config
    from compression.variants import config_hash

    model = build_model(default_arch(width=0.125))
    seven, eight = load_config(None), load_config(None, ["compress.weight_bits=8"])
    assert (seven.compress.weight_bits, eight.compress.weight_bits) == (7, 8)
    assert config_hash(seven, model) != config_hash(eight, model)  # variant directories (manifest config_hash)
    sections = ("model", "train", "compress")  # harness.pipeline.artifacts_dir: the artifact cache folder
    assert seven.section_hash(*sections) != eight.section_hash(*sections)
