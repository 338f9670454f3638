"""The GPU's roofs, measured on the GPU itself: matmul peak per precision and device-memory bandwidth.

`python -m harness.measure.peaks_gpu` prints one JSON line (its own process: the CUDA context and the TF32
switches never touch the harness). Rows that ran on CUDA (torch-eager on cuda, TensorRT, ONNX Runtime's
CUDA/TensorRT providers) are held to these roofs, never to the CPU's.

Compute: torch.matmul of square matrices at a few sizes per precision, each timed with CUDA events over a few
blocks of calls, its rate the work of all timed calls over their total time (the mean, as a row's process
measures its rate; `harness.measure.roofline.measure_peaks` takes the median over processes): fp32 with TF32 off
(our fp32 rows run with TF32 off), tf32, fp16, bf16, and int8 via `torch._int_mm` (int8 x int8 -> int32 on the
tensor cores). Memory: a device-to-device copy (`dst.copy_(src)`, 2 x bytes moved) of 1 GiB (device memory) and
of a buffer that fits in half the L2 cache (`cache`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

REPS = 5
SIZES = (2048, 4096, 8192)
DRAM_COPY_BYTES = 1 << 30


def _cuda_seconds(torch: Any, fn: Callable[[], Any], reps: int = REPS, inner: int = 10) -> float:
    """Seconds per call: the total time of `reps` blocks of `inner` calls, timed by CUDA events, over their
    number (after one untimed call)."""
    fn()
    torch.cuda.synchronize()
    total = 0.0
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        total += start.elapsed_time(end) / 1e3
    return total / (reps * inner)


def matmul_gmac(torch: Any, n: int, precision: str) -> float:
    """GMAC/s of an n x n x n matmul on the GPU in `precision` (fp32 means TF32 off)."""
    dev = torch.device("cuda")
    old = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        if precision == "int8":
            a = torch.randint(-128, 127, (n, n), dtype=torch.int8, device=dev)
            b = torch.randint(-128, 127, (n, n), dtype=torch.int8, device=dev)
            return n ** 3 / 1e9 / _cuda_seconds(torch, lambda: torch._int_mm(a, b))
        dtype = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        a = torch.randn(n, n, device=dev, dtype=dtype)
        b = torch.randn(n, n, device=dev, dtype=dtype)
        return n ** 3 / 1e9 / _cuda_seconds(torch, lambda: torch.matmul(a, b))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def copy_gb_per_s(torch: Any, nbytes: int) -> float:
    """Device-memory bandwidth of dst.copy_(src) on `nbytes`-byte buffers, counting bytes read and written."""
    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda").fill_(1)
    dst = torch.empty_like(src)
    return 2 * nbytes / 1e9 / _cuda_seconds(torch, lambda: dst.copy_(src))


def gpu_peaks_here() -> dict[str, Any]:
    """{"device": "cuda:<name>", "fp32"/"tf32"/"fp16"/"bf16"/"int8": GMAC/s, "bandwidth_gb_per_s": {...}, ...}."""
    import torch

    if not torch.cuda.is_available():
        return {"error": "no CUDA device (torch.cuda.is_available() is False)"}
    props = torch.cuda.get_device_properties(0)
    out: dict[str, Any] = {"device": f"cuda:{props.name}"}
    method: dict[str, str] = {}
    errors: list[str] = []
    for precision in ("fp32", "tf32", "fp16", "bf16", "int8"):
        for n in SIZES:
            try:
                v = matmul_gmac(torch, n, precision)
            except Exception as e:  # e.g. _int_mm missing on this torch or GPU
                errors.append(f"{precision} {n}: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}")
                continue
            if v > float(out.get(precision, 0.0)):
                out[precision], method[precision] = v, f"torch matmul {precision} {n}x{n}"
    l2 = int(getattr(props, "L2_cache_size", 0) or (40 << 20))
    out["bandwidth_gb_per_s"] = {"dram": copy_gb_per_s(torch, DRAM_COPY_BYTES),
                                 "cache": copy_gb_per_s(torch, max(l2 // 4, 1 << 20))}
    out["llc_bytes"] = l2
    method["bandwidth"] = f"torch dst.copy_(src) on the GPU, {DRAM_COPY_BYTES} and {max(l2 // 4, 1 << 20)} bytes"
    out["method"] = method
    if errors:
        out["kernel_errors"] = errors
    return out


def main() -> int:
    sys.stdout.write(json.dumps(gpu_peaks_here()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
