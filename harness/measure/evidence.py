"""Labels from measurements: a row's precision from the runtime's layer evidence, and its agreement gate.

The manifest says what a variant *should* run (`precision: int8`); only the backend's `describe()` (OpenVINO
runtimePrecision, ONNX Runtime QLinear*/ConvInteger nodes of the optimized graph, torch quantized modules,
the TensorRT inspector) says what did. These pure functions turn that evidence into the row's fields, so
a fp32 graph shipped under an int8 manifest is reported as fp32, and a fake-quant run as `int8-simulated`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

INT8 = "int8"
INT8_SIMULATED = "int8-simulated"
FLOAT_PRECISIONS = ("fp32", "bf16", "fp16", "tf32")


@dataclass(frozen=True)
class PrecisionEvidence:
    """What ran: `precision` (int8 | int8-simulated | fp32 | bf16 ...), why, and a flag for partial int8."""

    precision: str
    reason: str
    partial: str = ""  # "" unless the variant declares int8 and fewer than all conv/FC layers ran int8

    def to_dict(self) -> dict[str, str]:
        return {"precision": self.precision, "precision_reason": self.reason, "precision_flag": self.partial}


def _float_precision(describe: dict[str, Any]) -> str:
    """The float precision a backend reports it computes in (bf16 hint, fp16...), fp32 otherwise."""
    for key in ("compute_precision", "precision"):
        p = str(describe.get(key) or "").lower()
        if p in FLOAT_PRECISIONS:
            return p
    return "fp32"


def precision_from_evidence(declared: str | None, describe: dict[str, Any]) -> PrecisionEvidence:
    """The precision a row may claim, given the manifest's `declared` precision and the backend's describe().

    int8 needs `int8_layers > 0` counted by the runtime; fake-quant (label mentions "simulated") is
    `int8-simulated`; an int8 variant whose runtime shows no int8 layer runs (and is labelled) in float.
    """
    int8_layers = describe.get("int8_layers")
    total = describe.get("total_layers")
    label = str(describe.get("label") or "")
    counted = isinstance(int8_layers, int) and not isinstance(int8_layers, bool)
    n_int8 = int8_layers if isinstance(int8_layers, int) and counted else 0
    of = f"{n_int8}/{total}" if isinstance(total, int) else f"{n_int8}/?"
    if n_int8 > 0:
        partial = ""
        if isinstance(total, int) and n_int8 < total:
            partial = f"partial int8: {of} conv/FC layers ran int8 kernels"
        return PrecisionEvidence(INT8, f"runtime shows int8 kernels on {of} conv/FC layers", partial)
    if "simulated" in label.lower() or "fake-quant" in label.lower():
        return PrecisionEvidence(INT8_SIMULATED, "fake-quant: int8 rounding simulated in float kernels")
    floating = _float_precision(describe)
    if declared == INT8:
        why = ("the runtime reported no layer evidence" if not counted
               else f"declared int8 but the runtime shows int8 kernels on {of} conv/FC layers")
        return PrecisionEvidence(floating, why, f"declared int8, ran {floating}: {of} conv/FC layers in int8")
    return PrecisionEvidence(floating, f"no int8 kernels; computes in {floating}")


def agreement_threshold(precision: str | None, min_int8: float, min_fp32: float) -> float:
    """The agreement a row needs: the int8 threshold for (real or simulated) int8, the fp32 one otherwise."""
    return min_int8 if str(precision or "").startswith(INT8) else min_fp32


def agrees(agreement: float | None, threshold: float) -> bool | None:
    """True/False against `threshold`; None when there is no agreement measurement (nothing to gate on)."""
    if agreement is None or (isinstance(agreement, float) and math.isnan(agreement)):
        return None
    return bool(agreement >= threshold)


def row_labels(declared: str | None, describe: dict[str, Any]) -> dict[str, Any]:
    """The evidence fields of one result row (precision, precision_reason, precision_flag)."""
    return precision_from_evidence(declared, describe).to_dict()


REFERENCE_REASON = "reference"  # agreement_reason of the row whose own logits are the reference: shown "ref"
NOT_CHECKED = "not checked"  # agreement_reason prefix of a throughput row whose separately compiled model was not


def compiles_throughput_apart(backend: str) -> bool:
    """True when `backend` times the throughput scenario on a second, separately compiled model (OpenVINO's
    THROUGHPUT hint): the latency model's agreement then says nothing about the throughput rows."""
    from backends.registry import get_backend_class

    try:
        return bool(get_backend_class(backend).reload_per_scenario)
    except Exception:  # an unknown name in old or foreign rows: nothing says it compiles apart
        return False


def attach_agreement(rows: list[dict[str, Any]], agreement: list[dict[str, Any]], references: dict[str, str],
                     min_int8: float, min_fp32: float, missing: dict[str, str] | None = None) -> None:
    """Give every ok row its `agreement` (top-1 vs its variant's reference), `agrees` and `reference` (in place).

    Entries and rows are matched on (backend, variant, machine_id), and on the scenario where an entry names one
    (`"scenario": "throughput"`: the logits of a separately compiled throughput model). `references` maps
    variant -> the backend whose logits *are* the reference: its rows are not measured against anything, so
    they get agreement None, agrees True (they compute the reference by construction) and agreement_reason
    "reference" (shown "ref", never "100%"). A throughput row of a backend that compiles a second model for
    throughput takes only an entry of that model: without one it is "not checked" (agrees None). Other rows
    with no comparison get agreement None and agrees None: unverified, which `bench select` refuses unless told
    otherwise; `missing` (variant -> why no reference) goes into their `agreement_reason`.
    """
    by_cell = {(a["backend"], a["variant"], a.get("machine_id"), a.get("scenario")): a for a in agreement}
    for row in rows:
        backend, variant = row.get("backend"), row.get("variant")
        apart = row.get("scenario") == "throughput" and compiles_throughput_apart(str(backend))
        key = (backend, variant, row.get("machine_id"), "throughput" if apart else None)
        value: float | None = None
        reference: str | None = None
        is_reference = False
        if row.get("status") == "ok":
            if key in by_cell:
                value, reference = by_cell[key].get("top1_agreement"), by_cell[key].get("reference")
            elif references.get(str(variant)) == backend:
                is_reference, reference = True, f"{backend} (this cell is the reference)"
        row["agreement"] = value
        row["reference"] = reference
        threshold = agreement_threshold(row.get("precision"), min_int8, min_fp32)
        row["agrees"] = True if is_reference else agrees(value, threshold)
        row["agreement_reason"] = REFERENCE_REASON if is_reference else ""
        if row["agrees"] is False and value is not None:
            setting = "int8" if str(row.get("precision") or "").startswith(INT8) else "fp32"
            row["agreement_reason"] = (f"top-1 agreement {value:.4f} with the {reference_kind(reference)} reference "
                                       f"is below {threshold} (benchmark.min_agreement_{setting})")
        elif row["agrees"] is None and row.get("status") == "ok":
            if apart and (backend, variant, row.get("machine_id"), None) in by_cell:
                row["agreement_reason"] = (f"{NOT_CHECKED}: the throughput rows time a separately compiled model "
                                           "whose logits were not compared with the reference")
            else:
                why = (missing or {}).get(str(variant)) or "no reference logits to compare with"
                row["agreement_reason"] = f"unverified: {why}"


def reference_kind(reference: str | None) -> str:
    """The reference's runtime and arithmetic in words, from a row's `reference` field: 'PyTorch', 'ONNX Runtime
    fp32' or, for an imported graph of integer operators, 'ONNX Runtime int8 (unoptimized)'."""
    ref = str(reference or "")
    if not ref.startswith("onnxruntime"):
        return "PyTorch"
    return "ONNX Runtime int8 (unoptimized)" if "(int8" in ref else "ONNX Runtime fp32"
