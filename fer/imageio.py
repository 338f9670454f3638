"""Image reading shared by the folder-based loaders: class folders, emotion names, 48x48 grayscale decoding.

Every problem with a user's file becomes a one-line `UserError` naming the file.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from common.errors import UserError
from fer.classes import IMAGE_SIZE

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".pgm", ".ppm", ".webp"}
)
_IGNORED_FILES = frozenset({"thumbs.db", "desktop.ini"})
# Largest image we decode (width x height, read from the header before any pixel is decoded): a face photo
# is far smaller, and a tiny file that claims more is a decompression bomb. PIL's own guard is ~89 Mpx.
MAX_IMAGE_PIXELS = 40_000_000

# Folder / file spellings of the emotions seen in the wild -> canonical FER2013 name (plus CK+'s contempt).
EMOTION_ALIASES: dict[str, str] = {
    "angry": "angry", "anger": "angry",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear",
    "happy": "happy", "happiness": "happy",
    "sad": "sad", "sadness": "sad",
    "surprise": "surprise", "surprised": "surprise",
    "neutral": "neutral",
    "contempt": "contempt",
}


def canonical_emotion(name: str) -> str | None:
    """'Sadness' -> 'sad'; None when the name is not an emotion spelling we know."""
    return EMOTION_ALIASES.get(name.strip().lower())


def _visible(folder: Path) -> list[Path]:
    try:
        entries = sorted(folder.iterdir())
    except OSError as e:
        raise UserError(f"{folder}: cannot list the folder ({_one_line(e)})") from None
    return [p for p in entries if not p.name.startswith(".") and p.name.lower() not in _IGNORED_FILES]


def image_files(folder: Path) -> list[Path]:
    """The image files of one class folder, sorted; any other entry is an error naming it."""
    files = []
    for p in _visible(folder):
        if p.is_dir():
            raise UserError(f"{p}: unexpected folder inside class folder {folder.name!r} (images only)")
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            allowed = ", ".join(sorted(IMAGE_SUFFIXES))
            raise UserError(f"{p}: not an image file (allowed extensions: {allowed})")
        files.append(p)
    return files


def class_folders(root: Path, allowed: Sequence[str], what: str) -> dict[str, list[Path]]:
    """{canonical class: image files} for each class folder directly under `root`.

    A folder that is not a known class, two folders for one class, or an existing empty class folder
    is an error. Classes without a folder are simply absent.
    """
    found: dict[str, list[Path]] = {}
    folder_of: dict[str, Path] = {}
    for d in _visible(root):
        if not d.is_dir():
            continue
        cls = canonical_emotion(d.name)
        if cls is None or cls not in allowed:
            raise UserError(f"{d}: not a {what} class folder; class folders are named {', '.join(allowed)}")
        if cls in found:
            raise UserError(f"{root}: folders {folder_of[cls].name!r} and {d.name!r} both hold class {cls!r}")
        files = image_files(d)
        if not files:
            raise UserError(f"{d}: class folder {d.name!r} is empty (no images)")
        found[cls], folder_of[cls] = files, d
    if not found:
        raise UserError(f"{root}: no class folders found; {what} expects folders named {', '.join(allowed)}")
    return found


def read_gray48(path: Path, crop_square: bool = False) -> np.ndarray:
    """One image file -> [48, 48] uint8 grayscale (color converted, resized, optionally center-cropped)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:  # reads the header only
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise UserError(f"{path}: image is {im.width}x{im.height} pixels, above the limit of "
                                    f"{MAX_IMAGE_PIXELS} (a decompression bomb?); not decoded")
                im.load()
                gray = _to_gray(im)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        raise UserError(f"{path}: cannot read the image ({_one_line(e)})") from None
    if crop_square and gray.width != gray.height:
        side = min(gray.width, gray.height)
        left, top = (gray.width - side) // 2, (gray.height - side) // 2
        gray = gray.crop((left, top, left + side, top + side))
    if gray.size != (IMAGE_SIZE, IMAGE_SIZE):
        gray = gray.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(gray, dtype=np.uint8)


def _to_gray(im: Image.Image) -> Image.Image:
    if im.mode == "L":
        return im.copy()
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        a = np.asarray(im).astype(np.float64)
        top = 65535.0 if im.mode.startswith("I;16") else max(float(a.max()), 255.0)
        return Image.fromarray(np.clip(a * (255.0 / top), 0, 255).round().astype(np.uint8))
    return im.convert("L")


def read_images(paths: Sequence[Path], crop_square: bool = False) -> np.ndarray:
    """Several image files -> [N, 48, 48] uint8."""
    out = np.empty((len(paths), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for i, p in enumerate(paths):
        out[i] = read_gray48(p, crop_square)
    return out


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__
