"""The artifact contract: one directory per compressed variant, read by every backend.

Written by `compression` (to a temp dir, renamed when complete), read here. Files:
  manifest.json   see MANIFEST_FIELDS; "files" maps file name -> {"bytes", "sha256"}
  model.pt        {"arch": {...}, "state_dict": {...}, "quant": {...} | None}; torch.load(weights_only=True)
  model.onnx      FP32, or the CPU QDQ encoding (uint8 activations, Q/DQ around Conv/Gemm) for int8
  model.trt.onnx  int8 variants only: TensorRT's QDQ encoding (int8 activations, zero-point 0)
Backends may cache derived files (OpenVINO IR, TensorRT plans) in `cache/` next to these, keyed by inputs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import UserError

MANIFEST = "manifest.json"
TORCH_FILE = "model.pt"
ONNX_FILE = "model.onnx"
TRT_ONNX_FILE = "model.trt.onnx"
SCHEMA_VERSION = 1

# Keys every manifest holds (compression writes them, backends and reports read them).
MANIFEST_FIELDS = (
    "schema_version",
    "variant",  # e.g. "l1-int8"
    "method",  # "dense" | "l1" | "cdcp" | ...
    "method_label",  # e.g. "cdcp (CDP)": the published algorithm it maps to
    "sparsity",  # fraction of filters removed per layer (0 for dense)
    "precision",  # "fp32" | "int8"
    "params",
    "nonzero_params",
    "storage_bytes",  # every stored parameter at its stored precision (int8 weights + scales + biases)
    "storage_mb",
    "compression_ratio",  # dense-fp32 storage_bytes / this storage_bytes
    "gmac",  # multiply-accumulates per image, in G
    "val_accuracy",
    "test_accuracy",
    "config_hash",
    "dataset",
    "synthetic",
    "files",  # {name: {"bytes", "sha256"}}
    "versions",  # library versions used to produce it
    "input_shape",  # [C, 48, 48]
)
# int8 variants built by compression/ also carry "weight_bits" (7 or 8: the stored weight range) and
# "int8_encoding" (the integer products the files assume, e.g. "cpu: u8 act (zp 0) x s7 weight [-63, 63]
# per-channel, zp 0; tensorrt: ..."); older or imported artifacts may lack them. Variants built by compression/
# also carry "model" ({name, width, train_precision}: which model they are a variant of; common.model_id turns
# any manifest, older and imported ones included, into the text rows carry).


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Artifact:
    """A variant directory and its manifest; `file(name)` gives a verified path."""

    path: Path
    manifest: dict[str, Any]

    @property
    def variant(self) -> str:
        return str(self.manifest["variant"])

    @property
    def precision(self) -> str:
        return str(self.manifest["precision"])

    def has(self, name: str) -> bool:
        return name in self.manifest.get("files", {})

    def file(self, name: str) -> Path:
        """Path of a listed file; UserError if the manifest does not list it or it is missing."""
        if not self.has(name):
            raise UserError(f"artifact {self.path}: manifest lists no {name!r} (variant {self.variant})")
        p = self.path / name
        if not p.is_file():
            raise UserError(f"artifact {self.path}: {name} is missing; re-run `bench compress`")
        return p

    def cache_dir(self) -> Path:
        """Where backends keep files derived from this artifact (IR, engine plans)."""
        d = self.path / "cache"
        d.mkdir(exist_ok=True)
        return d


def load_artifact(path: str | Path, verify: bool = True) -> Artifact:
    """Read a variant directory; with `verify`, check each listed file's size and sha256 against the manifest."""
    p = Path(path)
    mpath = p / MANIFEST
    if not mpath.is_file():
        raise UserError(f"{p} is not an artifact: no {MANIFEST}; produce one with `bench compress`")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{mpath} is not valid JSON: {e}") from None
    check_manifest(mpath, manifest)
    art = Artifact(p, manifest)
    if verify:
        for name, meta in manifest["files"].items():
            f = p / name
            if not f.is_file():
                raise UserError(f"artifact {p}: {name} listed in the manifest is missing")
            if f.stat().st_size != meta["bytes"]:
                raise UserError(
                    f"artifact {p}: {name} is {f.stat().st_size} bytes, manifest says {meta['bytes']} "
                    "(truncated or replaced); re-run `bench compress`"
                )
            if sha256_file(f) != meta["sha256"]:
                raise UserError(f"artifact {p}: {name} does not match its sha256 in the manifest")
    return art


PRECISIONS = ("fp32", "int8")


def check_manifest(mpath: Path, manifest: Any) -> None:
    """UserError unless the manifest's fields are sane: a manifest is input like any other file, and a
    file name in it must never reach outside the artifact directory (`../../x`, `/etc/passwd`)."""
    if not isinstance(manifest, dict):
        raise UserError(f"{mpath}: must hold a JSON object, got {type(manifest).__name__}")
    missing = [k for k in ("variant", "precision", "files") if k not in manifest]
    if missing:
        raise UserError(f"{mpath}: missing fields {missing}")
    if manifest["precision"] not in PRECISIONS:
        raise UserError(f"{mpath}: precision {manifest['precision']!r} is not one of {', '.join(PRECISIONS)}")
    if not isinstance(manifest["variant"], str) or not manifest["variant"]:
        raise UserError(f"{mpath}: variant must be a non-empty string, got {manifest['variant']!r}")
    files = manifest["files"]
    if not isinstance(files, dict) or not files:
        raise UserError(f"{mpath}: files must be a non-empty object {{name: {{bytes, sha256}}}}")
    for name, meta in files.items():
        if not name or Path(name).name != name or name in (".", ".."):
            raise UserError(f"{mpath}: file name {name!r} is not a plain name inside the artifact directory")
        if not isinstance(meta, dict) or not {"bytes", "sha256"} <= set(meta):
            raise UserError(f"{mpath}: files[{name!r}] must hold bytes and sha256")
        size, digest = meta["bytes"], meta["sha256"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise UserError(f"{mpath}: files[{name!r}].bytes = {size!r}: must be a whole number >= 0")
        if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise UserError(f"{mpath}: files[{name!r}].sha256 = {digest!r}: must be 64 lowercase hex digits")
    for key in ("params", "nonzero_params", "storage_bytes"):
        v = manifest.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise UserError(f"{mpath}: {key} = {v!r}: must be a whole number >= 0")
    for key in ("storage_mb", "compression_ratio", "sparsity", "gmac"):
        v = manifest.get(key)
        if v is not None and (not isinstance(v, int | float) or isinstance(v, bool) or not v >= 0):
            raise UserError(f"{mpath}: {key} = {v!r}: must be a number >= 0")
    shape = manifest.get("input_shape")
    if shape is not None and (not isinstance(shape, list) or len(shape) != 3
                              or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)):
        raise UserError(f"{mpath}: input_shape = {shape!r}: must be [channels, height, width] of positive integers")
