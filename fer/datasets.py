"""Data set dispatch (`data.dataset`) with an on-disk cache of the decoded arrays.

The cache is one `.npz` per data set in `cache_dir`, keyed by the data config fields that matter for that
data set, the loader's source code and (for real data) the paths, sizes and mtimes of the source files.
It is written to a temp file and renamed, so a failed load never leaves a partial file; a corrupt cache
file is ignored and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from common.config import DataConfig
from common.console import info
from common.errors import UserError
from fer import ckplus, fer2013, imageio, jaffe, splits
from fer.data import SPLITS, FerData, Split

CACHE_VERSION = 1

# Which DataConfig fields change each data set's arrays.
_KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "synthfer": ("seed", "synthfer_train", "synthfer_val", "synthfer_test"),
    "fer2013": ("path", "seed", "val_fraction"),
    "ckplus": ("path", "seed", "folds", "fold", "contempt"),
    "jaffe": ("path", "seed", "folds", "fold"),
}


def load_dataset(cfg: DataConfig, cache_dir: Path | None) -> FerData:
    """The data set `cfg.dataset` as a FerData, from the cache in `cache_dir` when it is still valid."""
    if cfg.dataset not in _KEY_FIELDS:
        raise UserError(f"data.dataset = {cfg.dataset!r}: allowed values are {', '.join(_KEY_FIELDS)}")
    if cache_dir is None:
        return _load_uncached(cfg)
    source = Path(cfg.path).expanduser() if cfg.dataset != "synthfer" else None
    if source is not None and not source.exists():
        return _load_uncached(cfg)  # the loader raises its one-line error
    file = Path(cache_dir) / f"{cfg.dataset}-{cache_key(cfg)}.npz"
    cached = _read_cache(file)
    if cached is not None:
        info(f"data: {cfg.dataset} from cache {file}")
        return cached
    data = _load_uncached(cfg)
    _write_cache(file, data)
    return data


def cache_key(cfg: DataConfig) -> str:
    """Hash of the relevant config fields, the loader code and the source files' paths, sizes and mtimes."""
    fields = {f: getattr(cfg, f) for f in _KEY_FIELDS[cfg.dataset]}
    if cfg.dataset != "synthfer":
        fields["path"] = str(Path(cfg.path).expanduser().resolve())
    blob = json.dumps({"v": CACHE_VERSION, "dataset": cfg.dataset, **fields}, sort_keys=True)
    h = hashlib.sha256(blob.encode())
    for mod in _modules(cfg.dataset):
        h.update(Path(str(mod.__file__)).read_bytes())
    if cfg.dataset != "synthfer":
        h.update(_source_fingerprint(Path(cfg.path).expanduser()).encode())
    return h.hexdigest()[:20]


def dataset_summary(data: FerData) -> dict[str, Any]:
    """`bench data --json` shape: {"dataset", "synthetic", "splits": {split: {emotion: n}}}."""
    return data.summary()


def _modules(dataset: str) -> list[ModuleType]:
    import fer.data as data_mod

    if dataset == "synthfer":
        import fer.synthfer as synth

        return [synth, data_mod]
    loader = {"fer2013": fer2013, "ckplus": ckplus, "jaffe": jaffe}[dataset]
    return [loader, imageio, splits, data_mod]


def _load_uncached(cfg: DataConfig) -> FerData:
    """Generate or read the data set. The status line comes after success, so an error stays one line."""
    start = time.perf_counter()
    path = Path(cfg.path).expanduser()
    if cfg.dataset == "synthfer":
        from fer.synthfer import generate_synthfer

        data = generate_synthfer(cfg.synthfer_train, cfg.synthfer_val, cfg.synthfer_test, cfg.seed)
        where = f"generated (seed {cfg.seed})"
    else:
        if cfg.dataset == "fer2013":
            data = fer2013.load_fer2013(path, cfg.seed, cfg.val_fraction)
        elif cfg.dataset == "ckplus":
            data = ckplus.load_ckplus(path, cfg.seed, cfg.folds, cfg.fold, cfg.contempt)
        else:
            data = jaffe.load_jaffe(path, cfg.seed, cfg.folds, cfg.fold)
        where = f"read from {path}"
    n = sum(len(data.split(s)) for s in SPLITS)
    info(f"data: {cfg.dataset} {where}: {n} images in {time.perf_counter() - start:.1f} s")
    return data


def _source_fingerprint(path: Path) -> str:
    """Relative path, size and mtime of every file under `path` (or of `path` itself), one per line."""
    if path.is_file():
        st = path.stat()
        return f"{path.name}\t{st.st_size}\t{st.st_mtime_ns}"
    lines = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            with contextlib.suppress(OSError):
                st = p.stat()
                lines.append(f"{p.relative_to(path)}\t{st.st_size}\t{st.st_mtime_ns}")
    return "\n".join(lines)


def _read_cache(file: Path) -> FerData | None:
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            parts = [Split(z[f"{s}_images"], z[f"{s}_labels"].astype(np.int64)) for s in SPLITS]
        train, val, test = parts
        synthetic, notes = bool(meta["synthetic"]), dict(meta["notes"])
        return FerData(meta["name"], train, val, test, synthetic=synthetic, notes=notes)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        info(f"data: ignoring unreadable cache file {file}; rebuilding it")
        return None


def _write_cache(file: Path, data: FerData) -> None:
    meta = {"name": data.name, "synthetic": data.synthetic, "notes": data.notes}
    arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(meta))}
    for s in SPLITS:
        arrays[f"{s}_images"] = np.ascontiguousarray(data.split(s).images)
        arrays[f"{s}_labels"] = np.ascontiguousarray(data.split(s).labels)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.stem}.", suffix=".tmp")
    except OSError as e:
        reason = e.strerror or e
        msg = f"cannot write the data cache in {file.parent} ({reason}); see store.cache_dir"
        raise UserError(msg) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is an ordinary file
        os.replace(tmp, file)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):  # e.g. a full disk: name the file; no partial cache is left
            raise UserError(f"cannot write the data cache {file} ({e.strerror or e}); see store.cache_dir") from None
        raise
