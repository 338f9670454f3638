"""Real-data loaders (FER2013 CSV + folders, CK+, JAFFE) and the cached dispatch, on fixture files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.config import DataConfig
from common.errors import UserError
from fer.ckplus import load_ckplus
from fer.classes import EMOTIONS
from fer.datasets import cache_key, load_dataset
from fer.fer2013 import load_fer2013
from fer.jaffe import load_jaffe
from fer.splits import stratified_holdout, subject_split

USAGES = ("Training", "PublicTest", "PrivateTest")
PER_CLASS = {"Training": 3, "PublicTest": 1, "PrivateTest": 2}


# ---------------------------------------------------------------- fixture writers (real formats)


def fer_rows(seed: int = 0) -> list[tuple[int, np.ndarray, str]]:
    rng = np.random.default_rng(seed)
    rows = []
    for usage in USAGES:
        for label in range(7):
            for _ in range(PER_CLASS[usage]):
                rows.append((label, rng.integers(0, 256, 2304).astype(np.uint8), usage))
    return rows


def write_fer_csv(
    path: Path, rows: list[tuple[int, np.ndarray, str]], header: tuple[str, ...] | None = None
) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header or ("emotion", "pixels", "Usage"))
        for label, px, usage in rows:
            w.writerow([label, " ".join(map(str, px.tolist())), usage])
    return path


def write_png(path: Path, value: int | np.ndarray, size: tuple[int, int] = (48, 48), mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((size[1], size[0]), value, np.uint8) if isinstance(value, int) else value
    img = Image.fromarray(arr)
    if mode != "L":
        img = img.convert(mode)
    img.save(path)


def one_line_error(exc: pytest.ExceptionInfo[UserError], *needles: str) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    return msg


# ---------------------------------------------------------------- FER2013 CSV


def test_fer2013_csv_round_trip(tmp_path: Path) -> None:
    rows = fer_rows()
    f = write_fer_csv(tmp_path / "fer2013.csv", rows)
    data = load_fer2013(f, seed=0, val_fraction=0.1)
    assert (len(data.train), len(data.val), len(data.test)) == (21, 7, 14)
    assert data.train.class_counts() == dict.fromkeys(EMOTIONS, 3)
    assert data.test.class_counts() == dict.fromkeys(EMOTIONS, 2)
    train_rows = [r for r in rows if r[2] == "Training"]
    np.testing.assert_array_equal(data.train.images[5], train_rows[5][1].reshape(48, 48))
    assert int(data.train.labels[5]) == train_rows[5][0]
    assert not data.synthetic
    # a folder holding fer2013.csv works too, and so does the ICML header order with spaces
    (tmp_path / "icml").mkdir()
    lines = [f"{lab}, {u}, {' '.join(map(str, px.tolist()))}" for lab, px, u in rows]
    (tmp_path / "icml" / "fer2013.csv").write_text("emotion, Usage, pixels\n" + "\n".join(lines) + "\n")
    d2 = load_fer2013(tmp_path / "icml", seed=0, val_fraction=0.1)
    assert d2.digest() == data.digest()


def _bad_rows(kind: str) -> tuple[list[tuple[int | str, str, str]], str]:
    good: list[tuple[int | str, str, str]] = [
        (r[0], " ".join(map(str, r[1].tolist())), r[2]) for r in fer_rows()
    ]
    px = good[3][1]
    if kind == "pixel_count":
        good[3] = (good[3][0], " ".join(px.split()[:-1]), good[3][2])
        return good, "2303 pixel values, expected 2304"
    if kind == "non_integer":
        good[3] = (good[3][0], px.replace(px.split()[0], "1.5", 1), good[3][2])
        return good, "'1.5' is not an integer"
    if kind == "out_of_range":
        good[3] = (good[3][0], "300 " + px.split(" ", 1)[1], good[3][2])
        return good, "300 is outside 0-255"
    if kind == "label":
        good[3] = (7, px, good[3][2])
        return good, "emotion 7 is outside 0-6"
    if kind == "label_text":
        good[3] = ("happy", px, good[3][2])
        return good, "'happy' is not an integer label"
    if kind == "usage":
        good[3] = (good[3][0], px, "Validation")
        return good, "Usage 'Validation'"
    raise AssertionError(kind)


BAD_ROWS = ["pixel_count", "non_integer", "out_of_range", "label", "label_text", "usage"]


@pytest.mark.parametrize("kind", BAD_ROWS)
def test_fer2013_csv_bad_row_names_file_and_line(tmp_path: Path, kind: str) -> None:
    rows, expected = _bad_rows(kind)
    f = tmp_path / "fer2013.csv"
    with f.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        w.writerows(rows)
    with pytest.raises(UserError) as exc:
        load_fer2013(f, seed=0, val_fraction=0.1)
    one_line_error(exc, str(f), "line 5", expected)  # header is line 1, row index 3 is line 5


def test_fer2013_csv_bad_header_missing_split_missing_path(tmp_path: Path) -> None:
    rows = fer_rows()
    f = write_fer_csv(tmp_path / "a.csv", rows, header=("label", "pixels", "Usage"))
    with pytest.raises(UserError) as exc:
        load_fer2013(f, 0, 0.1)
    one_line_error(exc, str(f), "line 1", "header")
    g = write_fer_csv(tmp_path / "b.csv", [r for r in rows if r[2] != "PrivateTest"])
    with pytest.raises(UserError) as exc:
        load_fer2013(g, 0, 0.1)
    one_line_error(exc, str(g), "PrivateTest", "test")
    with pytest.raises(UserError) as exc:
        load_fer2013(tmp_path / "nope.csv", 0, 0.1)
    one_line_error(exc, "nope.csv", "does not exist")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(UserError) as exc:
        load_fer2013(tmp_path / "empty.csv", 0, 0.1)
    one_line_error(exc, "empty.csv", "header")


# ---------------------------------------------------------------- FER2013 image folders


def write_fer_folders(root: Path, n_train: int = 6, n_test: int = 2) -> Path:
    for split, n in (("train", n_train), ("test", n_test)):
        for i, emo in enumerate(EMOTIONS):
            folder = root / split / emo.capitalize()  # names are case-insensitive
            for k in range(n):
                value = 30 * i + k
                if k % 2:  # RGB JPEG at another size: converted to 48x48 grayscale
                    write_png(folder / f"im{k}.jpg", value, size=(64, 64), mode="RGB")
                else:
                    write_png(folder / f"im{k}.png", value)
    return root


def test_fer2013_folders_stratified_val(tmp_path: Path) -> None:
    root = write_fer_folders(tmp_path / "fer")
    data = load_fer2013(root, seed=1, val_fraction=0.34)
    assert data.test.class_counts() == dict.fromkeys(EMOTIONS, 2)
    assert data.val.class_counts() == dict.fromkeys(EMOTIONS, 2)  # round(6 * 0.34) per class
    assert data.train.class_counts() == dict.fromkeys(EMOTIONS, 4)
    # labels follow folders: image value 30*label + k (JPEG may shift the value a little)
    for split in (data.train, data.val, data.test):
        assert np.all(np.abs(split.images[:, 24, 24].astype(int) // 30 - split.labels) == 0)
    again = load_fer2013(root, seed=1, val_fraction=0.34)
    assert again.digest() == data.digest()
    other = load_fer2013(root, seed=2, val_fraction=0.34)
    assert other.digest() != data.digest()  # the seed picks a different val subset


@pytest.mark.parametrize("kind", ["text_file", "corrupt_png", "missing_test", "empty_class", "unknown_class"])
def test_fer2013_folders_bad_input(tmp_path: Path, kind: str) -> None:
    root = write_fer_folders(tmp_path / "fer", n_train=2, n_test=1)
    if kind == "text_file":
        bad = root / "train" / "Happy" / "notes.txt"
        bad.write_text("hello")
        needles = [str(bad), "not an image"]
    elif kind == "corrupt_png":
        bad = root / "test" / "Sad" / "broken.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
        needles = [str(bad), "cannot read"]
    elif kind == "missing_test":
        for p in sorted((root / "test").rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        (root / "test").rmdir()
        needles = [str(root), "test/", "missing"]
    elif kind == "empty_class":
        folder = root / "train" / "Fear"
        for p in folder.iterdir():
            p.unlink()
        needles = [str(folder), "empty"]
    else:
        (root / "train" / "bored").mkdir()
        write_png(root / "train" / "bored" / "x.png", 1)
        needles = ["bored", "angry, disgust"]
    with pytest.raises(UserError) as exc:
        load_fer2013(root, seed=0, val_fraction=0.1)
    one_line_error(exc, *needles)


# ---------------------------------------------------------------- CK+


CK_FOLDERS = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
CK_LABEL = {"anger": 0, "contempt": -1, "disgust": 1, "fear": 2, "happy": 3, "sadness": 4, "surprise": 5}


def write_ckplus(root: Path, subjects: int = 9) -> Path:
    """Each image is constant 20*subject + 2*folder-index, so the test can recover subject and class."""
    for s in range(1, subjects + 1):
        for ci, folder in enumerate(CK_FOLDERS):
            for j in range(2):
                write_png(root / folder / f"S{s:03d}_00{ci + 1}_0000001{j}.png", 20 * s + 2 * ci)
    return root


def _subjects(images: np.ndarray) -> set[int]:
    return {int(v) // 20 for v in images[:, 0, 0]}


def test_ckplus_subject_independent_folds(tmp_path: Path) -> None:
    root = write_ckplus(tmp_path / "CK+48")
    data = load_ckplus(root, seed=0, folds=3, fold=0)
    parts = [_subjects(data.split(s).images) for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [3, 3, 3]
    assert parts[0] | parts[1] | parts[2] == set(range(1, 10))
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sum(len(data.split(s)) for s in ("train", "val", "test")) == 9 * 6 * 2  # contempt dropped
    counts = data.train.class_counts()
    assert counts["neutral"] == 0 and counts["angry"] == 6  # neutral absent is fine
    # every fold is test exactly once
    tests = [_subjects(load_ckplus(root, 0, 3, k).test.images) for k in range(3)]
    assert sorted(s for t in tests for s in t) == list(range(1, 10))


def test_ckplus_contempt_mapping_and_labels(tmp_path: Path) -> None:
    root = write_ckplus(tmp_path / "ck", subjects=4)
    data = load_ckplus(root, seed=0, folds=4, fold=1, contempt="disgust")
    total = sum(data.split(s).class_counts()["disgust"] for s in ("train", "val", "test"))
    assert total == 2 * 4 * 2  # disgust + contempt
    for s in ("train", "val", "test"):
        split = data.split(s)
        folder_idx = (split.images[:, 0, 0].astype(int) % 20) // 2
        expected = [CK_LABEL[CK_FOLDERS[i]] if CK_FOLDERS[i] != "contempt" else 1 for i in folder_idx]
        np.testing.assert_array_equal(split.labels, expected)


@pytest.mark.parametrize("kind", ["no_subject", "empty_folder", "too_many_folds", "missing", "bad_contempt"])
def test_ckplus_bad_input(tmp_path: Path, kind: str) -> None:
    root = write_ckplus(tmp_path / "ck", subjects=4)
    folds, contempt = 3, "drop"
    if kind == "no_subject":
        write_png(root / "happy" / "img_001.png", 5)
        needles = ["img_001.png", "S###"]
    elif kind == "empty_folder":
        (root / "neutral").mkdir()
        needles = [str(root / "neutral"), "empty"]
    elif kind == "too_many_folds":
        folds = 5
        needles = ["data.folds = 5", "4 subjects"]
    elif kind == "missing":
        root = tmp_path / "absent"
        needles = [str(root), "does not exist"]
    else:
        contempt = "happy"
        needles = ["data.contempt", "drop, disgust"]
    with pytest.raises(UserError) as exc:
        load_ckplus(root, seed=0, folds=folds, fold=0, contempt=contempt)
    one_line_error(exc, *needles)


# ---------------------------------------------------------------- JAFFE


JAFFE_SUBJECTS = ("KA", "KL", "KM", "KR", "MK", "NA", "NM", "TM", "UY", "YM")
JAFFE_CODES = ("AN", "DI", "FE", "HA", "SA", "SU", "NE")


def write_jaffe(root: Path) -> Path:
    """Non-square 60x80 TIFFs: a 60x60 center square of value 20*subject+code, black bands above and below."""
    root.mkdir(parents=True)
    n = 1
    for si, subj in enumerate(JAFFE_SUBJECTS):
        for ci, code in enumerate(JAFFE_CODES):
            arr = np.zeros((80, 60), np.uint8)
            arr[10:70] = 20 * si + 2 * ci + 10
            Image.fromarray(arr).save(root / f"{subj}.{code}{ci % 3 + 1}.{n}.tiff")
            n += 1
    (root / "README").write_text("JAFFE")  # other files in the folder are not images and are skipped
    return root


def test_jaffe_labels_crop_and_subject_splits(tmp_path: Path) -> None:
    root = write_jaffe(tmp_path / "jaffe")
    data = load_jaffe(root, seed=0, folds=5, fold=2)
    sizes = [len(data.split(s)) for s in ("train", "val", "test")]
    assert sizes == [42, 14, 14]  # 10 subjects in 5 folds: 6/2/2 subjects x 7 images
    subj = [{(int(v) - 10) // 20 for v in data.split(s).images[:, 24, 24]} for s in ("train", "val", "test")]
    assert not (subj[0] & subj[1] or subj[0] & subj[2] or subj[1] & subj[2])
    for s in ("train", "val", "test"):
        split = data.split(s)
        # center crop removed the black bands: the whole 48x48 image is the face value
        assert np.all(split.images.min(axis=(1, 2)) == split.images.max(axis=(1, 2)))
        np.testing.assert_array_equal(((split.images[:, 0, 0].astype(int) - 10) % 20) // 2, split.labels)
    assert data.notes["count"].startswith("70 images")


@pytest.mark.parametrize("kind", ["bad_code", "bad_name", "corrupt"])
def test_jaffe_bad_input(tmp_path: Path, kind: str) -> None:
    root = write_jaffe(tmp_path / "jaffe")
    if kind == "bad_code":
        bad = root / "KA.XX1.999.tiff"
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(bad)
        needles = [str(bad), "'XX'", "AN, DI"]
    elif kind == "bad_name":
        bad = root / "face01.tiff"
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(bad)
        needles = [str(bad), "KA.AN1.39.tiff"]
    else:
        bad = root / "KA.HA1.998.tiff"
        bad.write_bytes(b"II*\x00" + b"\x00" * 20)
        needles = [str(bad), "cannot read"]
    with pytest.raises(UserError) as exc:
        load_jaffe(root, seed=0, folds=10, fold=0)
    one_line_error(exc, *needles)


# ---------------------------------------------------------------- split helpers


def test_split_helpers() -> None:
    labels = np.repeat(np.arange(7), 10)
    keep, hold = stratified_holdout(labels, 0.2, seed=3)
    assert len(hold) == 14 and np.all(np.bincount(labels[hold]) == 2)
    assert set(keep.tolist()).isdisjoint(hold.tolist()) and len(keep) + len(hold) == 70
    a = subject_split([f"S{i}" for i in range(7)], folds=2, fold=1, seed=0, what="x")
    assert a["train"] and a["val"] and a["test"] and not (a["train"] & a["val"])
    with pytest.raises(UserError, match=r"data\.fold = 2"):
        subject_split(["a", "b", "c"], folds=2, fold=2, seed=0, what="x")


# ---------------------------------------------------------------- dispatch + cache


def test_load_dataset_caches_and_rebuilds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = write_fer_csv(tmp_path / "fer2013.csv", fer_rows())
    cfg = DataConfig(dataset="fer2013", path=str(f))
    cache = tmp_path / "cache"
    first = load_dataset(cfg, cache)
    files = list(cache.iterdir())
    assert [p.name for p in files] == [f"fer2013-{cache_key(cfg)}.npz"]

    import fer.datasets as ds

    def fail(_cfg: DataConfig) -> None:
        raise AssertionError("the cache should have been used")

    with monkeypatch.context() as m:
        m.setattr(ds, "_load_uncached", fail)
        assert load_dataset(cfg, cache).digest() == first.digest()

    files[0].write_bytes(b"not a zip file")  # corrupt cache: ignored and rebuilt
    assert load_dataset(cfg, cache).digest() == first.digest()
    with np.load(files[0]) as z:
        assert z["train_images"].shape == (21, 48, 48)

    old_key = cache_key(cfg)  # a changed source file gets a new key
    rows = fer_rows(seed=5)
    write_fer_csv(f, rows)
    assert cache_key(cfg) != old_key
    assert load_dataset(cfg, cache).digest() != first.digest()
    irrelevant = DataConfig(dataset="fer2013", path=str(f), folds=3)  # folds do not matter for FER2013
    assert cache_key(irrelevant) == cache_key(cfg)


def test_bad_input_leaves_no_cache(tmp_path: Path) -> None:
    rows, _ = _bad_rows("pixel_count")
    f = tmp_path / "fer2013.csv"
    with f.open("w", newline="") as fh:
        csv.writer(fh).writerows([["emotion", "pixels", "Usage"], *rows])
    cache = tmp_path / "cache"
    with pytest.raises(UserError):
        load_dataset(DataConfig(dataset="fer2013", path=str(f)), cache)
    assert not cache.exists() or list(cache.iterdir()) == []
    with pytest.raises(UserError, match="does not exist"):
        load_dataset(DataConfig(dataset="jaffe", path=str(tmp_path / "nope")), cache)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_load_dataset_dispatches_real_sets(tmp_path: Path) -> None:
    ck = load_dataset(DataConfig(dataset="ckplus", path=str(write_ckplus(tmp_path / "ck", 4)), folds=4), None)
    jf = load_dataset(DataConfig(dataset="jaffe", path=str(write_jaffe(tmp_path / "jf"))), tmp_path / "c")
    assert (ck.name, jf.name) == ("ckplus", "jaffe")
    assert len(jf.test) == 7 and len(jf.val) == 7  # 10 folds over 10 subjects: one subject each


def test_load_dataset_synthfer_cached(tmp_path: Path) -> None:
    pytest.importorskip("fer.synthfer")
    cfg = DataConfig(synthfer_train=70, synthfer_val=70, synthfer_test=70, seed=4)
    data = load_dataset(cfg, tmp_path)
    assert data.synthetic and data.name == "synthfer"
    assert (len(data.train), len(data.val), len(data.test)) == (70, 70, 70)
    cached = load_dataset(cfg, tmp_path)
    assert cached.synthetic and cached.digest() == data.digest()
    assert len(list(tmp_path.glob("synthfer-*.npz"))) == 1
