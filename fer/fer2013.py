"""FER2013 loader: the original CSV (`emotion,pixels,Usage`) or the image-folder layout (`train/<class>/*`).

CSV: Training -> train, PublicTest -> val, PrivateTest -> test. Folders: `train/` and `test/` (and `val/`
or `validation/` if present; otherwise val is a seeded stratified `val_fraction` of train).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from common.errors import UserError
from fer.classes import EMOTIONS, IMAGE_SIZE, NUM_CLASSES
from fer.data import FerData, Split, check_nonempty
from fer.imageio import class_folders, read_images
from fer.splits import stratified_holdout

CSV_NAME = "fer2013.csv"
USAGE_TO_SPLIT = {"training": "train", "publictest": "val", "privatetest": "test"}
_USAGE_NAMES = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
_PIXELS = IMAGE_SIZE * IMAGE_SIZE


def load_fer2013(path: Path, seed: int, val_fraction: float) -> FerData:
    """Load FER2013 from the CSV file, a folder holding fer2013.csv, or a train/ + test/ image folder."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"FER2013 path {p} does not exist (give fer2013.csv or a folder with train/, test/)")
    if p.is_file():
        return load_fer2013_csv(p)
    if (p / CSV_NAME).is_file():
        return load_fer2013_csv(p / CSV_NAME)
    if (p / "train").is_dir() or (p / "test").is_dir():
        return load_fer2013_folders(p, seed, val_fraction)
    raise UserError(f"{p}: holds neither {CSV_NAME} nor train/ and test/ image folders (FER2013 layouts)")


def load_fer2013_csv(file: Path) -> FerData:
    """Parse the original CSV. Every row is checked; a bad one is an error naming the file and line."""
    rows: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    labels: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    try:
        with file.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            cols = _header(file, next(reader, None))
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                line = reader.line_num
                label, pixels, split = _parse_row(file, line, row, cols)
                rows[split].append(pixels)
                labels[split].append(label)
    except UnicodeDecodeError as e:
        raise UserError(f"{file}: not a UTF-8 text CSV ({e.reason} at byte {e.start})") from None
    except csv.Error as e:  # e.g. a line beyond the csv module's field size limit (131072 characters)
        raise UserError(f"{file}: line {reader.line_num}: malformed CSV ({e})") from None
    except OSError as e:
        raise UserError(f"{file}: cannot read ({e.strerror or e})") from None
    for split, usage in _USAGE_NAMES.items():
        if not rows[split]:
            raise UserError(f"{file}: no rows with Usage {usage!r}, so the {split} split is missing")
    splits = {
        s: Split(np.stack(rows[s]).reshape(-1, IMAGE_SIZE, IMAGE_SIZE), np.asarray(labels[s], dtype=np.int64))
        for s in rows
    }
    data = FerData("fer2013", splits["train"], splits["val"], splits["test"],
                   notes={"source": str(file), "layout": "csv"})
    check_nonempty(data, str(file))
    return data


def _header(file: Path, header: list[str] | None) -> tuple[int, int, int]:
    want = ("emotion", "pixels", "usage")
    names = [h.strip().lower() for h in header or []]
    if sorted(names) != sorted(want):
        got = ",".join(header or []) or "nothing (empty file)"
        raise UserError(f"{file}: line 1: header must be emotion,pixels,Usage, got {got!r}")
    i, j, k = (names.index(w) for w in want)
    return i, j, k


def _parse_row(
    file: Path, line: int, row: list[str], cols: tuple[int, int, int]
) -> tuple[int, np.ndarray, str]:
    where = f"{file}: line {line}"
    if len(row) != 3:
        raise UserError(f"{where}: expected 3 fields (emotion,pixels,Usage), got {len(row)}")
    emotion, text, usage = (row[c].strip() for c in cols)
    try:
        label = int(emotion)
    except ValueError:
        raise UserError(f"{where}: emotion {emotion!r} is not an integer label 0-{NUM_CLASSES - 1}") from None
    if not 0 <= label < NUM_CLASSES:
        raise UserError(f"{where}: emotion {label} is outside 0-{NUM_CLASSES - 1} ({', '.join(EMOTIONS)})")
    split = USAGE_TO_SPLIT.get(usage.lower())
    if split is None:
        raise UserError(f"{where}: Usage {usage!r} is not one of Training, PublicTest, PrivateTest")
    try:
        values = np.fromstring(text, dtype=np.int64, sep=" ")
    except ValueError:
        bad = next((t for t in text.split() if not t.isdigit()), text[:20])
        raise UserError(f"{where}: pixel value {bad!r} is not an integer 0-255") from None
    if values.size != _PIXELS:
        raise UserError(f"{where}: {values.size} pixel values, expected {_PIXELS} (48x48)")
    if values.min() < 0 or values.max() > 255:
        bad_value = int(values[(values < 0) | (values > 255)][0])
        raise UserError(f"{where}: pixel value {bad_value} is outside 0-255")
    return label, values.astype(np.uint8), split


def load_fer2013_folders(root: Path, seed: int, val_fraction: float) -> FerData:
    """Image-folder layout: root/train/<class>/*, root/test/<class>/* (optional root/val or validation)."""
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    val_dir = next((root / n for n in ("val", "validation") if (root / n).is_dir()), None)
    for split, folder in (("train", root / "train"), ("test", root / "test"), ("val", val_dir)):
        if folder is None:
            continue
        if not folder.is_dir():
            raise UserError(f"{root}: no {folder.name}/ folder, so the {split} split is missing")
        parts[split] = _read_split(folder)
    notes = {"source": str(root), "layout": "folders"}
    if "val" not in parts:
        images, labels = parts["train"]
        keep, hold = stratified_holdout(labels, val_fraction, seed)
        parts["train"] = images[keep], labels[keep]
        parts["val"] = images[hold], labels[hold]
        notes["val"] = f"seeded stratified {val_fraction:g} of train (seed {seed})"
    train, val, test = (Split(*parts[s]) for s in ("train", "val", "test"))
    data = FerData("fer2013", train, val, test, notes=notes)
    check_nonempty(data, str(root))
    return data


def _read_split(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    classes = class_folders(folder, EMOTIONS, "FER2013")
    paths = [f for c in EMOTIONS for f in classes.get(c, [])]
    labels = np.concatenate(
        [np.full(len(classes.get(c, [])), i, dtype=np.int64) for i, c in enumerate(EMOTIONS)]
    )
    return read_images(paths), labels
