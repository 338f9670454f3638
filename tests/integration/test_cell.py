"""One cell in a fresh subprocess: real measurements, and every bad input becomes that cell's one-line error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backends.artifact import MANIFEST, ONNX_FILE, TORCH_FILE, sha256_file
from common.model_id import model_text
from fer.data import FerData
from harness.measure.cell import CellSpec
from harness.measure.launcher import run_cell_subprocess


@pytest.fixture()
def inputs(tmp_path: Path, tiny_data: FerData) -> tuple[Path, Path]:
    x, y = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x, tiny_data.test.as_float())
    np.save(y, tiny_data.test.labels)
    return x, y


def _spec(backend: str, artifact: Path, inputs: tuple[Path, Path], tmp: Path, **kw: object) -> CellSpec:
    base: dict[str, object] = dict(backend=backend, artifact=str(artifact), images=str(inputs[0]),
                                   labels=str(inputs[1]), threads=1, batch_sizes=[1, 4],
                                   scenarios=[["latency", 1], ["throughput", 4]], warmup_s=0.02,
                                   min_duration_s=0.05, min_iterations=30, logits_out=str(tmp / "logits.npy"))
    base.update(kw)
    return CellSpec(**base)  # type: ignore[arg-type]


def _run(spec: CellSpec, tmp: Path, timeout: float = 120.0) -> dict[str, object]:
    return run_cell_subprocess(spec, tmp / "cell", timeout, tmp / "cell.log", threads=1)


def test_cell_measures_latency_throughput_accuracy(fp32_artifact: Path, inputs: tuple[Path, Path],
                                                   tmp_path: Path, tiny_data: FerData) -> None:
    r = _run(_spec("onnxruntime", fp32_artifact, inputs, tmp_path), tmp_path)
    assert r["status"] == "ok", r
    assert r["cold_start_ms"] == pytest.approx(r["load_ms"] + r["first_infer_ms"], rel=1e-6)  # type: ignore[operator]
    scenarios: list[dict[str, Any]] = r["scenarios"]  # type: ignore[assignment]
    lat, thr = scenarios
    assert lat["scenario"] == "latency" and len(lat["samples_ms"]) >= 30 and lat["duration_s"] >= 0.05
    assert thr["scenario"] == "throughput" and thr["images_per_sample"] == 4 * thr["requests_in_flight"]
    metrics = r["metrics"]
    assert 0.0 <= metrics["accuracy"] <= 1.0  # type: ignore[index]
    assert np.asarray(metrics["confusion"]).sum() == len(tiny_data.test)  # type: ignore[index]
    logits = np.load(tmp_path / "logits.npy")
    assert logits.shape == (len(tiny_data.test), 7)
    assert r["peak_rss_bytes"] > 10 * 2**20  # type: ignore[operator]
    # what was timed: the sha256 of the very file ONNX Runtime loaded, and the model in words
    assert r["artifact_file"] == ONNX_FILE
    assert r["artifact_sha256"] == sha256_file(fp32_artifact / ONNX_FILE)
    manifest = json.loads((fp32_artifact / MANIFEST).read_text())
    assert r["model"] == model_text(manifest) and str(r["model"]).startswith("VGG16-FER x")


def test_torch_cell_names_the_torch_file(fp32_artifact: Path, inputs: tuple[Path, Path], tmp_path: Path) -> None:
    r = _run(_spec("torch-eager", fp32_artifact, inputs, tmp_path, scenarios=[["latency", 1]], batch_sizes=[1]),
             tmp_path)
    assert r["status"] == "ok", r
    assert r["artifact_file"] == TORCH_FILE
    assert r["artifact_sha256"] == sha256_file(fp32_artifact / TORCH_FILE)


def test_hash_mismatch_is_that_cells_error(fp32_artifact: Path, inputs: tuple[Path, Path], tmp_path: Path) -> None:
    bad = tmp_path / "tampered"
    shutil.copytree(fp32_artifact, bad)
    data = bytearray((bad / ONNX_FILE).read_bytes())
    data[-10] ^= 0xFF  # same size, different content
    (bad / ONNX_FILE).write_bytes(bytes(data))
    r = _run(_spec("openvino", bad, inputs, tmp_path), tmp_path)
    assert r["status"] == "error" and "does not match its sha256" in str(r["reason"])
    assert not (tmp_path / "logits.npy").exists()  # nothing half-written


def test_truncated_onnx_is_that_cells_error(fp32_artifact: Path, inputs: tuple[Path, Path], tmp_path: Path) -> None:
    bad = tmp_path / "truncated"
    shutil.copytree(fp32_artifact, bad)
    data = (bad / ONNX_FILE).read_bytes()
    (bad / ONNX_FILE).write_bytes(data[: len(data) // 2])
    r = _run(_spec("onnxruntime", bad, inputs, tmp_path), tmp_path)
    assert r["status"] == "error" and "truncated" in str(r["reason"]) and "\n" not in str(r["reason"])


def test_bad_requests_are_one_line_errors(fp32_artifact: Path, inputs: tuple[Path, Path], tmp_path: Path) -> None:
    r = _run(_spec("onnxruntime", fp32_artifact, inputs, tmp_path, batch_sizes=[0]), tmp_path)
    assert r["status"] == "error" and "must be >= 1" in str(r["reason"])
    r = _run(_spec("tflite", fp32_artifact, inputs, tmp_path), tmp_path)
    assert r["status"] == "error" and "valid: torch-eager, openvino, onnxruntime, tensorrt" in str(r["reason"])
    no_manifest = tmp_path / "empty"
    no_manifest.mkdir()
    r = _run(_spec("onnxruntime", no_manifest, inputs, tmp_path), tmp_path)
    assert r["status"] == "error" and MANIFEST in str(r["reason"])


def test_input_shape_mismatch_is_that_cells_error(tmp_path: Path, inputs: tuple[Path, Path],
                                                  make_fp32_artifact: object) -> None:
    rgb = make_fp32_artifact(tmp_path / "rgb", in_channels=3)  # type: ignore[operator]
    r = _run(_spec("openvino", rgb, inputs, tmp_path), tmp_path)
    assert r["status"] == "error" and "model input is [3, 48, 48]" in str(r["reason"])


def test_crash_and_hang_cost_only_the_cell(fp32_artifact: Path, inputs: tuple[Path, Path], tmp_path: Path) -> None:
    # a spec the worker cannot even parse: the interpreter dies with a traceback and writes no result file
    class Unparseable(CellSpec):
        def to_json(self) -> str:
            return json.dumps({"no_such_field": 1})

    r = _run(Unparseable(**_spec("onnxruntime", fp32_artifact, inputs, tmp_path).__dict__), tmp_path)
    assert r["status"] == "error" and str(r["reason"]).startswith("cell crashed (exit code 1)")
    slow = _spec("onnxruntime", fp32_artifact, inputs, tmp_path, min_duration_s=60.0)
    r = _run(slow, tmp_path, timeout=3.0)
    assert r["status"] == "timeout" and "cell_timeout_s = 3 s" in str(r["reason"])


def test_spec_round_trips_through_json(fp32_artifact: Path, inputs: tuple[Path, Path], tmp_path: Path) -> None:
    spec = _spec("openvino", fp32_artifact, inputs, tmp_path, extra={"precision": "f32"})
    assert CellSpec.from_json(spec.to_json()) == spec
    assert json.loads(spec.to_json())["extra"] == {"precision": "f32"}
