"""Tests on the two numbers `common.stats.modes` gives a cell: its fast-mode LEVEL and its MIX of slow processes,
and Holm's step-down correction that makes one false-alarm rate for a whole comparison.

* Level, two arms of one run (`level_diff`): a Student t-test with pooled variance on the log p50s of the two
  arms' fast-mode members. The spread inside the fast mode (~0.5-1% measured) is what the level's estimate moves
  by inside one run; the pooled variance lets an arm with a single fast process be judged with the other's spread
  (df = m_c + m_r - 2). Both arms ran interleaved in one night (ABBA pairs seconds apart), so the night's shift and
  the host's slow phases fall on both: what is left is the within-mode spread. The interval of the ratio is the
  t interval on the log difference; its coverage on multimodal data, clustering included, is checked by simulation
  (tests/unit/test_gate_modes_sim.py).
* A missed fast mode (`same_mode`): an arm none of whose processes landed in the other's fast mode shows a slower
  "fast" level by chance (with probability (1 - q)^n, `miss_probability`); when one arm's fast level sits on a
  slower mode of the other, the two levels are of different modes and are not compared (the mix still is).
* Mix, paired (`mix_mcnemar`): each pair's two processes ran seconds apart, so a host phase slows both: McNemar's
  exact test (binomial on the discordant pairs) uses only pairs where one process was slow and the other not,
  and a phase that hits both cancels. Unpaired (`mix_fisher`, two runs): Fisher's exact test on the 2x2 table;
  between nights the mix moves beyond binomial (measured), so across runs it is a diagnostic, not a verdict.
* `holm`: Holm's step-down adjusted p-values (valid under any dependence between cells, which a night effect
  shared by every cell creates): a cell is significant when its adjusted p < alpha, and the chance of any false
  alarm in the whole comparison is <= alpha.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest, fisher_exact
from scipy.stats import t as student_t

from common.stats.modes import ModeMix, fast_members


@dataclass(frozen=True)
class LevelDiff:
    """The candidate's fast-mode level over the reference's, with its t interval and p-value."""

    ratio: float  # exp(mean log fast candidate - mean log fast reference)
    low: float  # interval of the ratio at `level`
    high: float
    level: float
    upper_95: float  # one-sided 95% upper bound of the ratio (the "no change" evidence)
    p_value: float  # two-sided
    df: int
    n_cand: int  # fast-mode members used
    n_ref: int


def level_diff(cand: Sequence[float], ref: Sequence[float], confidence: float = 0.99) -> LevelDiff | None:
    """Pooled t-test on the log p50s of the two arms' fast-mode members (None when df < 1 or a side is empty)."""
    c, r = np.log(fast_members(cand)), np.log(fast_members(ref))
    if c.size == 0 or r.size == 0 or c.size + r.size < 3:
        return None
    df = c.size + r.size - 2
    ss = float(np.sum((c - c.mean()) ** 2) + np.sum((r - r.mean()) ** 2))
    sp = math.sqrt(ss / df)
    d = float(c.mean() - r.mean())
    se = sp * math.sqrt(1.0 / c.size + 1.0 / r.size)
    return _t_level(d, se, df, confidence, int(c.size), int(r.size))


def _t_level(d: float, se: float, df: int, confidence: float, n_cand: int, n_ref: int) -> LevelDiff:
    """A log difference `d` with standard error `se` on `df` degrees of freedom as a ratio, its t interval at
    `confidence`, its one-sided 95% upper bound and its two-sided p-value."""
    if se == 0.0:
        p = 1.0 if d == 0.0 else 0.0
        return LevelDiff(math.exp(d), math.exp(d), math.exp(d), confidence, math.exp(d), p, df, n_cand, n_ref)
    q = float(student_t.ppf(0.5 + confidence / 2.0, df))
    p = float(2.0 * student_t.sf(abs(d) / se, df))
    up = d + float(student_t.ppf(0.95, df)) * se
    return LevelDiff(math.exp(d), math.exp(d - q * se), math.exp(d + q * se), confidence, math.exp(up), p, df,
                     n_cand, n_ref)


def ratio_level(log_ratios: Sequence[float], confidence: float = 0.99) -> LevelDiff | None:
    """One-sample t on per-pair log ratios (candidate over reference, both timed in one process): the level of
    arms that share each process's latency mode, so the mode cancels in each ratio (None for fewer than 3)."""
    x = np.asarray([v for v in log_ratios if math.isfinite(v)], np.float64)
    if x.size < 3:
        return None
    df = x.size - 1
    d = float(x.mean())
    se = float(x.std(ddof=1)) / math.sqrt(x.size)
    return _t_level(d, se, df, confidence, int(x.size), int(x.size))


def miss_probability(ref: ModeMix, n_cand: int) -> float:
    """The chance that none of `n_cand` processes lands in the reference's fast mode, at its observed share."""
    q = ref.n_fast / ref.n if ref.n else 0.0
    return (1.0 - q) ** n_cand


def same_mode(cand: ModeMix, ref: ModeMix) -> bool:
    """True when the candidate's fast level sits on one of the reference's slower modes (within the gap rule):
    the candidate may simply have missed the fast mode."""
    from common.stats.modes import GAP

    return any(abs(math.log(cand.fast_ms / lv)) <= math.log1p(GAP) for lv in ref.levels_ms[1:])


@dataclass(frozen=True)
class MixTest:
    """The slow-mode shares of the two arms and an exact test of their difference."""

    share_cand: float
    share_ref: float
    p_value: float  # two-sided
    test: str  # "McNemar exact (pairs)" or "Fisher exact"
    discordant: tuple[int, int] | None = None  # McNemar: (only the candidate slow, only the reference slow)


def mix_mcnemar(pairs: Sequence[tuple[bool, bool]]) -> MixTest | None:
    """McNemar's exact test on (candidate slow, reference slow) per pair (None without pairs)."""
    if not pairs:
        return None
    only_c = sum(1 for c, r in pairs if c and not r)
    only_r = sum(1 for c, r in pairs if r and not c)
    n = len(pairs)
    p = 1.0 if only_c + only_r == 0 else float(binomtest(only_c, only_c + only_r, 0.5).pvalue)
    return MixTest(sum(c for c, _ in pairs) / n, sum(r for _, r in pairs) / n, p, "McNemar exact (pairs)",
                   (only_c, only_r))


def mix_fisher(cand: ModeMix, ref: ModeMix) -> MixTest:
    """Fisher's exact test on slow/fast counts of two unpaired samples of processes."""
    table = [[cand.n_slow, cand.n_fast], [ref.n_slow, ref.n_fast]]
    p = float(fisher_exact(table, alternative="two-sided").pvalue)
    return MixTest(cand.slow_share, ref.slow_share, p, "Fisher exact")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): reject where adjusted < alpha."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        out[i] = running
    return out
