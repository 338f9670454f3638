"""Test hook: make a benchmark cell fail in a real way, so the reliability suite needs no mocks.

Set `FER_BENCH_FAULT=<backend>:<fault>` in the environment of `bench run` (cells inherit it); the cell of that
backend then, before loading anything:
  segfault  dereferences a NULL pointer (a real SIGSEGV, as a crashing runtime would),
  hang      sleeps forever (ended by benchmark.cell_timeout_s),
  oom       allocates and touches memory until the allocation fails; refused unless the cell runs under an
            address-space limit (benchmark.cell_memory_mb), so it can never exhaust the machine,
  exit      exits with code 3 without writing a result.
Unset (the normal case) it does nothing. Cells of other backends are not affected.
"""

from __future__ import annotations

import ctypes
import os
import resource
import time

ENV = "FER_BENCH_FAULT"
FAULTS = ("segfault", "hang", "oom", "exit")


def inject_fault(backend: str) -> None:
    """Apply the fault FER_BENCH_FAULT names for `backend`, if any."""
    spec = os.environ.get(ENV, "")
    target, _, fault = spec.partition(":")
    if not spec or target != backend:
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
        while True:  # 64 MiB at a time, touched, until the limit makes an allocation fail (MemoryError)
            hog.append(bytearray(64 << 20))
    elif fault == "exit":
        os._exit(3)
    else:
        raise RuntimeError(f"{ENV}={spec}: unknown fault {fault!r}; known: {', '.join(FAULTS)}")
