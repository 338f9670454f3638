"""compile_cpu's decision: compile again without Snippets exactly when the runtime model fused int8 layers into a
Snippets Subgraph (the fusion that returned zeros on an AMX Xeon). The runtime models here are recorded rt_info
of that machine's compiled models (layerType, runtimePrecision); that the workaround gives the right logits is
tests/integration/test_backends_cpu.py's static batch-1 check on such a CPU."""

from __future__ import annotations

from typing import Any

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


class _Compiled:
    def __init__(self, nodes: list[tuple[str, str]]) -> None:
        self.nodes = nodes

    def get_runtime_model(self) -> Any:
        return self

    def get_ordered_ops(self) -> list[_Op]:
        return [_Op(t, p) for t, p in self.nodes]


class _Core:
    """Fuses on the first compile unless Snippets are off, as the CPU plugin did on the AMX Xeon."""

    def __init__(self, first: list[tuple[str, str]]) -> None:
        self.first = first
        self.configs: list[dict[str, Any]] = []
        self.models: list[str] = []

    def compile_model(self, model: str, device: str, config: dict[str, Any]) -> _Compiled:
        assert device == "CPU"
        self.configs.append(dict(config))
        self.models.append(model)
        return _Compiled(UNFUSED if config.get("SNIPPETS_MODE") == "DISABLE" else self.first)


def test_counts_only_int8_subgraphs() -> None:
    assert int8_snippet_nodes(_Compiled(FUSED)) == 1
    assert int8_snippet_nodes(_Compiled(UNFUSED)) == 0
    assert int8_snippet_nodes(_Compiled(FLOAT_SUBGRAPH)) == 0


def test_a_fused_int8_chain_is_compiled_again_without_snippets_and_said() -> None:
    core, config = _Core(FUSED), {"INFERENCE_NUM_THREADS": "1"}
    compiled, note = compile_cpu(core, "model", config, lambda: "fresh model")
    assert note == SNIPPETS_NOTE and int8_snippet_nodes(compiled) == 0
    assert core.configs[1]["SNIPPETS_MODE"] == "DISABLE" and core.models == ["model", "fresh model"]
    assert config["SNIPPETS_MODE"] == "DISABLE"  # a later compile of another batch size gets the same setting


def test_nothing_changes_where_nothing_fused() -> None:
    for nodes in (UNFUSED, FLOAT_SUBGRAPH):
        core, config = _Core(nodes), {"INFERENCE_NUM_THREADS": "1"}
        compiled, note = compile_cpu(core, "model", config)
        assert compiled.nodes == nodes
        assert note == "" and len(core.configs) == 1 and "SNIPPETS_MODE" not in config
