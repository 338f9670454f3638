"""`bench compress`: FPTQ and the comparison methods -> one artifact directory per variant."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from rich.table import Table

from common import console
from common.config import PRUNING_METHODS
from common.errors import UserError
from harness.cli._common import add_config_arguments

NAME = "compress"
HELP = "prune (L1-norm and comparison methods), fine-tune and quantize to INT8; write one directory per variant"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument(
        "--methods", default=None,
        help=f"comma-separated pruning methods, or 'all' ({', '.join(PRUNING_METHODS)}); default: compress.methods",
    )
    p.add_argument("--variant", action="append", default=None, help="only this variant (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="write variants here (default: the artifact cache)")
    p.add_argument("--json", action="store_true", help="print the manifests as JSON")


def parse_methods(text: str) -> list[str]:
    """'all' or a comma list of method names -> validated list (UserError names the bad one)."""
    if text.strip() == "all":
        return list(PRUNING_METHODS)
    methods = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in methods if m not in PRUNING_METHODS]
    if bad or not methods:
        raise UserError(f"--methods {text!r}: unknown method {bad[0] if bad else ''!r}; "
                        f"valid: {', '.join(PRUNING_METHODS)} or all")
    return methods


def run(args: argparse.Namespace) -> int:
    from compression.variants import requested_variants
    from fer.device import resolve_device
    from harness.cli._common import load_config_from_args
    from harness.orchestrate.pipeline import load_data, prepare_artifacts, prepare_dense

    console.set_quiet(args.quiet)
    cfg = load_config_from_args(args)
    if args.methods is not None:
        cfg = dataclasses.replace(cfg, compress=dataclasses.replace(cfg.compress, methods=parse_methods(args.methods)))
    resolve_device(cfg.train.device)  # a bad train.device fails before the data is read
    with console.phase("data"):
        data = load_data(cfg)
    with console.phase("training"):
        dense = prepare_dense(cfg, data, progress=console.info, then_compress=requested_variants(cfg, args.variant))
    with console.phase("compression"):
        arts = prepare_artifacts(cfg, data, dense, variants=args.variant, out_dir=args.out, progress=console.info)
    console.info(console.phase_summary())
    manifests = {v: json.loads((p / "manifest.json").read_text()) for v, p in arts.items()}
    if args.json:
        print(json.dumps({v: {**m, "path": str(arts[v])} for v, m in manifests.items()}, indent=2))
        return 0
    synthetic = " — synthetic data (SynthFER)" if data.synthetic else ""
    table = Table(title=f"Compressed variants on {data.name}{synthetic}")
    for col in ("variant", "method", "params", "storage MB", "ratio", "val acc %", "test acc %", "path"):
        table.add_column(col, justify="left" if col in ("variant", "method", "path") else "right")
    for v, m in manifests.items():
        table.add_row(
            v, str(m.get("method_label", m.get("method", ""))), f"{m['params']:,}", f"{m['storage_mb']:.2f}",
            f"{m['compression_ratio']:.1f}x", f"{100 * m['val_accuracy']:.2f}", f"{100 * m['test_accuracy']:.2f}",
            str(arts[v]),
        )
    console.console.print(table)
    return 0
