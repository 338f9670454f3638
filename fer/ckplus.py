"""CK+ loader for the common 48x48 folder layout (one folder per emotion, files named S###_###_########.png).

`contempt` has no FER2013 class: "drop" (default) leaves it out, or it is mapped to disgust, angry or neutral.
Splits are subject-independent k-fold over the `S###` subject ids.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from common.errors import UserError
from fer.classes import EMOTIONS
from fer.data import FerData, check_nonempty
from fer.imageio import class_folders, read_images
from fer.splits import splits_by_subject, subject_split

CONTEMPT_CHOICES = ("drop", "disgust", "angry", "neutral")
_SUBJECT = re.compile(r"^(S\d+)", re.IGNORECASE)


def load_ckplus(path: Path, seed: int, folds: int, fold: int, contempt: str = "drop") -> FerData:
    """Load CK+ from `path` (folder of emotion folders); test = fold `fold`, val = the next fold."""
    root = Path(path)
    if contempt not in CONTEMPT_CHOICES:
        raise UserError(f"data.contempt = {contempt!r}: allowed values are {', '.join(CONTEMPT_CHOICES)}")
    if not root.exists():
        raise UserError(f"CK+ path {root} does not exist (give the folder that holds the emotion folders)")
    if not root.is_dir():
        raise UserError(f"CK+ path {root} is not a folder (expected one folder per emotion)")
    classes = class_folders(root, (*EMOTIONS, "contempt"), "CK+")
    paths, labels, subjects = [], [], []
    for cls, files in sorted(classes.items()):
        target = cls if cls != "contempt" else contempt
        if target == "drop":
            continue
        for f in files:
            m = _SUBJECT.match(f.name)
            if m is None:
                raise UserError(
                    f"{f}: cannot tell the subject; CK+ file names start with S### "
                    "(e.g. S010_004_00000017.png)"
                )
            paths.append(f)
            labels.append(EMOTIONS.index(target))
            subjects.append(m.group(1).upper())
    if not paths:
        raise UserError(f"{root}: no CK+ images left (only contempt, which data.contempt = 'drop' removes)")
    images = read_images(paths)
    assignment = subject_split(subjects, folds, fold, seed, f"CK+ at {root}")
    train, val, test = splits_by_subject(images, np.asarray(labels, dtype=np.int64), subjects, assignment)
    notes = {
        "source": str(root),
        "contempt": contempt,
        "folds": f"fold {fold} of {folds} is test, subject-independent (seed {seed})",
        "subjects": ", ".join(f"{s}={len(assignment[s])}" for s in ("train", "val", "test")),
    }
    data = FerData("ckplus", train, val, test, notes=notes)
    check_nonempty(data, str(root))
    return data
