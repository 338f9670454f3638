"""A roofline per device: every row's arithmetic intensity, the attainable GMAC/s there, and its fraction.

The roofs are measured on the machine that ran the rows, once per run and before any cell (`measure_peaks`: the
same processes every run, whatever the rows later reach): the CPU's (`harness.measure.peaks_cpu`: compute peak
per precision from the fastest of several int8/fp32/bf16 kernels fed data already in their precision, and
STREAM-like bandwidth) and, on a machine with an NVIDIA GPU, the GPU's (`harness.measure.peaks_gpu`: torch
matmul per precision, device-memory copy bandwidth). A CUDA row is never held to the CPU's roofs.

One statistic for the roof and the rows: the median over processes of each process's mean rate. A row's
throughput is the median over its cell's processes of each process's images over the sum of its call times
(`harness.measure.rows`); a roof is the median over `ROOF_PROCESSES` fresh processes of each process's roof, the
work of its fastest kernel's timed calls over the sum of their times. Why the median of means and not best-of
for both: the row's headline is that median (the gate and the reports judge it), so a roof measured as a best
call would sit higher than any row could sit for the same speed and bias every fraction low; with one statistic
a disturbed process reads low on both sides and the median outvotes it on both. The number of processes is
fixed, not taken from `benchmark.rounds`, so every run's roofs are measured alike.

A row's intensity comes from its model's compute layers (`harness.measure.traffic`) at its evidenced precision and
batch; attainable = min(compute peak, bandwidth x intensity), the bandwidth from the cache when the batch's bytes
fit in half the last-level cache, from DRAM otherwise. `fraction_of_attainable` = achieved GMAC/s over
attainable. Above 1 the roof, not the row, is wrong (the roof kernels are not the fastest way this machine does
that work): the row gets `roof_measured_low`, and the roofs are never re-measured or raised to fit the rows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from harness.measure.traffic import Traffic, model_traffic

PEAK_TIMEOUT_S = 240.0
ROOF_PROCESSES = 3  # the fewest whose median outvotes one disturbed process
GPU_DEVICES = ("cuda", "tensorrt", "gpu")
STATISTIC = (f"median over {ROOF_PROCESSES} processes of each process's roof (its fastest kernel's work over the "
             "sum of its timed calls' times), as a row's rate is the median over its processes of each process's "
             "images over the sum of its call times")


def _run_json(module: str, *args: str) -> dict[str, Any]:
    try:
        proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                              timeout=PEAK_TIMEOUT_S, check=False)
        if proc.returncode != 0:
            return {"error": (proc.stderr.strip().splitlines() or ["peak measurement failed"])[-1]}
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (subprocess.TimeoutExpired, json.JSONDecodeError, OSError, IndexError) as e:
        return {"error": f"{type(e).__name__}: {e}"}


def measure_peaks(threads: int, gpu: bool | None = None) -> dict[str, Any]:
    """The CPU's roofs at `threads` (top-level keys, as results store them in `machine_peak_gmac_per_s`) and the
    GPU's under "gpu", each the median of `ROOF_PROCESSES` fresh processes (`median_of_processes`); `gpu` None:
    the GPU's when the machine has an NVIDIA GPU. {"error": reason} parts where every process failed (the run goes
    on). Call it once per run, before the cells: nothing here depends on what the rows reach."""
    peaks = median_of_processes([_run_json("harness.measure.peaks_cpu", str(threads)) for _ in range(ROOF_PROCESSES)])
    if gpu is None:
        from harness.measure.fingerprint import gpu_info

        gpu = bool(gpu_info())
    if gpu:
        peaks["gpu"] = median_of_processes([_run_json("harness.measure.peaks_gpu") for _ in range(ROOF_PROCESSES)])
    return peaks


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _median_kernels(lists: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each kernel's rate as the median over the processes that ran it (and how many did), in the order first
    seen."""
    rates: dict[str, dict[str, list[float]]] = {}
    for tried in lists:
        for k in tried:
            if isinstance(k, dict) and "kernel" in k:
                for unit, v in k.items():
                    if unit != "kernel" and _number(v):
                        rates.setdefault(str(k["kernel"]), {}).setdefault(unit, []).append(float(v))
    out = []
    for name, units in rates.items():
        entry: dict[str, Any] = {"kernel": name, **{u: float(np.median(vs)) for u, vs in units.items()}}
        entry["processes"] = max(len(vs) for vs in units.values())
        out.append(entry)
    return out


def _same_or_counted(values: list[Any]) -> Any:
    """The value all processes agree on; texts that differ (which kernel set a roof) with how many said each."""
    if all(v == values[0] for v in values):
        return values[0]
    if all(isinstance(v, str) for v in values):
        seen = {v: values.count(v) for v in dict.fromkeys(values)}
        return "; ".join(f"{v} ({n} of {len(values)} processes)" for v, n in seen.items())
    return values[0]


def _median_dicts(dicts: list[dict[str, Any]]) -> dict[str, Any]:
    """Key by key over `dicts`: numbers -> their median over the dicts that have them (equal ones, such as the
    threads or the cache size, keep their type), dicts -> likewise inside, `kernels` -> each kernel's median rate,
    `kernel_errors` -> every distinct one, texts -> the one they agree on, else each with its count."""
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for d in dicts for k in d):
        values = [d[key] for d in dicts if key in d]
        if key == "kernels" and all(isinstance(v, dict) for v in values):
            out[key] = {name: _median_kernels([v.get(name) or [] for v in values])
                        for name in dict.fromkeys(n for v in values for n in v)}
        elif key == "kernel_errors":
            out[key] = list(dict.fromkeys(e for v in values for e in (v or [])))
        elif all(_number(v) for v in values):
            out[key] = values[0] if len(set(values)) == 1 else float(np.median([float(v) for v in values]))
        elif all(isinstance(v, dict) for v in values):
            out[key] = _median_dicts(values)
        else:
            out[key] = _same_or_counted(values)
    return out


def median_of_processes(procs: list[dict[str, Any]]) -> dict[str, Any]:
    """The roofs of several processes as one: every number (a precision's roof, each bandwidth level, how busy
    the machine was) the median over the processes that measured it, as a row's rate is the median over its
    processes; `processes` keeps each process's own numbers, `statistic` says how they were combined. A failed
    process is left out (its error kept under `process_errors`); none measured: the first error."""
    ok = [p for p in procs if not p.get("error")]
    errors = [str(p["error"]) for p in procs if p.get("error")]
    if not ok:
        return {"error": errors[0] if errors else "no roof process ran"}
    out = _median_dicts(ok)
    out["statistic"] = STATISTIC
    out["processes"] = [{k: v for k, v in p.items() if k not in ("kernels", "method", "kernel_errors")} for p in ok]
    if errors:
        out["process_errors"] = errors
    return out


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
    fraction_of_peak (compute roof only), `roofline` (device, roofs used, which one binds) and
    `roof_measured_low` (the row ran above its attainable roof: the roof, measured once before the cells, read
    low)."""
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
        out["roof_measured_low"] = out["fraction_of_attainable"] > 1.0
    return out


def variant_traffic(artifacts: dict[str, Path]) -> dict[str, Traffic | None]:
    """Each variant's Traffic from its artifact's model.onnx (None where there is none to read)."""
    return {v: model_traffic(Path(p) / "model.onnx") for v, p in artifacts.items()}


def attach_roofline(rows: list[dict[str, Any]], peaks: dict[str, Any],
                    traffic: dict[str, Traffic | None] | None = None) -> None:
    """Set every row's roofline fields (in place) from its gmac_per_s, evidenced precision, batch and device; a
    row above its roof is marked `roof_measured_low` and the roofs stay as measured."""
    for row in rows:
        row.update(row_roofline(row, (traffic or {}).get(str(row.get("variant"))), peaks))


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
