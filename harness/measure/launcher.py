"""How one cell runs: its spec from the cell settings, and a fresh interpreter per cell
(`python -m harness.measure.cell`).

A fresh process per cell keeps runtimes' thread pools apart and turns a crash or hang into one failed cell:
the process group is killed on timeout, and a missing result file becomes status error with the log's last line.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.errors import UserError
from harness.measure.cell import CellSpec
from harness.measure.settings import CellSettings


def cell_spec(s: CellSettings, backend: str, artifact: Path, images: Path, labels: Path, logits_out: Path,
              timing: bool = True, extra: dict[str, Any] | None = None) -> CellSpec:
    """The spec file a cell process reads: one backend on one artifact, measured as `s` says."""
    return CellSpec(
        backend=backend, artifact=str(artifact), images=str(images), labels=str(labels), threads=s.threads,
        batch_sizes=list(s.batch_sizes), extra=extra if extra is not None else s.options(backend),
        scenarios=s.scenarios(), warmup_s=s.warmup_s, min_duration_s=s.min_duration_s,
        min_iterations=s.min_iterations, max_cov=s.max_cov, accuracy=s.accuracy or not timing, timing=timing,
        logits_out=str(logits_out), memory_mb=s.memory_mb,
    )


def run_cell_subprocess(spec: CellSpec, stem: Path, timeout_s: float, log_path: Path, threads: int,
                        cpus: tuple[int, ...] = ()) -> dict[str, Any]:
    """Run one cell in a fresh interpreter, confined to `cpus` when given; a timeout or crash becomes a result with
    status timeout/error."""
    spec_path, out_path = stem.with_suffix(".spec.json"), stem.with_suffix(".out.json")
    spec_path.write_text(spec.to_json(), encoding="utf-8")
    out_path.unlink(missing_ok=True)
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "harness.measure.cell", str(spec_path), str(out_path)]
    t0 = time.perf_counter()
    limit = _preexec(spec.memory_mb, cpus)
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                preexec_fn=limit)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return {"status": "timeout", "reason": f"cell exceeded benchmark.cell_timeout_s = {timeout_s:g} s "
                    f"and was killed", "scenarios": []}
        except BaseException:  # Ctrl-C / SIGTERM of `bench`: the cell has its own session, so end it here
            _kill_group(proc)
            raise
    wall = time.perf_counter() - t0
    mem = f" (benchmark.cell_memory_mb = {spec.memory_mb})" if spec.memory_mb else ""
    if out_path.is_file():
        try:
            result = dict(json.loads(out_path.read_text(encoding="utf-8")))
            result["cell_wall_s"] = wall
            if mem and "MemoryError" in str(result.get("reason", "")):
                result["reason"] = f"out of memory{mem}: {result['reason']}"
            return result
        except json.JSONDecodeError:
            pass
    how = f"signal {-code}" if code < 0 else f"exit code {code}"
    return {"status": "error", "reason": f"cell crashed ({how}){mem}: {_last_line(log_path)}", "scenarios": []}


def check_cpus(cpus: tuple[int, ...]) -> None:
    """benchmark.cpus must name CPUs this process may run on (one error line otherwise)."""
    if not cpus or not hasattr(os, "sched_getaffinity"):
        return
    allowed = os.sched_getaffinity(0)
    if not set(cpus) <= allowed:
        raise UserError(f"benchmark.cpus = {list(cpus)}: this machine lets bench run on CPUs "
                        f"{sorted(allowed)} only")


def _preexec(memory_mb: int, cpus: tuple[int, ...]) -> Callable[[], None] | None:
    """The child's setup between fork and exec: the memory cap and the CPU affinity (None when neither)."""
    limit = _memory_limit(memory_mb)
    if not cpus:
        return limit
    mask = set(cpus)

    def apply() -> None:
        os.sched_setaffinity(0, mask)
        if limit is not None:
            limit()

    return apply


def _memory_limit(memory_mb: int) -> Callable[[], None] | None:
    """A preexec_fn that caps the cell's address space (RLIMIT_AS): an allocation past it fails in that
    cell (MemoryError or a crash), never in the orchestrator or a neighbour. None when there is no limit."""
    if memory_mb <= 0:
        return None
    nbytes = int(memory_mb) * 1024 * 1024

    def apply() -> None:  # runs in the child between fork and exec: only async-signal-safe work
        resource.setrlimit(resource.RLIMIT_AS, (nbytes, nbytes))

    return apply


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    return lines[-1][:300] if lines else "no output"
