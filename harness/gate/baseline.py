"""The one-pair verdict (`bench compare --baseline A --candidate B`): the change against this machine's A/A noise.

A run's value of a cell is its LEVEL: the fast mode of its processes' p50s (`common.stats.modes`: the median of
the processes in the lowest mode). Not the median of all processes: at 2 threads processes land in 3-4 modes and
how many land in each changes per run, so the median over 10 processes moved 6-17% between runs while the fast
mode moved 0.5% (sd over 4 runs); a +10% slowdown hides in the first and stands out of the second. The median
stays the typical-latency figure of the tables. The spread between the processes of one run does not show how far
a rerun moves, so the change log(B / A) is judged against the distribution of log ratios of same-config reruns on
this machine (`common.stats.noise`, its runs' levels; a run that missed the fast mode, its level a mode gap above
the others, is set aside from the noise: it is a mix event, not level noise):
* enough A/A history (>= MIN_AA_DF degrees of freedom): a change is called when |log(B / A)| exceeds the
  t-corrected (1 - alpha) A/A bound AND the change exceeds `threshold`. "No change" is a claim too, so it needs its
  own evidence (an equivalence test, TOST-style): the one-sided (1 - EQUIVALENCE_ALPHA) upper bound of the change
  must stay below `margin`, the largest slowdown a pass may hide. Otherwise the pair is inconclusive: a +103%
  change inside a +-400% A/A bound is not "no change", it is a pair this machine cannot judge. The interval
  printed is log(B / A) +- the two-sided bound (its level: 1 - alpha);
* too little: inconclusive, unless the change is beyond CONSERVATIVE_BOUND (+50% / -33%) and the two runs'
  order-statistic intervals exclude each other; the reason says how many more same-config runs make it testable.
Every verdict also carries the rule's own quality on this history: its false alarms on consecutive A/A pairs
(each judged with the noise learned without the later run of the pair) and its MDE at 90% power.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import t as student_t

from common.stats.intervals import ratio_ci
from common.stats.levels import same_mode
from common.stats.modes import fast_members, mode_mix
from common.stats.noise import RunNoise, aa_bound, aa_mde, run_noise
from harness.gate import DEFAULT_MARGIN

REGRESSION, IMPROVEMENT, SAME, INCONCLUSIVE = "regression", "improvement", "no change", "inconclusive"
MIN_AA_DF = 4  # degrees of freedom of the A/A noise before a pair is judged by it (e.g. 5 same-config runs)
CONSERVATIVE_BOUND = 0.5  # without A/A history only beyond +50% (or below 1/1.5 = -33%): same-config reruns on a
# quiet machine spread up to 28% (OpenVINO l1-int8 1.535-1.968 ms over 6 runs), so half again leaves room
MIN_PROCESSES = 3
EQUIVALENCE_ALPHA = 0.05  # one-sided level of the "no change" bound (the TOST convention: a 90% interval)


@dataclass
class BaselineVerdict:
    verdict: str
    rel_change: float | None = None
    ci: tuple[float, float] | None = None  # of the relative change
    ci_level: float | None = None
    decided_by: str = ""
    reason: str = ""
    noise: RunNoise | None = None
    aa_pairs: int = 0  # consecutive same-config pairs the rule was replayed on
    aa_alarms: int = 0  # of them flagged as a change
    aa_inconclusive: int = 0  # of them the rule could not judge (the bound reached beyond the margin)
    upper: float | None = None  # one-sided (1 - EQUIVALENCE_ALPHA) upper bound of the relative change
    mde: float | None = None  # smallest slowdown detected with 90% power at alpha
    p_value: float | None = None  # two-sided, of log(B / A) against the A/A t distribution (Holm uses it)


def equivalence_bound(noise: RunNoise) -> float:
    """The one-sided (1 - EQUIVALENCE_ALPHA) bound on log(B / A) - its true value, for one pair of runs."""
    return aa_bound(noise, 2.0 * EQUIVALENCE_ALPHA)


def _call(r: float, noise: RunNoise, alpha: float, threshold: float, margin: float) -> str:
    bound = aa_bound(noise, alpha)
    if r > bound and math.exp(r) - 1.0 > threshold:
        return REGRESSION
    if r < -bound and 1.0 - math.exp(r) > threshold:
        return IMPROVEMENT
    if math.exp(r + equivalence_bound(noise)) - 1.0 < margin:
        return SAME
    return INCONCLUSIVE


def aa_replay(groups: Sequence[Sequence[float]], threshold: float, alpha: float,
              margin: float = DEFAULT_MARGIN) -> tuple[int, int, int]:
    """(pairs, alarms, inconclusive): the rule replayed on every consecutive pair of every same-config group, the
    noise learned only from that group's runs up to the pair's earlier run (what `bench compare` had then: the
    other groups' runs carry no order against this pair, so none of them is used). An alarm is a change called
    (regression or improvement); an inconclusive pair is a pass the rule refused, not an alarm."""
    pairs = alarms = unsure = 0
    for g in groups:
        for j in range(1, len(g)):
            noise = run_noise([list(g[:j])])
            if noise is None or noise.df < MIN_AA_DF or g[j - 1] <= 0 or g[j] <= 0:
                continue
            pairs += 1
            call = _call(math.log(g[j] / g[j - 1]), noise, alpha, threshold, margin)
            alarms += call in (REGRESSION, IMPROVEMENT)
            unsure += call == INCONCLUSIVE
    return pairs, alarms, unsure


def baseline_verdict(base: Sequence[float], cand: Sequence[float], aa_groups: Sequence[Sequence[float]],
                     threshold: float, alpha: float, replay: bool = True,
                     margin: float = DEFAULT_MARGIN) -> BaselineVerdict:
    """The verdict for one cell from the two runs' process p50s and the cell's A/A groups of run values
    (`replay`: also replay the rule on the A/A pairs, for its false-alarm count)."""
    if min(len(base), len(cand)) < MIN_PROCESSES:
        return BaselineVerdict(INCONCLUSIVE, reason=(
            f"too few processes: baseline {len(base)}, candidate {len(cand)}; needs >= {MIN_PROCESSES} per run "
            f"(benchmark.rounds >= {MIN_PROCESSES})"))
    bm, cm = mode_mix(base), mode_mix(cand)
    if bm is None or cm is None:
        return BaselineVerdict(INCONCLUSIVE, reason="a run value is not positive")
    b, c = bm.fast_ms, cm.fast_ms
    if same_mode(cm, bm) or same_mode(bm, cm):
        return BaselineVerdict(INCONCLUSIVE, c / b - 1.0, reason=(
            f"one run's fastest processes sit on a slower mode of the other (baseline {b:.4g} ms, {bm.n_fast} of "
            f"{bm.n}; candidate {c:.4g} ms, {cm.n_fast} of {cm.n} in the fast mode): the levels of two modes are "
            f"not comparable; rerun with more processes per cell"))
    r, rel = math.log(c / b), c / b - 1.0
    noise = run_noise(aa_groups)
    pairs, alarms, unsure = aa_replay(aa_groups, threshold, alpha, margin) if replay else (0, 0, 0)
    res = BaselineVerdict(SAME, rel, noise=noise, aa_pairs=pairs, aa_alarms=alarms, aa_inconclusive=unsure)
    if noise is not None and noise.df >= MIN_AA_DF:
        bound = aa_bound(noise, alpha)
        res.verdict = _call(r, noise, alpha, threshold, margin)
        res.ci, res.ci_level = (math.exp(r - bound) - 1.0, math.exp(r + bound) - 1.0), 1.0 - alpha
        res.upper = math.exp(r + equivalence_bound(noise)) - 1.0
        res.mde = max(aa_mde(noise, alpha), threshold) if replay else None
        res.p_value = float(2.0 * student_t.sf(abs(r) / (noise.sigma * math.sqrt(2.0)), noise.df)) \
            if noise.sigma > 0 else (1.0 if r == 0 else 0.0)
        res.decided_by = (f"{100 * rel:+.1f}% against the A/A bound +-{100 * (math.exp(bound) - 1):.1f}% of "
                          f"{noise.runs} same-config runs on this machine (df {noise.df}, alpha {alpha:g})")
        if res.verdict == SAME:
            res.decided_by += (f"; a slowdown above {100 * res.upper:+.1f}% is ruled out at "
                               f"{100 * (1 - EQUIVALENCE_ALPHA):g}% (margin {100 * margin:g}%)")
        elif res.verdict == INCONCLUSIVE:
            res.reason = (f"{100 * rel:+.1f}% is not a significant change, but with this machine's A/A noise "
                          f"(run-to-run sd {100 * noise.sigma:.1f}%) a slowdown up to {100 * res.upper:+.1f}% "
                          f"cannot be ruled out, beyond the margin {100 * margin:g}% (a quieter machine or longer "
                          "cells narrow it; --margin sets what a pass may hide)")
        return res
    have = noise.df if noise else 0
    _ratio, ci, level = ratio_ci(fast_members(cand).tolist(), fast_members(base).tolist())
    beyond_up = rel > CONSERVATIVE_BOUND and ci is not None and ci[0] > 1.0
    beyond_down = c / b < 1.0 / (1.0 + CONSERVATIVE_BOUND) and ci is not None and ci[1] < 1.0
    if beyond_up or beyond_down:
        res.verdict = REGRESSION if beyond_up else IMPROVEMENT
        res.ci = (ci[0] - 1.0, ci[1] - 1.0) if ci else None
        res.ci_level = level
        res.decided_by = (f"{100 * rel:+.1f}%, beyond the conservative bound (+{100 * CONSERVATIVE_BOUND:.0f}% / "
                          f"-{100 * CONSERVATIVE_BOUND / (1 + CONSERVATIVE_BOUND):.0f}%) with the processes of the "
                          f"two runs apart; no A/A history on this machine (df {have})")
        return res
    res.verdict = INCONCLUSIVE
    res.reason = (f"{100 * rel:+.1f}% cannot be judged: the A/A history of this config on this machine has "
                  f"{have} df, needs {MIN_AA_DF} ({MIN_AA_DF - have} more same-config run(s)); without it only "
                  f"changes beyond +{100 * CONSERVATIVE_BOUND:.0f}% / "
                  f"-{100 * CONSERVATIVE_BOUND / (1 + CONSERVATIVE_BOUND):.0f}% are called")
    return res
