"""The GPU roofline, measured on the GPU (torch matmul per precision, device-memory copy), and CUDA rows held to
it, never to the CPU's roofs. Runs where an NVIDIA GPU is present; skips with the reason elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fer.data import FerData

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no NVIDIA GPU/CUDA (torch.cuda.is_available() is False)")


@pytest.mark.gpu
@needs_cuda
def test_gpu_peaks_are_measured_on_the_gpu() -> None:
    from harness.measure.peaks_gpu import gpu_peaks_here

    peaks = gpu_peaks_here()
    assert peaks["device"] == f"cuda:{torch.cuda.get_device_name(0)}"
    for key in ("fp32", "fp16", "bf16"):
        assert peaks[key] > 0, (key, peaks)
    assert peaks["fp16"] > peaks["fp32"]  # tensor cores vs f32 without TF32: the switch really was off
    if "int8" in peaks:  # torch._int_mm where this torch/GPU has it
        assert peaks["int8"] > peaks["fp32"]
    bw = peaks["bandwidth_gb_per_s"]
    assert bw["dram"] > 100 and bw["cache"] > 0  # any CUDA GPU moves > 100 GB/s device to device


@pytest.mark.gpu
@needs_cuda
def test_cuda_rows_use_the_gpu_roofline(artifacts: dict[str, Path], tiny_data: FerData) -> None:
    from backends.registry import resolve_config
    from common.config import load_config
    from harness.orchestrate.runner import run_grid

    sets = {"benchmark.threads": "1", "benchmark.min_duration_s": "0.2", "benchmark.min_iterations": "100",
            "benchmark.warmup_s": "0.05", "benchmark.batch_sizes": "[1, 8]", "benchmark.rounds": "2",
            "benchmark.variants": json.dumps(["dense-fp32"]), "benchmark.backends": json.dumps(["torch-eager"]),
            "backends.torch-eager.device": '"cuda"'}
    cfg = resolve_config(load_config(None, [f"{k}={v}" for k, v in sets.items()]))
    r = run_grid(cfg, artifacts, tiny_data)
    gpu = r["machine_peak_gmac_per_s"]["gpu"]
    assert gpu["fp32"] > r["machine_peak_gmac_per_s"]["fp32"]  # a GPU roof, not the CPU's
    for row in r["results"]:
        assert row["status"] == "ok", row["reason"]
        assert row["roofline"]["device"] == "gpu"
        assert row["roofline"]["compute_gmac_per_s"] == gpu["fp32"]
        assert 0 < row["fraction_of_attainable"] <= 1.0
