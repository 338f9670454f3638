"""The shared fleet history on a real PostgreSQL server (started on 127.0.0.1 by the `postgres_server`
fixture): same schema and migrations as SQLite, two machines writing at once, idempotent import."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

import harness.cli.entry as cli
from common.records import SCHEMA_VERSION as RESULT_SCHEMA_VERSION
from harness.history.store import SCHEMA_VERSION, ResultsStore

pytestmark = pytest.mark.postgres
RUNS_PER_MACHINE = 6


def machine_run(run_id: str, machine: str, fp_id: str, seed: int, cpu: str = "Test CPU") -> dict[str, Any]:
    """A complete small run measured on `machine` (fingerprint `fp_id`), with raw samples."""
    rng = np.random.default_rng(seed)
    results = []
    for backend, variant in (("openvino", "l1-int8"), ("onnxruntime", "l1-int8")):
        s = 0.3 * np.exp(rng.normal(0, 0.05, 400))
        results.append({"backend": backend, "variant": variant, "device": "cpu", "scenario": "latency",
                        "batch_size": 1, "status": "ok", "reason": "", "valid": True, "invalid_reasons": [],
                        "latency_ms": {"p50": float(np.median(s)), "p99": float(np.percentile(s, 99))},
                        "throughput_fps": float(1000 / np.median(s)), "accuracy": 0.8, "storage_mb": 3.5,
                        "samples_ms": s.tolist(), "describe": {"threads": 2}})
    return {"schema_version": 1, "run_id": run_id, "created": f"2026-03-01T00:{seed % 60:02d}:00Z",
            "fingerprint": {"id": fp_id, "machine_id": machine, "cpu": {"brand": cpu, "logical_cores": 2}},
            "config": {"data": {"dataset": "synthfer"}}, "config_hash": "cfg", "results": results}


def _writer(url: str, machine: str, fp_id: str, start: Any) -> None:
    store = ResultsStore(url)  # each machine opens (and maybe creates) the shared store itself
    start.wait(timeout=60)
    for i in range(RUNS_PER_MACHINE):
        store.save_run(machine_run(f"{machine}-{i}", machine, fp_id, seed=i))
    store.close()


def test_fresh_store_and_migration_from_v2(pg_url) -> None:
    url = pg_url()
    with ResultsStore(url) as store:
        assert store.is_postgres and store.schema_version() == SCHEMA_VERSION == 4
        store.save_run(machine_run("old-1", "edge-a", "fp-a", seed=1))
    # turn it back into what schema v2 wrote, then reopen: the v2 -> v3 -> v4 steps run on PostgreSQL
    with ResultsStore(url) as store, store.engine.begin() as conn:
        conn.execute(text("DROP TABLE accepted_changes"))
        conn.execute(text("DROP INDEX ix_runs_machine_id"))
        conn.execute(text("DROP INDEX ix_results_machine_id"))
        conn.execute(text("ALTER TABLE runs DROP COLUMN machine_id"))
        for col in ("machine_id", "fingerprint_id", "target"):
            conn.execute(text(f"ALTER TABLE results DROP COLUMN {col}"))
        conn.execute(text("UPDATE meta SET value = '2' WHERE key = 'schema_version'"))
    with ResultsStore(url) as store:
        assert store.schema_version() == 4
        store.accept("old-1", "the v4 table exists again", "ci")
        assert [a["reason"] for a in store.acceptances(["old-1"])] == ["the v4 table exists again"]
        assert store.list_runs()[0]["machine_id"] == "edge-a"  # filled from the stored header
        assert {(r["machine_id"], r["fingerprint_id"]) for r in store.all_results()} == {("edge-a", "fp-a")}
        assert store.load_run("old-1")["results"][0]["samples_ms"] == \
            machine_run("old-1", "edge-a", "fp-a", seed=1)["results"][0]["samples_ms"]


def test_two_machines_write_at_once(pg_url) -> None:
    url = pg_url()
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(url, m, f, start)) for m, f in (("edge-a", "fp-a"), ("edge-b", "fp-b"))]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    with ResultsStore(url) as store:
        assert store.count_runs() == 2 * RUNS_PER_MACHINE
        rows = store.all_results()
        by_machine = {(r["machine_id"], r["fingerprint_id"]) for r in rows}
        assert by_machine == {("edge-a", "fp-a"), ("edge-b", "fp-b")}
        assert all(r["run_id"].startswith(r["machine_id"]) for r in rows)  # no row attributed to the other box
        assert len(rows) == 2 * RUNS_PER_MACHINE * 2


def test_sqlite_history_imported_twice_adds_its_runs_once(pg_url, tmp_path, capsys) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'edge.sqlite'}"
    with ResultsStore(sqlite_url) as edge:
        for i in range(3):
            edge.save_run(machine_run(f"edge-{i}", "edge-a", "fp-a", seed=i))
    url = pg_url()
    with ResultsStore(url) as shared:
        shared.save_run(machine_run("gpu-0", "gpu-box", "fp-g", seed=9))
    assert cli.main(["store", "import", str(tmp_path / "edge.sqlite"), "--store", url]) == 0
    assert "imported 3 new runs" in capsys.readouterr().out
    assert cli.main(["store", "import", sqlite_url, "--store", url]) == 0  # again, now by URL
    assert "imported 0 new runs into" in capsys.readouterr().out
    with ResultsStore(url) as shared:
        assert sorted(shared.run_ids()) == ["edge-0", "edge-1", "edge-2", "gpu-0"]
        # samples intact; import checks every run against the schema and stores it at the current result version
        imported, original = shared.load_run("edge-1"), ResultsStore(sqlite_url).load_run("edge-1")
        assert imported == {**original, "schema_version": RESULT_SCHEMA_VERSION}
    # export the shared history and import it into an empty SQLite file: the same runs come back
    out = tmp_path / "fleet.jsonl"
    assert cli.main(["store", "export", "--store", url, "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 4
    back = f"sqlite:///{tmp_path / 'back.sqlite'}"
    assert cli.main(["store", "import", str(out), "--store", back]) == 0
    assert cli.main(["store", "import", str(out), "--store", back]) == 0
    with ResultsStore(back) as b:
        assert b.count_runs() == 4 and b.load_run("gpu-0")["fingerprint"]["machine_id"] == "gpu-box"


def test_migrate_command_reports_the_schema(pg_url, capsys) -> None:
    url = pg_url()
    assert cli.main(["store", "migrate", "--store", url]) == 0
    assert f"schema v{SCHEMA_VERSION}, 0 runs" in capsys.readouterr().out


def test_version_1_runs_in_postgres_migrate_and_read_typed(pg_url, tmp_path, capsys) -> None:
    """A version-1 run stored in PostgreSQL (as the old code stored it) reads typed, `bench store migrate`
    restamps it, and a non-conforming import leaves the PostgreSQL store as it was."""
    from common.records import parse_run

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "results_v1_export.jsonl"
    raw = json.loads(fixture.read_text(encoding="utf-8").splitlines()[0])
    url = pg_url()
    with ResultsStore(url) as store:
        store.save_run(raw)
        assert store.load_run_typed() == parse_run(raw)
    capsys.readouterr()
    assert cli.main(["store", "migrate", "--store", url]) == 0
    assert "(1 upgraded to result version 2)" in capsys.readouterr().out
    bad = {**raw, "run_id": "bad", "results": [{**raw["results"][0], "valid": "yes"}]}
    src = tmp_path / "bad.json"
    src.write_text(json.dumps(bad), encoding="utf-8")
    assert cli.main(["store", "import", str(src), "--store", url]) == 2
    assert "results[0].valid: input should be a valid boolean" in capsys.readouterr().err
    with ResultsStore(url) as store:
        assert store.run_ids() == [raw["run_id"]] and store.load_run()["schema_version"] == 2
