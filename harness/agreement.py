"""Agreement of every backend's logits with the PyTorch reference of the same variant (top-1, max |delta|).

The reference is torch-eager's own cell where it ran the reference computation (CPU, fp32 or fake-quant int8);
otherwise a reference cell is run once per variant without timing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from common.config import Config
from common.results import REFERENCE_BACKEND
from harness.launcher import backend_extra, cell_spec, run_cell_subprocess

Progress = Callable[[str], None]


def agreement_rows(cfg: Config, variants: list[str], names: list[str], artifacts: dict[str, Path],
               logits: dict[tuple[str, str], Path], labels_of: dict[tuple[str, str], str], images: Path,
               labels: Path, work: Path, log_dir: Path, say: Progress) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for variant in variants:
        others = [b for b in names if (b, variant) in logits]
        if not others:
            continue
        ref_name, ref_path = None, None
        if reference_is_cell(cfg, variant, logits, labels_of):
            ref_name, ref_path = REFERENCE_BACKEND, logits[(REFERENCE_BACKEND, variant)]
        else:
            say(f"reference {variant}: computing the PyTorch reference logits")
            out = work / f"reference__{variant}.logits.npy"
            extra = {**backend_extra(cfg, REFERENCE_BACKEND), "device": "cpu", "int8_mode": "fake-quant"}
            spec = cell_spec(cfg, REFERENCE_BACKEND, artifacts[variant], images, labels, out, timing=False, extra=extra)
            result = run_cell_subprocess(spec, work / f"reference__{variant}", cfg.benchmark.cell_timeout_s,
                                         log_dir / f"reference__{variant}.log", cfg.benchmark.threads)
            if result.get("status") != "ok" or not out.is_file():
                say(f"reference {variant}: failed ({result.get('reason', '')})")
                continue
            label = str(result.get("describe", {}).get("label", "fp32"))
            ref_name, ref_path = f"pytorch-reference ({label})", out
        ref = np.load(ref_path)
        for backend in others:
            if backend == ref_name:
                continue
            rows.append({"variant": variant, "backend": backend, "reference": ref_name,
                         **compare_logits(np.load(logits[(backend, variant)]), ref)})
    return rows


def reference_is_cell(cfg: Config, variant: str, logits: dict[tuple[str, str], Path],
                      labels_of: dict[tuple[str, str], str]) -> bool:
    """True when torch-eager's own cell of `variant` ran the reference computation (CPU, fp32 or fake-quant)."""
    from backends.torch_model import FAKE_QUANT_LABEL

    te = (REFERENCE_BACKEND, variant)
    on_cpu = cfg.backends[REFERENCE_BACKEND]["device"] == "cpu"
    return te in logits and on_cpu and labels_of.get(te, "") in ("fp32", FAKE_QUANT_LABEL)


def compare_logits(logits: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Top-1 agreement (fraction of images with the same argmax) and max |delta logit| vs the reference."""
    if logits.shape != reference.shape:
        raise ValueError(f"logits {logits.shape} and reference {reference.shape} differ in shape")
    if len(logits) == 0:
        return {"top1_agreement": float("nan"), "max_abs_logit_diff": float("nan")}
    agree = float(np.mean(logits.argmax(axis=1) == reference.argmax(axis=1)))
    diff = float(np.max(np.abs(logits.astype(np.float64) - reference.astype(np.float64))))
    return {"top1_agreement": agree, "max_abs_logit_diff": diff}
