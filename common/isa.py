"""The CPU instruction-set features that decide which kernels a runtime can run, and what they mean for int8.

Why it is recorded: the same int8 model runs on very different kernels. With VNNI (AVX-512 VNNI, or AVX-VNNI on
newer client CPUs) an int8 multiply-accumulate is one instruction (vpdpbusd); without it oneDNN, MLAS and the
rest use a three-instruction sequence (vpmaddubsw, vpmaddwd, vpaddd) on AVX2 or AVX-512, and AMX multiplies whole
int8 tiles. A 14x int8 speedup on one CPU and 40x on another can both be right: the report says which path the
CPU offers, so a slow result is not mistaken for a slow CPU, or the other way round.

Pure functions over the /proc/cpuinfo flag names (the fingerprint reads the flags; reports read the result).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# The features that change which CPU kernels run, in the order they are listed (Linux /proc/cpuinfo names).
ISA_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8",
                "amx_bf16")

INT8_PATHS = ("amx", "avx512_vnni", "avx_vnni", "avx512", "avx2", "baseline", "unknown")

_SENTENCES = {
    "amx": "AMX on this CPU: int8 convolutions can run on AMX tiles; expect the largest int8 gains.",
    "avx512_vnni": "AVX-512 VNNI on this CPU: int8 convolutions use VNNI dot-product instructions; expect the "
                   "int8 gains of VNNI CPUs.",
    "avx_vnni": "AVX-VNNI on this CPU: int8 convolutions use 256-bit VNNI instructions; expect int8 gains between "
                "those of AVX2-only and AVX-512 VNNI CPUs.",
    "avx512": "no VNNI on this CPU: int8 convolutions use AVX-512 multiply-add sequences; expect smaller int8 "
              "gains than on VNNI CPUs.",
    "avx2": "no VNNI on this CPU: int8 convolutions use AVX2; expect smaller int8 gains than on VNNI CPUs.",
    "baseline": "neither AVX2 nor VNNI on this CPU: int8 kernels fall back to SSE or reference code; expect little "
                "or no int8 gain.",
    "unknown": "the CPU's instruction set was not recorded: the int8 path is unknown.",
}


def flags_from_cpuinfo(text: str) -> set[str]:
    """The flag names of the first processor in /proc/cpuinfo text (x86 `flags`; empty where there is none)."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def isa_features(flags: Iterable[str]) -> dict[str, bool]:
    """{feature: present} for every name in ISA_FEATURES."""
    have = set(flags)
    return {f: f in have for f in ISA_FEATURES}


def int8_path(features: Mapping[str, bool] | None) -> str:
    """The best int8 instruction path the CPU offers: one of INT8_PATHS ("unknown" without recorded features)."""
    if not features:
        return "unknown"
    if features.get("amx_int8") and features.get("amx_tile"):
        return "amx"
    if features.get("avx512_vnni"):
        return "avx512_vnni"
    if features.get("avx_vnni"):
        return "avx_vnni"
    if features.get("avx512f"):
        return "avx512"
    if features.get("avx2"):
        return "avx2"
    return "baseline"


def int8_sentence(features: Mapping[str, bool] | None) -> str:
    """One sentence on what the CPU's int8 path means for the int8 results."""
    return _SENTENCES[int8_path(features)]


def isa_record(flags: Iterable[str]) -> dict[str, object]:
    """What the fingerprint stores: the features, the int8 path and its sentence. No flags at all (not Linux on
    x86: /proc/cpuinfo has none) records no features, and the path is "unknown" rather than "baseline"."""
    flags = set(flags)
    features = isa_features(flags) if flags else {}
    return {"features": features, "int8_path": int8_path(features), "int8_summary": int8_sentence(features)}


# OpenVINO's CPU plugin names a kernel "<family>_<isa>[_1x1|_dw]_<precision>" (impl_type_to_string + precision):
# jit_avx2_I8, brgconv_avx512_I8, brgconv_avx512_amx_I8, gemm_avx2_FP32, ref_any_I8. VNNI never appears in the
# name (oneDNN picks the VNNI variant of an avx512 kernel by itself), so the name gives the vector ISA and the
# CPU flags say whether VNNI was there to use.
_KERNEL_ISAS = ("avx512_amx", "amx", "avx512", "avx2", "avx", "sse42", "uni", "any")


def kernel_isa(primitive_type: str) -> str | None:
    """The vector ISA in an OpenVINO primitiveType ("jit_avx2_I8" -> "avx2", "brgconv_avx512_amx_I8" -> "amx";
    None for reference or unknown kernels)."""
    name = primitive_type.lower()
    for isa in _KERNEL_ISAS:
        if f"_{isa}_" in f"_{name}_":
            return {"avx512_amx": "amx", "any": None, "uni": None}.get(isa, isa)
    return None


def kernel_precision(primitive_type: str) -> str:
    """The precision suffix of an OpenVINO primitiveType ("jit_avx2_I8" -> "I8"; "" when there is none)."""
    head, _, tail = primitive_type.rpartition("_")
    return tail if head and tail.isupper() else ""
