"""compile_cpu on the real OpenVINO CPU plugin: no note where the int8 Snippets fusion does not happen, and where it
is forced, a recompile without any Snippets Subgraph (the switch is global), checked against an independent
compile, with the note in the backend's describe, its label and the cell's result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backends.artifact import ONNX_FILE, load_artifact
from backends.base import BackendOptions
from backends.openvino.compile import SNIPPETS_LABEL, SNIPPETS_NOTE, compile_cpu, int8_snippet_nodes, subgraph_nodes
from backends.registry import get_backend_class
from fer.data import FerData
from harness.measure.cell import CellSpec
from harness.measure.launcher import run_cell_subprocess

ov = pytest.importorskip("openvino")
CONFIG = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": "1"}


def _static(core: object, path: Path) -> object:
    m = core.read_model(str(path))  # type: ignore[attr-defined]
    m.reshape([1, *json.loads((path.parent / "manifest.json").read_text())["input_shape"]])
    return m


def test_note_only_where_the_int8_fusion_happens(artifacts: dict[str, Path]) -> None:
    path = artifacts["dense-int8"] / ONNX_FILE
    core = ov.Core()
    plain = core.compile_model(_static(core, path), "CPU", dict(CONFIG))
    compiled, note = compile_cpu(core, _static(core, path), dict(CONFIG), lambda: _static(core, path),
                                 check_model=lambda: core.read_model(str(path)))
    assert bool(note) == bool(int8_snippet_nodes(plain))  # this machine's compiled model decides, both ways
    assert int8_snippet_nodes(compiled) == 0


def test_forced_recompile_disables_every_subgraph_and_is_checked(artifacts: dict[str, Path]) -> None:
    path = artifacts["dense-int8"] / ONNX_FILE
    core, config = ov.Core(), dict(CONFIG)
    compiled, note = compile_cpu(core, _static(core, path), config, lambda: _static(core, path),
                                 check_model=lambda: core.read_model(str(path)), fused=lambda _c: 1)
    assert note.startswith(SNIPPETS_NOTE) and "checked on a fixed input" in note
    assert config["SNIPPETS_MODE"] == "DISABLE" and subgraph_nodes(compiled) == 0  # float Subgraphs too
    x = np.random.default_rng(1).random((1, *compiled.input(0).get_partial_shape().to_shape()[1:]),
                                        dtype=np.float32)
    assert np.all(np.isfinite(compiled.create_infer_request().infer({0: x})[compiled.output(0)]))


def test_backend_and_cell_carry_the_note(artifacts: dict[str, Path], tiny_data: FerData, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    art = load_artifact(artifacts["dense-int8"])
    be = get_backend_class("openvino")()
    be.load(art, BackendOptions(threads=1))
    desc = be.describe()
    be.close()
    # on this machine: a note (and "Snippets off" in the label) exactly when the int8 fusion happened here
    assert (SNIPPETS_LABEL in desc["label"]) == bool(desc["compile_note"])
    x, y = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x, tiny_data.test.as_float())
    np.save(y, tiny_data.test.labels)
    spec = CellSpec(backend="openvino", artifact=str(artifacts["dense-int8"]), images=str(x), labels=str(y),
                    threads=1, timing=False)
    r = run_cell_subprocess(spec, tmp_path / "cell", 120.0, tmp_path / "cell.log", threads=1)
    assert r["status"] == "ok", r
    assert r["compile_note"] == (r["describe"]["compile_note"] or None)  # type: ignore[index]
    assert (r["compile_note"] is None) == (desc["compile_note"] == "")
