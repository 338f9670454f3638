"""JAFFE loader: the 213 `.tiff` images, labels and subjects from file names (e.g. `KA.AN1.39.tiff`).

Images are center-cropped to a square and resized to 48x48 grayscale; splits are subject-independent
over the 10 posers.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from common.errors import UserError
from fer.classes import EMOTIONS
from fer.data import FerData, check_nonempty
from fer.imageio import read_images
from fer.splits import splits_by_subject, subject_split

CODES: dict[str, str] = {
    "AN": "angry", "DI": "disgust", "FE": "fear", "HA": "happy",
    "SA": "sad", "SU": "surprise", "NE": "neutral",
}
_NAME = re.compile(r"^([A-Za-z]+)\.([A-Za-z]{2})\d*\.\d+\.tiff?$")
EXPECTED_IMAGES = 213


def load_jaffe(path: Path, seed: int, folds: int, fold: int) -> FerData:
    """Load JAFFE from the folder of .tiff files; test = subjects of fold `fold`, val = the next fold."""
    root = Path(path)
    if not root.exists():
        raise UserError(f"JAFFE path {root} does not exist (give the folder that holds the .tiff images)")
    if not root.is_dir():
        raise UserError(f"JAFFE path {root} is not a folder (expected the folder of .tiff images)")
    files = sorted(
        p for p in root.rglob("*")
        if p.suffix.lower() in (".tif", ".tiff") and not p.name.startswith(".") and p.is_file()
    )
    if not files:
        raise UserError(f"{root}: no .tiff images found (JAFFE files are named like KA.AN1.39.tiff)")
    labels, subjects = [], []
    for f in files:
        m = _NAME.match(f.name)
        if m is None:
            raise UserError(f"{f}: not a JAFFE file name (expected SUBJECT.CODE#.N.tiff like KA.AN1.39.tiff)")
        code = m.group(2).upper()
        if code not in CODES:
            raise UserError(f"{f}: unknown expression code {code!r}; JAFFE codes are {', '.join(CODES)}")
        labels.append(EMOTIONS.index(CODES[code]))
        subjects.append(m.group(1).upper())
    images = read_images(files, crop_square=True)
    assignment = subject_split(subjects, folds, fold, seed, f"JAFFE at {root}")
    train, val, test = splits_by_subject(images, np.asarray(labels, dtype=np.int64), subjects, assignment)
    notes = {
        "source": str(root),
        "folds": f"fold {fold} of {folds} is test, subject-independent (seed {seed})",
        "subjects": ", ".join(f"{s}={len(assignment[s])}" for s in ("train", "val", "test")),
    }
    if len(files) != EXPECTED_IMAGES:
        notes["count"] = f"{len(files)} images (the full JAFFE has {EXPECTED_IMAGES})"
    data = FerData("jaffe", train, val, test, notes=notes)
    check_nonempty(data, str(root))
    return data
