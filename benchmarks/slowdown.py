"""Build a real slowdown as a file: the same ONNX graph plus input-dependent fp32 MatMul work whose result is
multiplied by zero and added to the logits, so predictions are unchanged and every runtime must still do the work.

Why a file and not a scaled number: the gate's detection figures must come from what a real regression looks like
on the machine (the same modes, phases and per-call floor), not from multiplying stored latencies by a factor.

    python benchmarks/slowdown.py ARTIFACT_DIR OUT.onnx --extra-mmacs 0.2
    bench import OUT.onnx --out DIR --name l1-int8-slow

`--extra-mmacs` is the added work in millions of multiply-accumulates per image (a chain of square MatMuls over
the flattened input); calibrate it to a percent slowdown by measuring, e.g. with `bench run --artifact`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from compression.slowdown import add_slowdown


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artifact", type=Path, help="artifact directory (its model.onnx) or an .onnx file")
    p.add_argument("out", type=Path, help="the slowed .onnx file to write")
    p.add_argument("--extra-mmacs", type=float, required=True, help="added work, million MACs per image (> 0)")
    a = p.parse_args(argv)
    src = a.artifact / "model.onnx" if a.artifact.is_dir() else a.artifact
    if not src.is_file() or a.extra_mmacs <= 0:
        print(f"error: need an existing model.onnx ({src}) and --extra-mmacs > 0", file=sys.stderr)
        return 2
    added = add_slowdown(src, a.out, a.extra_mmacs)
    print(f"wrote {a.out}: +{added / 1e6:.3f} M MACs per image")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
