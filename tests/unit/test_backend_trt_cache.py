"""TensorRT logic that needs no GPU: profiles covering the batch sizes, plan-cache keys, inspector parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backends.tensorrt.cache import (
    Profile,
    cache_key,
    inspector_formats_known,
    layer_precisions,
    profile_batches,
    profile_index,
    read_or_build_plan,
    tensor_datatype,
    timing_cache_name,
)
from common.errors import UserError


def test_profiles_cover_every_batch_and_tune_each_configured_size() -> None:
    assert profile_batches([1, 32]) == [Profile(1, 1, 1), Profile(2, 32, 32)]
    assert profile_batches([32, 1, 8, 8]) == [Profile(1, 1, 1), Profile(2, 8, 8), Profile(9, 32, 32)]
    profiles = profile_batches([1, 32], max_batch=64)
    assert profiles[-1] == Profile(33, 64, 64)
    for b in range(1, 65):  # contiguous: every batch has exactly one profile
        assert sum(p.min <= b <= p.max for p in profiles) == 1
        assert profiles[profile_index(profiles, b)].min <= b
    assert profiles[1].shapes((1, 48, 48)) == ((2, 1, 48, 48), (32, 1, 48, 48), (32, 1, 48, 48))


@pytest.mark.parametrize("sizes,max_batch", [([0, 1], None), ([-1], None), ([], None), ([1, 32], 16)])
def test_bad_batch_sizes_are_user_errors(sizes: list[int], max_batch: int | None) -> None:
    with pytest.raises(UserError):
        profile_batches(sizes, max_batch)


def test_batch_outside_profiles_is_a_user_error() -> None:
    with pytest.raises(UserError, match="outside"):
        profile_index(profile_batches([1, 4]), 5)


def test_cache_key_changes_with_each_input_and_is_stable() -> None:
    base = ("a" * 64, "10.13.0", "NVIDIA H100", "9.0", {"profiles": [[1, 1, 1]], "workspace_mb": 1024})
    k = cache_key(*base)
    assert k == cache_key(*base) and len(k) == 24
    variants = [
        ("b" * 64, *base[1:]),
        (base[0], "11.0.0", *base[2:]),
        (*base[:2], "NVIDIA H200", *base[3:]),
        (*base[:3], "8.9", base[4]),
        (*base[:4], {"profiles": [[1, 1, 1], [2, 32, 32]], "workspace_mb": 1024}),
    ]
    assert len({k, *(cache_key(*v) for v in variants)}) == 6
    assert timing_cache_name("10.13.0", "NVIDIA H100 80GB HBM3") == "timing-trt10.13.0-nvidia-h100-80gb-hbm3.cache"


def test_layer_precisions_from_inspector_json() -> None:
    info = {"Layers": [
        {"Name": "conv1", "LayerType": "CaskConvolution", "ParameterType": "Convolution",
         "Inputs": [{"Name": "x", "Dimensions": [1, 8, 48, 48],
                     "Format/Datatype": "Channel major INT8 format where channel % 16 == 0"}], "Outputs": []},
        {"Name": "conv2", "LayerType": "CaskConvolution", "ParameterType": "Convolution",
         "Inputs": [{"Name": "y", "Dimensions": [1, 8, 48, 48], "Format/Datatype": "Row major linear FP32"}],
         "Outputs": []},
        {"Name": "fc", "LayerType": "CaskGemmMatrixMultiply", "ParameterType": "MatrixMultiply",
         "Inputs": [{"Name": "z", "Dimensions": [1, 64], "Format/Datatype": "Row major Int8 format"}], "Outputs": []},
        {"Name": "pool", "LayerType": "CaskPooling", "ParameterType": "Pooling",
         "Inputs": [{"Name": "p", "Dimensions": [1, 8, 24, 24], "Format/Datatype": "Row major Int8 format"}],
         "Outputs": []},
        "a ONELINE entry",
    ], "Bindings": ["x", "logits"]}
    int8, total, counts = layer_precisions(json.dumps(info))
    assert (int8, total) == (2, 3)
    assert counts == {"Convolution:INT8": 1, "Convolution:FP32": 1, "MatrixMultiply:INT8": 1}
    assert layer_precisions("not json") == (0, 0, {})


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tensorrt"


def test_real_trt10_inspector_output_counts_int8_convolutions() -> None:
    """NVIDIA's published inspector output of a QAT MobileNet (see tests/fixtures/tensorrt/README.md)."""
    int8, total, counts = layer_precisions((FIXTURES / "trt10_mobilenet_qat_excerpt.json").read_text())
    assert (int8, total) == (3, 3)  # the Reformat (Q) layer is not a conv/FC layer
    assert counts == {"Convolution:INT8": 3}


def test_trt11_schema_with_split_datatype_field() -> None:
    text = (FIXTURES / "trt11_schema_example.json").read_text()
    assert layer_precisions(text)[:2] == (3, 3)
    assert inspector_formats_known(text)
    assert tensor_datatype({"DataType": "Half", "Format": "Row major linear"}) == "Half"
    assert tensor_datatype({"Format/Datatype": "Row major linear FP32"}) == "Row major linear FP32"


def test_dynamic_shapes_without_a_context_is_never_int8() -> None:
    text = (FIXTURES / "trt10_dynamic_no_context.json").read_text()
    int8, total, counts = layer_precisions(text)
    assert (int8, total) == (0, 3) and counts == {"Convolution:?": 3}
    assert not inspector_formats_known(text)


def test_the_plan_is_what_the_runtime_loads_and_its_size_is_file_bytes(tmp_path: Path) -> None:
    """First load builds and stores the plan; the next reads the stored file and does not build. The bytes
    handed to the runtime (whose length the backend reports as loaded_bytes / file_bytes) are the plan file."""
    plan_path = tmp_path / "key.plan"
    builds: list[int] = []

    def build() -> bytes:
        builds.append(1)
        return b"serialized-engine" * 100

    plan, reused = read_or_build_plan(plan_path, build)
    assert not reused and builds == [1] and plan_path.read_bytes() == plan
    again, reused = read_or_build_plan(plan_path, build)
    assert reused and builds == [1] and again == plan and len(again) == plan_path.stat().st_size
    assert not list(tmp_path.glob(".*"))  # written atomically: no temp file left
