"""Accepted artifacts, kept by content: what `bench run --reference accepted` measures beside a candidate.

The artifact cache is rebuilt whenever the config or the code that writes it changes, so an accepted run's files
cannot be found again by path. `bench accept` copies each variant's files (the manifest and every file it lists,
verified against their sha256) into `<artifacts_dir>/sha256/<digest>/`, where the digest is the sha256 of the
manifest (which holds every file's sha256, so equal digests mean equal files), and records which variant of the
accepted run is which digest in `<artifacts_dir>/runs/<run_id>.json`. Both are written by rename, so a crash leaves
either the old state or the new one; a digest directory is never rewritten. The acceptance itself stays in the
results store; this directory holds only files, beside the SQLite file (or under store.runs_dir for a server
database) unless `store.artifacts_dir` names another place. Here in orchestrate, which owns the artifacts, because
the history room may not read artifact files; `bench accept` joins the two.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from backends.artifact import MANIFEST, load_artifact, sha256_file
from common.atomic import write_json_atomic
from common.errors import UserError


def default_artifacts_dir(store_url: str, runs_dir: str, configured: str = "") -> Path:
    """`store.artifacts_dir` when set; else `artifacts/` beside a SQLite file, else `<runs_dir>/artifacts`."""
    if configured:
        return Path(configured).expanduser()
    try:
        u = make_url(store_url)
    except ArgumentError:
        return Path(runs_dir) / "artifacts"
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:" \
            and not u.database.startswith("file:"):
        return Path(u.database).expanduser().parent / "artifacts"
    return Path(runs_dir) / "artifacts"


def manifest_digest(artifact_dir: Path) -> str:
    """sha256 of an artifact's manifest.json: it lists every file's sha256, so it names the whole artifact."""
    return sha256_file(Path(artifact_dir) / MANIFEST)


def keep(artifacts_dir: Path, artifact_dir: Path) -> str:
    """Copy one artifact into the content-addressed store (verified first; nothing copied twice); its digest."""
    art = load_artifact(artifact_dir)  # UserError when a file no longer matches its manifest
    digest = manifest_digest(art.path)
    dest = artifacts_dir / "sha256" / digest
    if (dest / MANIFEST).is_file():
        return digest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{digest}-"))
    try:
        shutil.copy2(art.path / MANIFEST, tmp / MANIFEST)
        for name in art.manifest.get("files") or {}:
            shutil.copy2(art.path / name, tmp / name)
        load_artifact(tmp)  # the copy verifies too: a short write is caught here, not in a later run
        try:
            os.replace(tmp, dest)
        except OSError:
            if not (dest / MANIFEST).is_file():  # another accept of the same files won the race: theirs is equal
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return digest


def keep_run(artifacts_dir: Path, run: dict[str, Any], variants: list[str] | None = None
             ) -> tuple[dict[str, str], dict[str, str]]:
    """Keep the artifact files of a stored run (`run["artifacts"]`, written by `bench run`) and record
    variant -> digest for its run id. Returns ({variant: digest} kept, {variant: why not kept})."""
    raw = run.get("artifacts")
    recorded: dict[str, Any] = raw if isinstance(raw, dict) else {}
    kept: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for variant, info in sorted(recorded.items()):
        if variants is not None and variant not in variants:
            continue
        path = Path(str((info or {}).get("path", ""))) if isinstance(info, dict) else Path(str(info))
        want = info.get("manifest_sha256") if isinstance(info, dict) else None
        if not (path / MANIFEST).is_file():
            skipped[variant] = f"{path} no longer holds the artifact"
            continue
        if want and manifest_digest(path) != want:
            skipped[variant] = f"{path} was rewritten since the run (its manifest changed)"
            continue
        try:
            kept[variant] = keep(artifacts_dir, path)
        except UserError as e:
            skipped[variant] = str(e)
    if not recorded:
        skipped["*"] = "the run recorded no artifact directories (stored by an older bench, or by bench sweep)"
    index = artifacts_dir / "runs" / f"{run['run_id']}.json"
    if kept:
        old = read_index(artifacts_dir, str(run["run_id"]))
        index.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(index, {**old, **{v: {"sha256": d} for v, d in kept.items()}})
    return kept, skipped


def read_index(artifacts_dir: Path, run_id: str) -> dict[str, Any]:
    """{variant: {"sha256": digest}} kept for an accepted run ({} when none)."""
    path = artifacts_dir / "runs" / f"{run_id}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def kept_dir(artifacts_dir: Path, digest: str) -> Path:
    """The directory of a kept artifact."""
    return artifacts_dir / "sha256" / digest


def run_artifacts(artifacts: dict[str, Path]) -> dict[str, dict[str, str]]:
    """What `bench run` records under results["artifacts"]: each variant's directory and manifest digest, so
    `bench accept` can keep exactly the files that were measured (and refuse files rewritten since)."""
    out: dict[str, dict[str, str]] = {}
    for variant, path in artifacts.items():
        try:
            out[variant] = {"path": str(Path(path).resolve()), "manifest_sha256": manifest_digest(Path(path))}
        except OSError:
            continue
    return out

