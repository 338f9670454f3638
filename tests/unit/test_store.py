"""ResultsStore: round trip, listing, filters, runs_like, all_results, atomic writes, bad input."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import event

from common.errors import UserError
from common.results import hardware_summary
from harness.history.store import SCHEMA_VERSION, ResultsStore


def _url(tmp_path: Path, name: str = "history.sqlite") -> str:
    return f"sqlite:///{tmp_path / 'sub' / name}"


def test_round_trip_is_exact(tmp_path, make_run):
    run = make_run("run-a", n=500)
    with ResultsStore(_url(tmp_path)) as store:
        store.save_run(run)
        back = store.load_run("run-a")
        latest = store.load_run("latest")
    assert back == run  # every field, every raw sample bit-exact, result order kept
    assert latest == run
    assert (tmp_path / "sub" / "history.sqlite").is_file()  # parent folder created
    samples = next(r for r in back["results"] if r["status"] == "ok")["samples_ms"]
    assert len(samples) == 500 and all(isinstance(x, float) for x in samples)


def test_store_is_wal_and_versioned(tmp_path, make_run):
    with ResultsStore(_url(tmp_path)) as store:
        assert store.schema_version() == SCHEMA_VERSION
    con = sqlite3.connect(tmp_path / "sub" / "history.sqlite")
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    finally:
        con.close()


def test_numpy_values_and_layers_csv_are_stored(tmp_path, make_run):
    run = make_run("run-np")
    run.pop("layers")
    csv_path = tmp_path / "layers.csv"
    csv_path.write_text("layer,params_before,params_after\nconv1_1,640,320\nfc,4096,2048\n", encoding="utf-8")
    run["layers_csv"] = str(csv_path)
    ok = next(r for r in run["results"] if r["status"] == "ok")
    ok["samples_ms"] = np.asarray(ok["samples_ms"])
    ok["params"] = np.int64(123)
    with ResultsStore(_url(tmp_path)) as store:
        store.save_run(run)
        csv_path.unlink()  # the artifact moved away: the table is still with the run
        back = store.load_run("run-np")
    assert back["layers"] == [{"layer": "conv1_1", "params_before": "640", "params_after": "320"},
                              {"layer": "fc", "params_before": "4096", "params_after": "2048"}]
    ok_back = next(r for r in back["results"] if r["status"] == "ok")
    assert ok_back["params"] == 123
    assert ok_back["samples_ms"] == ok["samples_ms"].tolist()


def test_list_runs_order_filters_and_headlines(tmp_path, make_run):
    with ResultsStore(_url(tmp_path)) as store:
        store.save_run(make_run("old", created="2026-01-01T00:00:00Z", backends=("torch-eager",)))
        store.save_run(make_run("new", created="2026-01-03T00:00:00+00:00"))
        store.save_run(make_run("mid", created="2026-01-02T01:00:00+01:00"))  # = 00:00 UTC
        runs = store.list_runs()
        assert [r["run_id"] for r in runs] == ["new", "mid", "old"]
        assert [r["run_id"] for r in store.list_runs(limit=2)] == ["new", "mid"]
        assert [r["run_id"] for r in store.list_runs(backend="openvino")] == ["new", "mid"]
        ov = store.list_runs(backend="openvino", variant="l1-int8")[0]
        every = store.list_runs()[0]
        assert store.list_runs(backend="no-such-backend") == []
        with pytest.raises(UserError, match="--limit"):
            store.list_runs(limit=0)
    assert ov["best_p50_cell"] == "openvino/l1-int8" and ov["cells"] == 3
    assert every["best_p50_cell"] in ("openvino/l1-int8", "onnxruntime/l1-int8")
    assert every["best_p50_ms"] == pytest.approx(0.28, rel=0.1)
    assert every["failed"] == 12 and every["ok"] == 36  # tensorrt cells are unavailable
    assert every["fingerprint_id"] == "fp-a" and every["dataset"] == "synthfer" and every["synthetic"] is True
    assert every["hardware"] == "Intel Xeon Platinum 8481C (2 cores)"


def test_runs_like_same_fingerprint_and_config_only(tmp_path, make_run):
    with ResultsStore(_url(tmp_path)) as store:
        for i in range(4):
            store.save_run(make_run(f"same-{i}", created=f"2026-01-0{i + 1}T00:00:00Z", seed=i))
        store.save_run(make_run("other-hw", created="2026-01-02T12:00:00Z", fingerprint="fp-b"))
        store.save_run(make_run("other-cfg", created="2026-01-02T13:00:00Z", config_hash="cfg-2"))
        latest = store.load_run("latest")
        like = store.runs_like(latest, 2)
        assert latest["run_id"] == "same-3"
        assert [r["run_id"] for r in like] == ["same-2", "same-1"]
        assert [r["run_id"] for r in store.runs_like(latest, 10)] == ["same-2", "same-1", "same-0"]
        assert like[0]["results"][0]["samples_ms"]  # full runs, with raw samples
        assert store.runs_like(store.load_run("same-0"), 5) == []  # nothing earlier


def test_all_results_joins_fingerprint(tmp_path, make_run):
    with ResultsStore(_url(tmp_path)) as store:
        store.save_run(make_run("a", backends=("openvino",)))
        store.save_run(make_run("b", fingerprint="fp-b", cpu="AMD EPYC 9654", backends=("openvino",),
                                created="2026-02-01T00:00:00Z"))
        rows = store.all_results()
    assert len(rows) == 2 * 4 * 3
    assert {r["hardware"] for r in rows} == {"Intel Xeon Platinum 8481C (2 cores)", "AMD EPYC 9654 (2 cores)"}
    assert all("samples_ms" not in r and r["run_id"] in ("a", "b") for r in rows)
    assert {r["fingerprint"]["id"] for r in rows} == {"fp-a", "fp-b"}


def test_unknown_run_lists_recent_ids(tmp_path, make_run):
    with ResultsStore(_url(tmp_path)) as store:
        with pytest.raises(UserError, match="holds no runs"):
            store.load_run("latest")
        store.save_run(make_run("r-1", created="2026-01-01T00:00:00Z"))
        store.save_run(make_run("r-2", created="2026-01-02T00:00:00Z"))
        with pytest.raises(UserError, match=r"unknown run id 'nope'.*r-2, r-1"):
            store.load_run("nope")


def test_duplicate_run_id_refused_or_replaced(tmp_path, make_run):
    with ResultsStore(_url(tmp_path)) as store:
        store.save_run(make_run("dup"))
        with pytest.raises(UserError, match="already stored"):
            store.save_run(make_run("dup", seed=5))
        store.save_run(make_run("dup", seed=5), replace=True)
        assert store.count_runs() == 1
        assert store.load_run("dup") == make_run("dup", seed=5)
        assert len(store.all_results()) == 48


def test_failed_save_stores_nothing(tmp_path, make_run):
    """A failure after the run row was inserted (while inserting the results) rolls everything back."""
    with ResultsStore(_url(tmp_path)) as store:
        store.save_run(make_run("kept"))

        def boom(conn, cursor, statement, params, context, executemany):
            if statement.lstrip().upper().startswith("INSERT INTO RESULTS"):
                raise RuntimeError("disk fell off")

        event.listen(store.engine, "before_cursor_execute", boom)
        with pytest.raises(RuntimeError, match="disk fell off"):
            store.save_run(make_run("lost"))
        event.remove(store.engine, "before_cursor_execute", boom)
        assert [r["run_id"] for r in store.list_runs()] == ["kept"]
        assert len(store.all_results()) == 48
        store.save_run(make_run("lost"))  # the id is free: nothing half-written blocks it
        assert store.count_runs() == 2


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda r: r.pop("run_id"), "run_id"),
        (lambda r: r.update(created="yesterday"), "ISO 8601"),
        (lambda r: r.update(results="nope"), "results"),
        (lambda r: r["results"][0].update(batch_size="one"), "batch_size"),
        (lambda r: r["results"][1].update(samples_ms=["fast", "slow"]), "samples_ms"),
    ],
)
def test_malformed_run_is_a_user_error(tmp_path, make_run, mutate, match):
    run = make_run("bad")
    mutate(run)
    with ResultsStore(_url(tmp_path)) as store:
        with pytest.raises(UserError, match=match):
            store.save_run(run)
        assert store.count_runs() == 0


def test_bad_urls_and_newer_schema(tmp_path):
    with pytest.raises(UserError, match="not a database URL"):
        ResultsStore("not a url at all")
    with pytest.raises(UserError, match="no database driver"):
        ResultsStore("nosuchdb://host/db")
    path = tmp_path / "future.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE meta (key VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    con.commit()
    con.close()
    with pytest.raises(UserError, match=r"schema v99.*newer"):
        ResultsStore(f"sqlite:///{path}")


def test_resolve_reads_results_json(tmp_path, make_run):
    run = make_run("from-file")
    f = tmp_path / "results.json"
    f.write_text(json.dumps(run), encoding="utf-8")
    with ResultsStore(_url(tmp_path)) as store:
        assert store.resolve(str(f)) == run
        with pytest.raises(UserError, match="does not exist"):
            store.resolve(str(tmp_path / "missing.json"))
        (tmp_path / "broken.json").write_text("{", encoding="utf-8")
        with pytest.raises(UserError, match="not valid JSON"):
            store.resolve(str(tmp_path / "broken.json"))


@pytest.mark.parametrize(
    ("fp", "expected"),
    [
        ({"cpu": {"brand": "Intel Xeon", "cores": 8}, "gpu": [{"name": "NVIDIA H100"}]},
         "Intel Xeon (8 cores) + NVIDIA H100"),
        ({"cpu_brand": "AMD EPYC", "gpu": None}, "AMD EPYC"),
        ({"cpu": "Apple M3", "gpus": ["A", "B"]}, "Apple M3 + A + B"),
        (None, "unknown hardware"),
    ],
)
def test_hardware_summary_shapes(fp, expected):
    assert hardware_summary(fp) == expected


def test_schema_compiles_for_postgresql():
    """No SQLite-only types in the schema: every table's DDL compiles for PostgreSQL."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    from harness.history.store import metadata

    for table in metadata.sorted_tables:
        ddl = str(CreateTable(table).compile(dialect=postgresql.dialect()))
        assert f"CREATE TABLE {table.name}" in ddl
        for ix in table.indexes:
            assert "CREATE INDEX" in str(CreateIndex(ix).compile(dialect=postgresql.dialect()))
    results_ddl = str(CreateTable(metadata.tables["results"]).compile(dialect=postgresql.dialect()))
    assert "BYTEA" in results_ddl and "SERIAL" in results_ddl


def test_resolve_run_folder_and_memory_store(tmp_path, make_run):
    run = make_run("in-folder")
    (tmp_path / "runs" / "in-folder").mkdir(parents=True)
    (tmp_path / "runs" / "in-folder" / "results.json").write_text(json.dumps(run), encoding="utf-8")
    with ResultsStore("sqlite://") as store:  # in-memory store: same API
        assert store.resolve(str(tmp_path / "runs" / "in-folder")) == run
        store.save_run(run)
        assert store.load_run("latest") == run
