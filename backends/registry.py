"""Backend names -> classes, imported only when chosen (a missing runtime never breaks the others).

Each entry is "module:Class"; the module imports its runtime (openvino, onnxruntime, tensorrt) lazily
inside `probe`/`load`, so even importing the backend module never fails for a missing package.
"""

from __future__ import annotations

import difflib
import importlib

from backends.base import Availability, Backend
from harness.errors import UserError

BACKENDS: dict[str, str] = {
    "torch-eager": "backends.torch_eager:TorchEagerBackend",
    "openvino": "backends.openvino_backend:OpenVINOBackend",
    "onnxruntime": "backends.onnxruntime_backend:OnnxRuntimeBackend",
    "tensorrt": "backends.tensorrt_backend:TensorRTBackend",
}


def backend_names() -> list[str]:
    """Every known backend name, in the default order."""
    return list(BACKENDS)


def check_name(name: str) -> str:
    """`name` if known; UserError listing the valid names otherwise."""
    if name not in BACKENDS:
        close = difflib.get_close_matches(name, list(BACKENDS), n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"unknown backend {name!r}{hint}; valid: {', '.join(BACKENDS)}")
    return name


def get_backend_class(name: str) -> type[Backend]:
    """Import and return the Backend subclass registered as `name` (UserError for an unknown name)."""
    module_name, _, cls_name = BACKENDS[check_name(name)].partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, cls_name)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise TypeError(f"{BACKENDS[name]} is not a Backend subclass")
    return cls


def probe(name: str) -> Availability:
    """Availability of backend `name`; never raises for a known name (import problems become the reason)."""
    try:
        cls = get_backend_class(name)
    except UserError:
        raise
    except Exception as e:  # a broken backend module must not take the listing down
        return Availability(False, f"{name}: cannot import its module ({type(e).__name__}: {_first_line(e)})")
    try:
        return cls.probe()
    except Exception as e:  # probe() must never raise; guard anyway
        return Availability(False, f"{name}: probe failed ({type(e).__name__}: {_first_line(e)})")


def probe_all(names: list[str] | None = None) -> dict[str, Availability]:
    """{name: Availability} for `names` (default: every backend)."""
    return {n: probe(n) for n in (names or backend_names())}


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
