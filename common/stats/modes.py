"""The modes of a cell's per-process p50s: the fast mode's level and the share of processes outside it.

On the 2-vCPU VMs a file's processes do not scatter around one value: at 2 threads each fresh process lands in one
of a few levels (OpenVINO 0.112 / 0.148 / 0.18 / 0.23 ms, ONNX Runtime 0.142 / 0.162 / 0.21-0.31 ms) and stays
there, and how many land in each changes from run to run. So the median over 10 processes moved 6-17% between
runs while the fast mode moved 0.5% (sd over 4 runs). A cell is therefore described by two numbers:

* the LEVEL: the fast mode's level, the median of the processes in the lowest mode. Not the minimum: the minimum
  of the fast mode's members falls as more processes land there (an order statistic of a count that changes run to
  run), the median of the members does not; and one process just below the rest cannot move it.
* the MIX: the share of processes outside the fast mode (`slow_share`).

The rule (gap clustering on log values, deterministic, no tuning per file): sort the values; a new mode starts
where the ratio between sorted neighbours exceeds 1 + GAP (6%), and the fast mode never reaches beyond
(1 + FAST_WIDTH) x the minimum (10%), so a dense run of slow processes cannot chain into it. Why gaps and not a
KDE or Jenks breaks: the within-mode spread measured here is ~0.5-1%, the gaps between modes are 14-25%, so
any split between 2% and 12% finds the same modes; a gap rule needs no bandwidth or number of classes (Jenks
needs k, a KDE a bandwidth that 10-20 values cannot choose) and reads the same on 3 values as on 40 (a unimodal
cell's processes stay one mode: its fast level is then the median of all of them, the old run value).

How many processes: if a process lands in the fast mode with probability q, at least one of n does with
1 - (1 - q)^n, at least two (what a level interval needs) with 1 - (1 - q)^n - n q (1 - q)^(n-1). With q = 0.3:
n = 10 hits it with 97.2% (two: 85.1%), n = 13 with 99.0%, n = 20 with 99.92% (two: 99.2%). A gate over a dozen
cells wants every cell to see its fast mode, so GATE_PROCESSES = 20 per cell (per arm in a paired run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

GAP = 0.06  # a ratio above 1 + GAP between sorted neighbours starts a new mode
FAST_WIDTH = 0.10  # the fast mode ends at (1 + FAST_WIDTH) x the minimum at most
GATE_PROCESSES = 20  # recommended processes per cell (per arm) for gating: P(>= 2 in a mode of q = 0.3) = 99.2%
FAST_SHARE_TYPICAL = 0.3  # the fast mode's share measured on the 2-vCPU VMs at 2 threads (the q above)


@dataclass(frozen=True)
class ModeMix:
    """The modes of one cell's per-process p50s (ms)."""

    fast_ms: float  # the fast mode's level: the median of its members
    slow_share: float  # share of processes outside the fast mode
    n_slow: int
    n: int
    threshold_ms: float  # processes above this are outside the fast mode
    levels_ms: list[float]  # every mode's level (median of its members), fastest first

    @property
    def n_fast(self) -> int:
        return self.n - self.n_slow

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def p_hit(q: float, n: int, at_least: int = 1) -> float:
    """P(at least `at_least` of n processes land in a mode each process lands in with probability q)."""
    from scipy.stats import binom

    return float(binom.sf(at_least - 1, n, q))


def processes_for(q: float, prob: float, at_least: int = 1) -> int:
    """The fewest processes for which at least `at_least` land in a mode of share q with probability >= prob."""
    n = at_least
    while p_hit(q, n, at_least) < prob:
        n += 1
    return n


def split_modes(values: Sequence[float] | np.ndarray) -> list[np.ndarray]:
    """The values (positive, finite) sorted and cut into modes by the rule of the module docstring."""
    a = np.sort(np.asarray([float(v) for v in values if math.isfinite(float(v)) and float(v) > 0], np.float64))
    if a.size == 0:
        return []
    log_a = np.log(a)
    cuts = np.flatnonzero(np.diff(log_a) > math.log1p(GAP)) + 1
    # the fast mode also ends at (1 + FAST_WIDTH) x the minimum
    width_cut = int(np.searchsorted(log_a, log_a[0] + math.log1p(FAST_WIDTH), side="right"))
    first = min(int(cuts[0]) if cuts.size else a.size, width_cut)
    rest = a[first:]
    out = [a[:first]]
    if rest.size:
        rest_cuts = np.flatnonzero(np.diff(np.log(rest)) > math.log1p(GAP)) + 1
        out += [m for m in np.split(rest, rest_cuts) if m.size]
    return out


def _sorted_median(m: np.ndarray) -> float:
    """The median of an already sorted array (np.median sorts again: a gate over hundreds of cells calls this a lot)."""
    k = m.size
    return float(m[(k - 1) // 2] + m[k // 2]) / 2.0


def mode_mix(p50s: Sequence[float]) -> ModeMix | None:
    """The modes of a cell's per-process p50s (None without a positive finite value)."""
    modes = split_modes(p50s)
    if not modes:
        return None
    fast = modes[0]
    n = sum(m.size for m in modes)
    n_slow = n - fast.size
    # the geometric middle of the gap to the next mode; without one, the fast mode's widest reach
    threshold = math.sqrt(float(fast[-1]) * float(modes[1][0])) if n_slow else float(fast[0]) * (1.0 + FAST_WIDTH)
    return ModeMix(fast_ms=_sorted_median(fast), slow_share=n_slow / n, n_slow=n_slow, n=n,
                   threshold_ms=threshold, levels_ms=[_sorted_median(m) for m in modes])


def fast_members(p50s: Sequence[float]) -> np.ndarray:
    """The values in the fast mode (empty without any positive finite value)."""
    modes = split_modes(p50s)
    return modes[0] if modes else np.empty(0)
