"""Backend names -> classes and settings, imported only when chosen (a missing runtime never breaks the others).

This is the one place that lists the backends. Each entry names the package `backends.<pkg>`, whose `backend`
module holds the Backend subclass and whose `config` module holds the settings dataclass of its
`[backends.<name>]` table. Backend modules import their runtime (openvino, onnxruntime, tensorrt) lazily inside
`probe`/`load`, so importing them never fails for a missing package.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from typing import Any

from backends.base import Availability, Backend
from common.config import Config, build_section
from common.errors import UserError
from common.text import first_line

# name -> (package, Backend subclass in <package>.backend, settings dataclass in <package>.config)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "torch-eager": ("backends.torch_eager", "TorchEagerBackend", "TorchEagerConfig"),
    "openvino": ("backends.openvino", "OpenVINOBackend", "OpenVINOConfig"),
    "onnxruntime": ("backends.onnxruntime", "OnnxRuntimeBackend", "OnnxRuntimeConfig"),
    "tensorrt": ("backends.tensorrt", "TensorRTBackend", "TensorRTConfig"),
    "torch-compile": ("backends.torch_compile", "TorchCompileBackend", "TorchCompileConfig"),
}
ALL = "all"  # in benchmark.backends: every backend above, in this order


def backend_names() -> list[str]:
    """Every known backend name, in the default order."""
    return list(BACKENDS)


def check_name(name: str, key: str = "backend") -> str:
    """`name` if known; UserError listing the valid names otherwise."""
    if name not in BACKENDS:
        close = difflib.get_close_matches(name, list(BACKENDS), n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"unknown {key} {name!r}{hint}; valid: {', '.join(BACKENDS)}")
    return name


def get_backend_class(name: str) -> type[Backend]:
    """Import and return the Backend subclass registered as `name` (UserError for an unknown name)."""
    package, cls_name, _ = BACKENDS[check_name(name)]
    cls = getattr(importlib.import_module(f"{package}.backend"), cls_name)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise TypeError(f"{package}.backend.{cls_name} is not a Backend subclass")
    return cls


def settings_class(name: str) -> type:
    """The dataclass that validates the `[backends.<name>]` table."""
    package, _, cfg_name = BACKENDS[check_name(name)]
    return getattr(importlib.import_module(f"{package}.config"), cfg_name)


def resolve_config(cfg: Config) -> Config:
    """`cfg` with `benchmark.backends` checked ("all" expanded) and every `[backends.*]` table validated and
    completed with its defaults, so results record the effective settings. Idempotent; UserError on bad input."""
    names: list[str] = []
    for i, name in enumerate(cfg.benchmark.backends):
        expanded = backend_names() if name == ALL else [check_name(name, f"benchmark.backends[{i}]")]
        names += [n for n in expanded if n not in names]
    for name in cfg.backends:
        if name not in BACKENDS:
            close = difflib.get_close_matches(name, list(BACKENDS), n=1, cutoff=0.5)
            hint = f" (did you mean 'backends.{close[0]}'?)" if close else ""
            raise UserError(f"unknown section 'backends.{name}'{hint}; valid: {', '.join(BACKENDS)}")
    tables: dict[str, dict[str, Any]] = {}
    for name in BACKENDS:
        settings = build_section(settings_class(name), cfg.backends.get(name, {}), f"backends.{name}.")
        tables[name] = dataclasses.asdict(settings)
    return dataclasses.replace(cfg, benchmark=dataclasses.replace(cfg.benchmark, backends=names), backends=tables)


def probe(name: str) -> Availability:
    """Availability of backend `name`; never raises for a known name (import problems become the reason)."""
    try:
        cls = get_backend_class(name)
    except UserError:
        raise
    except Exception as e:  # a broken backend module must not take the listing down
        return Availability(False, f"{name}: cannot import its module ({type(e).__name__}: {first_line(e)})")
    try:
        return cls.probe()
    except Exception as e:  # probe() must never raise; guard anyway
        return Availability(False, f"{name}: probe failed ({type(e).__name__}: {first_line(e)})")


def probe_all(names: list[str] | None = None) -> dict[str, Availability]:
    """{name: Availability} for `names` (default: every backend)."""
    return {n: probe(n) for n in (names or backend_names())}
