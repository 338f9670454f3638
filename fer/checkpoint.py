"""Model checkpoints: state_dict + architecture + metadata, loadable with `torch.load(weights_only=True)`.

File content: {"arch": arch_of(model), "state_dict": {...tensors...}, "meta": {...plain values...}}.
A pruned model keeps its real channel counts in "arch", so it is rebuilt without pickled code.
Also holds the small helpers shared with resumable training (atomic torch.save, safe torch.load).
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from common.errors import UserError
from fer.model import VGG16FER, arch_of, build_model

_PLAIN = (str, int, float, bool, type(None))


def save_checkpoint(path: str | Path, model: VGG16FER, meta: dict[str, Any]) -> None:
    """Write `model` and plain-typed `meta` to `path` atomically (temp file + rename)."""
    _check_plain(meta, "meta")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    atomic_torch_save({"arch": arch_of(model), "state_dict": state, "meta": dict(meta)}, path)


def load_checkpoint(path: str | Path) -> tuple[VGG16FER, dict[str, Any]]:
    """Rebuild the model stored at `path` (eval mode) and return it with its metadata; UserError if invalid."""
    p = Path(path)
    obj = read_model_file(p, "checkpoint", required=("arch", "state_dict", "meta"))
    if not isinstance(obj["meta"], dict):
        raise UserError(f"checkpoint {p}: arch, state_dict and meta must be dicts")
    return model_from_payload(obj, f"checkpoint {p}"), obj["meta"]


def load_model(path: str | Path, what: str = "checkpoint") -> VGG16FER:
    """A VGG16-FER from any {"arch", "state_dict", ...} file we write (training checkpoint, artifact model.pt,
    a dense model given by the user); the one loader behind every model file. UserError on anything else."""
    p = Path(path)
    return model_from_payload(read_model_file(p, what), f"{what} {p}")


def read_model_file(path: Path, what: str, required: tuple[str, ...] = ("arch", "state_dict")) -> dict[str, Any]:
    """The dict in a model file (weights_only), with `required` keys present; UserError naming the file."""
    obj = safe_torch_load(path, what)
    if not isinstance(obj, dict):
        raise UserError(f"{what} {path}: not a VGG16-FER checkpoint (holds a {type(obj).__name__}, not a dict)")
    missing = [k for k in required if k not in obj]
    if missing:
        raise UserError(f"{what} {path}: not a VGG16-FER checkpoint (missing {', '.join(missing)})")
    if not isinstance(obj["arch"], dict) or not isinstance(obj["state_dict"], dict):
        raise UserError(f"{what} {path}: arch, state_dict and meta must be dicts")
    return obj


def model_from_payload(payload: dict[str, Any], what: str) -> VGG16FER:
    """The float model that `payload` ({"arch", "state_dict"}) describes, in eval mode; UserError if they differ."""
    try:
        model = build_model(dict(payload["arch"]))
    except (ValueError, TypeError, KeyError) as e:
        raise UserError(f"{what}: invalid architecture description: {e}") from None
    load_state_strict(model, payload["state_dict"], f"{what} is not a VGG16-FER state")
    return model.eval()


def load_state_strict(model: torch.nn.Module, state: dict[str, Any], what: str) -> None:
    """`model.load_state_dict(state)` with every key and shape checked; UserError naming the first problem."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (first: {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} unexpected tensors (first: {extra[0]})")
        raise UserError(f"{what}: state_dict does not fit the architecture: {'; '.join(parts)}")
    for k, ref in expected.items():
        t = state[k]
        if not isinstance(t, torch.Tensor):
            raise UserError(f"{what}: {k} is a {type(t).__name__}, not a tensor")
        if t.shape != ref.shape:
            raise UserError(f"{what}: {k} has shape {tuple(t.shape)}, the architecture needs {tuple(ref.shape)}")
    model.load_state_dict(state)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temp file in the target folder, then rename over `path`."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def safe_torch_load(path: Path, what: str) -> Any:
    """torch.load(weights_only=True) with every failure turned into a one-line UserError naming the file."""
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights only" in first.lower() or "weights_only" in first.lower():
            raise UserError(
                f"{what} {path} cannot be loaded safely: refused, the file carries code or objects other than "
                f"tensors and plain values"
            ) from None
        raise UserError(f"{what} {path} cannot be loaded safely: not a readable torch file ({first[:160]})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"{what} {path} cannot be loaded safely: truncated or not a torch file ({first[:160]})"
        ) from None


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings, got {k!r}")
            _check_plain(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise TypeError(f"{where}: {type(value).__name__} is not a plain value (str, int, float, bool, None)")
