"""BN folding preserves the model's outputs; the FP32 ONNX graph matches PyTorch."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from compression.export import fp32_onnx
from compression.fold import fold_conv_bn, fold_model, folded_layers
from compression.qdq_check import check_fp32
from compression.verify import ort_logits
from fer.model import build_model, default_arch


def _model_with_real_bn() -> Any:
    torch.manual_seed(0)
    model = build_model(default_arch(width=0.125))
    model.train()
    with torch.no_grad():
        for _ in range(3):  # non-trivial running statistics
            model(torch.rand(16, 1, 48, 48))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


def test_fold_conv_bn_single_layer() -> None:
    torch.manual_seed(1)
    conv, bn = nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5)
    assert bn.running_mean is not None and bn.running_var is not None
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.1, 3)
        bn.weight.uniform_(-2, 2)
        bn.bias.uniform_(-1, 1)
    bn.eval()
    w, b = fold_conv_bn(conv, bn)
    x = torch.randn(4, 3, 8, 8)
    ref = bn(conv(x))
    out = nn.functional.conv2d(x, w, b, padding=1)
    assert (out - ref).abs().max().item() <= 1e-4


def test_folded_model_matches_original() -> None:
    model = _model_with_real_bn()
    folded = fold_model(model)
    x = torch.rand(32, 1, 48, 48)
    with torch.no_grad():
        diff = (folded(x) - model(x)).abs().max().item()
    assert diff <= 1e-4
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())


def test_fp32_onnx_matches_torch(tmp_path) -> None:
    model = _model_with_real_bn()
    proto = fp32_onnx(folded_layers(model), 1)
    assert check_fp32(proto) == []
    path = tmp_path / "model.onnx"
    onnx.save(proto, str(path))
    x = np.random.default_rng(0).random((5, 1, 48, 48), dtype=np.float32)  # batch 5: dynamic batch axis
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(ort_logits(path, x) - ref).max() <= 1e-4
