"""One sentence for the report's summary: the CPU's int8 instruction path and the kernels OpenVINO really ran.

The path comes from the run's fingerprint (`isa`, or for runs recorded before it existed, the flags in
`fingerprint.cpu.flags`); the kernels from the OpenVINO int8 rows' `describe.primitive_types`."""

from __future__ import annotations

from typing import Any

from common.isa import int8_sentence, isa_features, kernel_isa, kernel_precision
from common.records import Fingerprint, Row, Run, as_run


def cpu_features(fingerprint: Fingerprint | None) -> dict[str, bool]:
    """The ISA features of a run's fingerprint ({} where it recorded none)."""
    if fingerprint is None:
        return {}
    features = (fingerprint.isa or {}).get("features")
    if features:
        return dict(features)
    flags = fingerprint.cpu.get("flags") if isinstance(fingerprint.cpu, dict) else None  # free-form CPU block
    return isa_features(flags) if flags else {}


def openvino_int8_kernels(rows: list[Row]) -> dict[str, int]:
    """{primitiveType: layers} of the int8 convolutions OpenVINO ran, over the int8 rows (largest count first)."""
    seen: dict[str, int] = {}
    for r in rows:
        if r.backend != "openvino" or r.precision != "int8" or r.describe is None:
            continue
        for key, n in (r.describe.primitive_types or {}).items():
            layer, _, prim = str(key).partition(":")
            if layer == "Convolution" and kernel_precision(prim) in ("I8", "U8"):
                seen[prim] = max(seen.get(prim, 0), int(n))
    return dict(sorted(seen.items(), key=lambda kv: -kv[1]))


def int8_path_text(run: Run | dict[str, Any]) -> str:
    """The CPU's int8 path in one sentence, with the OpenVINO kernels where the run has int8 rows on OpenVINO."""
    r = as_run(run)
    text = int8_sentence(cpu_features(r.fingerprint))
    kernels = openvino_int8_kernels(r.results)
    if kernels:
        isas = sorted({kernel_isa(k) or "reference" for k in kernels})
        names = ", ".join(f"{k} ({n} layers)" for k, n in kernels.items())
        text += f" OpenVINO ran its int8 convolutions as {names}: {'/'.join(isas)} kernels."
    return text
