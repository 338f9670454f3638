"""Helpers shared by the config-driven subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from backends.registry import resolve_config
from common.config import Config, load_config, profile_overrides
from common.console import console

if TYPE_CHECKING:
    from harness.history.store import ResultsStore

DEFAULT_CONFIG = "bench.toml"
PIPE_WIDTH = 260  # columns when stdout is a pipe or a CI log: rich would squeeze tables to 80


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """The flags every config-driven command takes: --config and repeatable --set."""
    p.add_argument("--config", default=None, help="experiment TOML (default: ./bench.toml if present)")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override a config key with a TOML literal, e.g. --set train.epochs=3 (repeatable)",
    )
    p.add_argument("--profile", default=None, metavar="NAME",
                   help="named settings applied before --set: nightly (benchmark.rounds=10, 6 s per cell), "
                        "full (the paper's full-width VGG16; ~1 h on 2 AVX2 cores)")


def config_path(args: argparse.Namespace) -> Path | None:
    """--config if given, else ./bench.toml when it exists, else None (built-in defaults)."""
    given = getattr(args, "config", None)
    if given:
        return Path(given)
    default = Path(DEFAULT_CONFIG)
    return default if default.is_file() else None


def load_config_from_args(args: argparse.Namespace, extra_overrides: list[str] | None = None) -> Config:
    """The validated Config from --config / ./bench.toml and the --set overrides (then `extra_overrides`)."""
    overrides = [*profile_overrides(getattr(args, "profile", None)), *(getattr(args, "overrides", None) or []),
                 *(extra_overrides or [])]
    return resolve_config(load_config(config_path(args), overrides))


def toml_string(value: str) -> str:
    """`value` as a TOML basic string literal, for building `--set key=...` overrides from other flags."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c >= " " and c != "\x7f" else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


_STDOUT = "-"


def add_json_arguments(p: argparse.ArgumentParser) -> None:
    """`--json` prints JSON on stdout (as in every subcommand); `--json-out PATH` writes it to a file. The old
    `--json PATH` still writes the file, with a deprecation notice."""
    p.add_argument("--json", nargs="?", const=_STDOUT, default=None, metavar="OLD_PATH",
                   help="print the JSON on stdout instead of the table (`--json PATH` is the deprecated form of "
                        "--json-out)")
    p.add_argument("--json-out", type=Path, default=None, metavar="PATH", help="also write the JSON to PATH")


def json_destinations(args: argparse.Namespace) -> tuple[bool, Path | None]:
    """(print JSON on stdout?, file to write it to or None) from --json / --json-out."""
    from common.console import info

    value, out = getattr(args, "json", None), getattr(args, "json_out", None)
    if value is None or value == _STDOUT:
        return value == _STDOUT, out
    info("warning: `--json PATH` is deprecated and will be removed: use `--json-out PATH` "
         "(`--json` alone prints JSON on stdout)")
    if out is not None:
        from common.errors import UserError

        raise UserError("give the output file once: --json-out PATH (not also --json PATH)")
    return False, Path(value)


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """--config/--set (the store URL comes from [store] url) and the --store URL shortcut."""
    add_config_arguments(parser)
    parser.add_argument("--store", default=None, metavar="URL",
                        help="results database URL (default: store.url of the config)")


def open_store(args: argparse.Namespace) -> ResultsStore:
    """The results store named by --store, else by the config's store.url (SQLAlchemy imported only here)."""
    from harness.history.store import ResultsStore

    url = getattr(args, "store", None) or load_config_from_args(args).store.url
    return ResultsStore(str(url))


def table_console() -> Console:
    """The console to print result tables on: the shared one on a terminal, a wide one on a pipe."""
    if console.is_terminal:
        return console
    return Console(width=PIPE_WIDTH, highlight=False, soft_wrap=False)
