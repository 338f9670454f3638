"""The torch-compile backend on the CPU: compiles a small artifact during load, agrees with torch-eager, reports
its modes and recompiles, labels int8 as simulated, and says why when it cannot run (no C++ compiler).

Inductor compiles C++ kernels on the CPU (tens of seconds on 2 cores per graph), so each model here is compiled
once, for one batch size, and the int8 model's padding path reuses its single graph."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from backends.artifact import MANIFEST, SCHEMA_VERSION, TORCH_FILE, load_artifact, sha256_file
from backends.base import BackendOptions, Unavailable
from backends.registry import get_backend_class, probe, resolve_config
from backends.torch_compile import backend as tc
from backends.torch_model import FAKE_QUANT_LABEL
from common.config import load_config


def _int8_artifact(out: Path) -> Path:
    """A tiny int8 artifact (model.pt only: all this backend reads), quantized the way `bench compress` does."""
    from compression.fold import fold_model, folded_layers
    from compression.quant import export_layers, quantize_folded
    from compression.writer import int8_payload
    from fer.model import arch_of, build_model, default_arch

    torch.manual_seed(0)
    dense = build_model(default_arch(width=0.125)).eval()
    q = quantize_folded(fold_model(dense), folded_layers(dense), torch.rand(32, 1, 48, 48), "minmax")
    out.mkdir()
    torch.save(int8_payload(arch_of(dense), export_layers(q), True), out / TORCH_FILE)
    f = out / TORCH_FILE
    files = {TORCH_FILE: {"bytes": f.stat().st_size, "sha256": sha256_file(f)}}
    manifest = {"schema_version": SCHEMA_VERSION, "variant": "dense-int8", "precision": "int8",
                "input_shape": [1, 48, 48], "files": files}
    (out / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return out


def _run(backend: str, path: Path, batch_sizes: tuple[int, ...], x: np.ndarray) -> tuple[list[np.ndarray], Any]:
    b = get_backend_class(backend)()
    b.load(load_artifact(path), BackendOptions(threads=2, batch_sizes=batch_sizes, extra={"device": "cpu"}))
    try:
        outs = [b.infer(np.ascontiguousarray(x[:n])) for n in (1, len(x))]
        return outs, b.describe()
    finally:
        b.close()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).random((5, 1, 48, 48), dtype=np.float32)


def test_registered_with_settings_and_available_here() -> None:
    cfg = resolve_config(load_config(None, ["benchmark.backends=['torch-compile']"]))
    assert cfg.benchmark.backends == ["torch-compile"]
    assert cfg.backends["torch-compile"] == {"device": "cpu", "mode": "auto", "dynamic": False, "freezing": True,
                                             "channels_last": True}
    a = probe("torch-compile")
    assert a.available, a.reason
    assert "cpu" in a.device and a.versions["torch"] == torch.__version__


def test_probe_and_load_say_why_without_a_cxx_compiler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                       make_fp32_artifact: Any) -> None:
    monkeypatch.setattr(tc.shutil, "which", lambda _name: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    a = tc.TorchCompileBackend.probe()
    assert not a.available and "C++ compiler" in a.reason
    art = load_artifact(make_fp32_artifact(tmp_path / "dense-fp32"))
    with pytest.raises(Unavailable, match="C\\+\\+ compiler"):
        tc.TorchCompileBackend().load(art, BackendOptions(extra={"device": "cpu"}))


def test_cuda_without_cuda_is_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                         make_fp32_artifact: Any) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    art = load_artifact(make_fp32_artifact(tmp_path / "dense-fp32"))
    with pytest.raises(Unavailable, match="device = 'cuda'"):
        tc.TorchCompileBackend().load(art, BackendOptions(extra={"device": "cuda"}))


def test_mode_per_batch_size() -> None:
    assert tc.pick_mode("cpu", 1) == tc.pick_mode("cpu", 32) == "default"
    assert tc.pick_mode("cuda", 1) == "reduce-overhead" and tc.pick_mode("cuda", 32) == "max-autotune"


def test_fp32_agrees_with_torch_eager(tmp_path: Path, images: np.ndarray, make_fp32_artifact: Any) -> None:
    path = make_fp32_artifact(tmp_path / "dense-fp32")
    (one, five), d = _run("torch-compile", path, (1,), images)
    (e_one, e_five), _ = _run("torch-eager", path, (1,), images)
    scale = float(np.abs(e_five).max())
    np.testing.assert_allclose(five, e_five, atol=1e-3 * scale)
    np.testing.assert_allclose(one, e_one, atol=1e-3 * scale)
    assert d["label"] == "fp32" and d["mode"] == {"1": "default"} and d["dynamic"] is False
    assert d["compiled_graphs"] == 1 and d["recompiles"] == 0  # the batch of 5 ran as 5 padded calls of 1
    assert d["compile_s"]["1"] > 0 and d["total_layers"] == 15


def test_int8_runs_simulated_and_is_labelled_so(tmp_path: Path, images: np.ndarray) -> None:
    path = _int8_artifact(tmp_path / "dense-int8")
    (one, five), d = _run("torch-compile", path, (2,), images)  # 1 -> padded to 2; 5 -> 2 + 2 + 1 padded
    (_, e_five), _ = _run("torch-eager", path, (2,), images)
    assert d["label"] == FAKE_QUANT_LABEL and d["int8_layers"] == 0 and d["precision"] == "int8"
    assert d["recompiles"] == 0 and d["padded_calls"] == 2
    scale = float(np.abs(e_five).max())
    assert np.abs(five - e_five).max() <= 0.05 * scale  # fake-quant: a rounding tie may flip one step
    np.testing.assert_allclose(one, five[:1], atol=1e-4 * scale)
