"""The machine's own peak GMAC/s per precision, and every row's fraction of it (a roofline).

A standard kernel at the benchmark's thread count: a square GEMM through torch (oneDNN/MKL for fp32 and bf16,
fbgemm's u8 x s8 VNNI kernel via a quantized Linear for int8, `torch._int_mm` where that is unavailable) and
through OpenVINO (a MatMul, f32 and as a Q/DQ graph that runs u8 x s8), the best kernel and the best of a few
repetitions (a peak is the least-disturbed run of the fastest kernel the
machine offers). It runs in its own subprocess so its thread
setting cannot leak into the harness. bf16 only where the CPU has native bf16 (avx512_bf16/amx_bf16).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

GEMM_N = 1024
REPS = 5
PEAK_TIMEOUT_S = 120.0


def _best_s(fn: Callable[[], Any], reps: int = REPS) -> float:
    fn()  # warm-up: first call packs weights / JIT-selects the kernel
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _int8_gmac(n: int) -> tuple[float, str]:
    import torch

    macs = n ** 3 / 1e9
    try:  # what the int8 runtimes use on x86: u8 activations x s8 weights into int32 (VNNI)
        import torch.ao.nn.quantized as nnq

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.backends.quantized.engine = "x86" if "x86" in torch.backends.quantized.supported_engines \
                else "fbgemm"
            lin = nnq.Linear(n, n)
            lin.set_weight_bias(torch.quantize_per_tensor(torch.randn(n, n), 0.05, 0, torch.qint8), None)
            x = torch.quantize_per_tensor(torch.rand(n, n), 0.01, 0, torch.quint8)
            return macs / _best_s(lambda: lin(x)), f"torch quantized Linear ({torch.backends.quantized.engine})"
    except Exception:  # deprecated flow removed in this torch: the plain int8 GEMM
        a = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        b = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        return macs / _best_s(lambda: torch._int_mm(a, b)), "torch._int_mm"


def _openvino_gemm(n: int, threads: int, int8: bool) -> float:
    """GMAC/s of an n x n x n MatMul compiled by OpenVINO (oneDNN), as a Q/DQ graph for int8 (u8 x s8)."""
    import numpy as np
    import openvino as ov
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((n, n)) * 0.05).astype(np.float32)
    if int8:
        inits = [numpy_helper.from_array(np.array(0.01, np.float32), "xs"),
                 numpy_helper.from_array(np.array(0, np.uint8), "xz"),
                 numpy_helper.from_array(np.round(w / 0.001).clip(-127, 127).astype(np.int8), "wq"),
                 numpy_helper.from_array(np.array(0.001, np.float32), "ws"),
                 numpy_helper.from_array(np.array(0, np.int8), "wz")]
        nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
                 helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
                 helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
                 helper.make_node("MatMul", ["xd", "wd"], ["y"])]
    else:
        inits = [numpy_helper.from_array(w, "w")]
        nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    graph = helper.make_graph(nodes, "gemm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    core = ov.Core()
    compiled = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU", {
        "INFERENCE_NUM_THREADS": str(threads), "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": "1"})
    request = compiled.create_infer_request()
    x = rng.random((n, n), dtype=np.float32)
    return n ** 3 / 1e9 / _best_s(lambda: request.infer({0: x}))


def peaks_here(threads: int, n: int = GEMM_N) -> dict[str, Any]:
    """{"fp32": GMAC/s, "int8": ..., ["bf16": ...], "method": {...}} measured in this process."""
    import torch

    from harness.measure.trackers import NoiseProbe

    probe = NoiseProbe()
    torch.set_num_threads(threads)
    macs = n ** 3 / 1e9
    a, b = torch.randn(n, n), torch.randn(n, n)
    out: dict[str, Any] = {"fp32": macs / _best_s(lambda: torch.mm(a, b))}
    method = {"fp32": f"torch.mm fp32 {n}x{n}"}
    if _cpu_has_bf16():
        ab, bb = a.bfloat16(), b.bfloat16()
        out["bf16"] = macs / _best_s(lambda: torch.mm(ab, bb))
        method["bf16"] = f"torch.mm bf16 {n}x{n}"
    out["int8"], method["int8"] = _int8_gmac(n)
    for precision, int8 in (("fp32", False), ("int8", True)):  # the best kernel here sets the peak
        try:
            v = _openvino_gemm(n, threads, int8)
        except Exception:  # OpenVINO not installed: torch's figure stands
            continue
        if v > out[precision]:
            out[precision], method[precision] = v, f"OpenVINO MatMul {'Q/DQ u8 x s8' if int8 else 'f32'} {n}x{n}"
    out["method"] = method
    out["threads"] = threads
    # a peak measured while other processes held the CPUs is too low: record how busy the machine was
    out["other_cpu_fraction"] = probe.finish()["other_cpu_fraction"]
    return out


def measure_peaks(threads: int) -> dict[str, Any]:
    """`peaks_here` in a fresh subprocess; {"error": reason} if it fails (the run goes on without a roofline)."""
    try:
        proc = subprocess.run([sys.executable, "-m", "harness.measure.roofline", str(threads)], capture_output=True,
                              text=True, timeout=PEAK_TIMEOUT_S, check=False)
        if proc.returncode != 0:
            return {"error": (proc.stderr.strip().splitlines() or ["peak measurement failed"])[-1]}
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (subprocess.TimeoutExpired, json.JSONDecodeError, OSError, IndexError) as e:
        return {"error": f"{type(e).__name__}: {e}"}


def peak_key(precision: str | None) -> str | None:
    """Which peak a row's precision is measured against (int8-simulated runs float kernels: fp32)."""
    p = str(precision or "")
    if p == "int8":
        return "int8"
    if p in ("bf16", "fp32"):
        return p
    if p == "int8-simulated":
        return "fp32"
    return None


def fraction_of_peak(gmac_per_s: float | None, precision: str | None, peaks: dict[str, Any]) -> float | None:
    """Achieved GMAC/s over the machine's peak for the row's precision (None without either)."""
    key = peak_key(precision)
    peak = peaks.get(key) if key else None
    if not gmac_per_s or not isinstance(peak, int | float) or peak <= 0:
        return None
    return float(gmac_per_s) / float(peak)


def attach_roofline(rows: list[dict[str, Any]], peaks: dict[str, Any]) -> None:
    """Set every row's `fraction_of_peak` (in place) from its `gmac_per_s` and evidenced precision."""
    for row in rows:
        row["fraction_of_peak"] = fraction_of_peak(row.get("gmac_per_s"), row.get("precision"), peaks)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    sys.stdout.write(json.dumps(peaks_here(int(args[0]) if args else 1)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
