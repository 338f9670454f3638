"""Bad data files of every format through `bench data`: refused with one line naming the file (and the
row for the CSV), exit 2, and no cache file left behind. Images with absurd dimensions are refused from
their header, before a pixel is decoded (a decompression bomb)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer.imageio import MAX_IMAGE_PIXELS

HEADER = "emotion,pixels,Usage\n"
PIXELS = " ".join(["128"] * 2304)


def _csv(rows: list[str]) -> str:
    return HEADER + "".join(r + "\n" for r in rows)


def _good_rows() -> list[str]:
    return [f"{i % 7},{PIXELS},{u}" for i, u in enumerate(["Training"] * 7 + ["PublicTest"] * 7 + ["PrivateTest"] * 7)]


def _data(refuse, tmp_path: Path, dataset: str, path: Path, contains: str | tuple[str, ...]) -> str:
    cache = tmp_path / "cache"
    line = refuse(["data", "--dataset", dataset, "--path", str(path), "--set", f"store.cache_dir='{cache}'"],
                  contains=contains)
    left = [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []
    assert left == [], f"partial cache left behind: {left}"
    return line


CSV_CASES = {
    "empty file": ("", "header must be emotion,pixels,Usage"),
    "wrong header": ("label,pixels,usage\n", "header must be"),
    "truncated last row": (_csv(_good_rows())[:-3000], ("line 22", "expected 3 fields")),
    "label 9": (_csv([*_good_rows(), f"9,{PIXELS},Training"]), ("line 23", "emotion 9 is outside 0-6")),
    "label x": (_csv([f"x,{PIXELS},Training"]), ("line 2", "not an integer label")),
    "negative label": (_csv([f"-1,{PIXELS},Training"]), ("line 2", "outside 0-6")),
    "bad usage": (_csv([f"1,{PIXELS},Holdout"]), ("line 2", "Usage 'Holdout'")),
    "pixel 300": (_csv([f"1,300 {PIXELS[4:]},Training"]), ("line 2", "pixel value 300")),
    "pixel word": (_csv([f"1,abc {PIXELS[4:]},Training"]), ("line 2", "'abc'")),
    "too few pixels": (_csv(["1,1 2 3,Training"]), ("line 2", "3 pixel values")),
    "too many pixels": (_csv([f"1,{PIXELS} 5,Training"]), ("line 2", "2305 pixel values")),
    "four fields": (_csv([f"1,{PIXELS},Training,extra"]), ("line 2", "expected 3 fields")),
    "one enormous line": (_csv([f"1,{'7 ' * 3_000_000},Training"]), ("line 2", "malformed CSV")),
    "NUL byte": (_csv(["1,\0,Training"]), ("line 2", "pixel value")),
    "missing split": (_csv(_good_rows()[:14]), "PrivateTest"),
}


@pytest.mark.parametrize("case", list(CSV_CASES))
def test_fer2013_csv_refused(refuse, tmp_path: Path, case: str) -> None:
    text, contains = CSV_CASES[case]
    f = tmp_path / "fer2013.csv"
    f.write_text(text, encoding="utf-8")
    line = _data(refuse, tmp_path, "fer2013", f, contains)
    assert str(f) in line


def test_fer2013_csv_not_utf8(refuse, tmp_path: Path) -> None:
    f = tmp_path / "fer2013.csv"
    f.write_bytes(HEADER.encode() + b"\xff\xfe\x00garbage\n")
    _data(refuse, tmp_path, "fer2013", f, (str(f), "not a UTF-8"))


# ---- image folders -----------------------------------------------------------------------------------------
def _png(path: Path, size: tuple[int, int] = (48, 48), value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, value).save(path)
    return path


def _fer_folders(root: Path) -> Path:
    for split in ("train", "test"):
        for cls in ("happy", "sad"):
            for i in range(3):
                _png(root / split / cls / f"{i}.png")
    return root


def _bomb_png(path: Path, width: int, height: int) -> Path:
    """A valid 1x1 PNG whose header claims width x height (CRC fixed): tiny file, huge decode."""
    _png(path, (1, 1))
    data = bytearray(path.read_bytes())
    ihdr = 8  # after the PNG signature: length(4) type(4) data(13) crc(4)
    data[ihdr + 8: ihdr + 16] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr + 4: ihdr + 21])) & 0xFFFFFFFF
    data[ihdr + 21: ihdr + 25] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


def test_decompression_bomb_refused_before_decoding(refuse, tmp_path: Path) -> None:
    root = _fer_folders(tmp_path / "fer")
    bomb = _bomb_png(root / "train" / "happy" / "bomb.png", 100_000, 100_000)
    assert bomb.stat().st_size < 200
    # decoding would need 10 GB; PIL's own header check (2x Image.MAX_IMAGE_PIXELS) or ours refuses it first
    _data(refuse, tmp_path, "fer2013", root, (str(bomb), "decompression bomb"))


def test_image_just_above_our_pixel_limit_refused(refuse, tmp_path: Path) -> None:
    """Above our limit but below PIL's own warning threshold (~89 Mpx): our check, not PIL's, refuses it."""
    root = _fer_folders(tmp_path / "fer")
    side = int(MAX_IMAGE_PIXELS ** 0.5) + 10
    assert side * side < Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else True
    bomb = _bomb_png(root / "test" / "sad" / "big.png", side, side)
    _data(refuse, tmp_path, "fer2013", root, (str(bomb), "above the limit"))


FOLDER_CASES = {
    "text file": (lambda r: (r / "train" / "happy" / "notes.txt").write_text("hi"), "not an image file"),
    "corrupt png": (lambda r: (r / "train" / "happy" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\nrubbish" * 10),
                    "cannot read the image"),
    "zero-byte jpg": (lambda r: (r / "test" / "sad" / "z.jpg").write_bytes(b""), "cannot read the image"),
    "truncated png": (lambda r: (r / "test" / "sad" / "t.png").write_bytes(
        _png(r / "full.tmp.png", (300, 300), 7).read_bytes()[:60]), "cannot read the image"),
    "unknown class folder": (lambda r: _png(r / "train" / "joy" / "1.png"), "not a FER2013 class folder"),
    "empty class folder": (lambda r: (r / "train" / "fear").mkdir(), "is empty"),
    "two folders one class": (lambda r: _png(r / "train" / "Sadness" / "1.png"), "both hold class 'sad'"),
    "folder in class folder": (lambda r: (r / "train" / "happy" / "sub").mkdir(), "unexpected folder"),
}


@pytest.mark.parametrize("case", list(FOLDER_CASES))
def test_fer2013_folder_refused(refuse, tmp_path: Path, case: str) -> None:
    make, contains = FOLDER_CASES[case]
    root = _fer_folders(tmp_path / "fer")
    make(root)
    (root / "full.tmp.png").unlink(missing_ok=True)
    _data(refuse, tmp_path, "fer2013", root, contains)


def test_wrong_image_size_is_resized_not_refused(tmp_path: Path) -> None:
    """Odd sizes are legitimate input: resized to 48x48 (documented), so not counted as a bad input."""
    from fer.fer2013 import load_fer2013

    root = _fer_folders(tmp_path / "fer")
    _png(root / "train" / "happy" / "wide.png", (97, 31), 200)
    data = load_fer2013(root, seed=0, val_fraction=0.2)
    assert data.train.images.shape[1:] == (48, 48)


def test_missing_path_each_format(refuse, tmp_path: Path) -> None:
    for ds in ("fer2013", "ckplus", "jaffe"):
        _data(refuse, tmp_path, ds, tmp_path / "nowhere", "does not exist")


def _ck(root: Path) -> Path:
    for cls in ("happy", "sad", "anger"):
        for s in range(4):
            _png(root / cls / f"S{s:03d}_001_0000001{s}.png")
    return root


CK_CASES = {
    "file without subject": (lambda r: _png(r / "happy" / "face.png"), "cannot tell the subject"),
    "unknown folder": (lambda r: _png(r / "Joy" / "S001_1.png"), "not a CK+ class folder"),
    "only contempt": (None, "no CK+ images left"),
    "path is a file": (None, "is not a folder"),
}


@pytest.mark.parametrize("case", list(CK_CASES))
def test_ckplus_refused(refuse, tmp_path: Path, case: str) -> None:
    make, contains = CK_CASES[case]
    root = tmp_path / "ck"
    if case == "only contempt":
        _png(root / "contempt" / "S001_1.png")
    elif case == "path is a file":
        root = _png(tmp_path / "ck.png")
    else:
        make(_ck(root))
    _data(refuse, tmp_path, "ckplus", root, contains)


JAFFE_CASES = {
    "bad name": ("photo.tiff", "not a JAFFE file name"),
    "unknown code": ("KA.XX1.39.tiff", "unknown expression code 'XX'"),
    "no tiff": ("KA.HA1.29.png", "no .tiff images"),
    "corrupt tiff": ("KA.HA2.30.tiff", "cannot read the image"),
}


@pytest.mark.parametrize("case", list(JAFFE_CASES))
def test_jaffe_refused(refuse, tmp_path: Path, case: str) -> None:
    name, contains = JAFFE_CASES[case]
    root = tmp_path / "jaffe"
    root.mkdir()
    if case == "corrupt tiff":
        (root / name).write_bytes(b"II*\x00" + b"\x00" * 20)
    elif case == "no tiff":
        _png(root / name)
    else:
        Image.fromarray(np.full((64, 64), 90, np.uint8)).save(root / name)
    _data(refuse, tmp_path, "jaffe", root, contains)
