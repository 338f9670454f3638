"""`bench data`: load and validate a data set, print its counts per split and per class."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.table import Table

from common.console import console, set_quiet
from fer.classes import EMOTIONS
from fer.data import SPLITS
from fer.datasets import dataset_summary, load_dataset
from harness.cli._common import add_config_arguments, load_config_from_args, toml_string

NAME = "data"
HELP = "validate a data set and print its image counts per split and per class"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--dataset", default=None, help="synthfer, fer2013, ckplus or jaffe (data.dataset)")
    p.add_argument("--path", default=None, help="local file or folder of a real data set (data.path)")
    p.add_argument("--json", action="store_true", help="print the counts as JSON on stdout")
    p.add_argument("--no-cache", action="store_true", help="read the source files even if cached")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "quiet", False):
        set_quiet(True)
    extra = []
    if args.dataset is not None:
        extra.append(f"data.dataset={toml_string(args.dataset)}")
    if args.path is not None:
        extra.append(f"data.path={toml_string(args.path)}")
    cfg = load_config_from_args(args, extra)
    cache_dir = None if args.no_cache else Path(cfg.store.cache_dir) / "data"
    data = load_dataset(cfg.data, cache_dir)
    summary = dataset_summary(data)
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
        return 0
    title = f"{data.name}" + (" (synthetic)" if data.synthetic else "")
    table = Table(title=title)
    table.add_column("class")
    for s in (*SPLITS, "total"):
        table.add_column(s, justify="right")
    counts = {s: data.split(s).class_counts() for s in SPLITS}
    for e in EMOTIONS:
        row = [counts[s][e] for s in SPLITS]
        table.add_row(e, *map(str, row), str(sum(row)))
    sizes = [len(data.split(s)) for s in SPLITS]
    table.add_row("all", *map(str, sizes), str(sum(sizes)), style="bold")
    console.print(table)
    for k, v in data.notes.items():
        console.print(f"{k}: {v}")
    return 0
