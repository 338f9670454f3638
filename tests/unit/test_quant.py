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


def test_weight_quant_per_channel_symmetric() -> None:
    w = torch.randn(6, 4, 3, 3) * torch.arange(1, 7).float()[:, None, None, None]
    wq = WeightQuant(w)
    assert torch.allclose(wq.scale, w.flatten(1).abs().max(1).values / 127, rtol=1e-5)
    q = wq.quantize(w)
    assert q.dtype == torch.int8 and int(q.min()) >= -127 and int(q.max()) <= 127
    err = (w - wq(w)).abs()
    assert torch.all(err <= wq.scale[:, None, None, None] / 2 + 1e-6)  # Eq. 9 error is at most half a step


def test_asymmetric_weights_use_a_zero_point() -> None:
    w = torch.rand(3, 8) + 0.5  # all positive: asymmetric range beats symmetric
    asym, sym = WeightQuant(w, symmetric=False), WeightQuant(w)
    assert bool(asym.zero_point.ne(0).any())
    assert (w - asym(w)).abs().mean() < (w - sym(w)).abs().mean()


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
