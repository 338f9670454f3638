"""A full disk while writing the data cache, an artifact, a report file or the results store: a clear
one-line error, and every file written before is intact. The test mounts a small tmpfs (needs root and
mount(8)); elsewhere it skips with the reason."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from relkit import REFUSED, check_refused, run_cli

from common.atomic import write_bytes_atomic, write_text_atomic
from common.errors import UserError
from harness.history.store import ResultsStore


def _mount(path: Path, size: str) -> str | None:
    """Mount a tmpfs of `size` at `path`; None on success, else why not."""
    if shutil.which("mount") is None:
        return "no mount(8) here"
    if os.geteuid() != 0:
        return "mounting a small tmpfs needs root"
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                       text=True)
    return None if r.returncode == 0 else f"mount -t tmpfs failed: {r.stderr.strip()}"


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    fs = tmp_path / "small-fs"
    fs.mkdir()
    why = _mount(fs, "2m")
    if why is not None:
        pytest.skip(f"full-disk cases need a small filesystem: {why}")
    try:
        yield fs
    finally:
        subprocess.run(["umount", "-l", str(fs)], check=False)


def fill(fs: Path, leave: int = 0) -> None:
    """Fill `fs` up, then free `leave` bytes."""
    filler = fs / f"filler-{uuid.uuid4().hex}"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))


def test_atomic_write_on_full_disk_keeps_the_old_file(small_fs: Path) -> None:
    """Reports, results.json and manifests go through common.atomic: the old file survives a full disk."""
    report = small_fs / "report.md"
    write_text_atomic(report, "# earlier report\n")
    fill(small_fs, leave=4096)
    with pytest.raises(OSError) as e:
        write_bytes_atomic(report, b"x" * 200_000)
    assert e.value.errno == errno.ENOSPC
    assert report.read_text() == "# earlier report\n"
    assert sorted(p.name for p in small_fs.iterdir() if not p.name.startswith("filler")) == ["report.md"]


def test_data_cache_on_full_disk_is_one_error_line(small_fs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    earlier = small_fs / "earlier.txt"
    earlier.write_text("kept")
    fill(small_fs, leave=8192)
    code, _out, err = run_cli(["--quiet", "data", "--set", "data.synthfer_train=70", "--set", "data.synthfer_val=70",
                               "--set", "data.synthfer_test=70", "--set", f"store.cache_dir='{small_fs / 'cache'}'"],
                              capsys)
    line = check_refused(code, err, contains=("No space left on device",), what="data cache on a full disk")
    assert str(small_fs / "cache") in line
    assert earlier.read_text() == "kept"
    left = [p for p in (small_fs / "cache").rglob("*") if p.is_file()] if (small_fs / "cache").exists() else []
    assert left == [], f"partial cache file left: {left}"


def test_artifact_on_full_disk_leaves_the_earlier_variant(small_fs: Path, tiny_artifact: Path) -> None:
    from backends.artifact import load_artifact
    from compression.writer import write_variant

    out = small_fs / "artifacts"
    shutil.copytree(tiny_artifact, out / "dense-fp32")
    manifest = json.loads((out / "dense-fp32" / "manifest.json").read_text())
    fill(small_fs, leave=16384)
    big = np.random.default_rng(0).bytes(1 << 20)
    with pytest.raises(OSError) as e:
        write_variant(out, "dense-fp32", {"model.onnx": lambda p: p.write_bytes(big)}, manifest)
    assert e.value.errno == errno.ENOSPC
    assert sorted(p.name for p in out.iterdir()) == ["dense-fp32"], "temp dir of the failed write left behind"
    load_artifact(out / "dense-fp32")  # the earlier variant: complete, sizes and hashes match


def test_store_on_full_disk_refuses_and_keeps_earlier_runs(small_fs: Path) -> None:
    from test_store_concurrency import sample_run

    url = f"sqlite:///{small_fs / 'history.sqlite'}"
    with ResultsStore(url) as store:
        store.save_run(sample_run("earlier", 1))
    fill(small_fs, leave=32768)
    big = sample_run("big", 2)
    for r in big["results"]:
        r["samples_ms"] = r["samples_ms"] * 40  # a run far larger than the space left
    with ResultsStore(url) as store, pytest.raises(UserError) as e:
        store.save_run(big)
    msg = str(e.value)
    assert "disk is full" in msg and "\n" not in msg
    REFUSED.append("api: store on a full disk")
    with ResultsStore(url) as store:
        assert [r["run_id"] for r in store.list_runs()] == ["earlier"]
        assert store.load_run("earlier") == sample_run("earlier", 1)


def test_report_on_full_disk_is_one_error_line_and_keeps_the_earlier_report(
        small_fs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from test_store_concurrency import sample_run

    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    with ResultsStore(url) as store:
        store.save_run(sample_run("r1", 1))
    out = small_fs / "report"
    out.mkdir()
    (out / "report.md").write_text("# the earlier report\n")
    fill(small_fs, leave=4096)
    code, _out, err = run_cli(["--quiet", "report", "r1", "--store", url, "--out", str(out)], capsys)
    check_refused(code, err, contains=("No space left on device", str(out)), what="report on a full disk")
    assert (out / "report.md").read_text() == "# the earlier report\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temp file of the failed write left"
