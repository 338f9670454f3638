"""The CPU backends on real artifacts through the Backend contract: logits agree with the PyTorch
reference, settings are what they claim (f32 really f32, int8 really int8), bad input is a one-line error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from backends.artifact import MANIFEST, ONNX_FILE, load_artifact, sha256_file
from backends.base import BackendOptions, Unavailable
from backends.registry import get_backend_class
from backends.torch_model import FAKE_QUANT_LABEL, INT8_KERNEL_LABEL, load_reference
from common.cpu import has_native_bf16
from common.errors import UserError

CPU_BACKENDS = ("torch-eager", "openvino", "onnxruntime")
OPTIONS = BackendOptions(threads=1, batch_sizes=(1, 4))


def _reference_logits(path: Path, x: np.ndarray) -> np.ndarray:
    model, _ = load_reference(load_artifact(path))
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_backend_matches_reference_on_every_variant(backend: str, artifacts: dict[str, Path],
                                                    tiny_data: object) -> None:
    x = tiny_data.test.as_float()[:16]  # type: ignore[attr-defined]
    for variant, path in artifacts.items():
        b = get_backend_class(backend)()
        b.load(load_artifact(path), OPTIONS)
        try:
            one = b.infer(np.ascontiguousarray(x[:1])).copy()  # infer's buffer is reused by the next call
            four = b.infer(np.ascontiguousarray(x[:4])).copy()
            many = b.infer_many([np.ascontiguousarray(x[i : i + 4]) for i in range(0, 16, 4)])
            d = b.describe()
        finally:
            b.close()
        ref = _reference_logits(path, x)
        assert one.shape == (1, 7) and four.shape == (4, 7) and one.dtype == np.float32
        np.testing.assert_allclose(four[:1], one, rtol=1e-3, atol=1e-3)
        got = np.concatenate(many)
        scale = float(np.abs(ref).max())
        tol = 1e-3 * scale if path.name.endswith("fp32") else 0.05 * scale  # int8: rounding at a few ties
        assert np.abs(got - ref).max() <= tol, (backend, variant)
        assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.9, (backend, variant)
        for key in ("threads", "precision", "label", "int8_layers", "total_layers", "device"):
            assert key in d, (backend, key)
        assert d["total_layers"] == 15  # 13 conv + 2 FC
        assert b.loaded_bytes() > 0
        if variant.endswith("int8"):
            if backend == "torch-eager":
                assert d["label"] in (INT8_KERNEL_LABEL, FAKE_QUANT_LABEL)
            else:  # the QDQ model really runs int8 on both CPU runtimes
                assert d["int8_layers"] >= 13, (backend, d)
        else:
            assert d["int8_layers"] == 0 and d["precision"] == "fp32"


def test_torch_eager_int8_uses_real_kernels_where_torch_ships_them(artifacts: dict[str, Path]) -> None:
    int8 = [p for v, p in artifacts.items() if v.endswith("int8")]
    b = get_backend_class("torch-eager")()
    b.load(load_artifact(int8[0]), OPTIONS)
    assert b.describe()["label"] == INT8_KERNEL_LABEL and b.describe()["int8_layers"] == 14
    forced = get_backend_class("torch-eager")()
    forced.load(load_artifact(int8[0]), BackendOptions(threads=1, extra={"int8_mode": "fake-quant"}))
    assert forced.describe()["label"] == FAKE_QUANT_LABEL and forced.describe()["int8_layers"] == 0


def test_openvino_fp32_really_runs_f32_and_bf16_is_opt_in(fp32_artifact: Path) -> None:
    cls = get_backend_class("openvino")
    f32 = cls()
    f32.load(load_artifact(fp32_artifact), OPTIONS)
    d = f32.describe()
    assert d["properties"]["INFERENCE_PRECISION_HINT"] in ("f32", "float32")
    assert d["properties"]["PERFORMANCE_HINT"] == "LATENCY" and d["properties"]["NUM_STREAMS"] == 1
    assert d["properties"]["INFERENCE_NUM_THREADS"] == 1
    # every conv/FC layer (and the JIT subgraph the static latency model fuses its classifier into) ran f32
    ran = d["layer_precisions"]
    assert {k.rsplit(":", 1)[1] for k in ran} == {"f32"} and "Convolution:f32" in ran
    assert d["static_shape"] == [1, 1, 48, 48] and d["total_layers"] == 15
    assert d["precision_note"] == "" and d["label"] == "fp32"
    bf16 = cls()
    bf16.load(load_artifact(fp32_artifact), BackendOptions(threads=1, extra={"precision": "bf16"}))
    b = bf16.describe()
    assert b["requested_precision"] == "bf16"
    if has_native_bf16():  # avx512_bf16 / amx_bf16: OpenVINO honours the request
        assert b["precision"] == "bf16" and b["precision_note"] == "", b
    else:  # no bf16 in this CPU: an fp32 row that says the request was not honoured (not a silent fp32)
        assert b["precision"] == "fp32" and b["compute_precision"] == "fp32", b
        assert {k.rsplit(":", 1)[1] for k in b["layer_precisions"]} == {"f32"}, b
        assert b["precision_note"] == "bf16 requested, CPU has no bf16: ran f32", b
        assert b["label"] == "fp32 (bf16 requested, CPU has no bf16: ran f32)", b
    with pytest.raises(UserError, match="allowed values"):
        cls().load(load_artifact(fp32_artifact), BackendOptions(threads=1, extra={"precision": "fp16"}))


def test_openvino_throughput_mode_keeps_requests_in_flight_and_order(fp32_artifact: Path, tiny_data: object) -> None:
    x = tiny_data.test.as_float()[:24]  # type: ignore[attr-defined]
    b = get_backend_class("openvino")()
    b.load(load_artifact(fp32_artifact), BackendOptions(threads=2, batch_sizes=(1, 4), scenario="throughput"))
    assert b.describe()["properties"]["PERFORMANCE_HINT"] == "THROUGHPUT"
    assert b.preferred_requests() >= 1
    batches = [np.ascontiguousarray(x[i : i + 4]) for i in range(0, 24, 4)]
    outs = b.infer_many(batches)
    for got, batch in zip(outs, batches, strict=True):
        np.testing.assert_allclose(got, b.infer(batch), rtol=1e-4, atol=1e-5)
    b.close()


def test_input_shape_mismatch_is_one_line_error(fp32_artifact: Path) -> None:
    for name in CPU_BACKENDS:
        b = get_backend_class(name)()
        b.load(load_artifact(fp32_artifact), OPTIONS)
        with pytest.raises(UserError) as e:
            b.infer(np.zeros((1, 3, 48, 48), dtype=np.float32))
        assert "does not match the model input [1, 48, 48]" in str(e.value) and "\n" not in str(e.value)
        with pytest.raises(UserError):
            b.infer(np.zeros((0, 1, 48, 48), dtype=np.float32))
        b.close()


def _corrupt_onnx(src: Path, dst: Path) -> Path:
    """A copy whose model.onnx is garbage but whose manifest hashes match (so only the runtime can tell)."""
    shutil.copytree(src, dst)
    (dst / ONNX_FILE).write_bytes(b"\x08\x07garbage-not-a-protobuf" * 10)
    manifest = json.loads((dst / MANIFEST).read_text())
    manifest["files"][ONNX_FILE] = {"bytes": (dst / ONNX_FILE).stat().st_size, "sha256": sha256_file(dst / ONNX_FILE)}
    (dst / MANIFEST).write_text(json.dumps(manifest))
    return dst


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_corrupt_onnx_is_one_line_error(backend: str, fp32_artifact: Path, tmp_path: Path) -> None:
    art = load_artifact(_corrupt_onnx(fp32_artifact, tmp_path / "corrupt"))
    with pytest.raises(UserError) as e:
        get_backend_class(backend)().load(art, OPTIONS)
    assert f"{backend}: cannot" in str(e.value) and "\n" not in str(e.value)


def test_unavailable_devices_and_providers_say_how_to_fix(fp32_artifact: Path) -> None:
    art = load_artifact(fp32_artifact)
    with pytest.raises(Unavailable, match="provider = 'cpu'"):
        get_backend_class("onnxruntime")().load(art, BackendOptions(extra={"provider": "cuda"}))
    if not torch.cuda.is_available():
        with pytest.raises(Unavailable, match="device = 'cpu'"):
            get_backend_class("torch-eager")().load(art, BackendOptions(extra={"device": "cuda"}))


def test_onnxruntime_counts_qlinear_nodes_of_int8_graphs(artifacts: dict[str, Path]) -> None:
    int8 = [p for v, p in artifacts.items() if v.endswith("int8")]
    b = get_backend_class("onnxruntime")()
    b.load(load_artifact(int8[0]), OPTIONS)
    d = b.describe()
    assert d["providers"][0] == "CPUExecutionProvider"
    assert d["optimized_ops"].get("QLinearConv", 0) == 13
    assert d["int8_layers"] >= 13 and d["label"].startswith("int8 (")


def test_three_channel_artifact_refuses_one_channel_input(tmp_path: Path, make_fp32_artifact: Any) -> None:
    art = load_artifact(make_fp32_artifact(tmp_path / "rgb", in_channels=3))
    b = get_backend_class("onnxruntime")()
    b.load(art, OPTIONS)
    assert b.infer(np.zeros((2, 3, 48, 48), dtype=np.float32)).shape == (2, 7)
    with pytest.raises(UserError, match="does not match"):
        b.infer(np.zeros((2, 1, 48, 48), dtype=np.float32))


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_call_path_reuses_bound_buffers(backend: str, artifacts: dict[str, Path], tiny_data: object) -> None:
    """No allocation per call: the same bound output buffer comes back each call (same batch size), filled with
    the right logits for each input."""
    x = tiny_data.test.as_float()[:3]  # type: ignore[attr-defined]
    b = get_backend_class(backend)()
    b.load(load_artifact(artifacts["l1-int8"]), OPTIONS)
    try:
        first = b.infer(np.ascontiguousarray(x[:1]))
        kept = first.copy()
        second = b.infer(np.ascontiguousarray(x[1:2]))
        assert second is first  # one buffer, reused
        again = b.infer(np.ascontiguousarray(x[:1]))
        np.testing.assert_array_equal(again, kept)
        many = b.infer_many([np.ascontiguousarray(x[i : i + 1]) for i in range(3)])
        assert len({id(m) for m in many}) == 3 and not any(m is first for m in many)  # the caller's own arrays
        np.testing.assert_array_equal(many[0], kept)
    finally:
        b.close()


def test_onnxruntime_counts_int8_nodes_in_the_session_it_times(artifacts: dict[str, Path],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The int8 count comes from the optimized graph written by the timed session itself: loading and describing
    build exactly one InferenceSession."""
    import onnxruntime as ort

    made: list[object] = []
    real = ort.InferenceSession

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            made.append(args[1] if len(args) > 1 else kwargs.get("sess_options"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", Counting)
    b = get_backend_class("onnxruntime")()
    b.load(load_artifact(artifacts["dense-int8"]), OPTIONS)
    d = b.describe()
    b.close()
    assert len(made) == 1 and made[0].optimized_model_filepath  # type: ignore[attr-defined]
    assert d["int8_layers"] >= 13 and d["layers_from"] == "the timed session"
