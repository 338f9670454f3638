"""Ctrl-C (SIGINT to the process group), SIGTERM and SIGKILL during the real `bench` commands, run as
subprocesses with tiny settings: no half-written run in the store or on disk, no half-written artifact in
the cache, no cell process left running, and the next command works (an interrupted training resumes).

The tests of this module share one cache and run in file order (compress -> run -> run again -> train)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, text

from backends.artifact import load_artifact
from backends.registry import get_backend_class
from harness.history.store import ResultsStore

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not get_backend_class("openvino").probe().available, reason="needs the openvino backend"),
]

TINY = ["data.synthfer_train=70", "data.synthfer_val=70", "data.synthfer_test=70", "model.width=0.0625",
        "train.epochs=1", "train.bf16=false", "compress.finetune_epochs=0", "compress.qat_epochs=0",
        "compress.calibration_size=16", "benchmark.min_duration_s=0.05", "benchmark.min_iterations=5",
        "benchmark.warmup_s=0", "benchmark.batch_sizes=[1]", "benchmark.threads=1"]
RUN = ["run", "--backend", "openvino", "--variant", "l1-fp32", "--no-report"]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("signals")


def _sets(work: Path, extra: list[str] | None = None) -> list[str]:
    store = [f"store.cache_dir='{work / 'cache'}'", f"store.runs_dir='{work / 'runs'}'",
             f"store.url='sqlite:///{work / 'history.sqlite'}'"]
    return [x for s in [*TINY, *store, *(extra or [])] for x in ("--set", s)]


class Bench:
    """A `bench` subprocess in its own process group (as a shell job is), output in a file to watch."""

    def __init__(self, work: Path, argv: list[str], extra: list[str] | None = None) -> None:
        self.tmp = work / f"tmp-{time.monotonic_ns()}"  # its TMPDIR: tells its cell processes apart from others'
        self.tmp.mkdir()
        self.log = self.tmp / "output.txt"
        env = {**os.environ, "TMPDIR": str(self.tmp), "COLUMNS": "200"}
        # A test runner started as a background job of a non-interactive shell (`cmd &` in a script) has SIGINT
        # ignored, and an ignored signal stays ignored across exec: the child would never see the SIGINT these tests
        # send. A handler (not SIG_IGN) is reset to the default at exec, which is what a terminal gives `bench`.
        if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        with self.log.open("w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *argv, *_sets(work, extra)],
                                         stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                         cwd=work)

    def output(self) -> str:
        return self.log.read_text(errors="replace").replace("\r", "\n")

    def wait_for(self, pattern: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.output()):
            assert self.proc.poll() is None, f"bench exited ({self.proc.returncode}) before {pattern!r}:\n" + \
                self.output()[-3000:]
            assert time.monotonic() < deadline, f"no {pattern!r} within {timeout} s:\n{self.output()[-3000:]}"
            time.sleep(0.1)

    def wait_for_cell(self, timeout: float = 240) -> None:
        """Until a cell process of this bench is running (the grid prints a line per finished cell only)."""
        deadline = time.monotonic() + timeout
        while not self.cells_alive():
            assert self.proc.poll() is None, f"bench exited ({self.proc.returncode}) before a cell ran:\n" + \
                self.output()[-3000:]
            assert time.monotonic() < deadline, f"no cell within {timeout} s:\n{self.output()[-3000:]}"
            time.sleep(0.1)

    def signal_group(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)

    def finish(self, timeout: float = 240) -> int:
        return self.proc.wait(timeout=timeout)

    def cells_alive(self) -> list[psutil.Process]:
        alive = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if "harness.measure.cell" in cmd and str(self.tmp) in cmd:
                alive.append(p)
        return alive


def _stored_runs(work: Path) -> int:
    db = work / "history.sqlite"
    if not db.exists():
        return 0
    with ResultsStore(f"sqlite:///{db}") as store:
        return store.count_runs()


def _integrity(work: Path) -> None:
    db = work / "history.sqlite"
    if db.exists():
        engine = create_engine(f"sqlite:///{db}")
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        engine.dispose()


def _no_partial_artifacts(work: Path) -> None:
    root = work / "cache" / "artifacts"
    for d in root.glob("*/*") if root.exists() else []:
        assert not d.name.startswith("."), f"half-written artifact left in the cache: {d}"
        if d.is_dir():
            load_artifact(d)  # complete: manifest present, every file's size and sha256 match


def _results_files(work: Path) -> list[Path]:
    return sorted((work / "runs").glob("*/results.json")) if (work / "runs").exists() else []


def test_sigint_during_compress_leaves_no_partial_artifact(work: Path) -> None:
    # 100 QAT epochs (~7 s on 2 cores) keep the int8 build running when the signal comes: with none, the tiny
    # build could finish first and the signal land in interpreter shutdown (a flaky exit -2)
    qat = ["compress.qat_epochs=100"]
    b = Bench(work, ["compress", "--variant", "l1-fp32", "--variant", "l1-int8"], qat)
    b.wait_for(r"l1-int8: building")
    time.sleep(0.5)
    b.signal_group(signal.SIGINT)
    assert b.finish() == 130, b.output()[-2000:]
    assert "interrupted" in b.output() and "Traceback" not in b.output()
    _no_partial_artifacts(work)
    again = Bench(work, ["compress", "--variant", "l1-fp32", "--variant", "l1-int8"], qat)
    assert again.finish() == 0, again.output()[-3000:]
    _no_partial_artifacts(work)


@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                   (signal.SIGTERM, 143, "terminated")])
def test_signal_during_run_stores_nothing(work: Path, sig: int, code: int, word: str) -> None:
    before = _stored_runs(work)
    b = Bench(work, RUN)
    b.wait_for_cell()
    time.sleep(1.0)  # inside the cell
    b.signal_group(sig)
    assert b.finish() == code, b.output()[-2000:]
    assert word in b.output() and "Traceback" not in b.output(), b.output()[-2000:]
    time.sleep(0.5)
    assert b.cells_alive() == [], "a cell process outlived the interrupted bench run"
    assert _stored_runs(work) == before
    assert _results_files(work) == []
    _integrity(work)
    _no_partial_artifacts(work)


def test_sigkill_of_the_run_group_stores_nothing(work: Path) -> None:
    before = _stored_runs(work)
    b = Bench(work, RUN)
    b.wait_for(r"openvino l1-fp32: (ok|error)")  # the grid is done: what follows is agreement, store, files
    b.signal_group(signal.SIGKILL)
    assert b.finish() == -signal.SIGKILL
    _integrity(work)
    after = _stored_runs(work)
    assert after in (before, before + 1)  # either the whole run is stored or none of it
    if after == before + 1:
        with ResultsStore(f"sqlite:///{work / 'history.sqlite'}") as store:
            assert len(store.load_run("latest")["results"]) == 2


def test_next_run_after_interruptions_works(work: Path) -> None:
    before = _stored_runs(work)
    b = Bench(work, RUN)
    assert b.finish() == 0, b.output()[-3000:]
    assert _stored_runs(work) == before + 1
    assert len(_results_files(work)) >= 1
    _integrity(work)


def test_sigterm_during_train_then_training_resumes(work: Path) -> None:
    extra = ["train.epochs=3", "train.batch_size=8"]  # same data as the other tests: its cache is reused
    b = Bench(work, ["train"], extra)
    b.wait_for(r"epoch 1: loss")
    b.signal_group(signal.SIGTERM)
    assert b.finish() == 143, b.output()[-2000:]
    states = list((work / "cache" / "models").glob("*.state"))
    assert len(states) == 1, "the finished epoch's training state was not kept"
    assert not [p for p in (work / "cache" / "models").iterdir() if p.name.startswith(".")], "temp file left"
    again = Bench(work, ["train", "--json"], extra)
    assert again.finish() == 0, again.output()[-3000:]
    out = again.output()
    assert "epoch 1:" not in out and "epoch 3:" in out, out[-3000:]  # resumed after epoch 1 or 2
    assert not states[0].exists()
