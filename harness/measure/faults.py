"""Test hook: make a benchmark cell fail in a real way, so the reliability suite needs no mocks.

Set `FER_BENCH_FAULT=<backend>:<fault>[,<backend>:<fault>...]` in the environment of `bench run` (cells inherit
it); a cell of that backend then, before loading anything:
  segfault  dereferences a NULL pointer (a real SIGSEGV, as a crashing runtime would),
  hang      sleeps forever (ended by benchmark.cell_timeout_s),
  oom       allocates memory until an allocation fails; refused unless the cell runs under an address-space
            limit (benchmark.cell_memory_mb), so it can never exhaust the machine,
  exit      exits with code 3 without writing a result.
Unset (the normal case) it does nothing. Cells of other backends are not affected.
"""

from __future__ import annotations

import ctypes
import os
import resource
import time

import numpy as np

ENV = "FER_BENCH_FAULT"
FAULTS = ("segfault", "hang", "oom", "exit")


def inject_fault(backend: str) -> None:
    """Apply the fault FER_BENCH_FAULT names for `backend`, if any."""
    spec = os.environ.get(ENV, "")
    faults: dict[str, str] = {}
    for item in spec.split(","):
        name, _, kind = item.strip().partition(":")
        faults[name] = kind
    fault = faults.get(backend)
    if fault is None:
        return
    if fault == "segfault":
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    elif fault == "hang":
        while True:
            time.sleep(3600)
    elif fault == "oom":
        soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            raise RuntimeError(f"{ENV}={spec}: refused without a memory limit (set benchmark.cell_memory_mb)")
        hog = []
        while True:  # 256 MiB at a time until the address-space limit makes an allocation fail (MemoryError)
            hog.append(np.empty(256 << 20, dtype=np.uint8))
    elif fault == "exit":
        os._exit(3)
    else:
        raise RuntimeError(f"{ENV}={spec}: unknown fault {fault!r}; known: {', '.join(FAULTS)}")
