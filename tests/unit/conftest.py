"""Sample `bench run` results dicts for the store / regression / select tests: realistic numbers,
raw latency samples from a seeded numpy RNG, 7x7 confusion matrices consistent with the accuracy."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch

from common.stats.accuracy import pack_correct

# p50 latency at batch 1 in ms per (backend, variant), close to what was measured on a 2-core CPU
BASE_P50_MS: dict[tuple[str, str], float] = {
    ("torch-eager", "dense-fp32"): 11.0, ("torch-eager", "l1-fp32"): 3.1,
    ("torch-eager", "dense-int8"): 14.0, ("torch-eager", "l1-int8"): 4.2,
    ("openvino", "dense-fp32"): 2.6, ("openvino", "l1-fp32"): 0.72,
    ("openvino", "dense-int8"): 0.95, ("openvino", "l1-int8"): 0.27,
    ("onnxruntime", "dense-fp32"): 3.0, ("onnxruntime", "l1-fp32"): 0.8,
    ("onnxruntime", "dense-int8"): 1.05, ("onnxruntime", "l1-int8"): 0.29,
}
ACCURACY = {"dense-fp32": 0.862, "l1-fp32": 0.851, "dense-int8": 0.857, "l1-int8": 0.848}
STORAGE_MB = {"dense-fp32": 58.9, "l1-fp32": 14.8, "dense-int8": 14.8, "l1-int8": 3.7}
BACKENDS = ("torch-eager", "openvino", "onnxruntime", "tensorrt")
VARIANTS = ("dense-fp32", "l1-fp32", "dense-int8", "l1-int8")


def confusion_for(accuracy: float, per_class: int = 300, seed: int = 0) -> list[list[int]]:
    """A 7x7 confusion matrix (rows: true class) whose trace / total is about `accuracy`."""
    rng = np.random.default_rng(seed)
    cm = np.zeros((7, 7), dtype=np.int64)
    for i in range(7):
        correct = round(accuracy * per_class)
        cm[i, i] = correct
        wrong = rng.multinomial(per_class - correct, np.full(6, 1 / 6))
        cm[i, [j for j in range(7) if j != i]] = wrong
    return cm.tolist()


def correct_bits_for(variant: str, accuracy: float, per_class: int = 300) -> dict[str, Any]:
    """Per-image correctness consistent with `confusion_for`: the same images (a fixed order per variant) are
    right in every run of that accuracy, so runs with equal accuracy agree image for image."""
    n = 7 * per_class
    order = np.random.default_rng(zlib.crc32(variant.encode())).permutation(n)
    correct = np.zeros(n, dtype=bool)
    correct[order[:7 * round(accuracy * per_class)]] = True
    return pack_correct(correct, np.repeat(np.arange(7), per_class))


def make_result(backend: str, variant: str, scenario: str, batch: int, rng: np.random.Generator, *,
                factor: float = 1.0, n: int = 300, sigma: float = 0.04, accuracy: float | None = None,
                status: str = "ok", reason: str = "", valid: bool = True) -> dict[str, Any]:
    """One result row; latency samples lognormal around the table's p50 x `factor`."""
    base = {"backend": backend, "variant": variant, "device": "cpu", "precision": variant.rsplit("-", 1)[1],
            "scenario": scenario, "batch_size": batch, "status": status, "reason": reason}
    if status != "ok":
        return {**base, "latency_ms": None, "throughput_fps": None, "n_samples": 0, "valid": False,
                "invalid_reasons": [], "accuracy": None, "samples_ms": [], "confusion": None}
    p50 = BASE_P50_MS[(backend, variant)] * factor
    if scenario == "throughput":
        p50 = p50 * batch * 0.55  # batching helps
    samples = p50 * np.exp(rng.normal(0.0, sigma, n))
    s = np.asarray(samples)
    acc = ACCURACY[variant] if accuracy is None else accuracy
    q = np.percentile(s, [50, 90, 95, 99, 25, 75])
    return {
        **base,
        "latency_ms": {"min": float(s.min()), "p50": float(q[0]), "p90": float(q[1]), "p95": float(q[2]),
                       "p99": float(q[3]), "mean": float(s.mean()), "stdev": float(s.std(ddof=1)),
                       "iqr": float(q[5] - q[4]), "cov": float(s.std(ddof=1) / s.mean())},
        "throughput_fps": float(1000.0 * batch / q[0]),
        "n_samples": n, "duration_s": float(s.sum() / 1000.0), "valid": valid,
        "invalid_reasons": [] if valid else ["CoV 0.31 above max_cov 0.25"],
        "cold_start_ms": 120.0, "accuracy": acc, "macro_f1": acc - 0.01,
        "storage_bytes": int(STORAGE_MB[variant] * 1e6), "storage_mb": STORAGE_MB[variant],
        "compression_ratio": STORAGE_MB["dense-fp32"] / STORAGE_MB[variant],
        "params": 14_700_000 if variant.startswith("dense") else 3_690_000,
        "nonzero_params": 14_700_000 if variant.startswith("dense") else 3_690_000,
        "gmac": 0.31 if variant.startswith("dense") else 0.08,
        "int8_layers": 16 if variant.endswith("int8") and backend != "torch-eager" else 0,
        "total_layers": 16, "peak_rss_bytes": 400_000_000,
        "samples_ms": [float(x) for x in samples],
        "confusion": confusion_for(acc),
        "correct_bits": correct_bits_for(variant, acc),
        "label": "int8 simulated (fake-quant)" if backend == "torch-eager" and variant.endswith("int8") else "",
        "describe": {"threads": 2},
        # checked against the reference logits of its variant (torch-eager's own cell is the reference)
        "agreement": 1.0 if backend == "torch-eager" else 0.998, "agrees": True, "agreement_reason": "",
        "reference": "torch-eager (this cell is the reference)" if backend == "torch-eager" else "torch-eager",
        # three processes (benchmark.rounds = 3): the samples split in round order
        "rounds": [{"round": i, "p50_ms": float(np.median(part)), "p99_ms": float(np.percentile(part, 99)),
                    "n": len(part), "noisy": ""} for i, part in enumerate(np.array_split(s, 3))],
    }


def build_run(run_id: str = "run-1", *, created: str = "2026-01-10T03:00:00Z", fingerprint: str = "fp-a",
              cpu: str = "Intel Xeon Platinum 8481C", config_hash: str = "cfg-1", seed: int = 0,
              factors: dict[tuple[str, str], float] | None = None, backends: tuple[str, ...] = BACKENDS,
              variants: tuple[str, ...] = VARIANTS, batch_sizes: tuple[int, ...] = (1, 32), n: int = 300,
              dataset: str = "synthfer", sigma: float = 0.04,
              accuracies: dict[tuple[str, str], float] | None = None,
              statuses: dict[tuple[str, str], tuple[str, str]] | None = None,
              invalid: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """A complete results dict; tensorrt cells are `unavailable` (no GPU).

    `factors` slows cells down, `accuracies` overrides a cell's accuracy, `statuses` makes a cell fail
    with (status, reason), `invalid` marks cells' measurements INVALID.
    """
    rng = np.random.default_rng(seed)
    factors = factors or {}
    results = []
    for b in backends:
        for v in variants:
            if b == "tensorrt":
                for sc, bs in [("latency", 1)] + [("throughput", x) for x in batch_sizes]:
                    results.append(make_result(b, v, sc, bs, rng, status="unavailable",  # no GPU here
                                               reason="tensorrt is not installed; pip install fer-bench[tensorrt]"))
                continue
            f = factors.get((b, v), 1.0)
            kw: dict[str, Any] = {"factor": f, "sigma": sigma, "accuracy": (accuracies or {}).get((b, v)),
                                  "valid": (b, v) not in invalid}
            if statuses and (b, v) in statuses:
                kw["status"], kw["reason"] = statuses[(b, v)]
            results.append(make_result(b, v, "latency", 1, rng, n=n, **kw))
            for bs in batch_sizes:
                results.append(make_result(b, v, "throughput", bs, rng, n=max(20, n // 4), **kw))
    agreement = [{"variant": v, "backend": b, "reference": "torch-eager", "top1_agreement": 0.998,
                  "max_abs_logit_diff": 0.012} for v in variants for b in backends
                 if b not in ("torch-eager", "tensorrt")]
    return {
        "schema_version": 1, "run_id": run_id, "created": created,
        "fingerprint": {"id": fingerprint, "cpu": {"brand": cpu, "cores": 2, "flags": ["avx512_bf16"]},
                        "gpu": None, "versions": {"python": "3.11.7", "openvino": "2026.4.1"},
                        "git": {"commit": "abc123", "dirty": False}},
        "config": {"data": {"dataset": dataset}, "benchmark": {"threads": 2, "batch_sizes": list(batch_sizes)}},
        "config_hash": config_hash, "dataset": dataset, "synthetic": dataset == "synthfer",
        "harness_overhead_us": 1.3, "results": results, "agreement": agreement,
        "layers": [{"layer": f"conv{i}", "filters_before": 64 * (i + 1), "filters_after": 32 * (i + 1),
                    "sparsity": 0.5} for i in range(3)],
    }


@pytest.fixture
def make_run() -> Callable[..., dict[str, Any]]:
    """Factory fixture: `make_run(run_id, created=..., fingerprint=..., factors={(b, v): 1.1}, ...)`."""
    return build_run


@pytest.fixture
def two_threads() -> Iterator[None]:
    """At most 2 torch threads during the test (the CI machine's cores), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(min(2, before))
    yield
    torch.set_num_threads(before)
