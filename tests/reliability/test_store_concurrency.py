"""Several `bench run` processes writing to one SQLite store at once lose nothing and duplicate nothing; a
writer killed with SIGKILL in the middle of storing leaves no partial run; a file that is not a store is
refused with one line (exit 2)."""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import numpy as np
import pytest

from harness.history.store import ResultsStore

RUNS_PER_WRITER = 8
CELLS = (("openvino", "l1-int8"), ("openvino", "dense-fp32"), ("onnxruntime", "l1-int8"),
         ("torch-eager", "dense-fp32"))


def sample_run(run_id: str, seed: int) -> dict[str, Any]:
    """A small but complete results dict with 1500 raw samples per cell (a non-trivial transaction)."""
    rng = np.random.default_rng(seed)
    results = []
    for backend, variant in CELLS:
        for scenario, batch in (("latency", 1), ("throughput", 32)):
            s = 0.3 * batch ** 0.8 * np.exp(rng.normal(0, 0.05, 1500))
            results.append({
                "backend": backend, "variant": variant, "device": "cpu", "precision": variant[-4:],
                "scenario": scenario, "batch_size": batch, "status": "ok", "reason": "",
                "latency_ms": {"p50": float(np.median(s)), "p99": float(np.percentile(s, 99))},
                "throughput_fps": float(1000 * batch / np.median(s)), "valid": True, "invalid_reasons": [],
                "accuracy": 0.85, "samples_ms": s.tolist(), "confusion": [[10, 1], [2, 9]],
            })
    return {"schema_version": 1, "run_id": run_id, "created": f"2026-03-01T00:00:{seed % 60:02d}Z",
            "fingerprint": {"id": "fp-x", "cpu": {"brand": "Test CPU"}}, "config": {"data": {"dataset": "synthfer"}},
            "config_hash": "cfg", "results": results, "agreement": []}


def _writer(url: str, worker: int, start: Any, out: Any) -> None:
    store = ResultsStore(url)  # every process opens (and maybe creates) the store itself
    start.wait(timeout=60)
    for i in range(RUNS_PER_WRITER):
        seed = worker * 100 + i
        store.save_run(sample_run(f"w{worker}-{i:02d}", seed))
    store.close()
    out.put(worker)


@pytest.mark.parametrize("writers", [2, 4])
def test_concurrent_writers_lose_and_duplicate_nothing(tmp_path, writers):
    url = f"sqlite:///{tmp_path / 'runs' / 'history.sqlite'}"
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(writers)
    done = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, w, start, done)) for w in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    assert sorted(done.get(timeout=5) for _ in procs) == list(range(writers))

    with ResultsStore(url) as store:
        runs = store.list_runs()
        ids = [r["run_id"] for r in runs]
        expected = {f"w{w}-{i:02d}" for w in range(writers) for i in range(RUNS_PER_WRITER)}
        assert len(ids) == len(set(ids)) == writers * RUNS_PER_WRITER  # nothing duplicated
        assert set(ids) == expected  # nothing lost
        assert len(store.all_results()) == writers * RUNS_PER_WRITER * len(CELLS) * 2
        for w in range(writers):  # every run complete and bit-exact, samples included
            for i in (0, RUNS_PER_WRITER - 1):
                assert store.load_run(f"w{w}-{i:02d}") == sample_run(f"w{w}-{i:02d}", w * 100 + i)


def _save_forever(url: str, first: int) -> None:
    store = ResultsStore(url)
    i = first
    while True:
        run = sample_run(f"k{i:05d}", i)
        for r in run["results"]:
            r["samples_ms"] = r["samples_ms"] * 20  # ~240k samples per run: a transaction that takes a while
        store.save_run(run)
        i += 1


@pytest.mark.slow
def test_sigkill_while_storing_leaves_no_partial_run(tmp_path):
    """SIGKILL a writer at 4 moments in the middle of its transactions: the store opens, passes SQLite's
    integrity check, and every run in it is complete (all its rows and samples)."""
    import os
    import signal
    import time

    from sqlalchemy import create_engine, text

    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    ResultsStore(url).close()
    ctx = mp.get_context("spawn")
    rng = np.random.default_rng(0)
    for k in range(4):
        p = ctx.Process(target=_save_forever, args=(url, k * 1000))
        p.start()
        time.sleep(3.0 + float(rng.uniform(0, 1.5)))  # spawn + imports, then somewhere inside a save
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        assert p.exitcode == -signal.SIGKILL
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    engine.dispose()
    with ResultsStore(url) as store:
        runs = store.list_runs()
        assert runs, "no run was stored at all: the kill moments never reached a commit"
        for r in runs:
            stored = store.load_run(r["run_id"])
            assert len(stored["results"]) == len(CELLS) * 2
            assert all(len(row["samples_ms"]) == 1500 * 20 for row in stored["results"])


NOT_A_STORE = {
    "text file": lambda p: p.write_text("these are my notes, not a database\n" * 100),
    "random bytes": lambda p: p.write_bytes(np.random.default_rng(1).bytes(8192)),
    "truncated store": lambda p: _truncated_store(p),
    "foreign database": lambda p: _foreign_db(p),
    "newer schema": lambda p: _newer_schema(p),
}


def _truncated_store(p):
    with ResultsStore(f"sqlite:///{p}") as store:
        store.save_run(sample_run("r", 1))
    data = p.read_bytes()
    p.write_bytes(data[:4096] + b"\xff" * 100)


def _foreign_db(p):
    import sqlite3

    con = sqlite3.connect(p)
    con.execute("CREATE TABLE runs (x INTEGER)")
    con.commit()
    con.close()


def _newer_schema(p):
    import sqlite3

    ResultsStore(f"sqlite:///{p}").close()
    con = sqlite3.connect(p)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()


@pytest.mark.parametrize("case", list(NOT_A_STORE))
def test_file_that_is_not_a_store_is_one_error_line(refuse, tmp_path, case):
    path = tmp_path / "history.sqlite"
    NOT_A_STORE[case](path)
    before = path.read_bytes()
    refuse(["history", "--store", f"sqlite:///{path}"], contains=("results store", str(path)))
    if case == "foreign database":  # known: opening switches it to WAL journaling (header bytes 18-19); no data
        import sqlite3

        con = sqlite3.connect(path)
        assert con.execute("SELECT name FROM sqlite_master").fetchall() == [("runs",)]
        con.close()
    else:
        assert path.read_bytes() == before, "the refused file was modified"
