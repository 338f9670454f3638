"""Run-to-run noise learned from same-config reruns (an A/A history), and what it allows a one-pair test to call.

On a quiet 2-core machine six same-config runs back to back spread 13-33% in a cell's p50 while the processes of
one run agreed within a few percent: the spread inside one run cannot stand in for the spread between runs. So
`--baseline A --candidate B` compares log(B / A) with the A/A distribution of log ratios on this machine:

* the noise: sigma = the pooled standard deviation of log run values within groups of same-config runs, with
  df = sum(n_g - 1) degrees of freedom;
* the bound: the difference of two runs has sd sigma * sqrt(2), and with sigma estimated from df degrees of
  freedom log(B / A) / (sigma * sqrt(2)) follows Student's t(df) under A/A: a change is called beyond
  t_{1 - alpha/2, df} * sigma * sqrt(2) (the small-sample correction: with 4 df the bound is 4.6 sigma * sqrt 2
  at alpha = 0.01, with 30 df 2.75);
* the smallest detectable change at 90% power: the shift delta at which log(B / A) / (sigma * sqrt 2), a noncentral
  t(df, delta / (sigma * sqrt 2)), exceeds the bound with probability 0.90 (solved exactly with scipy's nct; the
  common shortcut (t_{1-alpha/2} + t_{0.90}) * sigma * sqrt 2 gives 84-88% power at 4-19 df), as a relative change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.stats import nct
from scipy.stats import t as student_t

POWER = 0.90


@dataclass(frozen=True)
class RunNoise:
    """The run-to-run noise of one cell on one machine, from same-config runs."""

    sigma: float  # pooled sd of log run values
    df: int  # its degrees of freedom: sum over groups of (runs - 1)
    runs: int
    groups: int


def run_noise(groups: Sequence[Sequence[float]]) -> RunNoise | None:
    """Pooled within-group sd of log values over groups of same-config run values (None without any df)."""
    ss, df, runs, used = 0.0, 0, 0, 0
    for g in groups:
        x = np.log(np.asarray([v for v in g if isinstance(v, int | float) and v > 0 and math.isfinite(v)], float))
        runs += x.size
        if x.size >= 2:
            ss += float(np.sum((x - x.mean()) ** 2))
            df += x.size - 1
            used += 1
    if df == 0:
        return None
    return RunNoise(math.sqrt(ss / df), df, runs, used)


def aa_bound(noise: RunNoise, alpha: float) -> float:
    """The two-sided (1 - alpha) bound on |log(B / A)| for two same-config runs: t_{1-alpha/2, df} sigma sqrt 2."""
    return float(student_t.ppf(1.0 - alpha / 2.0, noise.df)) * noise.sigma * math.sqrt(2.0)


def _ncp_for_power(df: int, crit: float, power: float) -> float:
    """The noncentrality at which a t(df) statistic exceeds `crit` with probability `power`."""
    return float(brentq(lambda d: float(nct.sf(crit, df, d)) - power, 0.0, crit + 40.0))


def aa_mde(noise: RunNoise, alpha: float, power: float = POWER) -> float:
    """The smallest relative slowdown one pair of runs detects with `power` at level `alpha` (noncentral t)."""
    crit = float(student_t.ppf(1.0 - alpha / 2.0, noise.df))
    return math.exp(_ncp_for_power(noise.df, crit, power) * noise.sigma * math.sqrt(2.0)) - 1.0


def step_mde(sigma: float, n_before: int, n_after: int, alpha: float, power: float = POWER) -> float | None:
    """The smallest relative step a two-sample t-test between `n_before` and `n_after` runs of sd `sigma` (log
    values) detects with `power` at level `alpha` (noncentral t; None when there are no degrees of freedom)."""
    df = n_before + n_after - 2
    if df < 1 or n_before < 1 or n_after < 1:
        return None
    crit = float(student_t.ppf(1.0 - alpha / 2.0, df))
    return math.exp(_ncp_for_power(df, crit, power) * sigma * math.sqrt(1.0 / n_before + 1.0 / n_after)) - 1.0
