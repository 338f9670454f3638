"""Agreement of every backend's logits with the PyTorch reference of the same variant (top-1, max |delta|).

The reference is torch-eager's own cell where it ran the reference computation (CPU, fp32 or fake-quant int8);
otherwise a reference cell is run once per variant without timing, and its logits are cached under
`<store.cache_dir>/reference-logits/` keyed by the artifact's file hashes (manifest sha256s), the test images'
hash and the reference settings: a later run of the same files skips that process (several seconds).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from common.atomic import write_bytes_atomic, write_json_atomic
from common.results import REFERENCE_BACKEND
from harness.measure.launcher import cell_spec, run_cell_subprocess
from harness.measure.settings import CellSettings

Progress = Callable[[str], None]


def agreement_rows(s: CellSettings, variants: list[str], names: list[str], artifacts: dict[str, Path],
               logits: dict[tuple[str, str], Path], labels_of: dict[tuple[str, str], str], images: Path,
               labels: Path, work: Path, log_dir: Path, say: Progress) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for variant in variants:
        others = [b for b in names if (b, variant) in logits]
        if not others:
            continue
        ref_name, ref_path = None, None
        if reference_is_cell(s, variant, logits, labels_of):
            ref_name, ref_path = REFERENCE_BACKEND, logits[(REFERENCE_BACKEND, variant)]
        else:
            extra = {**s.options(REFERENCE_BACKEND), "device": "cpu", "int8_mode": "fake-quant"}
            cached = reference_cache_path(Path(s.cache_dir), artifacts[variant], images, extra)
            meta_path = cached.with_suffix(".json") if cached else None
            if cached is not None and meta_path is not None and cached.is_file() and meta_path.is_file():
                label = str(json.loads(meta_path.read_text(encoding="utf-8")).get("label", "fp32"))
                say(f"reference {variant}: cached PyTorch reference logits ({cached.name})")
                ref_name, ref_path = f"pytorch-reference ({label})", cached
            else:
                say(f"reference {variant}: computing the PyTorch reference logits")
                out = work / f"reference__{variant}.logits.npy"
                spec = cell_spec(s, REFERENCE_BACKEND, artifacts[variant], images, labels, out, timing=False,
                                 extra=extra)
                result = run_cell_subprocess(spec, work / f"reference__{variant}", s.timeout_s,
                                             log_dir / f"reference__{variant}.log", s.threads)
                if result.get("status") != "ok" or not out.is_file():
                    say(f"reference {variant}: failed ({result.get('reason', '')})")
                    continue
                label = str(result.get("describe", {}).get("label", "fp32"))
                ref_name, ref_path = f"pytorch-reference ({label})", out
                if cached is not None and meta_path is not None:
                    _store_reference(out, cached, meta_path, label)
        ref = np.load(ref_path)
        for backend in others:
            if backend == ref_name:
                continue
            rows.append({"variant": variant, "backend": backend, "reference": ref_name,
                         **compare_logits(np.load(logits[(backend, variant)]), ref)})
    return rows


def reference_cache_path(cache_dir: Path, artifact: Path, images: Path, extra: dict[str, Any],
                         torch_version: str | None = None) -> Path | None:
    """Where the reference logits of (artifact file hashes, test images, reference settings, torch version)
    are cached; None when the artifact's manifest lists no file hashes (nothing safe to key on). The torch
    version is the installed one unless given: an upgrade computes the reference afresh."""
    try:
        manifest = json.loads((Path(artifact) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return None
    if torch_version is None:
        import torch  # the reference cell runs this interpreter's torch (its build tag, e.g. +cu130, included)

        torch_version = str(torch.__version__)
    h = hashlib.sha256()
    h.update(json.dumps({n: (f or {}).get("sha256") for n, f in sorted(files.items())}, sort_keys=True).encode())
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    h.update(f"torch {torch_version}".encode())
    with Path(images).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return Path(cache_dir) / "reference-logits" / f"{h.hexdigest()[:24]}.npy"


def _store_reference(src: Path, dest: Path, meta_path: Path, label: str) -> None:
    """Copy the logits and their label into the cache atomically (temp file + rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(dest, src.read_bytes())
    write_json_atomic(meta_path, {"label": label})


def reference_is_cell(s: CellSettings, variant: str, logits: dict[tuple[str, str], Path],
                      labels_of: dict[tuple[str, str], str]) -> bool:
    """True when torch-eager's own cell of `variant` ran the reference computation (CPU, fp32 or fake-quant)."""
    from backends.torch_model import FAKE_QUANT_LABEL

    te = (REFERENCE_BACKEND, variant)
    on_cpu = s.options(REFERENCE_BACKEND).get("device", "cpu") == "cpu"
    return te in logits and on_cpu and labels_of.get(te, "") in ("fp32", FAKE_QUANT_LABEL)


def compare_logits(logits: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Top-1 agreement (fraction of images with the same argmax) and max |delta logit| vs the reference."""
    if logits.shape != reference.shape:
        raise ValueError(f"logits {logits.shape} and reference {reference.shape} differ in shape")
    if len(logits) == 0:
        return {"top1_agreement": float("nan"), "max_abs_logit_diff": float("nan")}
    agree = float(np.mean(logits.argmax(axis=1) == reference.argmax(axis=1)))
    diff = float(np.max(np.abs(logits.astype(np.float64) - reference.astype(np.float64))))
    return {"top1_agreement": agree, "max_abs_logit_diff": diff}
