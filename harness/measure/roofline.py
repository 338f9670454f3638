"""A roofline per device: every row's arithmetic intensity, the attainable GMAC/s there, and its fraction.

The roofs are measured on the machine that ran the rows, once per run, each in its own subprocess: the CPU's
(`harness.measure.peaks_cpu`: compute peak per precision from the fastest of several int8/fp32/bf16 kernels fed
data already in their precision, and a STREAM triad) and, when a row ran on CUDA, the GPU's
(`harness.measure.peaks_gpu`: torch matmul per precision, device-memory copy bandwidth). A CUDA row is never
held to the CPU's roofs. A row's intensity comes from its model's compute layers (`harness.measure.traffic`)
at its evidenced precision and batch; attainable = min(compute peak, bandwidth x intensity), the bandwidth from
the cache when the batch's bytes fit in half the last-level cache, from DRAM otherwise. `fraction_of_attainable`
= achieved GMAC/s over attainable: above 1 means a roof was measured low (a bug in the peak, not a fast row).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.measure.traffic import Traffic, model_traffic

PEAK_TIMEOUT_S = 240.0
GPU_DEVICES = ("cuda", "tensorrt", "gpu")


def _run_json(module: str, *args: str) -> dict[str, Any]:
    try:
        proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                              timeout=PEAK_TIMEOUT_S, check=False)
        if proc.returncode != 0:
            return {"error": (proc.stderr.strip().splitlines() or ["peak measurement failed"])[-1]}
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (subprocess.TimeoutExpired, json.JSONDecodeError, OSError, IndexError) as e:
        return {"error": f"{type(e).__name__}: {e}"}


def measure_peaks(threads: int, gpu: bool = False) -> dict[str, Any]:
    """The CPU's roofs at `threads` (top-level keys, as results store them in `machine_peak_gmac_per_s`) and,
    with `gpu`, the GPU's under "gpu"; {"error": reason} parts where a measurement failed (the run goes on)."""
    peaks = _run_json("harness.measure.peaks_cpu", str(threads))
    if gpu:
        peaks["gpu"] = _run_json("harness.measure.peaks_gpu")
    return peaks


def is_gpu_row(row: dict[str, Any]) -> bool:
    """Did the row run on a GPU (torch on cuda, TensorRT, ONNX Runtime's CUDA/TensorRT providers)?"""
    return str(row.get("device") or "").lower().startswith(GPU_DEVICES)


def peak_key(precision: str | None) -> str | None:
    """Which peak a row's precision is measured against (int8-simulated runs float kernels: fp32)."""
    p = str(precision or "")
    if p in ("int8", "bf16", "fp32", "fp16", "tf32"):
        return p
    if p == "int8-simulated":
        return "fp32"
    return None


def fraction_of_peak(gmac_per_s: float | None, precision: str | None, peaks: dict[str, Any]) -> float | None:
    """Achieved GMAC/s over the compute peak for the row's precision (None without either)."""
    key = peak_key(precision)
    peak = peaks.get(key) if key else None
    if not gmac_per_s or not isinstance(peak, int | float) or peak <= 0:
        return None
    return float(gmac_per_s) / float(peak)


def device_roofs(row: dict[str, Any], peaks: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """("gpu" | "cpu", that device's roofs) for `row`; a GPU row without measured GPU roofs gets {}."""
    if is_gpu_row(row):
        gpu = peaks.get("gpu")
        return "gpu", gpu if isinstance(gpu, dict) and not gpu.get("error") else {}
    return "cpu", peaks


def _bandwidth(roofs: dict[str, Any], working_set: float) -> tuple[float | None, str]:
    bw = roofs.get("bandwidth_gb_per_s")
    if not isinstance(bw, dict):
        return None, ""
    llc = roofs.get("llc_bytes")
    level = "cache" if isinstance(llc, int | float) and working_set <= llc / 2 and bw.get("cache") else "dram"
    value = bw.get(level)
    return (float(value), level) if isinstance(value, int | float) and value > 0 else (None, "")


def row_roofline(row: dict[str, Any], traffic: Traffic | None, peaks: dict[str, Any]) -> dict[str, Any]:
    """The roofline fields of one row: arithmetic_intensity, attainable_gmac_per_s, fraction_of_attainable,
    fraction_of_peak (compute roof only) and `roofline` (device, roofs used, which one binds)."""
    device, roofs = device_roofs(row, peaks)
    precision = str(row.get("precision") or "")
    key = peak_key(precision)
    achieved = row.get("gmac_per_s")
    out: dict[str, Any] = {"arithmetic_intensity": None, "attainable_gmac_per_s": None,
                           "fraction_of_attainable": None, "fraction_of_peak": fraction_of_peak(achieved, precision,
                                                                                                  roofs),
                           "roofline": None, "roof_measured_low": False}
    compute = roofs.get(key) if key else None
    if traffic is None or row.get("status") != "ok" or not isinstance(compute, int | float) or compute <= 0:
        return out
    batch = int(row.get("batch_size") or 1)
    bytes_precision = "fp32" if precision == "int8-simulated" else precision
    intensity = traffic.intensity(bytes_precision, batch)
    working_set = traffic.bytes_moved(bytes_precision, batch)
    bandwidth, level = _bandwidth(roofs, working_set)
    memory_roof = bandwidth * intensity if bandwidth else None
    attainable = min(float(compute), memory_roof) if memory_roof else float(compute)
    out.update(arithmetic_intensity=intensity, attainable_gmac_per_s=attainable, roofline={
        "device": device, "precision": key, "compute_gmac_per_s": float(compute), "bandwidth_gb_per_s": bandwidth,
        "memory_level": level, "bound": "memory" if memory_roof and memory_roof < compute else "compute",
        "bytes_per_batch": working_set})
    if isinstance(achieved, int | float) and achieved > 0:
        out["fraction_of_attainable"] = float(achieved) / attainable
    return out


def variant_traffic(artifacts: dict[str, Path]) -> dict[str, Traffic | None]:
    """Each variant's Traffic from its artifact's model.onnx (None where there is none to read)."""
    return {v: model_traffic(Path(p) / "model.onnx") for v, p in artifacts.items()}


def attach_roofline(rows: list[dict[str, Any]], peaks: dict[str, Any],
                    traffic: dict[str, Traffic | None] | None = None) -> None:
    """Set every row's roofline fields (in place) from its gmac_per_s, evidenced precision, batch and device."""
    for row in rows:
        row.update(row_roofline(row, (traffic or {}).get(str(row.get("variant"))), peaks))


def max_peaks(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two measurements of the same roofs combined key by key, the higher of each number kept (a roof is the best
    the machine showed; a measurement taken while the CPU clocked lower or was disturbed reads low), nested dicts
    (bandwidth per level, the GPU's) likewise; everything else from `a`, and `remeasured` counts the merges."""
    out = dict(a)
    for k, vb in b.items():
        va = a.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out[k] = max_peaks(va, vb)
            out[k].pop("remeasured", None)
        elif isinstance(va, int | float) and isinstance(vb, int | float) and not isinstance(va, bool):
            out[k] = max(float(va), float(vb))
        elif k not in a:
            out[k] = vb
    out["remeasured"] = int(a.get("remeasured", 0)) + 1
    return out


def settle_roofs(rows: list[dict[str, Any]], peaks: dict[str, Any], traffic: dict[str, Traffic | None],
                 remeasure: Callable[[], dict[str, Any]], say: Callable[[str], None] = print,
                 tries: int = 2) -> dict[str, Any]:
    """Attach the roofline to `rows`; while a row runs above its roof (which proves the roof was measured low:
    the CPU clocked lower, or was disturbed, while the peaks ran) measure the roofs again, up to `tries` times,
    keeping the higher of each (`max_peaks`). A row still above after that is marked `roof_measured_low`.
    Returns the roofs the rows were finally measured against."""
    attach_roofline(rows, peaks, traffic)
    for _ in range(tries):
        above = over_roof(rows)
        if not above or not peaks:
            break
        r = above[0]
        say(f"{len(above)} row(s) ran above the measured roofs (e.g. {r.get('backend')} {r.get('variant')} "
            f"b{r.get('batch_size')}: {float(r['fraction_of_attainable']):.0%}): the roofs read low, measuring them "
            "again (the higher of each is kept)")
        peaks = max_peaks(peaks, remeasure())
        attach_roofline(rows, peaks, traffic)
    for r in over_roof(rows):
        r["roof_measured_low"] = True
    return peaks


def over_roof(rows: list[dict[str, Any]], tolerance: float = 1.0) -> list[dict[str, Any]]:
    """Rows whose achieved GMAC/s exceeds their attainable roof: each one is a roof measured low."""
    return [r for r in rows if isinstance(r.get("fraction_of_attainable"), int | float)
            and float(r["fraction_of_attainable"]) > tolerance]


def main(argv: list[str] | None = None) -> int:
    """`python -m harness.measure.roofline THREADS [--gpu]`: the roofs as one JSON line."""
    args = sys.argv[1:] if argv is None else argv
    threads = int(next((a for a in args if a.isdigit()), "1"))
    sys.stdout.write(json.dumps(measure_peaks(threads, gpu="--gpu" in args)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
