"""compile_cpu's decision: compile again without Snippets exactly when the runtime model fused int8 layers into a
Snippets Subgraph (the fusion that returned zeros on an AMX Xeon). The runtime models here are recorded rt_info
of that machine's compiled models (layerType, runtimePrecision); that the workaround gives the right logits is
tests/integration/test_backends_cpu.py's static batch-1 check on such a CPU."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from backends.openvino.compile import SNIPPETS_NOTE, compile_cpu, int8_snippet_nodes

# (layerType, runtimePrecision) of the tiny dense-int8 model's compute nodes, OpenVINO 2026.4.1, Xeon with AMX
FUSED = [("Subgraph", "f32"), *[("Convolution", "u8")] * 13, ("Subgraph", "u8")]  # static batch 1, 1 thread
UNFUSED = [*[("Convolution", "u8")] * 13, ("FullyConnected", "u8"), ("FullyConnected", "u8")]
FLOAT_SUBGRAPH = [("Subgraph", "f32"), *[("Convolution", "f32")] * 13, ("FullyConnected", "f32")]


class _Str:
    def __init__(self, value: str) -> None:
        self.value = value

    def astype(self, _: type) -> str:
        return self.value


class _Op:
    def __init__(self, layer_type: str, precision: str) -> None:
        self.info = {"layerType": _Str(layer_type), "runtimePrecision": _Str(precision)}

    def get_rt_info(self) -> dict[str, _Str]:
        return self.info


class _Dim:
    is_static = True

    def get_length(self) -> int:
        return 1


class _Request:
    def __init__(self, compiled: _Compiled) -> None:
        self.compiled = compiled

    def infer(self, inputs: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
        x = inputs[0]
        logits = np.tile(np.linspace(-1.0, 1.0, 7, dtype=np.float32) * float(x.mean()), (len(x), 1))
        # the fused int8 Subgraph returned zeros on the AMX Xeon; the unfused models compute the logits
        return {"out": np.zeros_like(logits) if int8_snippet_nodes(self.compiled) else logits + self.compiled.skew}


class _Compiled:
    def __init__(self, nodes: list[tuple[str, str]], skew: float = 0.0) -> None:
        self.nodes = nodes
        self.skew = skew

    def get_runtime_model(self) -> Any:
        return self

    def get_ordered_ops(self) -> list[_Op]:
        return [_Op(t, p) for t, p in self.nodes]

    def input(self, _i: int) -> Any:
        return self

    def get_partial_shape(self) -> list[_Dim]:
        return [_Dim()] * 4

    def output(self, _i: int) -> str:
        return "out"

    def create_infer_request(self) -> _Request:
        return _Request(self)


class _Core:
    """Fuses on the first compile unless Snippets are off, as the CPU plugin did on the AMX Xeon."""

    def __init__(self, first: list[tuple[str, str]], dynamic: list[tuple[str, str]] | None = None,
                 skew: float = 0.0) -> None:
        self.first, self.dynamic, self.skew = first, dynamic or UNFUSED, skew
        self.configs: list[dict[str, Any]] = []
        self.models: list[str] = []

    def compile_model(self, model: str, device: str, config: dict[str, Any]) -> _Compiled:
        assert device == "CPU"
        self.configs.append(dict(config))
        self.models.append(model)
        if config.get("SNIPPETS_MODE") == "DISABLE":
            return _Compiled(UNFUSED, self.skew)
        return _Compiled(self.dynamic if model == "dynamic model" else self.first)


def test_counts_only_int8_subgraphs() -> None:
    assert int8_snippet_nodes(_Compiled(FUSED)) == 1
    assert int8_snippet_nodes(_Compiled(UNFUSED)) == 0
    assert int8_snippet_nodes(_Compiled(FLOAT_SUBGRAPH)) == 0


def test_a_fused_int8_chain_is_compiled_again_without_snippets_checked_and_said() -> None:
    core, config = _Core(FUSED), {"INFERENCE_NUM_THREADS": "1"}
    compiled, note = compile_cpu(core, "model", config, lambda: "fresh model", check_model=lambda: "dynamic model")
    assert note.startswith(SNIPPETS_NOTE) and int8_snippet_nodes(compiled) == 0
    assert "float ones too" in note  # the switch is global: the note does not pretend otherwise
    assert "checked on a fixed input against a dynamic-batch compile: max |diff| 0" in note
    assert core.configs[1]["SNIPPETS_MODE"] == "DISABLE"
    assert core.models == ["model", "fresh model", "dynamic model"]
    assert "SNIPPETS_MODE" not in core.configs[2]  # the independent compile keeps the caller's settings
    assert config["SNIPPETS_MODE"] == "DISABLE"  # a later compile of another batch size gets the same setting


def test_a_recompiled_model_that_disagrees_fails_before_it_is_timed() -> None:
    core = _Core(FUSED, skew=0.5)  # the Snippets-free model computes other logits than the independent compile
    with pytest.raises(RuntimeError, match="disagrees with an independent compile"):
        compile_cpu(core, "model", {}, check_model=lambda: "dynamic model")


def test_without_an_unfused_check_model_the_note_says_not_checked() -> None:
    core = _Core(FUSED, dynamic=FUSED)  # the dynamic compile fuses too: nothing independent to compare with
    _compiled, note = compile_cpu(core, "model", {}, check_model=lambda: "dynamic model")
    assert note.endswith("not checked against an independent compile (none without the fusion)")
    _compiled, note = compile_cpu(_Core(FUSED), "model", {})
    assert "not checked" in note


def test_nothing_changes_where_nothing_fused() -> None:
    for nodes in (UNFUSED, FLOAT_SUBGRAPH):
        core, config = _Core(nodes), {"INFERENCE_NUM_THREADS": "1"}
        compiled, note = compile_cpu(core, "model", config)
        assert compiled.nodes == nodes
        assert note == "" and len(core.configs) == 1 and "SNIPPETS_MODE" not in config
