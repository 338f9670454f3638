"""Helpers shared by the config-driven subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from backends.registry import resolve_config
from common.config import Config, load_config

DEFAULT_CONFIG = "bench.toml"


def config_path(args: argparse.Namespace) -> Path | None:
    """--config if given, else ./bench.toml when it exists, else None (built-in defaults)."""
    given = getattr(args, "config", None)
    if given:
        return Path(given)
    default = Path(DEFAULT_CONFIG)
    return default if default.is_file() else None


def load_config_from_args(args: argparse.Namespace, extra_overrides: list[str] | None = None) -> Config:
    """The validated Config from --config / ./bench.toml and the --set overrides (then `extra_overrides`)."""
    overrides = [*(getattr(args, "overrides", None) or []), *(extra_overrides or [])]
    return resolve_config(load_config(config_path(args), overrides))


def toml_string(value: str) -> str:
    """`value` as a TOML basic string literal, for building `--set key=...` overrides from other flags."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c >= " " and c != "\x7f" else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'
