"""Results history: every `bench run` (fingerprint, config, each result row with its raw latency samples)
in a SQL database through SQLAlchemy Core.

* Embedded default `sqlite:///runs/history.sqlite`; the shared fleet history is PostgreSQL
  (`postgresql+psycopg://user@host:port/db`, psycopg 3) with the same schema and migrations: the only
  dialect-specific SQL is the SQLite connection setup (`_setup_sqlite`) and PostgreSQL's advisory lock that
  lets one of several machines create or migrate the schema at a time (`_SCHEMA_LOCK`).
* Every result row is keyed by the machine that measured it (`machine_id`, `fingerprint_id`, `target`):
  a cluster run holds rows of several machines (schema v3).
* The schema is versioned in the `meta` table and older stores are migrated on open (`harness.history.migrations`).
* `save_run` writes a run in ONE transaction: fully stored or not at all.
* Several processes may write at once: SQLite runs in WAL mode with a busy timeout, write transactions
  take the write lock up front (`BEGIN IMMEDIATE`), and a transaction that still meets
  "database is locked" is retried as a whole; PostgreSQL's serialization failures and deadlocks likewise.
* `import_runs` copies runs from another store or an export file, keyed by run_id: importing twice adds nothing.
* Two reading forms: the dict form (`load_run`, `runs_like`, ...: the results-JSON dict as stored) and the typed
  form (`load_run_typed`, `runs_like_typed`, `iter_runs_typed`: `common.records.Run`, any stored result version
  upgraded to the current one). The typed form validates each stored row's JSON text directly (pydantic-core, no
  dict in between), which costs about what `json.loads` does (benchmarks/bench_typed_read.py). `all_results_typed`
  (for `bench select` and `bench report --compare-hardware`) reads every stored row as the slim
  `common.records.SelectionRow`: only the fields those read, the rest of each row's text passed over unbuilt.
* The result-JSON version (`schema_version` of a run, common.records) is not the store's table version
  (harness.history.schema.SCHEMA_VERSION); `upgrade_result_versions` restamps stored runs of older result versions.
"""

from __future__ import annotations

import gc
import json
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, DBAPIError, IntegrityError, NoSuchModuleError, OperationalError

from common.errors import UserError
from common.records import ROWS, SELECTION_ROWS, Row, Run, SchemaError, SelectionRow, first_error, upgrade_run
from common.records import SCHEMA_VERSION as RESULT_SCHEMA_VERSION
from common.results import (
    config_hash,
    fingerprint_id,
    hardware_summary,
    is_reference,
    machine_id,
    read_layers_csv,
    row_machine,
)
from common.text import finite_number, first_line
from harness.history.migrations import MIGRATIONS, dataset_of
from harness.history.schema import (
    SCHEMA_VERSION,
    accepted_table,
    meta_table,
    metadata,
    results_table,
    runs_table,
)

DEFAULT_URL = "sqlite:///runs/history.sqlite"
_LOCK_RETRY_S = 120.0  # give up on a locked database after this long (busy timeout + retries)
_BUSY_TIMEOUT_MS = 30_000
_SCHEMA_LOCK = 0x6665722D  # PostgreSQL advisory lock key ("fer-"): one process creates/migrates at a time
_RETRY_SQLSTATES = ("40001", "40P01")  # serialization_failure, deadlock_detected: retry the transaction

T = TypeVar("T")

# ----------------------------------------------------------------------------------------------- helpers


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    return str(o)  # Path, datetime, enum...: stored as text, as `bench run` writes them to results.json


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, sort_keys=True)


def _normalise_created(value: Any, run_id: str) -> str:
    if not isinstance(value, str):
        raise UserError(f"run {run_id}: 'created' must be an ISO 8601 time string, got {value!r}")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise UserError(f"run {run_id}: 'created' = {value!r} is not an ISO 8601 time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")



def _is_locked(e: DBAPIError) -> bool:
    """SQLite's "database is locked" or a PostgreSQL serialization failure / deadlock: retry the transaction."""
    if getattr(e.orig, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    msg = str(e.orig if e.orig is not None else e).lower()
    return isinstance(e, OperationalError) and ("locked" in msg or "busy" in msg)


def _setup_sqlite(engine: Engine) -> None:
    """WAL + busy timeout on every connection; SQLAlchemy (not sqlite3) emits BEGIN, IMMEDIATE for writes."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # sqlite3 must not emit its own BEGIN; we do below
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA synchronous = NORMAL")
        try:  # a persistent file setting; the first connection converts the file, later ones find it set
            mode = cur.execute("PRAGMA journal_mode").fetchone()
            if mode and str(mode[0]).lower() not in ("wal", "memory"):
                cur.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:
            pass  # another process is converting it right now; it ends up in WAL either way
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


# ------------------------------------------------------------------------------------------------ store


class ResultsStore:
    """The results database. `ResultsStore("sqlite:///runs/history.sqlite")` creates or migrates it."""

    def __init__(self, url: str = DEFAULT_URL) -> None:
        self.url = url
        self.engine = self._make_engine(url)
        try:
            self._retry(self._init_schema)
        except DatabaseError as e:  # e.g. the file is not a database, or cannot be opened: user input
            self.engine.dispose()
            reason = first_line(e.orig or e)
            raise UserError(f"results store {url}: cannot be opened as a database ({reason})") from None

    # --------------------------------------------------------------------------------- connection
    @staticmethod
    def _make_engine(url: str) -> Engine:
        try:
            u = make_url(url)
        except ArgumentError:
            raise UserError(
                f"store.url = {url!r} is not a database URL; use e.g. sqlite:///runs/history.sqlite "
                "or postgresql://user@host/db"
            ) from None
        is_sqlite = u.get_backend_name() == "sqlite"
        if is_sqlite and u.database and u.database != ":memory:" and not u.database.startswith("file:"):
            Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            engine = create_engine(u)
        except (NoSuchModuleError, ModuleNotFoundError, ImportError) as e:
            raise UserError(
                f"store.url = {url!r}: no database driver for {u.drivername!r} ({e}); "
                "sqlite:/// needs nothing; use postgresql+psycopg://... with psycopg 3 (installed by `make setup`)"
            ) from None
        if is_sqlite:
            _setup_sqlite(engine)
        return engine

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction that holds the write lock from its first statement (SQLite: BEGIN IMMEDIATE)."""
        with self.engine.connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    def _retry(self, fn: Callable[[], T]) -> T:
        """Run `fn` (one whole transaction), retrying while the database is locked by another writer."""
        deadline = time.monotonic() + _LOCK_RETRY_S
        delay = 0.02
        while True:
            try:
                return fn()
            except DBAPIError as e:
                if "full" in str(e.orig).lower():  # SQLite: "database or disk is full"; the transaction rolled back
                    raise UserError(f"results store {self.url}: the disk is full ({first_line(e.orig or e)}); "
                                    "nothing of this write was stored, earlier runs are intact") from None
                if not _is_locked(e):
                    raise
                if time.monotonic() > deadline:
                    raise UserError(
                        f"results store {self.url} stayed locked for {_LOCK_RETRY_S:.0f} s "
                        "(another process is writing); try again"
                    ) from None
                time.sleep(delay * (1.0 + random.random()))
                delay = min(delay * 2.0, 0.5)

    # ------------------------------------------------------------------------------------- schema
    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def _init_schema(self) -> None:
        with self._write() as conn:
            if self.is_postgres:  # several machines may open a fresh shared store at once
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK})
            tables = set(inspect(conn).get_table_names())
            if "meta" not in tables:
                if tables & {"runs", "results"}:
                    raise UserError(f"results store {self.url} has tables but no schema version; not ours?")
                metadata.create_all(conn)
                conn.execute(insert(meta_table).values(key="schema_version", value=str(SCHEMA_VERSION)))
                return
            raw = conn.execute(select(meta_table.c.value).where(meta_table.c.key == "schema_version")).scalar()
            try:
                version = int(raw) if raw is not None else 0
            except ValueError:
                version = 0
            if version > SCHEMA_VERSION:
                raise UserError(
                    f"results store {self.url} has schema v{version}, written by a newer bench; "
                    f"this one reads up to v{SCHEMA_VERSION}: upgrade fer-bench"
                )
            if version < 1:
                raise UserError(f"results store {self.url}: unreadable schema version {raw!r}")
            while version < SCHEMA_VERSION:
                MIGRATIONS[version](conn)
                version += 1
                conn.execute(
                    update(meta_table).where(meta_table.c.key == "schema_version").values(value=str(version))
                )

    def schema_version(self) -> int:
        """The schema version recorded in the store."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(meta_table.c.value).where(meta_table.c.key == "schema_version"))
                       .scalar_one())

    # -------------------------------------------------------------------------------------- write
    def save_run(self, run: dict[str, Any], *, replace: bool = False) -> None:
        """Store a run (fingerprint, config, every result with its raw samples) in one transaction.

        A run id already stored raises UserError unless `replace` (then the old copy is replaced atomically).
        """
        run_id, header, result_rows = self._prepare(run)
        self._retry(lambda: self._insert(run_id, header, result_rows, replace))

    def _prepare(self, run: dict[str, Any]) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
        if not isinstance(run, dict):
            raise UserError(f"a run must be a JSON object, got {type(run).__name__}")
        run_id = run.get("run_id")
        if not isinstance(run_id, str) or not run_id.strip():
            raise UserError("the run has no 'run_id' (a non-empty string)")
        results = run.get("results")
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            raise UserError(f"run {run_id}: 'results' must be a list of result objects")
        header = {k: v for k, v in run.items() if k != "results"}
        if "layers" not in header and header.get("layers_csv"):
            rows = read_layers_csv(Path(str(header["layers_csv"])))
            if rows is not None:
                header["layers"] = rows  # keep Table 4 with the run even if the artifact moves
        dataset, synthetic = dataset_of(run)
        values: dict[str, Any] = {
            "run_id": run_id,
            "created": _normalise_created(run.get("created"), run_id),
            "fingerprint_id": fingerprint_id(run),
            "config_hash": config_hash(run),
            "machine_id": machine_id(run),
        }
        values.update(dataset=dataset, synthetic=synthetic, header=_dumps(header))
        prepared: list[dict[str, Any]] = []
        for i, r in enumerate(results):
            mid, fid, _fp = row_machine(r, run)
            target = r.get("target")
            prepared.append({**_result_values(run_id, i, r), "machine_id": mid, "fingerprint_id": fid,
                             "target": target if isinstance(target, str) else None})
        return run_id, values, prepared

    def _insert(self, run_id: str, values: dict[str, Any], rows: list[dict[str, Any]], replace: bool,
                skip_existing: bool = False) -> bool:
        with self._write() as conn:
            old = conn.execute(select(runs_table.c.id).where(runs_table.c.run_id == run_id)).scalar()
            if old is not None:
                if skip_existing:
                    return False
                if not replace:
                    raise UserError(f"run {run_id} is already stored in {self.url}")
                conn.execute(delete(results_table).where(results_table.c.run_pk == old))
                conn.execute(delete(runs_table).where(runs_table.c.id == old))
            pk = conn.execute(insert(runs_table).values(**values)).inserted_primary_key[0]  # type: ignore[index]
            if rows:
                conn.execute(insert(results_table), [{**r, "run_pk": pk} for r in rows])
        return True

    def add_if_new(self, run: dict[str, Any]) -> bool:
        """Store `run` unless its run_id is already stored (True if added): what makes imports idempotent,
        also against another process importing the same run at the same moment (the unique run_id wins)."""
        run_id, header, result_rows = self._prepare(run)
        try:
            return self._retry(lambda: self._insert(run_id, header, result_rows, False, skip_existing=True))
        except IntegrityError:
            return False  # a concurrent writer stored the same run_id between our check and insert

    def run_ids(self) -> list[str]:
        """Every stored run id, oldest first."""
        with self.engine.connect() as conn:
            q = select(runs_table.c.run_id).order_by(runs_table.c.created, runs_table.c.id)
            return [str(x) for x in conn.execute(q).scalars()]

    def iter_runs(self) -> Iterator[dict[str, Any]]:
        """Every stored run (with raw samples), oldest first, one at a time."""
        for rid in self.run_ids():
            yield self.load_run(rid)

    # --------------------------------------------------------------------------------------- read
    def _recent_ids(self, conn: Connection, n: int = 5) -> list[str]:
        q = select(runs_table.c.run_id).order_by(runs_table.c.created.desc(), runs_table.c.id.desc()).limit(n)
        return [r[0] for r in conn.execute(q)]

    def _run_pk(self, conn: Connection, run_id: str) -> int:
        if run_id == "latest":
            q = select(runs_table.c.id).order_by(runs_table.c.created.desc(), runs_table.c.id.desc()).limit(1)
            pk = conn.execute(q).scalar()
            if pk is None:
                raise UserError(f"the results store {self.url} holds no runs yet; run `bench run` first")
            return int(pk)
        pk = conn.execute(select(runs_table.c.id).where(runs_table.c.run_id == run_id)).scalar()
        if pk is None:
            recent = self._recent_ids(conn)
            hint = f"recent runs: {', '.join(recent)}" if recent else "the store holds no runs yet"
            raise UserError(f"unknown run id {run_id!r} in {self.url} ({hint}, or 'latest')")
        return int(pk)

    def _load_pk(self, conn: Connection, pk: int, samples: bool = True) -> dict[str, Any]:
        header = conn.execute(select(runs_table.c.header).where(runs_table.c.id == pk)).scalar_one()
        run: dict[str, Any] = json.loads(header)
        blobs = results_table.c.samples if samples else literal_column("NULL")
        q = (
            select(results_table.c.row, blobs)
            .where(results_table.c.run_pk == pk)
            .order_by(results_table.c.position)
        )
        results = []
        for row_json, blob in conn.execute(q):
            row = json.loads(row_json)
            if blob is not None:
                row["samples_ms"] = np.frombuffer(blob, dtype="<f8").tolist()
            results.append(row)
        run["results"] = results
        return run

    def load_run(self, run_id: str = "latest") -> dict[str, Any]:
        """The stored run as the results-JSON dict (with raw samples); 'latest' is the newest run."""
        with self.engine.connect() as conn:
            return self._load_pk(conn, self._run_pk(conn, run_id))

    # ---------------------------------------------------------------------------------- typed read
    def _load_pk_typed(self, conn: Connection, pk: int, samples: bool = True) -> Run:
        """One stored run as a Run: the header parsed once, every row validated straight from its stored JSON
        text in one call (the rows are joined into one JSON array), raw samples put back from their blobs."""
        header = conn.execute(select(runs_table.c.header).where(runs_table.c.id == pk)).scalar_one()
        blobs = results_table.c.samples if samples else literal_column("NULL")
        q = select(results_table.c.row, blobs).where(results_table.c.run_pk == pk).order_by(results_table.c.position)
        stored = conn.execute(q).all()
        try:
            run = Run.model_validate({**upgrade_run(json.loads(header)), "results": []}, strict=False)
        except ValidationError as e:
            raise _stored_error(conn, pk, first_error(e)) from None
        except SchemaError as e:
            raise _stored_error(conn, pk, e) from None
        try:
            # lax on read (strict on import and in the writer): what is stored was checked going in, and lax
            # validation costs less than strict in pydantic-core
            rows: list[Row] = ROWS.validate_json("[" + ",".join(r[0] for r in stored) + "]", strict=False)
        except ValidationError as e:
            err = first_error(e)
            raise _stored_error(conn, pk, SchemaError("results" + err.where, err.message)) from None
        for row, (_json, blob) in zip(rows, stored, strict=True):
            if blob is not None:
                row.samples_ms = np.frombuffer(blob, dtype="<f8").tolist()
        run.results = rows
        return run

    def load_run_typed(self, run_id: str = "latest") -> Run:
        """`load_run` as a typed Run (any stored result version, upgraded to the current one)."""
        with self.engine.connect() as conn:
            return self._load_pk_typed(conn, self._run_pk(conn, run_id))

    def iter_runs_typed(self, samples: bool = True) -> Iterator[Run]:
        """Every stored run as a Run, oldest first, one at a time."""
        with self.engine.connect() as conn:
            q = select(runs_table.c.id).order_by(runs_table.c.created, runs_table.c.id)
            pks = list(conn.execute(q).scalars())
        for pk in pks:
            with self.engine.connect() as conn:
                yield self._load_pk_typed(conn, pk, samples)

    def runs_like_typed(self, run: Run, n: int, samples: bool = True) -> list[Run]:
        """`runs_like` as typed runs."""
        if n <= 0:
            raise UserError(f"--history {n}: must be a positive number of runs")
        fp = run.fingerprint.model_dump(exclude_unset=True) if run.fingerprint else None  # as stored, as runs_like
        key = {"run_id": run.run_id, "fingerprint": fp,
               "config": run.config, "config_hash": run.config_hash}
        created = _normalise_created(run.created, run.run_id)
        q = _same_config(key, n).where(runs_table.c.run_id != run.run_id, runs_table.c.created <= created)
        with self.engine.connect() as conn, _no_gc_pauses():
            return [self._load_pk_typed(conn, pk, samples) for pk in conn.execute(q).scalars()]

    def upgrade_result_versions(self) -> int:
        """Restamp every stored run of an older result version with the current one, after checking the whole
        run against the records (a stored run that does not conform: UserError naming it and its first bad
        field, nothing changed). One transaction; the number of runs upgraded."""
        def write() -> int:
            n = 0
            with self._write() as conn:
                for pk, header in conn.execute(select(runs_table.c.id, runs_table.c.header)).all():
                    head = json.loads(header)
                    if head.get("schema_version", 1) == RESULT_SCHEMA_VERSION:
                        continue
                    self._load_pk_typed(conn, pk, samples=False)  # the whole run conforms once upgraded
                    conn.execute(update(runs_table).where(runs_table.c.id == pk)
                                 .values(header=_dumps(upgrade_run(head))))
                    n += 1
            return n

        return self._retry(write)

    def resolve(self, ref: str) -> dict[str, Any]:
        """A run from a reference: a results JSON file (or a run folder holding results.json), a stored
        run id, or 'latest' (the newest stored run)."""
        p = Path(ref)
        if ref != "latest" and p.is_dir() and (p / "results.json").is_file():
            p, ref = p / "results.json", str(p / "results.json")
        if ref.endswith(".json") or p.is_file():
            if not p.is_file():
                raise UserError(f"results file {ref} does not exist")
            try:
                run = json.loads(p.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise UserError(f"results file {ref} is not valid JSON: {e}") from None
            if not isinstance(run, dict) or not isinstance(run.get("results"), list):
                raise UserError(f"results file {ref} is not a `bench run` results JSON (no 'results' list)")
            return run
        return self.load_run(ref)

    def list_runs(
        self, backend: str | None = None, variant: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Stored runs, newest first, with headline numbers (over the rows matching backend/variant)."""
        if limit is not None and limit <= 0:
            raise UserError(f"--limit {limit}: must be a positive integer")
        r, c = runs_table, results_table
        q = select(r.c.id, r.c.run_id, r.c.created, r.c.fingerprint_id, r.c.config_hash, r.c.dataset,
                   r.c.synthetic, r.c.machine_id, r.c.header).order_by(r.c.created.desc(), r.c.id.desc())
        cond = []
        if backend:
            cond.append(c.c.backend == backend)
        if variant:
            cond.append(c.c.variant == variant)
        if cond:
            q = q.where(select(c.c.id).where(c.c.run_pk == r.c.id, *cond).exists())
        if limit:
            q = q.limit(limit)
        out: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            runs = conn.execute(q).all()
            if not runs:
                return []
            cols = (c.c.run_pk, c.c.machine_id, c.c.backend, c.c.variant, c.c.device, c.c.scenario, c.c.batch_size,
                    c.c.status, c.c.valid, c.c.p50_ms, c.c.p99_ms, c.c.throughput_fps, c.c.accuracy,
                    c.c.storage_mb, c.c.row)
            rq = select(*cols).where(c.c.run_pk.in_([x.id for x in runs]), *cond)
            by_run: dict[int, list[Any]] = {}
            for row in conn.execute(rq):
                by_run.setdefault(row.run_pk, []).append(row)
        for x in runs:
            header = json.loads(x.header)
            summary = {
                "run_id": x.run_id,
                "created": header.get("created", x.created),
                "fingerprint_id": x.fingerprint_id,
                "machine_id": x.machine_id,
                "machines": sorted({str(y.machine_id) for y in by_run.get(x.id, []) if y.machine_id}
                                   or {str(x.machine_id)}),
                "hardware": hardware_summary(header.get("fingerprint")),
                "config_hash": x.config_hash,
                "dataset": x.dataset,
                "synthetic": x.synthetic,
            }
            summary.update(_headline(by_run.get(x.id, [])))
            out.append(summary)
        return out

    def headers(self, exclude_machine: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """The headers (the run without its result rows) of the newest `limit` stored runs, newest first, minus
        those of machine `exclude_machine`: what reading other machines' sweep choices needs, no row loaded."""
        q = select(runs_table.c.header).order_by(runs_table.c.created.desc(), runs_table.c.id.desc()).limit(limit)
        if exclude_machine is not None:
            q = q.where(runs_table.c.machine_id != exclude_machine)
        with self.engine.connect() as conn:
            return [json.loads(h) for h in conn.execute(q).scalars()]

    def runs_like(self, run: dict[str, Any], n: int, samples: bool = True) -> list[dict[str, Any]]:
        """The previous `n` stored runs (newest first) with the same fingerprint id and config hash (without their
        raw samples when `samples` is False: a long history loads fast)."""
        if n <= 0:
            raise UserError(f"--history {n}: must be a positive number of runs")
        created = _normalise_created(run.get("created"), str(run.get("run_id")))
        q = _same_config(run, n).where(runs_table.c.run_id != str(run.get("run_id")), runs_table.c.created <= created)
        with self.engine.connect() as conn:
            return [self._load_pk(conn, pk, samples) for pk in conn.execute(q).scalars()]

    def same_config_runs(self, run: dict[str, Any], n: int, exclude: tuple[str, ...] = (),
                         samples: bool = False) -> list[dict[str, Any]]:
        """The newest `n` stored runs (oldest first) of `run`'s machine, fingerprint and config, whenever they ran
        (the run itself included when stored), minus the run ids in `exclude`: the A/A history of that config."""
        if n <= 0:
            raise UserError(f"{n}: must be a positive number of runs")
        q = _same_config(run, n).where(runs_table.c.run_id.not_in(list(exclude)))
        with self.engine.connect() as conn:
            return [self._load_pk(conn, pk, samples) for pk in conn.execute(q).scalars()][::-1]

    def all_results(self) -> list[dict[str, Any]]:
        """Every stored result row (without raw samples) joined with its run: run_id, created, and the
        machine that measured the row (machine_id, fingerprint_id, fingerprint, hardware, target), config_hash,
        dataset, synthetic."""
        r, c = runs_table, results_table
        q = (
            select(r.c.id, r.c.run_id, r.c.created, r.c.config_hash, r.c.dataset,
                   r.c.synthetic, r.c.header, c.c.row)
            .join(c, c.c.run_pk == r.c.id)
            .order_by(r.c.created, r.c.id, c.c.position)
        )
        headers: dict[int, dict[str, Any]] = {}
        out: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            for x in conn.execute(q):
                if x.id not in headers:
                    headers[x.id] = json.loads(x.header)
                row = json.loads(x.row)
                if is_reference(row):  # the reference arm is judged within its run, never chosen or compared
                    continue
                mid, fid, fp = row_machine(row, headers[x.id])
                row.update(
                    run_id=x.run_id, created=x.created, fingerprint_id=fid, machine_id=mid,
                    target=row.get("target"), fingerprint=fp or {}, hardware=hardware_summary(fp),
                    config_hash=x.config_hash, dataset=x.dataset, synthetic=x.synthetic,
                )
                out.append(row)
        return out

    def all_results_typed(self) -> list[SelectionRow]:
        """`all_results` as typed rows, for `bench select` and `bench report --compare-hardware`: the slim
        SelectionRow of each stored row (only the fields those read), validated straight from the stored JSON
        text, one call per run (pydantic-core passes over the rest of a row, its rounds, confusion matrix and
        correctness bits, without building it); the machine of each row resolved once per run and machine."""
        r, c = runs_table, results_table
        runs_q = select(r.c.id, r.c.run_id, r.c.created, r.c.config_hash, r.c.dataset, r.c.synthetic, r.c.header)
        rows_q = (select(c.c.run_pk, c.c.row).join(r, c.c.run_pk == r.c.id)
                  .order_by(r.c.created, r.c.id, c.c.position))
        out: list[SelectionRow] = []
        with self.engine.connect() as conn, _no_gc_pauses():
            runs = {x.id: x for x in conn.execute(runs_q)}
            for pk, stored in groupby(conn.execute(rows_q), key=lambda x: x.run_pk):
                try:
                    rows = SELECTION_ROWS.validate_json("[" + ",".join(x.row for x in stored) + "]", strict=False)
                except ValidationError as e:
                    err = first_error(e)
                    raise _stored_error(conn, pk, SchemaError("results" + err.where, err.message)) from None
                run = runs[pk]
                head = _RunMachines.model_validate_json(run.header)
                header = {"fingerprint": head.fingerprint, "machines": head.machines}
                machines: dict[tuple[str | None, str | None], tuple[str, str, str]] = {}
                for row in rows:
                    if is_reference(row):  # the reference arm is judged within its run, never chosen or compared
                        continue
                    key = (row.machine_id, row.fingerprint_id)
                    if key not in machines:
                        mid, fid, fp = row_machine({"machine_id": key[0], "fingerprint_id": key[1]}, header)
                        machines[key] = (mid, fid, hardware_summary(fp))
                    row.machine_id, row.fingerprint_id, row.hardware = machines[key]
                    row.run_id, row.created, row.config_hash = run.run_id, run.created, run.config_hash
                    row.dataset, row.synthetic = run.dataset, run.synthetic
                    out.append(row)
        return out

    # ----------------------------------------------------------------------------------- acceptances
    def accept(self, run_id: str, reason: str, who: str, *, machine_id: str | None = None,
               backend: str | None = None, variant: str | None = None, device: str | None = None,
               scenario: str | None = None, batch_size: int | None = None) -> dict[str, Any]:
        """Record that the level from stored run `run_id` on is the new baseline (of the cells the filters
        name; None: every cell), with who accepted it and why. Returns the stored record."""
        if not reason.strip():
            raise UserError("--reason must say why the change is accepted (it is stored with the acceptance)")
        values: dict[str, Any] = {
            "run_id": run_id, "machine_id": machine_id, "backend": backend, "variant": variant, "device": device,
            "scenario": scenario, "batch_size": batch_size, "reason": reason.strip(), "who": who,
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

        def write() -> None:
            with self._write() as conn:
                self._run_pk(conn, run_id)  # an unknown run id is a user error, with the recent ids
                conn.execute(insert(accepted_table).values(**values))

        self._retry(write)
        return values

    def acceptances(self, run_ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Stored acceptances (of these runs, or all), oldest first."""
        a = accepted_table
        q = select(a).order_by(a.c.created, a.c.id)
        if run_ids is not None:
            q = q.where(a.c.run_id.in_(run_ids))
        with self.engine.connect() as conn:
            return [{k: v for k, v in row._mapping.items() if k != "id"} for row in conn.execute(q)]

    def count_runs(self) -> int:
        """How many runs are stored."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(runs_table)).scalar_one())


@contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Hold the cyclic garbage collector while a long history is read: a typed run is many small objects, none of
    them cyclic garbage, and collections triggered by their sheer number would traverse every run read so far
    (the cost grows with the history's length)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class _RunMachines(BaseModel):
    """The keys of a stored run's header that say which machine measured its rows (the rest of the header, its
    config and layer table, is passed over unread)."""

    model_config = ConfigDict(extra="ignore")
    fingerprint: Any = None
    machines: Any = None


def _stored_error(conn: Connection, pk: int, e: SchemaError) -> UserError:
    run_id = conn.execute(select(runs_table.c.run_id).where(runs_table.c.id == pk)).scalar()
    return UserError(f"stored run {run_id}: {e} (see docs/results-schema.md)")


def _result_values(run_id: str, i: int, r: dict[str, Any]) -> dict[str, Any]:
    row = dict(r)
    samples = row.get("samples_ms")
    blob: bytes | None = None
    if isinstance(samples, list | tuple | np.ndarray):
        try:
            blob = np.asarray(samples, dtype="<f8").reshape(-1).tobytes()
        except (TypeError, ValueError):
            raise UserError(f"run {run_id}: results[{i}].samples_ms must be a list of numbers") from None
        del row["samples_ms"]
    lat_raw = row.get("latency_ms")
    lat: dict[str, Any] = lat_raw if isinstance(lat_raw, dict) else {}
    batch = row.get("batch_size", 1)
    if not isinstance(batch, int) or isinstance(batch, bool):
        raise UserError(f"run {run_id}: results[{i}].batch_size must be an integer, got {batch!r}")
    valid = row.get("valid")
    return {
        "position": i,
        "backend": str(row.get("backend", "?")),
        "variant": str(row.get("variant", "?")),
        "device": None if row.get("device") is None else str(row.get("device")),
        "scenario": str(row.get("scenario", "latency")),
        "batch_size": batch,
        "status": str(row.get("status", "ok")),
        "valid": valid if isinstance(valid, bool) else None,
        "p50_ms": finite_number(lat.get("p50")),
        "p99_ms": finite_number(lat.get("p99")),
        "throughput_fps": finite_number(row.get("throughput_fps")),
        "accuracy": finite_number(row.get("accuracy")),
        "storage_mb": finite_number(row.get("storage_mb")),
        "row": _dumps(row),
        "samples": blob,
    }


def _parsed(row_json: str | None) -> dict[str, Any]:
    """A stored row's JSON as a dict ({} when absent or unreadable)."""
    try:
        d = json.loads(row_json) if row_json else {}
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


def _headline(rows_in: list[Any]) -> dict[str, Any]:
    # each stored row's JSON parsed once here (arm, agreement), not once per field asked
    parsed = {id(x): _parsed(getattr(x, "row", None)) for x in rows_in}
    rows = [x for x in rows_in if parsed[id(x)].get("arm") != "reference"]  # a run's headline is its candidate's
    ok = [x for x in rows if x.status == "ok"]
    lat = [x for x in ok if x.scenario == "latency" and x.batch_size == 1 and x.p50_ms is not None]
    thr = [x for x in ok if x.throughput_fps is not None]
    acc = [x for x in ok if x.accuracy is not None]
    best_lat = min(lat, key=lambda x: x.p50_ms, default=None)
    best_thr = max(thr, key=lambda x: x.throughput_fps, default=None)
    best_acc = max(acc, key=lambda x: x.accuracy, default=None)
    return {
        "cells": len(rows),
        "ok": len(ok),
        "failed": len(rows) - len(ok),
        "invalid": sum(1 for x in ok if x.valid is False),
        "disagree": sum(1 for x in ok if parsed[id(x)].get("agrees") is False),
        "best_p50_ms": best_lat.p50_ms if best_lat else None,
        "best_p50_ci_ms": parsed[id(best_lat)].get("p50_ci_ms") if best_lat else None,
        "best_p50_ci_level": parsed[id(best_lat)].get("p50_ci_level") if best_lat else None,
        "best_p50_cell": f"{best_lat.backend}/{best_lat.variant}" if best_lat else None,
        "best_fps": best_thr.throughput_fps if best_thr else None,
        "best_fps_cell": f"{best_thr.backend}/{best_thr.variant}@{best_thr.batch_size}" if best_thr else None,
        "best_accuracy": best_acc.accuracy if best_acc else None,
        "best_accuracy_cell": f"{best_acc.backend}/{best_acc.variant}" if best_acc else None,
    }


def _same_config(run: dict[str, Any], n: int) -> Any:
    """The ids of the newest `n` stored runs of `run`'s machine, fingerprint and config (newest first): the query
    both the history (`runs_like`) and the A/A noise (`same_config_runs`) narrow further."""
    r = runs_table
    return (select(r.c.id)
            .where(r.c.fingerprint_id == fingerprint_id(run), r.c.machine_id == machine_id(run),
                   r.c.config_hash == config_hash(run))
            .order_by(r.c.created.desc(), r.c.id.desc())
            .limit(n))
