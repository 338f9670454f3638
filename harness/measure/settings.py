"""What the measure room needs from the experiment, and nothing more: the door through which settings enter it.

The orchestrator builds one `CellSettings` from the config (`harness.orchestrate.runner.cell_settings`); every
function of this room takes it (or a field of it), so a signature says what a cell depends on and the whole
`Config` never travels into a cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.measure.scenarios import LATENCY, THROUGHPUT


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

    def options(self, backend: str) -> dict[str, Any]:
        """The backend's own settings ([backends.<name>]), a copy the caller may change."""
        return dict(self.backend_options.get(backend, {}))

    def scenarios(self) -> list[list[Any]]:
        """[scenario, batch] in measuring order: latency at batch 1, then throughput at every batch size."""
        return [[LATENCY, 1]] + [[THROUGHPUT, int(b)] for b in self.batch_sizes]
