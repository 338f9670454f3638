"""The plain inputs of the history dashboard (`bench report --history`): one `CellHistory` per cell, built in
harness/ from the store through the gate's own functions, rendered here without knowing either.

Kept as small dataclasses of numbers and strings so that reports/ needs nothing but common/ (the layering rule)
and the figures can be tested on hand-made series."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

REGRESSION, IMPROVEMENT, SAME, INCONCLUSIVE = "regression", "improvement", "no change", "inconclusive"
UNKNOWN_MODEL = "unknown model"


@dataclass
class RunPoint:
    """One run of a cell: what the cell page plots and tabulates (None where the run has no such number)."""

    run_id: str
    created: str
    commit: str = ""
    status: str = "ok"
    p50_ms: float | None = None
    p50_ci_ms: tuple[float, float] | None = None  # the run's interval of its p50 over processes
    p50_ci_level: float | None = None
    p99_ms: float | None = None
    valid: bool = True
    invalid_reasons: list[str] = field(default_factory=list)
    noisy: int = 0  # processes marked noisy (steal or foreign load)
    processes: int = 0
    ratio: float | None = None  # candidate p50 / the same run's reference-arm p50 (paired runs only)
    accuracy: float | None = None
    accuracy_verdict: str = ""  # the gate's paired test (McNemar) against the run's reference run
    accuracy_text: str = ""
    in_series: bool = False  # the gate's series holds this run (ok, with a latency value)

    @property
    def all_noisy(self) -> bool:
        return self.processes > 0 and self.noisy == self.processes


@dataclass
class Acceptance:
    """A stored `bench accept` that applies to the cell."""

    run_id: str
    who: str
    reason: str
    created: str
    scope: str = ""  # the filters it was given ("" = every cell of the run)


@dataclass
class CellHistory:
    """A cell's runs (oldest first, never downsampled) and the gate's reading of them."""

    machine: str
    model: str
    backend: str
    variant: str
    device: str
    scenario: str
    batch_size: int
    config_hash: str = ""
    fingerprint_id: str = ""
    points: list[RunPoint] = field(default_factory=list)
    verdict: str = INCONCLUSIVE  # the gate's latency verdict for the newest run
    verdict_text: str = ""  # decided_by, or the reason when inconclusive
    rel_change: float | None = None
    rel_ci: tuple[float, float] | None = None
    change_points: list[str] = field(default_factory=list)  # run ids where a new level starts
    outliers: list[str] = field(default_factory=list)
    since: str | None = None  # the first run of the open change
    reference: tuple[str, str] | None = None  # first and last run id of the reference level
    accepted: list[Acceptance] = field(default_factory=list)
    accuracy_verdict: str = ""  # the gate's accuracy verdict for the newest run

    @property
    def label(self) -> str:
        dev = f"[{self.device}]" if self.device and self.device != "cpu" else ""
        return f"{self.backend}{dev}/{self.variant} {self.scenario} b{self.batch_size}"

    @property
    def slug(self) -> str:
        """A file name for the cell's page: readable, and unique through a short hash of the full identity."""
        ident = "|".join((self.machine, self.model, self.backend, self.variant, self.device, self.scenario,
                          str(self.batch_size), self.config_hash, self.fingerprint_id))
        readable = re.sub(r"[^A-Za-z0-9.-]+", "-", f"{self.machine}-{self.backend}-{self.variant}-"
                                                    f"{self.scenario}-b{self.batch_size}").strip("-")[:80]
        return f"{readable}-{hashlib.sha256(ident.encode()).hexdigest()[:8]}"

    @property
    def latest(self) -> RunPoint | None:
        return self.points[-1] if self.points else None
