"""`bench store migrate|export|import`: maintain the results history and move one machine's history into the
shared one (e.g. SQLite on an edge box -> the fleet's PostgreSQL).

The export format is JSON Lines, one run per line with its raw samples (what `bench run` writes as
results.json), so it is readable without this tool and diffable. Import is keyed by run_id: a run already in
the target store is skipped, so importing the same history twice adds its runs once. Every run of the source is
checked against the result records (common.records, published as results.schema.json) before any is stored: one
that does not conform stops the import with one line naming its first bad field, and nothing is stored. Runs of an
older result version are upgraded (version 1 -> 2) as they are imported; `migrate` upgrades those already stored.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common.atomic import write_text_atomic
from common.console import console, set_quiet
from common.errors import UserError
from common.records import SCHEMA_VERSION as RESULT_SCHEMA_VERSION
from common.records import SchemaError, parse_run, upgrade_run
from harness.cli._common import add_store_arguments, open_store

NAME = "store"
HELP = "results history maintenance: migrate the schema, export runs to a file, import runs (idempotent)"
SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="store_command", metavar="ACTION", parser_class=type(p))
    sub.required = True
    m = sub.add_parser("migrate", help="create or upgrade the store's schema to this version, and stored runs to "
                                       "the current result version")
    add_store_arguments(m)
    e = sub.add_parser("export", help="write every stored run (with raw samples) to a JSON Lines file")
    add_store_arguments(e)
    e.add_argument("--out", type=Path, required=True, metavar="FILE", help="the .jsonl file to write")
    i = sub.add_parser("import", help="add the runs of an export file, a SQLite history or a store URL "
                                      "(runs already stored, by run_id, are skipped)")
    add_store_arguments(i)
    i.add_argument("source", metavar="FILE-or-URL",
                   help="a .jsonl export, a results.json, a SQLite history file, or a database URL")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "quiet", False):
        set_quiet(True)
    with open_store(args) as store:  # opening creates or migrates the schema
        if args.store_command == "migrate":
            upgraded = store.upgrade_result_versions()
            console.print(f"store {store.url}: schema v{store.schema_version()}, {store.count_runs()} runs"
                          + (f" ({upgraded} upgraded to result version {RESULT_SCHEMA_VERSION})" if upgraded else ""))
            return 0
        if args.store_command == "export":
            n = export_runs(store.iter_runs(), args.out)
            console.print(f"exported {n} runs from {store.url} to {args.out}")
            return 0
        added = skipped = 0
        for run_ in checked_runs(args.source):
            if store.add_if_new(run_):
                added += 1
            else:
                skipped += 1
        console.print(f"imported {added} new runs into {store.url} ({skipped} already stored)")
    return 0


def export_runs(runs: Iterator[dict[str, Any]], out: Path) -> int:
    """Write runs as JSON Lines (atomically); the count written."""
    lines = [json.dumps(r, sort_keys=True, default=str) for r in runs]
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, "".join(line + "\n" for line in lines))
    return len(lines)


def checked_runs(source: str) -> list[dict[str, Any]]:
    """Every run of an import source, each checked against the result records and upgraded to the current result
    version, before any is stored; UserError naming the first run and field that do not conform."""
    out = []
    for n, raw in enumerate(source_runs(source), 1):
        run_id = raw.get("run_id") if isinstance(raw.get("run_id"), str) else None
        try:
            parse_run(raw)
        except SchemaError as e:
            which = f"run {run_id}" if run_id else f"run {n}"
            raise UserError(f"{source}: {which} does not conform to result schema {RESULT_SCHEMA_VERSION}: {e.where}:"
                            f" {e.message}; nothing was imported (fields: docs/results-schema.md)") from None
        out.append(upgrade_run(raw))
    return out


def source_runs(source: str) -> Iterator[dict[str, Any]]:
    """The runs of an import source: a database URL, a SQLite file, a .jsonl export or one results JSON."""
    from harness.history.store import ResultsStore

    if "://" in source:
        with ResultsStore(source) as other:
            yield from other.iter_runs()
        return
    path = Path(source)
    if not path.is_file():
        raise UserError(f"import source {source} is neither a database URL (sqlite:///..., postgresql+psycopg://...)"
                        " nor an existing file")
    if path.suffix.lower() in SQLITE_SUFFIXES or path.read_bytes()[:16] == b"SQLite format 3\x00":
        with ResultsStore(f"sqlite:///{path.resolve()}") as other:
            yield from other.iter_runs()
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):  # one results.json
        yield whole
        return
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            run_ = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{source} line {n} is not JSON ({e}); expected a `bench store export` file") from None
        if not isinstance(run_, dict):
            raise UserError(f"{source} line {n}: expected a run object, got {type(run_).__name__}")
        yield run_
