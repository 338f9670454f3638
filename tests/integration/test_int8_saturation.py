"""The int8 files are right on x86 CPUs without VNNI (8-bit weights saturate there): a tiny model built to saturate.

One conv whose weights all have the same sign and the full range, on images near white (activations ~255),
then a linear layer: with 8-bit weights every u8 x s8 pair-sum (255 * 127 * 2 = 64770) overflows the int16
of AVX2's `vpmaddubsw`, so ONNX Runtime, OpenVINO and torch's x86 engine compute another model than the
fake-quant reference; with the default 7-bit weights (|w| <= 63, pair-sums <= 32130) they all agree. On a
VNNI CPU (int32 accumulation) the 8-bit file agrees too: each CPU runs the half of the 8-bit pair that says what
its kernels do (saturation without VNNI, agreement with it), and skips the other with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from backends.torch_model import build_int8_kernels, int8_kernels_supported
from common.cpu import cpu_flags, has_vnni
from compression.export import cpu_qdq_onnx
from compression.fold import FoldedLayer
from compression.quant import QuantVGG, export_layers
from compression.verify import ort_logits, ov_logits, top1_agreement
from compression.writer import int8_payload

CIN, COUT, CLASSES = 8, 16, 7
RUNTIMES = ("onnxruntime", "openvino", "torch-eager")
AGREE_TOL = 0.01  # max |logit diff| / max |logit|: int8 rounding at a few ties (measured ~2e-3 on AVX2)
SATURATED = 0.25  # a saturated file is off by far more (measured ~5.7 on AVX2: the conv output collapses)
CPU_KIND = "VNNI" if has_vnni() else "no VNNI (AVX2 vpmaddubsw)"


def _layers() -> tuple[list[FoldedLayer], dict[str, float], torch.Tensor]:
    """Float layers whose int8 version saturates at 8 bits, their activation ranges, and the images."""
    g = torch.Generator().manual_seed(0)
    w = 0.5 + 0.5 * torch.rand(COUT, CIN, 3, 3, generator=g)  # same sign, per-channel max -> +-qmax
    lin = torch.randn(CLASSES, COUT * 48 * 48, generator=g) * 0.01
    x = 0.9 + 0.1 * torch.rand(64, CIN, 48, 48, generator=g)  # uint8 activations 230..255
    bias = -F.conv2d(x, w, padding=1).mean((0, 2, 3))  # centre the conv output: a real signal after ReLU
    h = torch.relu(F.conv2d(x, w, bias, padding=1))
    lin_bias = -(torch.flatten(h, 1) @ lin.T).mean(0)  # centre the logits: top-1 varies between images
    layers = [FoldedLayer("features.0", "conv", w, bias, relu=True, pool_after=False),
              FoldedLayer("classifier.3", "linear", lin, lin_bias, relu=False, pool_after=False)]
    return layers, {"features.0": 1.0, "classifier.3": float(h.max())}, x


def _run(runtime: str, bits: int, tmp: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(runtime logits, fake-quant reference logits, largest |stored weight|) of the `bits`-wide export."""
    layers, alphas, x = _layers()
    q = QuantVGG(layers, alphas, weight_bits=bits).eval()
    with torch.no_grad():
        ref = q(x).numpy()
    ql = export_layers(q)
    wmax = max(int(layer.w_int8.abs().max()) for layer in ql)
    if runtime == "torch-eager":
        if not int8_kernels_supported():
            pytest.skip("this torch has no eager x86/fbgemm quantized engine")
        arch = {"in_channels": CIN, "features": [COUT], "hidden": CLASSES, "num_classes": CLASSES}
        model = build_int8_kernels(int8_payload(arch, ql, True, bits))
        assert model is not None, "torch ships the x86 engine but the int8 model did not build"
        with torch.inference_mode():
            return model(x).numpy(), ref, wmax
    path = tmp / f"w{bits}.onnx"
    onnx.save(cpu_qdq_onnx(ql, CIN), str(path))
    run: Callable[[Path, np.ndarray], np.ndarray] = ort_logits if runtime == "onnxruntime" else ov_logits
    return run(path, x.numpy()), ref, wmax


def _rel_diff(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def test_the_reference_depends_on_the_image() -> None:
    """Guard on the construction: a top-1 comparison against a constant reference would prove little."""
    layers, alphas, x = _layers()
    with torch.no_grad():
        ref = QuantVGG(layers, alphas, weight_bits=7).eval()(x)
    assert len(set(ref.argmax(1).tolist())) >= 3


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_7bit_weights_agree_with_their_reference_on_every_cpu(runtime: str, tmp_path: Path) -> None:
    got, ref, wmax = _run(runtime, 7, tmp_path)
    assert wmax == 63  # the narrow range is really used (same-sign full-scale weights)
    # the logit bound is the claim; top-1 is not asserted image by image: the centred logits leave some images at
    # near-ties (one at 0.12% of the logit scale), which rounding may flip on any CPU (ONNX Runtime on an AMX Xeon
    # flipped exactly that one) while the model is the right one
    assert _rel_diff(got, ref) <= AGREE_TOL, (runtime, CPU_KIND, _rel_diff(got, ref))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_8bit_weights_saturate_without_vnni(runtime: str, tmp_path: Path) -> None:
    """Shows the defect the 7-bit default removes; fails if 8-bit saturation stopped showing on AVX2 (then
    this file would no longer prove that the 7-bit agreement above is the fix)."""
    if has_vnni():
        pytest.skip("this CPU has VNNI (int32 accumulation of u8 x s8): the 8-bit file agrees too")
    got, ref, wmax = _run(runtime, 8, tmp_path)
    assert wmax == 127
    assert _rel_diff(got, ref) > SATURATED, (runtime, CPU_KIND, _rel_diff(got, ref))
    assert top1_agreement(got, ref) < 0.5, (runtime, CPU_KIND)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_8bit_weights_agree_with_vnni(runtime: str, tmp_path: Path) -> None:
    """The other half of the docs' claim: where u8 x s8 accumulates in int32 the full 8-bit grid is exact too
    (measured on an AMX Xeon: 1.6e-3 ONNX Runtime, 2.2e-3 OpenVINO, 1.8e-3 torch's x86 engine)."""
    if not has_vnni():
        pytest.skip("this CPU has no VNNI: the 8-bit file saturates here (the test above)")
    if runtime == "torch-eager" and not {"avx512_vnni", "amx_int8"} & cpu_flags():
        pytest.skip("torch's x86 engine (fbgemm) has VNNI kernels for AVX-512 VNNI only, not AVX-VNNI")
    got, ref, wmax = _run(runtime, 8, tmp_path)
    assert wmax == 127
    assert _rel_diff(got, ref) <= AGREE_TOL, (runtime, CPU_KIND, _rel_diff(got, ref))
