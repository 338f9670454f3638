"""Which model a number is about, as one short text ("VGG16-FER x0.25", "imported: fer2013_cnn.onnx").

A variant name ("l1-int8") says how a model was compressed, not which model: a quarter-width and a full-width
VGG16-FER both have an `l1-int8`. Rows, selection and reports name the model with `model_text`, computed from an
artifact's manifest; the artifact's file hash (`artifact_sha256` in a row) tells two builds of one model apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

ARCH_NAME = "VGG16-FER"
FIRST_CONV = 64  # VGG16's first conv width at model.width 1.0: a dense arch's width is features[0] / 64


def model_record(name: str, width: float, train_precision: str) -> dict[str, Any]:
    """The manifest's `model` field: the architecture, its channel multiplier and the training precision used."""
    return {"name": name, "width": float(width), "train_precision": train_precision}


def width_text(width: float) -> str:
    return f"x{float(width):g}"


def model_text(manifest: Mapping[str, Any]) -> str:
    """The model a manifest describes, in words. Manifests written before the `model` field: a dense arch's width
    is read from its first conv; a pruned one's cannot be, and the text says so."""
    if manifest.get("method") == "imported":
        src = manifest.get("imported_from") or manifest.get("variant") or "?"
        return f"imported: {PurePath(str(src)).name}"
    rec = manifest.get("model")
    if isinstance(rec, Mapping) and isinstance(rec.get("width"), int | float):
        text = f"{rec.get('name') or ARCH_NAME} {width_text(rec['width'])}"
        prec = rec.get("train_precision")
        return f"{text} ({prec}-trained)" if prec and prec != "fp32" else text
    arch = manifest.get("arch")
    if isinstance(arch, Mapping) and manifest.get("method") == "dense":
        feats = [f for f in arch.get("features") or [] if f != "M"]
        if feats and isinstance(feats[0], int):
            return f"{ARCH_NAME} {width_text(round(feats[0] / FIRST_CONV, 4))}"
    return f"{ARCH_NAME} (width not recorded)"
