"""Backend registry: lazy import by name, one-line errors listing valid names, probe never raises."""

from __future__ import annotations

import importlib.util

import pytest

from backends.base import Availability, Backend
from backends.registry import backend_names, check_name, get_backend_class, probe, probe_all, resolve_config
from common.config import load_config
from common.errors import UserError

BACKEND_NAMES = ("torch-eager", "openvino", "onnxruntime", "tensorrt", "torch-compile")


def test_registry_knows_every_backend_in_order() -> None:
    assert backend_names() == list(BACKEND_NAMES)


def test_config_backends_all_expands_and_settings_get_their_defaults() -> None:
    cfg = resolve_config(load_config(None, ["backends.openvino.streams=4"]))
    assert cfg.benchmark.backends == list(BACKEND_NAMES)
    assert cfg.backends["openvino"] == {"precision": "f32", "streams": 4, "pinning": True}
    assert set(cfg.backends) == set(BACKEND_NAMES)
    assert resolve_config(cfg) == cfg  # idempotent: the runner may resolve a resolved config again


@pytest.mark.parametrize("override,expected", [
    ("benchmark.backends=['openvno']", "benchmark.backends[0] 'openvno' (did you mean 'openvino'?)"),
    ("backends.openvno.streams=1", "unknown section 'backends.openvno' (did you mean 'backends.openvino'?)"),
    ("backends.openvino.stream=1", "unknown key 'backends.openvino.stream'"),
    ("backends.openvino.precision='f16'", "backends.openvino.precision = 'f16': allowed values are f32, bf16"),
    ("backends.tensorrt.workspace_mb=1", "backends.tensorrt.workspace_mb = 1: must be between 16"),
])
def test_bad_backend_config_is_one_line_naming_the_key(override: str, expected: str) -> None:
    with pytest.raises(UserError) as e:
        resolve_config(load_config(None, [override]))
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_unknown_backend_lists_the_valid_ones() -> None:
    with pytest.raises(UserError) as e:
        check_name("openvno")
    msg = str(e.value)
    assert "\n" not in msg and "did you mean 'openvino'" in msg
    for name in BACKEND_NAMES:
        assert name in msg
    with pytest.raises(UserError):
        get_backend_class("tensorflow")


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_each_backend_class_loads_lazily_and_probes_without_raising(name: str) -> None:
    cls = get_backend_class(name)
    assert issubclass(cls, Backend) and cls.name == name
    a = probe(name)
    assert isinstance(a, Availability)
    if not a.available:
        assert a.reason.startswith(f"{name}:") and "\n" not in a.reason


def test_tensorrt_says_what_is_missing_and_how_to_get_it() -> None:
    torch = pytest.importorskip("torch")
    a = probe_all(["tensorrt"])["tensorrt"]
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the no-GPU message is not shown")
    assert not a.available
    assert "no NVIDIA GPU" in a.reason and "pip install .[tensorrt]" in a.reason


@pytest.mark.parametrize("name,module", [("torch-eager", "torch"), ("openvino", "openvino"),
                                         ("onnxruntime", "onnxruntime")])
def test_cpu_backends_are_available_where_installed(name: str, module: str) -> None:
    # `make setup` installs openvino and onnxruntime; elsewhere the probe must say what is missing
    if importlib.util.find_spec(module) is None:
        a = probe(name)
        assert not a.available and "pip install" in a.reason
        return
    a = probe(name)
    assert a.available, a.reason
    assert a.versions
