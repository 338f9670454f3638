"""`bench import MODEL.onnx --out DIR`: make an artifact directory from an ONNX file produced elsewhere, so
`bench run --artifact DIR` benchmarks it with the same checks as ours (manifest derived from the file)."""

from __future__ import annotations

import argparse
from pathlib import Path

from common import console

NAME = "import"
HELP = "write an artifact directory for an ONNX file from another tool (manifest derived from the file itself)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, metavar="MODEL.onnx", help="the ONNX file to import")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="new artifact directory to write")
    p.add_argument("--name", default=None, metavar="VARIANT", help="variant name in reports (default: file stem)")


def run(args: argparse.Namespace) -> int:
    from backends.artifact import load_artifact
    from compression.onnx_import import import_onnx

    out = import_onnx(args.model, args.out, args.name)
    m = load_artifact(out).manifest
    q = m["quantization"]
    console.info(f"imported {args.model} as variant {m['variant']!r} into {out}: {m['params']:,} parameters, "
                 f"{m['files']['model.onnx']['bytes']:,} file bytes, precision {m['precision']} (from the graph: "
                 f"{q['int8_weight_initializers']} int8 weight tensors, {q['int8_nodes']} int8 nodes, "
                 f"{q['qdq_nodes']} Q/DQ nodes); run it with `bench run --artifact {out}`")
    return 0
