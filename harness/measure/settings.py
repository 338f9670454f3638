"""What the measure room needs from the experiment, and nothing more: the door through which settings enter it.

`cell_settings` builds one `CellSettings` from the config, here so that the local grid (orchestrate) and the fleet
build it alike; every other function of this room takes it (or a field of it), so a signature says what a cell
depends on and the whole `Config` never travels into a cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.measure.loop import P99_MIN_SAMPLES
from harness.measure.scenarios import LATENCY, THROUGHPUT

if TYPE_CHECKING:
    from common.config import Config


@dataclass(frozen=True)
class CellSettings:
    """How one process of a cell measures (per-process duration and iteration floor already split over rounds)."""

    threads: int
    batch_sizes: tuple[int, ...]
    warmup_s: float
    min_duration_s: float
    min_iterations: int
    max_cov: float
    accuracy: bool
    timeout_s: float
    memory_mb: int
    backend_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # [backends.<name>] of the config
    cache_dir: str = ".bench-cache"  # where reference logits are cached
    cpus: tuple[int, ...] = ()  # the CPUs a cell process is confined to (benchmark.cpus); () = no affinity set

    def options(self, backend: str) -> dict[str, Any]:
        """The backend's own settings ([backends.<name>]), a copy the caller may change."""
        return dict(self.backend_options.get(backend, {}))

    def scenarios(self) -> list[list[Any]]:
        """[scenario, batch] in measuring order: latency at batch 1, then throughput at every batch size."""
        return [[LATENCY, 1]] + [[THROUGHPUT, int(b)] for b in self.batch_sizes]


def per_process_iterations(min_iterations: int, rounds: int) -> int:
    """The iteration floor of one process: the cell's floor split over the rounds, but never below what a p99
    needs (P99_MIN_SAMPLES) nor above the configured floor."""
    return min(int(min_iterations), max(P99_MIN_SAMPLES, math.ceil(int(min_iterations) / max(1, rounds))))


def cell_settings(cfg: Config) -> CellSettings:
    """What one process of a cell needs from the config: R rounds share the timed duration and iteration floor."""
    b = cfg.benchmark
    n = int(b.rounds)
    return CellSettings(
        threads=int(b.threads), batch_sizes=tuple(int(x) for x in b.batch_sizes), warmup_s=float(b.warmup_s),
        min_duration_s=b.min_duration_s / n, min_iterations=per_process_iterations(b.min_iterations, n),
        max_cov=float(b.max_cov), accuracy=bool(b.accuracy), timeout_s=float(b.cell_timeout_s),
        memory_mb=int(b.cell_memory_mb), backend_options={k: dict(v) for k, v in cfg.backends.items()},
        cache_dir=str(cfg.store.cache_dir), cpus=tuple(int(c) for c in b.cpus))
