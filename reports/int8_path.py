"""One sentence for the report's summary: the CPU's int8 instruction path and the kernels OpenVINO really ran.

The path comes from the run's fingerprint (`isa`, or for runs recorded before it existed, the flags in
`fingerprint.cpu.flags`); the kernels from the OpenVINO int8 rows' `describe.primitive_types`."""

from __future__ import annotations

from typing import Any

from common.isa import int8_sentence, isa_features, kernel_isa, kernel_precision


def cpu_features(fingerprint: dict[str, Any] | None) -> dict[str, bool]:
    """The ISA features of a run's fingerprint ({} where it recorded none)."""
    fp = fingerprint or {}
    isa = fp.get("isa") or {}
    if isa.get("features"):
        return dict(isa["features"])
    flags = (fp.get("cpu") or {}).get("flags")
    return isa_features(flags) if flags else {}


def openvino_int8_kernels(rows: list[dict[str, Any]]) -> dict[str, int]:
    """{primitiveType: layers} of the int8 convolutions OpenVINO ran, over the int8 rows (largest count first)."""
    seen: dict[str, int] = {}
    for r in rows:
        if r.get("backend") != "openvino" or r.get("precision") != "int8":
            continue
        for key, n in ((r.get("describe") or {}).get("primitive_types") or {}).items():
            layer, _, prim = str(key).partition(":")
            if layer == "Convolution" and kernel_precision(prim) in ("I8", "U8"):
                seen[prim] = max(seen.get(prim, 0), int(n))
    return dict(sorted(seen.items(), key=lambda kv: -kv[1]))


def int8_path_text(run: dict[str, Any]) -> str:
    """The CPU's int8 path in one sentence, with the OpenVINO kernels where the run has int8 rows on OpenVINO."""
    text = int8_sentence(cpu_features(run.get("fingerprint")))
    kernels = openvino_int8_kernels(run.get("results") or [])
    if kernels:
        isas = sorted({kernel_isa(k) or "reference" for k in kernels})
        names = ", ".join(f"{k} ({n} layers)" for k, n in kernels.items())
        text += f" OpenVINO ran its int8 convolutions as {names}: {'/'.join(isas)} kernels."
    return text
