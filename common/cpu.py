"""CPU features that change what int8 / bf16 kernels compute, read from /proc/cpuinfo (Linux x86).

VNNI (`vpdpbusd`) accumulates u8 x s8 products in int32; without it (AVX2 only) `vpmaddubsw` adds pairs of
products in int16 with saturation, so full-range int8 weights can compute wrong sums. Native bf16
(avx512_bf16 / AMX) decides whether a runtime honours a bf16 request or runs f32.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@cache
def cpu_flags() -> frozenset[str]:
    """The flags of the first CPU in /proc/cpuinfo (empty where there is none, e.g. not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def has_vnni() -> bool:
    """u8 x s8 dot products accumulate in int32 without saturation (AVX-512 VNNI, AVX-VNNI or AMX)."""
    return bool(cpu_flags() & set(VNNI_FLAGS))


def has_native_bf16() -> bool:
    """bf16 arithmetic in hardware (AVX-512 BF16 or AMX); OpenVINO runs f32 on CPUs without it."""
    return bool(cpu_flags() & set(BF16_FLAGS))
