"""CLI plumbing shared by `bench history/report/compare/select`: the store flags, the config, the
console tables are printed on. Kept light (no SQLAlchemy, scipy or matplotlib at import): `bench`
imports every command module to build its parser."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from common.console import console

if TYPE_CHECKING:
    from harness.store import ResultsStore

PIPE_WIDTH = 260  # columns when stdout is a pipe or a CI log: rich would squeeze tables to 80


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """--config/--set (the store URL comes from [store] url) and the --store URL shortcut."""
    from harness.cli import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument("--store", default=None, metavar="URL",
                        help="results database URL (default: store.url of the config)")


def config_from_args(args: argparse.Namespace) -> Any:
    """The effective Config: harness.commands._common's loader when present, else bench.toml + --set."""
    try:
        common = importlib.import_module("harness.commands._common")
    except ImportError:
        common = None
    loader = getattr(common, "load_config_from_args", None) if common is not None else None
    if loader is not None:
        return loader(args)
    from common.config import load_config

    path = getattr(args, "config", None)
    if path is None and Path("bench.toml").is_file():
        path = "bench.toml"
    return load_config(path, getattr(args, "overrides", None) or [])


def open_store(args: argparse.Namespace) -> ResultsStore:
    """The results store named by --store, else by the config's store.url."""
    from harness.store import ResultsStore

    url = getattr(args, "store", None)
    if not url:
        url = config_from_args(args).store.url
    return ResultsStore(str(url))


def table_console() -> Console:
    """The console to print result tables on: the shared one on a terminal, a wide one on a pipe."""
    if console.is_terminal:
        return console
    return Console(width=PIPE_WIDTH, highlight=False, soft_wrap=False)
