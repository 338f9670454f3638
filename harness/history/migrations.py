"""Schema migrations of the results store: version n -> n + 1, each run inside the transaction that opens the store.

A migration fills new columns from each stored run's JSON header, so an upgraded store answers every query a new
one does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, select, text, update

from common.results import fingerprint_id, machine_id
from harness.history.schema import accepted_table, results_table, runs_table


def dataset_of(run: dict[str, Any]) -> tuple[str | None, bool | None]:
    dataset = run.get("dataset")
    if not isinstance(dataset, str):
        data = (run.get("config") or {}).get("data") if isinstance(run.get("config"), dict) else None
        dataset = data.get("dataset") if isinstance(data, dict) else None
    synthetic = run.get("synthetic")
    if not isinstance(synthetic, bool):
        synthetic = None if dataset is None else dataset == "synthfer"
    return (dataset if isinstance(dataset, str) else None), synthetic


def _migrate_1_to_2(conn: Connection) -> None:
    """v2 adds `runs.dataset` and `runs.synthetic` (filled from each stored header) and an index on
    (fingerprint_id, config_hash) for `runs_like`."""
    conn.execute(text("ALTER TABLE runs ADD COLUMN dataset VARCHAR(64)"))
    conn.execute(text("ALTER TABLE runs ADD COLUMN synthetic BOOLEAN"))
    rows = conn.execute(select(runs_table.c.id, runs_table.c.header)).all()
    for pk, header in rows:
        dataset, synthetic = dataset_of(json.loads(header))
        conn.execute(update(runs_table).where(runs_table.c.id == pk).values(dataset=dataset, synthetic=synthetic))
    for ix in runs_table.indexes:
        if ix.name == "ix_runs_fingerprint_config":
            ix.create(conn)


def _migrate_2_to_3(conn: Connection) -> None:
    """v3 keys runs and result rows by machine: `runs.machine_id`, `results.machine_id/fingerprint_id/target`,
    filled from each stored header (older runs: one machine per fingerprint, "fp-<fingerprint id>")."""
    conn.execute(text("ALTER TABLE runs ADD COLUMN machine_id VARCHAR(128)"))
    for col, size in (("machine_id", 128), ("fingerprint_id", 128), ("target", 64)):
        conn.execute(text(f"ALTER TABLE results ADD COLUMN {col} VARCHAR({size})"))
    for pk, header in conn.execute(select(runs_table.c.id, runs_table.c.header)).all():
        run = json.loads(header)
        conn.execute(update(runs_table).where(runs_table.c.id == pk).values(machine_id=machine_id(run)))
        conn.execute(update(results_table).where(results_table.c.run_pk == pk).values(
            machine_id=machine_id(run), fingerprint_id=fingerprint_id(run)))
    for table, col in ((runs_table, "machine_id"), (results_table, "machine_id")):
        for ix in table.indexes:
            if ix.name == f"ix_{table.name}_{col}":
                ix.create(conn)


def _migrate_3_to_4(conn: Connection) -> None:
    """v4 adds `accepted_changes` (`bench accept`): no stored run changes."""
    accepted_table.create(conn)


# version n -> n + 1
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _migrate_1_to_2, 2: _migrate_2_to_3, 3: _migrate_3_to_4}
