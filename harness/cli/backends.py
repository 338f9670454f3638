"""`bench backends`: every backend with its availability (and why not), library versions, device, and the
machine's fingerprint. `--json` prints {"fingerprint": {...}, "backends": [{"name", "available", "reason",
"versions", "device"}]}; the fingerprint's `isa` lists the instruction-set features and the CPU's int8 path."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.markup import escape
from rich.table import Table

from backends.registry import backend_names, check_name, probe
from common.console import console, set_quiet
from harness.cli._common import add_config_arguments, load_config_from_args
from harness.measure.fingerprint import fingerprint

NAME = "backends"
HELP = "list the backends, whether each can run here (and how to fix it if not), versions and the fingerprint"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--backend", action="append", default=[], metavar="NAME",
                   help="only this backend (repeatable); default: all")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")


def collect(names: list[str], config: dict[str, Any] | None) -> dict[str, Any]:
    """The `bench backends --json` document."""
    rows = []
    for name in names:
        a = probe(name)
        rows.append({"name": name, "available": a.available, "reason": a.reason, "versions": a.versions,
                     "device": a.device})
    return {"fingerprint": fingerprint(config), "backends": rows}


def run(args: argparse.Namespace) -> int:
    if getattr(args, "quiet", False):
        set_quiet(True)
    names = [check_name(n) for n in args.backend] or backend_names()
    cfg = load_config_from_args(args)
    doc = collect(names, cfg.to_dict())
    if args.json:
        sys.stdout.write(json.dumps(doc) + "\n")
        return 0
    table = Table(title="backends")
    for col in ("backend", "available", "versions", "device / reason"):
        table.add_column(col, overflow="fold")
    for b in doc["backends"]:
        versions = ", ".join(f"{k} {v}" for k, v in b["versions"].items())
        table.add_row(b["name"], "yes" if b["available"] else "no", escape(versions),
                      escape(b["device"] if b["available"] else b["reason"]),
                      style=None if b["available"] else "yellow")
    console.print(table)
    fp = doc["fingerprint"]
    cpu = fp["cpu"]
    gpus = ", ".join(g["name"] for g in fp["gpus"]) or "none"
    console.print(escape(f"fingerprint {fp['id']}: {cpu['brand']}, {cpu['logical_cores']} cores (affinity "
                  f"{cpu['affinity']}), flags {' '.join(cpu['flags'])}, RAM {fp['ram_bytes'] / 2**30:.1f} GiB, "
                  f"GPU {gpus}, Python {fp['python']}, git {str(fp['git']['commit'])[:10]}"
                  f"{' (dirty)' if fp['git']['dirty'] else ''}"))
    isa = fp.get("isa") or {}
    have = [f for f, on in (isa.get("features") or {}).items() if on]
    console.print(escape(f"instruction set: {' '.join(have) or 'unknown'}; {isa.get('int8_summary', '')}"))
    return 0
