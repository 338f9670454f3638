"""`bench store migrate|export|import`: maintain the results history and move one machine's history into the
shared one (e.g. SQLite on an edge box -> the fleet's PostgreSQL).

The export format is JSON Lines, one run per line with its raw samples (what `bench run` writes as
results.json), so it is readable without this tool and diffable. Import is keyed by run_id: a run already in
the target store is skipped, so importing the same history twice adds its runs once.
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
from harness.cli._common import add_store_arguments, open_store

NAME = "store"
HELP = "results history maintenance: migrate the schema, export runs to a file, import runs (idempotent)"
SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="store_command", metavar="ACTION", parser_class=type(p))
    sub.required = True
    m = sub.add_parser("migrate", help="create or upgrade the store's schema to this version")
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
            console.print(f"store {store.url}: schema v{store.schema_version()}, {store.count_runs()} runs")
            return 0
        if args.store_command == "export":
            n = export_runs(store.iter_runs(), args.out)
            console.print(f"exported {n} runs from {store.url} to {args.out}")
            return 0
        added = skipped = 0
        for run_ in source_runs(args.source):
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
