"""The machine fingerprint recorded with every run: runs are comparable only within the same `id`.

`id` hashes what changes speed (CPU brand, core counts, the ISA flags that matter, affinity, RAM, OS,
Python, backend library versions, GPU name/driver); the git commit, dirty flag, config and time are
recorded beside it but kept out of the id (they are what a comparison is *about*).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from common.versions import library_versions

# CPU flags that change which int8/bf16 kernels a runtime picks.
FLAGS_THAT_MATTER = (
    "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16",
    "avx512_fp16", "amx_bf16", "amx_int8", "amx_tile", "amx_fp16",
)
# Distribution names whose versions go into the fingerprint (None where not installed).
LIBRARIES = (
    "torch", "numpy", "onnx", "openvino", "onnxruntime", "onnxruntime-gpu", "tensorrt", "tensorrt-cu12",
    "tensorrt-cu13", "nvidia-ml-py", "torch-pruning",
)
ID_FIELDS = ("cpu", "ram_bytes", "os", "python", "versions", "gpus")


def cpu_info() -> dict[str, Any]:
    """Brand, logical/physical cores, the flags that matter and the process's CPU affinity."""
    brand, flags = _proc_cpuinfo()
    if not brand:
        brand = platform.processor() or platform.machine()
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except Exception:
        physical = None
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = list(range(os.cpu_count() or 1))
    return {
        "brand": brand,
        "arch": platform.machine(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical,
        "flags": sorted(f for f in FLAGS_THAT_MATTER if f in flags),
        "affinity": affinity,
    }


def _proc_cpuinfo() -> tuple[str, set[str]]:
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return "", set()
    brand, flags = "", set[str]()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not brand:
            brand = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return brand, flags


def gpu_info() -> list[dict[str, Any]]:
    """Name, driver, memory and max clocks of each NVIDIA GPU via nvidia-ml-py (pynvml); [] without one."""
    try:
        import pynvml
    except Exception:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:
        return []
    gpus = []
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            entry: dict[str, Any] = {"index": i, "name": _text(pynvml.nvmlDeviceGetName(h)), "driver": driver}
            for key, fn in (
                ("memory_total_bytes", lambda h=h: int(pynvml.nvmlDeviceGetMemoryInfo(h).total)),
                ("max_sm_clock_mhz", lambda h=h: int(pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM))),
                ("max_mem_clock_mhz", lambda h=h: int(pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_MEM))),
                ("sm_clock_mhz", lambda h=h: int(pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM))),
                ("power_limit_w", lambda h=h: pynvml.nvmlDeviceGetPowerManagementLimit(h) / 1000.0),
            ):
                try:
                    entry[key] = fn()
                except Exception:
                    entry[key] = None
            gpus.append(entry)
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    return gpus


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def git_state(root: Path | None = None) -> dict[str, Any]:
    """{"commit", "dirty"} of the repository holding this package (None values outside a git checkout)."""
    where = root or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                                capture_output=True, text=True, timeout=10, check=True).stdout
        return {"commit": commit, "dirty": bool(status.strip())}
    except Exception:
        return {"commit": None, "dirty": None}


def fingerprint(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The full fingerprint dict, with `id` (a short stable hash of the hardware/software fields)."""
    try:
        import psutil

        ram = int(psutil.virtual_memory().total)
    except Exception:
        ram = None
    fp: dict[str, Any] = {
        "cpu": cpu_info(),
        "ram_bytes": ram,
        "os": {"system": platform.system(), "release": platform.release(), "libc": "-".join(platform.libc_ver())},
        "python": platform.python_version(),
        "versions": library_versions(LIBRARIES),
        "gpus": gpu_info(),
    }
    fp["id"] = fingerprint_id(fp)
    fp["git"] = git_state()
    fp["executable"] = sys.executable
    fp["config"] = config
    return fp


def fingerprint_id(fp: dict[str, Any]) -> str:
    """Hash of the fields in ID_FIELDS (GPU clocks that move at run time are left out)."""
    stable = {k: fp.get(k) for k in ID_FIELDS}
    stable["gpus"] = [{k: g.get(k) for k in ("name", "driver", "memory_total_bytes")} for g in stable["gpus"] or []]
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:12]
