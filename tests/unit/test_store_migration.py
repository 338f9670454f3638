"""A store written by schema v1 (no runs.dataset / runs.synthetic, no fingerprint+config index) is
migrated to the current schema on open, its runs intact and the new columns filled from the headers."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

from harness.history.store import SCHEMA_VERSION, ResultsStore

V1_DDL = """
CREATE TABLE meta (key VARCHAR(64) NOT NULL PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    run_id VARCHAR(128) NOT NULL UNIQUE,
    created VARCHAR(40) NOT NULL,
    fingerprint_id VARCHAR(128) NOT NULL,
    config_hash VARCHAR(128) NOT NULL,
    header TEXT NOT NULL
);
CREATE INDEX ix_runs_fingerprint_id ON runs (fingerprint_id);
CREATE TABLE results (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    run_pk INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    backend VARCHAR(64) NOT NULL,
    variant VARCHAR(64) NOT NULL,
    device VARCHAR(32),
    scenario VARCHAR(32) NOT NULL,
    batch_size INTEGER NOT NULL,
    status VARCHAR(16) NOT NULL,
    valid BOOLEAN,
    p50_ms FLOAT, p99_ms FLOAT, throughput_fps FLOAT, accuracy FLOAT, storage_mb FLOAT,
    row TEXT NOT NULL,
    samples BLOB
);
CREATE INDEX ix_results_run_pk ON results (run_pk);
"""


def _write_v1_store(path: Path, runs: list[dict]) -> None:
    """What bench 0.0 wrote: the v1 tables, by hand with sqlite3 (no SQLAlchemy)."""
    con = sqlite3.connect(path)
    con.executescript(V1_DDL)
    con.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
    for run in runs:
        header = {k: v for k, v in run.items() if k not in ("results", "dataset", "synthetic")}
        cur = con.execute(
            "INSERT INTO runs (run_id, created, fingerprint_id, config_hash, header) VALUES (?, ?, ?, ?, ?)",
            (run["run_id"], run["created"].replace("Z", ".000000Z"), run["fingerprint"]["id"],
             run["config_hash"], json.dumps(header)),
        )
        pk = cur.lastrowid
        for i, r in enumerate(run["results"]):
            row = {k: v for k, v in r.items() if k != "samples_ms"}
            lat = r.get("latency_ms") or {}
            con.execute(
                "INSERT INTO results (run_pk, position, backend, variant, device, scenario, batch_size, status,"
                " valid, p50_ms, p99_ms, throughput_fps, accuracy, storage_mb, row, samples)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (pk, i, r["backend"], r["variant"], r["device"], r["scenario"], r["batch_size"], r["status"],
                 r["valid"], lat.get("p50"), lat.get("p99"), r["throughput_fps"], r["accuracy"],
                 r.get("storage_mb"), json.dumps(row), np.asarray(r["samples_ms"], "<f8").tobytes()),
            )
    con.commit()
    con.close()


def test_v1_store_is_migrated(tmp_path, make_run):
    path = tmp_path / "old.sqlite"
    old_runs = [make_run("v1-a", created="2025-06-01T00:00:00Z", backends=("openvino",)),
                make_run("v1-b", created="2025-06-02T00:00:00Z", backends=("openvino",), dataset="jaffe")]
    _write_v1_store(path, old_runs)

    with ResultsStore(f"sqlite:///{path}") as store:
        assert store.schema_version() == SCHEMA_VERSION == 4
        listed = store.list_runs()
        assert [(r["run_id"], r["dataset"], r["synthetic"]) for r in listed] == [
            ("v1-b", "jaffe", False), ("v1-a", "synthfer", True)]  # backfilled from the stored config
        back = store.load_run("v1-a")
        assert back["results"] == old_runs[0]["results"]  # raw samples survive the migration
        assert [r["run_id"] for r in store.runs_like(store.load_run("v1-b"), 3)] == ["v1-a"]
        # v3: each run and row keyed by a machine; pre-v3 runs get one machine per fingerprint, never a hostname
        fid = old_runs[0]["fingerprint"]["id"]
        assert {r["machine_id"] for r in listed} == {f"fp-{fid}"}
        assert {(r["machine_id"], r["fingerprint_id"]) for r in store.all_results()} == {(f"fp-{fid}", fid)}
        store.save_run(make_run("v2-c", created="2025-06-03T00:00:00Z"))  # a new run after migrating
        assert store.count_runs() == 3

    con = sqlite3.connect(path)
    try:
        cols = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
        indexes = {r[1] for r in con.execute("PRAGMA index_list(runs)")}
    finally:
        con.close()
    assert {"dataset", "synthetic", "machine_id"} <= cols
    assert "ix_runs_fingerprint_config" in indexes

    with ResultsStore(f"sqlite:///{path}") as again:  # opening a current store migrates nothing
        assert again.schema_version() == 4 and again.count_runs() == 3
