"""The tables of the results store and the schema version they make (one place to read the whole schema).

Raw latency samples are stored as little-endian float64 bytes beside each row's JSON; every column that a query
filters on is also a real column (backend, variant, scenario, machine, ...). Older stores are upgraded by
`harness.history.migrations` when they are opened.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = 4

metadata = MetaData()

meta_table = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

runs_table = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(128), nullable=False, unique=True),
    Column("created", String(40), nullable=False),  # normalised UTC ISO 8601: sorts as text
    Column("fingerprint_id", String(128), nullable=False, index=True),
    Column("config_hash", String(128), nullable=False),
    Column("dataset", String(64)),  # added in schema v2
    Column("synthetic", Boolean),  # added in schema v2
    Column("machine_id", String(128), index=True),  # added in schema v3: the machine that ran the driver
    Column("header", Text, nullable=False),  # JSON: the run dict without its results
)
Index("ix_runs_fingerprint_config", runs_table.c.fingerprint_id, runs_table.c.config_hash)  # v2

results_table = Table(
    "results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_pk", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("backend", String(64), nullable=False),
    Column("variant", String(64), nullable=False),
    Column("device", String(32)),
    Column("scenario", String(32), nullable=False),
    Column("batch_size", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("valid", Boolean),
    Column("p50_ms", Float),
    Column("p99_ms", Float),
    Column("throughput_fps", Float),
    Column("accuracy", Float),
    Column("storage_mb", Float),
    Column("machine_id", String(128), index=True),  # v3: the machine that measured this row
    Column("fingerprint_id", String(128)),  # v3: that machine's fingerprint id
    Column("target", String(64)),  # v3: the hardware target label of a cluster node (None: local run)
    Column("row", Text, nullable=False),  # JSON: the result row without its raw samples
    Column("samples", LargeBinary),  # raw latency samples in ms, little-endian float64
)

# v4: `bench accept RUN --reason ...`: the level from RUN on is the new baseline of `bench compare --history`, for
# every cell of the run or the cells the filters name (None: any); who accepted it, when and why.
accepted_table = Table(
    "accepted_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(128), nullable=False, index=True),
    Column("machine_id", String(128)),
    Column("backend", String(64)),
    Column("variant", String(64)),
    Column("device", String(32)),
    Column("scenario", String(32)),
    Column("batch_size", Integer),
    Column("reason", Text, nullable=False),
    Column("who", String(128), nullable=False),
    Column("created", String(40), nullable=False),  # UTC ISO 8601
)
