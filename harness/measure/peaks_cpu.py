"""The CPU's roofs at the benchmark's thread count, in this process: compute peak per precision and memory bandwidth.

`python -m harness.measure.peaks_cpu THREADS` prints one JSON line; it runs in its own process so that its
thread settings cannot leak into the harness. `harness.measure.roofline.measure_peaks` starts it several times and
takes the median of the processes' values (see there for why).

The statistic, per process, is the one a row's process gives: each kernel is timed call by call for about a
quarter second after a short warm-up, and its rate is the work of all timed calls over the sum of their times (a
row's process: images of all timed calls over the sum of their times). The process's roof is its fastest kernel's
rate. Every kernel is fed data already in its precision, so nothing but the multiply-accumulates and their fused
epilogue is timed:
- int8: OpenVINO chains of 3x3 convolutions with a u8 input and i8 weights (int32 accumulation, the
  requantization to u8 fused into each convolution's epilogue as in every int8 layer, a u8 output: no separate
  quantize or dequantize op), ONNX Runtime MatMulInteger (u8 x s8 -> int32, nothing else), and torch's
  quantized Linear on an already-quantized input where torch ships the x86 engine. These run on AVX2 (vpmaddubsw)
  as well as on AVX-512 VNNI / AMX: each runtime picks its kernel for the CPU.
- fp32: the same OpenVINO convolution chains in f32, and torch.mm (oneDNN/MKL GEMM).
- bf16: the convolution chains with OpenVINO's bf16 precision hint and torch.mm in bf16, only where the CPU
  has native bf16 (avx512_bf16 / amx_bf16).
Memory: STREAM-like kernels at the run's threads (torch: triad a = b + s*c in one pass, copy, read-only sum; the
fastest sets the roof) on arrays 4x the last-level cache (`dram`) and on arrays that fit in half of it (`cache`):
a model whose working set fits in the cache is held to the cache roof, not the DRAM one.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

CALL_BUDGET_S = 0.25  # each kernel is timed for about this long (at least MIN_CALLS calls)
WARMUP_S = 0.05  # untimed calls first (weights packed, kernel chosen, caches warm), as a row's warm-up
MIN_CALLS = 5
MAX_CALLS = 400
# (batch, channels, height = width, convolutions in the chain): the shapes of VGG-style layers on 48x48 inputs
CONV_SHAPES = ((1, 64, 24, 4), (1, 128, 12, 4), (1, 256, 6, 4), (8, 64, 24, 2))
GEMM_SIZES = (256, 512, 1024)
DEFAULT_LLC_BYTES = 8 << 20


def mean_seconds(fn: Callable[[], Any], budget_s: float = CALL_BUDGET_S) -> float:
    """Seconds per call of `fn`: the sum of the timed calls' times over their number, the calls timed one by one
    for about `budget_s` after `WARMUP_S` of untimed calls. This is how a row's process measures its rate
    (`harness.measure.rows`: images over the sum of its call times), so a roof and a row compare like with like;
    a disturbed process reads low for both, and the median over processes outvotes it for both."""
    clock = time.perf_counter
    end = clock() + WARMUP_S
    fn()
    while clock() < end:
        fn()
    total, n = 0.0, 0
    end = clock() + budget_s
    while n < MIN_CALLS or (n < MAX_CALLS and clock() < end):
        t = clock()
        fn()
        total += clock() - t
        n += 1
    return total / n


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def llc_bytes() -> int:
    """Size of the largest cache of CPU 0 (sysfs), DEFAULT_LLC_BYTES where the kernel does not say."""
    best = 0
    for d in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (d / "size").read_text().strip().upper()
        except OSError:
            continue
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        try:
            best = max(best, int(text.rstrip("KMG")) * mult)
        except ValueError:
            continue
    return best or DEFAULT_LLC_BYTES


# ---- OpenVINO convolution chains ---------------------------------------------------------------------------
def _ov_conv_chain(ov: Any, shape: tuple[int, int, int, int], precision: str) -> Any:
    """A model of `depth` 3x3 convolutions (c -> c, padding 1). int8: u8 input, i8 weights, each output
    quantized to u8 by a FakeQuantize that OpenVINO fuses into the convolution, u8 output."""
    import openvino.opset13 as ops

    n, c, hw, depth = shape
    rng = np.random.default_rng(0)
    if precision == "int8":
        x = ops.parameter([n, c, hw, hw], ov.Type.u8, name="x")
        h = ops.multiply(ops.convert(x, "f32"), ops.constant(np.float32(0.02)))
    else:
        x = ops.parameter([n, c, hw, hw], ov.Type.f32, name="x")
        h = x
    for _ in range(depth):
        if precision == "int8":
            w = ops.constant(rng.integers(-127, 128, (c, c, 3, 3), dtype=np.int8))
            wf = ops.multiply(ops.convert(w, "f32"), ops.constant(np.full((c, 1, 1, 1), 1e-3, np.float32)))
        else:
            wf = ops.constant((rng.standard_normal((c, c, 3, 3)) * 0.05).astype(np.float32))
        h = ops.convolution(h, wf, [1, 1], [1, 1], [1, 1], [1, 1])
        if precision == "int8":
            lo, hi = ops.constant(np.float32(0.0)), ops.constant(np.float32(5.1))
            h = ops.fake_quantize(h, lo, hi, lo, hi, 256)
        else:
            h = ops.relu(h)
    if precision == "int8":
        h = ops.convert(h, "u8")
    return ov.Model([h], [x])


def ov_conv_gmac(shape: tuple[int, int, int, int], precision: str, threads: int) -> tuple[float, str]:
    """(GMAC/s, runtime precisions of the convolutions) of one OpenVINO convolution chain."""
    import openvino as ov

    n, c, hw, depth = shape
    core = ov.Core()
    compiled = core.compile_model(_ov_conv_chain(ov, shape, precision), "CPU", {
        "INFERENCE_NUM_THREADS": str(threads), "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1",
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32", "ENABLE_CPU_PINNING": "YES"})
    ran = sorted({op.get_rt_info()["runtimePrecision"].astype(str) for op in compiled.get_runtime_model()
                  .get_ordered_ops() if op.get_rt_info()["layerType"].astype(str) == "Convolution"})
    request = compiled.create_infer_request()
    rng = np.random.default_rng(1)
    data = (rng.integers(0, 256, (n, c, hw, hw), dtype=np.uint8) if precision == "int8"
            else rng.random((n, c, hw, hw), dtype=np.float32))
    request.set_input_tensor(ov.Tensor(data, shared_memory=True))
    macs = n * c * c * 9 * hw * hw * depth / 1e9
    return macs / mean_seconds(request.infer), "/".join(ran)


# ---- GEMMs ---------------------------------------------------------------------------------------------------
def ort_matmul_integer_gmac(n: int, threads: int) -> float:
    """ONNX Runtime MatMulInteger, u8 [n, n] x s8 [n, n] -> int32: integer multiply-accumulate and nothing else."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["x", "w"], ["y"])], "mmi",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [n, n])],
        [numpy_helper.from_array(rng.integers(-127, 128, (n, n), dtype=np.int8), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    x = {"x": rng.integers(0, 256, (n, n), dtype=np.uint8)}
    return n ** 3 / 1e9 / mean_seconds(lambda: session.run(None, x))


def torch_mm_gmac(n: int, dtype: str) -> float:
    import torch

    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a, b = torch.randn(n, n).to(dt), torch.randn(n, n).to(dt)
    return n ** 3 / 1e9 / mean_seconds(lambda: torch.mm(a, b))


def torch_qlinear_gmac(n: int) -> float:
    """torch's x86/fbgemm quantized Linear (u8 x s8, int32 accumulation, requantized output) on an input that is
    already quantized outside the timed call."""
    import torch
    import torch.ao.nn.quantized as nnq

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engines = torch.backends.quantized.supported_engines
        torch.backends.quantized.engine = "x86" if "x86" in engines else "fbgemm"
        lin = nnq.Linear(n, n)
        lin.set_weight_bias(torch.quantize_per_tensor(torch.randn(n, n), 0.05, 0, torch.qint8), None)
        x = torch.quantize_per_tensor(torch.rand(n, n), 0.01, 0, torch.quint8)
        return n ** 3 / 1e9 / mean_seconds(lambda: lin(x))


# ---- memory bandwidth --------------------------------------------------------------------------------------
def memory_gb_per_s(n_elements: int, threads: int) -> dict[str, float]:
    """GB/s of three STREAM-like kernels on float32 arrays: triad a = b + 3 c (one fused pass, 12 bytes per
    element as STREAM counts them), copy b -> a (8) and a read-only sum (4), each at 1 and at `threads` threads
    (the faster: on a busy machine one thread is scheduled more readily than several at once)."""
    import torch

    b = torch.rand(n_elements)
    c = torch.rand(n_elements)
    a = torch.empty(n_elements)
    gb = n_elements / 1e9
    kernels = {"triad": (12, lambda: torch.add(b, c, alpha=3.0, out=a)), "copy": (8, lambda: a.copy_(b)),
               "read": (4, lambda: torch.sum(b))}
    out: dict[str, float] = {}
    for t in sorted({1, threads}):
        torch.set_num_threads(t)
        for name, (nbytes, fn) in kernels.items():
            out[f"{name} {t}t"] = nbytes * gb / mean_seconds(fn)
    torch.set_num_threads(threads)
    return out


def bandwidth(llc: int, threads: int) -> dict[str, Any]:
    """Memory roofs: from DRAM (arrays 4x the LLC, at most 512 MiB each) and from the cache (the arrays in half
    the LLC); each level's roof is the fastest of its kernels (a model streaming its weights reads more than it
    writes: the triad alone would set the roof low), and the cache's is never below DRAM's (a disturbed
    measurement cannot make the cache slower than memory)."""
    dram_n = min(max(4 * llc // 4, 1 << 22), 1 << 27)
    cache_n = max(llc // 2 // 12, 1 << 12)
    dram, cache = memory_gb_per_s(dram_n, threads), memory_gb_per_s(cache_n, threads)
    return {"dram": max(dram.values()), "cache": max(*cache.values(), *dram.values()), "llc_bytes": llc,
            "kernels": {"dram": dram, "cache": cache},
            "method": f"torch triad/copy/read at 1 and {threads} threads, float32, {dram_n} (DRAM) and {cache_n} "
                      "(cache) elements, the fastest"}


# ---- all roofs ------------------------------------------------------------------------------------------------
def _best(candidates: list[tuple[str, Callable[[], float | tuple[float, str]]]],
          errors: list[str]) -> tuple[float | None, str, list[dict[str, Any]]]:
    """Run every candidate kernel; (best GMAC/s, its name, [{kernel, gmac_per_s}, ...])."""
    best, name, tried = None, "", []
    for label, fn in candidates:
        try:
            out = fn()
        except Exception as e:  # a runtime missing or a kernel this CPU lacks: the others stand
            errors.append(f"{label}: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}")
            continue
        value, ran = out if isinstance(out, tuple) else (out, "")
        if ran and ran not in ("u8", "i8", "f32", "bf16"):
            label += f" (ran {ran})"
        tried.append({"kernel": label, "gmac_per_s": value})
        if best is None or value > best:
            best, name = value, label
    return best, name, tried


def _conv_candidates(precision: str, threads: int) -> list[tuple[str, Callable[[], Any]]]:
    def one(shape: tuple[int, int, int, int]) -> Callable[[], Any]:
        return lambda: _checked_conv(shape, precision, threads)

    return [(f"OpenVINO conv3x3 chain {precision} n{s[0]} c{s[1]} {s[2]}x{s[2]} x{s[3]}", one(s))
            for s in CONV_SHAPES]


def _checked_conv(shape: tuple[int, int, int, int], precision: str, threads: int) -> tuple[float, str]:
    value, ran = ov_conv_gmac(shape, precision, threads)
    want = {"int8": ("u8", "i8"), "fp32": ("f32",), "bf16": ("bf16",)}[precision]
    if not ran or any(p not in want for p in ran.split("/")):
        raise RuntimeError(f"convolutions ran in {ran or 'nothing'}, not {precision}")
    return value, ran


def cpu_peaks_here(threads: int) -> dict[str, Any]:
    """{"fp32", "int8", ["bf16"]: GMAC/s, "bandwidth_gb_per_s": {"dram", "cache"}, "method", "kernels", ...}."""
    import torch

    from harness.measure.trackers import NoiseProbe

    probe = NoiseProbe()
    torch.set_num_threads(threads)
    errors: list[str] = []
    candidates: dict[str, list[tuple[str, Callable[[], Any]]]] = {
        "fp32": [*_conv_candidates("fp32", threads),
                 *[(f"torch.mm fp32 {n}", lambda n=n: torch_mm_gmac(n, "fp32")) for n in GEMM_SIZES]],
        "int8": [*_conv_candidates("int8", threads),
                 *[(f"ONNX Runtime MatMulInteger u8 x s8 {n}", lambda n=n: ort_matmul_integer_gmac(n, threads))
                   for n in GEMM_SIZES[1:]],
                 *[(f"torch quantized Linear {n}", lambda n=n: torch_qlinear_gmac(n)) for n in GEMM_SIZES[2:]]],
    }
    if cpu_has_bf16():
        candidates["bf16"] = [*_conv_candidates("bf16", threads),
                              *[(f"torch.mm bf16 {n}", lambda n=n: torch_mm_gmac(n, "bf16")) for n in GEMM_SIZES]]
    out: dict[str, Any] = {"device": "cpu", "threads": threads}
    method: dict[str, str] = {}
    kernels: dict[str, list[dict[str, Any]]] = {}  # every kernel tried and what it reached
    for precision, cands in candidates.items():
        best, name, tried = _best(cands, errors)
        if best is not None:
            out[precision], method[precision] = best, name
        kernels[precision] = tried
    try:
        bw = bandwidth(llc_bytes(), threads)
        out["bandwidth_gb_per_s"] = {"dram": bw["dram"], "cache": bw["cache"]}
        out["llc_bytes"] = bw["llc_bytes"]
        method["bandwidth"] = bw["method"]
        kernels["bandwidth"] = [{"kernel": f"{level} {k}", "gb_per_s": v} for level, ks in bw["kernels"].items()
                                for k, v in ks.items()]
    except Exception as e:
        errors.append(f"triad: {type(e).__name__}: {e}")
    out.update(method=method, kernels=kernels)
    if errors:
        out["kernel_errors"] = errors
    # a peak measured while other processes held the CPUs may read low: record how busy the machine was
    out["other_cpu_fraction"] = probe.finish()["other_cpu_fraction"]
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    sys.stdout.write(json.dumps(cpu_peaks_here(int(args[0]) if args else 1)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
