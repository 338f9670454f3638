"""Live: `bench backends --json` lists this CPU's instruction-set features, and an OpenVINO int8 row names the
kernels that really ran, which are kernels of an ISA this CPU has."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backends.artifact import load_artifact
from backends.base import BackendOptions
from backends.registry import get_backend_class
from common.isa import flags_from_cpuinfo, int8_sentence, isa_features, kernel_isa, kernel_precision
from harness.cli import main
from reports.int8_path import int8_path_text

CPUINFO = Path("/proc/cpuinfo")


def _flags() -> set[str]:
    if not CPUINFO.is_file():
        pytest.skip("no /proc/cpuinfo on this system: the ISA features are not recorded here")
    return flags_from_cpuinfo(CPUINFO.read_text())


def test_bench_backends_json_lists_the_isa_features(capsys: pytest.CaptureFixture[str]) -> None:
    flags = _flags()
    assert main(["backends", "--json", "--backend", "onnxruntime"]) == 0
    isa = json.loads(capsys.readouterr().out)["fingerprint"]["isa"]
    assert isa["features"] == (isa_features(flags) if flags else {})
    assert isa["int8_summary"] == int8_sentence(isa["features"])


def test_openvino_int8_row_names_kernels_of_this_cpu(artifacts: dict[str, Path]) -> None:
    pytest.importorskip("openvino")
    flags = _flags()
    has = {"avx2"} & flags | ({"avx512"} if "avx512f" in flags else set()) | ({"amx"} if "amx_int8" in flags else set())
    b = get_backend_class("openvino")()
    b.load(load_artifact(artifacts["l1-int8"]), BackendOptions(threads=1, batch_sizes=(1,)))
    try:
        kinds = b.describe()["primitive_types"]
    finally:
        b.close()
    convs = {k.partition(":")[2]: n for k, n in kinds.items() if k.startswith("Convolution:")}
    assert sum(convs.values()) == 13, kinds
    for name in convs:
        assert kernel_precision(name) == "I8", kinds  # the QDQ convolutions really ran int8 kernels
        assert kernel_isa(name) in has, (name, sorted(has))
    row = {"backend": "openvino", "precision": "int8", "describe": {"primitive_types": kinds}}
    text = int8_path_text({"fingerprint": {"isa": {"features": isa_features(flags)}}, "results": [row]})
    assert text.startswith(int8_sentence(isa_features(flags)))
    assert all(name in text for name in convs)
