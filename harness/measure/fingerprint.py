"""The machine fingerprint recorded with every run: runs are comparable only within the same `id`.

`id` hashes what changes speed, the documented field set ID_FIELDS: CPU brand, arch, logical/physical
cores, the ISA flags that matter, cache sizes per level, affinity; RAM; OS (system, kernel release, libc);
Python; backend library versions; GPU name, driver and memory. The git commit, dirty flag, config and time
are recorded beside it but kept out of the id (they are what a comparison is *about*). `isa` (common.isa: the
instruction-set features, the CPU's int8 path and a sentence on what it means) is derived from the flags.

`machine_id` names the machine itself (conbench #924: a hostname as machine name means nothing ever
compares; #1412: different hardware hashed equal). It is `machine.id` from the config / `--machine-id`
when given, else "m-" + a hash of the hardware-only fields (HARDWARE_FIELDS: CPU, caches, RAM, GPU
models) plus the host's /etc/machine-id when there is one, so it stays the same across library upgrades
(which change `id`) but differs between two boxes, and it never is the bare hostname.
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

from common.isa import flags_from_cpuinfo, isa_record
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
# The hardware-only part of the fingerprint that a default machine id is derived from.
HARDWARE_FIELDS = ("brand", "arch", "logical_cores", "physical_cores", "flags", "cache")


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
        "cache": cache_sizes(),
        "affinity": affinity,
    }


def cache_sizes() -> dict[str, str]:
    """{"L1d": "32K", "L1i": "32K", "L2": "1024K", "L3": "32768K"} of CPU 0 from sysfs ({} elsewhere)."""
    out: dict[str, str] = {}
    for d in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (d / "level").read_text().strip()
            kind = (d / "type").read_text().strip()
            size = (d / "size").read_text().strip()
        except OSError:
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        out[f"L{level}{suffix}"] = size
    return out


def _proc_cpuinfo() -> tuple[str, set[str]]:
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return "", set()
    text = path.read_text(encoding="utf-8", errors="replace")
    brand = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            brand = value.strip()
            break
    return brand, flags_from_cpuinfo(text)


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


def fingerprint(config: dict[str, Any] | None = None, machine: str | None = None) -> dict[str, Any]:
    """The full fingerprint dict, with `id` (a short stable hash of the hardware/software fields) and
    `machine_id` (`machine`, else the config's machine.id, else derived from the hardware fields)."""
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
    # derived from cpu.flags (already in the id), so kept beside it: the id of a known machine does not change
    fp["isa"] = isa_record(_proc_cpuinfo()[1])
    configured = machine or ((config or {}).get("machine") or {}).get("id") or os.environ.get(MACHINE_ENV)
    fp["machine_id"] = str(configured) if configured else default_machine_id(fp)
    fp["git"] = git_state()
    fp["executable"] = sys.executable
    fp["config"] = config
    return fp


def fingerprint_id(fp: dict[str, Any]) -> str:
    """Hash of the fields in ID_FIELDS (GPU clocks that move at run time are left out)."""
    stable = {k: fp.get(k) for k in ID_FIELDS}
    stable["gpus"] = [{k: g.get(k) for k in ("name", "driver", "memory_total_bytes")} for g in stable["gpus"] or []]
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:12]


MACHINE_ENV = "BENCH_MACHINE_ID"  # set by `bench worker start --machine-id` for the node's processes


def _host_machine_id() -> str | None:
    for p in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            v = Path(p).read_text().strip()
        except OSError:
            continue
        if v:
            return v
    return None


def default_machine_id(fp: dict[str, Any]) -> str:
    """"m-" + a hash of the hardware fields (CPU, caches, RAM, GPU models) and the host's machine-id."""
    cpu = fp.get("cpu") or {}
    hw = {
        "cpu": {k: cpu.get(k) for k in HARDWARE_FIELDS},
        "ram_bytes": fp.get("ram_bytes"),
        "gpus": [{k: g.get(k) for k in ("name", "memory_total_bytes")} for g in fp.get("gpus") or []],
        "host": _host_machine_id(),
    }
    return "m-" + hashlib.sha256(json.dumps(hw, sort_keys=True, default=str).encode()).hexdigest()[:10]
