"""Shared tools of the reliability suite (its fixtures live in conftest.py): run the real CLI in-process and
check that bad input is refused
the way the README promises (exit 2, exactly one `error: ...` line on stderr, no traceback), and count
the refusals (printed at the end of the session; the README quotes the count)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from backends.artifact import MANIFEST, ONNX_FILE, SCHEMA_VERSION, TORCH_FILE, sha256_file
from harness.cli import main

REFUSED: list[str] = []  # one entry per bad input refused correctly, for the session summary


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`bench ARGV` in this process: (exit code, stdout, stderr). A bug's exception propagates (test fails)."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse errors
        code = int(e.code) if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def check_refused(code: int, err: str, *, contains: str | tuple[str, ...] = (), what: str = "") -> str:
    """Assert the refusal contract; return the error line."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, f"exit code {code}, stderr: {err[-2000:]}"
    assert "Traceback" not in err, err
    assert len(lines) == 1, f"expected exactly one stderr line, got {len(lines)}: {lines[:5]}"
    assert lines[0].startswith("error: "), lines[0]
    for c in (contains,) if isinstance(contains, str) else contains:
        assert c in lines[0], f"{c!r} not in {lines[0]!r}"
    REFUSED.append(what or lines[0])
    return lines[0]


# ---- a tiny real artifact (fp32 VGG16-FER, width 1/16) ------------------------------------------------
def write_tiny_artifact(out_dir: Path, variant: str = "dense-fp32", seed: int = 0) -> Path:
    """A complete fp32 artifact (model.pt + model.onnx + manifest with sizes and sha256), renamed into place."""
    from fer.model import arch_of, build_model, count_params, default_arch

    torch.manual_seed(seed)
    model = build_model(default_arch(in_channels=1, width=0.0625)).eval()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    torch.save({"arch": arch_of(model), "state_dict": model.state_dict(), "quant": None}, tmp / TORCH_FILE)
    torch.onnx.export(model, (torch.rand(1, 1, 48, 48),), str(tmp / ONNX_FILE), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    params, nonzero = count_params(model)
    files = {n: {"bytes": (tmp / n).stat().st_size, "sha256": sha256_file(tmp / n)} for n in (TORCH_FILE, ONNX_FILE)}
    manifest = {
        "schema_version": SCHEMA_VERSION, "variant": variant, "method": variant.rsplit("-", 1)[0],
        "method_label": "dense", "sparsity": 0.0, "precision": "fp32", "params": params, "nonzero_params": nonzero,
        "storage_bytes": params * 4, "storage_mb": params * 4 / 1e6, "compression_ratio": 1.0, "gmac": 0.001,
        "val_accuracy": 0.0, "test_accuracy": 0.0, "config_hash": "test", "dataset": "tiny-random",
        "synthetic": True, "files": files, "versions": {"torch": torch.__version__}, "input_shape": [1, 48, 48],
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir


def tiny_images(n: int = 14, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 48, 48), dtype=np.float32), (np.arange(n) % 7).astype(np.int64)
