"""A variant's manifest.json fields: method labels, provenance, parameter storage and compression ratio."""

from __future__ import annotations

from typing import Any

from common.config import Config
from common.model_id import ARCH_NAME, model_record
from common.versions import library_versions
from compression.quant import weight_range
from compression.storage import gmac
from fer.data import FerData
from fer.train import training_precision

ARTIFACT_LIBRARIES = ("torch", "torch-pruning", "onnx", "onnxruntime", "openvino", "numpy", "fer-bench")
METHOD_LABELS: dict[str, str] = {
    "dense": "dense (no pruning)",
    "l1": "l1 (L1-norm, Li et al. 2017)",
    "cdcp": "cdcp (CDP)",
    "sfpga": "sfpga (Taylor)",
    "drcp": "drcp (HRank)",
    "tgpp": "tgpp (progressive SFP, AGP)",
}
UNSTRUCTURED_LABEL = "l1 (unstructured magnitude threshold, Eq. 5; zeros stay stored: no speedup on dense kernels)"


def base_manifest(cfg: Config, data: FerData, variant: str, method: str, precision: str, arch: dict[str, Any],
                  chash: str) -> dict[str, Any]:
    """The manifest fields every variant shares: what it is, how it was made, what shaped it."""
    c = cfg.compress
    label = UNSTRUCTURED_LABEL if (c.unstructured and method == "l1") else METHOD_LABELS[method]
    return {
        "variant": variant, "method": method, "method_label": label,
        "sparsity": 0.0 if method == "dense" else c.sparsity, "precision": precision,
        "scope": None if method == "dense" else c.scope,
        "config_hash": chash, "dataset": data.name, "synthetic": data.synthetic,
        "versions": library_versions(ARTIFACT_LIBRARIES), "input_shape": [int(arch["in_channels"]), 48, 48],
        "arch": arch, "gmac": round(gmac(arch), 6),
        # which model this is a variant of (a variant name alone does not say): rows and reports name it
        "model": model_record(ARCH_NAME, cfg.model.width, training_precision(cfg.train)),
        "pruning": None if method == "dense" else {
            "criterion": label, "scope": c.scope, "steps": c.prune_steps,
            "finetune_epochs": c.finetune_epochs, "unstructured": c.unstructured,
            "structured": not c.unstructured,
        },
    }


def storage_fields(m: dict[str, Any], dense_storage: int, nbytes: int) -> None:
    """Parameter storage at the variant's precision (the paper's metric) and the ratio to dense fp32."""
    m["storage_bytes"] = nbytes
    m["storage_mb"] = round(nbytes / 1e6, 4)
    m["compression_ratio"] = round(dense_storage / nbytes, 3)


def int8_encoding(weight_bits: int, symmetric: bool) -> dict[str, Any]:
    """What an int8 variant's files assume: the stored weight range and the integer products each runtime runs.
    7-bit weights are what makes u8 x s8 exact on x86 CPUs without VNNI (no int16 pair-sum saturation)."""
    qmin, qmax = weight_range(weight_bits, symmetric)
    zp = "zp 0" if symmetric else "per-channel zp"
    act_zp = "zp 0" if symmetric else "zp"
    cpu = f"cpu: u8 act ({act_zp}) x s{weight_bits} weight [{qmin}, {qmax}] per-channel, {zp}"
    trt = f"; tensorrt: s8 act x s{weight_bits} weight per-channel, zp 0" if symmetric else ""
    safe = ("no int16 pair-sum saturation on AVX2 without VNNI" if weight_bits < 8
            else "full int8: u8 x s8 pair-sums can saturate on AVX2 without VNNI (exact with VNNI / GPUs)")
    return {
        "weight_bits": weight_bits, "weight_range": [qmin, qmax],
        "weights": f"int{weight_bits} per output channel stored as int8, "
                   + ("zero-point 0" if symmetric else "asymmetric (Eqs. 10-11)"),
        "encoding": cpu + trt, "saturation": safe,
    }
