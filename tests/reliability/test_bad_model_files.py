"""Bad model files: truncated, corrupt or malicious checkpoints, ONNX files and manifests.

A checkpoint whose pickle would run code is refused without running it (the marker file it would create
never appears). An artifact whose files do not match the manifest's sizes or sha256, or whose manifest
holds absurd fields (negative sizes, unknown precision, a file name leaving the directory), is refused
with the reason. A corrupt model that passes the manifest check costs its cell only (status error)."""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from relkit import REFUSED, tiny_images

from backends.artifact import MANIFEST, ONNX_FILE, TORCH_FILE, load_artifact, sha256_file
from common.errors import UserError
from fer.checkpoint import load_checkpoint, save_checkpoint
from fer.model import build_model, default_arch


def refused(fn: Callable[[], Any], *contains: str) -> str:
    """fn() must raise UserError with a one-line message holding `contains` (the CLI prints it, exit 2)."""
    with pytest.raises(UserError) as e:
        fn()
    msg = str(e.value)
    assert msg and "\n" not in msg, repr(msg)
    for c in contains:
        assert c in msg, f"{c!r} not in {msg!r}"
    REFUSED.append(f"api: {msg}")
    return msg


class _Payload:
    """Pickles as a call to Path.touch(marker): loading it with a code-running unpickler creates the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


# ---- checkpoints -------------------------------------------------------------------------------------------
@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    model = build_model(default_arch(in_channels=1, width=0.0625))
    path = tmp_path / "dense.pt"
    save_checkpoint(path, model, {"test_accuracy": 0.5})
    return path


@pytest.mark.parametrize("how", ["torch.save", "plain pickle", "inside the state_dict"])
def test_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path: Path, checkpoint: Path,
                                                                    how: str) -> None:
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    if how == "torch.save":
        torch.save({"arch": {}, "state_dict": _Payload(marker), "meta": {}}, evil)
    elif how == "plain pickle":
        evil.write_bytes(pickle.dumps(_Payload(marker)))
    else:
        obj = torch.load(checkpoint, weights_only=True)
        obj["state_dict"]["features.0.weight"] = _Payload(marker)
        torch.save(obj, evil)
    assert not marker.exists()
    # the proof that the payload is live: an unrestricted unpickler runs it
    if how == "plain pickle":
        pickle.loads(evil.read_bytes())
        assert marker.exists()
        marker.unlink()
    refused(lambda: load_checkpoint(evil), str(evil), "refused")
    assert not marker.exists(), "loading the checkpoint ran code from it"


def test_training_state_that_would_run_code_is_refused(tmp_path: Path) -> None:
    from fer.checkpoint import safe_torch_load

    marker = tmp_path / "PWNED"
    state = tmp_path / "dense.pt.state"
    torch.save({"kind": "fer-train-state", "model": _Payload(marker)}, state)
    refused(lambda: safe_torch_load(state, "training state"), "refused")
    assert not marker.exists()


CKPT_DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated to half": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "truncated to 10 bytes": lambda p: p.write_bytes(p.read_bytes()[:10]),
    "zero bytes": lambda p: p.write_bytes(b""),
    "random bytes": lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)),
    "zip of text": lambda p: zipfile.ZipFile(p, "w").writestr("data.pkl", "hello"),
    "holds a list": lambda p: torch.save([1, 2, 3], p),
    "missing keys": lambda p: torch.save({"arch": {}}, p),
    "wrong shapes": lambda p: torch.save({**torch.load(p, weights_only=True), "arch": default_arch(1, width=0.125)}, p),
    "bad arch": lambda p: torch.save({**torch.load(p, weights_only=True), "arch": {"nonsense": 1}}, p),
    "a folder": lambda p: (p.unlink(), p.mkdir()),
    "missing": lambda p: p.unlink(),
}


@pytest.mark.parametrize("damage", list(CKPT_DAMAGE))
def test_damaged_checkpoint_refused(checkpoint: Path, damage: str) -> None:
    CKPT_DAMAGE[damage](checkpoint)
    refused(lambda: load_checkpoint(checkpoint), str(checkpoint))


# ---- artifacts and their manifests -------------------------------------------------------------------------
def _edit_manifest(art: Path, fn: Callable[[dict[str, Any]], Any]) -> None:
    m = json.loads((art / MANIFEST).read_text())
    out = fn(m)
    (art / MANIFEST).write_text(json.dumps(m if out is None else out))


def _flip_byte(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))


def _rename_file(m: dict[str, Any], new: str) -> None:
    m["files"][new] = m["files"].pop(ONNX_FILE)


ART_DAMAGE: dict[str, tuple[Callable[[Path], Any], tuple[str, ...]]] = {
    "onnx byte flipped": (lambda a: _flip_byte(a / ONNX_FILE), ("model.onnx does not match its sha256",)),
    "model.pt byte flipped": (lambda a: _flip_byte(a / TORCH_FILE), ("model.pt does not match its sha256",)),
    "onnx truncated": (lambda a: (a / ONNX_FILE).write_bytes((a / ONNX_FILE).read_bytes()[:100]),
                       ("model.onnx is 100 bytes", "truncated or replaced")),
    "listed file missing": (lambda a: (a / ONNX_FILE).unlink(), ("model.onnx listed in the manifest is missing",)),
    "no manifest": (lambda a: (a / MANIFEST).unlink(), ("not an artifact",)),
    "manifest not JSON": (lambda a: (a / MANIFEST).write_text("{\"variant\": "), ("not valid JSON",)),
    "manifest is a list": (lambda a: _edit_manifest(a, lambda m: [m]), ("JSON object",)),
    "manifest without files": (lambda a: _edit_manifest(a, lambda m: m.pop("files")), ("missing fields",)),
    "unknown precision": (lambda a: _edit_manifest(a, lambda m: m.update(precision="int4")), ("precision 'int4'",)),
    "negative size": (lambda a: _edit_manifest(a, lambda m: m["files"][ONNX_FILE].update(bytes=-5)),
                      ("bytes = -5",)),
    "size as text": (lambda a: _edit_manifest(a, lambda m: m["files"][ONNX_FILE].update(bytes="12")),
                     ("bytes = '12'",)),
    "sha256 not hex": (lambda a: _edit_manifest(a, lambda m: m["files"][ONNX_FILE].update(sha256="xyz")),
                       ("sha256 = 'xyz'",)),
    "name ../../x": (lambda a: _edit_manifest(a, lambda m: _rename_file(m, "../../x")), ("'../../x'",)),
    "absolute name": (lambda a: _edit_manifest(a, lambda m: _rename_file(m, "/etc/passwd")), ("'/etc/passwd'",)),
    "name in a subfolder": (lambda a: _edit_manifest(a, lambda m: _rename_file(m, "sub/model.onnx")),
                            ("'sub/model.onnx'",)),
    "empty files": (lambda a: _edit_manifest(a, lambda m: m.update(files={})), ("non-empty",)),
    "negative storage_bytes": (lambda a: _edit_manifest(a, lambda m: m.update(storage_bytes=-1)),
                               ("storage_bytes = -1",)),
    "NaN storage_mb": (lambda a: _edit_manifest(a, lambda m: m.update(storage_mb=float("nan"))), ("storage_mb",)),
    "bad input_shape": (lambda a: _edit_manifest(a, lambda m: m.update(input_shape=[1, -48, 48])),
                        ("input_shape",)),
}


@pytest.mark.parametrize("damage", list(ART_DAMAGE))
def test_damaged_artifact_refused(tiny_artifact: Path, damage: str) -> None:
    make, contains = ART_DAMAGE[damage]
    make(tiny_artifact)
    refused(lambda: load_artifact(tiny_artifact), *contains)


def test_manifest_path_escape_reads_nothing_outside(tiny_artifact: Path, tmp_path: Path) -> None:
    """A name leaving the directory is refused even when the file it points at exists and matches."""
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    rel = "../../secret.txt"
    assert (tiny_artifact / rel).resolve() == outside.resolve()
    _edit_manifest(tiny_artifact, lambda m: m["files"].update(
        {rel: {"bytes": outside.stat().st_size, "sha256": sha256_file(outside)}}))
    refused(lambda: load_artifact(tiny_artifact), rel)


# ---- a corrupt model that passes the manifest check: the cell fails, alone, with the reason --------------------
def _rehash(art: Path) -> None:
    _edit_manifest(art, lambda m: m.update(files={
        n: {"bytes": (art / n).stat().st_size, "sha256": sha256_file(art / n)} for n in m["files"]}))


@pytest.fixture
def cell_inputs(tmp_path: Path) -> tuple[Path, Path]:
    images, labels = tiny_images()
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "labels.npy", labels)
    return tmp_path / "images.npy", tmp_path / "labels.npy"


CORRUPT_MODEL = {
    "onnx garbage": (ONNX_FILE, lambda p: p.write_bytes(b"\x08\x07garbage" * 50)),
    "onnx truncated": (ONNX_FILE, lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])),
    "model.pt truncated": (TORCH_FILE, lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])),
}


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "torch-eager"])
@pytest.mark.parametrize("damage", list(CORRUPT_MODEL))
def test_corrupt_model_costs_its_cell_only(tiny_artifact: Path, cell_inputs: tuple[Path, Path], backend: str,
                                           damage: str) -> None:
    from backends.registry import get_backend_class
    from harness.measure.cell import CellSpec, run_cell

    name, make = CORRUPT_MODEL[damage]
    reads = ONNX_FILE if backend != "torch-eager" else TORCH_FILE
    if not get_backend_class(backend).probe().available:
        pytest.skip(f"{backend} is not installed here")
    make(tiny_artifact / name)
    _rehash(tiny_artifact)  # the manifest vouches for the broken file: the backend itself must cope
    spec = CellSpec(backend=backend, artifact=str(tiny_artifact), images=str(cell_inputs[0]),
                    labels=str(cell_inputs[1]), timing=False)
    result = run_cell(spec)
    if name != reads:  # this backend never reads the damaged file: the cell works
        assert result["status"] == "ok", result
        return
    assert result["status"] == "error", result
    reason = result["reason"]
    assert reason and "\n" not in reason


def test_copy_of_good_artifact_loads(tiny_artifact: Path, tmp_path: Path) -> None:
    """The control: the undamaged artifact passes every check above."""
    copy = tmp_path / "copy"
    shutil.copytree(tiny_artifact, copy)
    assert load_artifact(copy).variant == "dense-fp32"
