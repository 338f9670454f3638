"""`bench train`: train the dense VGG16-FER on the configured data set (cached by data + config hash)."""

from __future__ import annotations

import argparse
import json

from common import console
from harness.cli._common import add_config_arguments

NAME = "train"
HELP = "train the dense VGG16-FER model (reuses the cached checkpoint when data and config are unchanged)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--force", action="store_true", help="retrain even if a cached checkpoint exists")
    p.add_argument("--json", action="store_true", help="print the checkpoint's metadata as JSON")


def run(args: argparse.Namespace) -> int:
    from fer.device import resolve_device
    from harness.cli._common import load_config_from_args
    from harness.orchestrate.pipeline import load_data, prepare_dense

    console.set_quiet(args.quiet)
    cfg = load_config_from_args(args)
    resolve_device(cfg.train.device)  # a bad train.device fails before the data is read
    with console.phase("data"):
        data = load_data(cfg)
    with console.phase("training"):
        dense = prepare_dense(cfg, data, force=args.force, progress=console.info)
    console.info(console.phase_summary())
    meta = {**dense.meta, "checkpoint": str(dense.path), "reused": dense.reused}
    if args.json:
        print(json.dumps(meta, indent=2))
        return 0
    label = " (synthetic data)" if data.synthetic else ""
    how = "reused cached checkpoint" if dense.reused else f"trained in {meta.get('train_seconds', 0):.0f} s"
    console.console.print(
        f"dense VGG16-FER on {data.name}{label}: test accuracy {100 * meta['test_accuracy']:.2f}%, "
        f"val accuracy {100 * meta['val_accuracy']:.2f}% ({how}; {dense.path})"
    )
    return 0
