"""The history verdict (`bench compare --history`): a cell's series of run values, oldest first, the candidate last.

1. The series starts at the cell's latest accepted change (`bench accept`), or at its first stored run.
2. Isolated outliers (one run leaving a level that holds before and after it; `common.stats.isolated_outliers`)
   are reported and set aside, so one bad night neither reads as a change nor hides a later one.
3. Change points as Apache Otava finds them (`common.stats.changepoint.change_points`: E-divisive candidates, a
   deterministic t-test at `max_pvalue`, a minimum relative change of `threshold`, windowed). A segment of one run
   between two change points is an outlier too.
4. The verdict is about the candidate's level, the last segment, against the reference: the level right after
   the latest accepted change, or a later segment of >= 2 runs significantly below it (an improvement becomes the
   reference at once; a regression stays until it goes away or is accepted). A regression reads "regressed since
   run X (+14% [+9%, +19%])" with X the first run of the segments that stay beyond the threshold, on every later
   compare until the level comes back or someone accepts it.
5. A last segment of one run is a step or an outlier: one run cannot tell, so it is inconclusive (the next run
   decides), unless an earlier regression is still open and the new run is beyond the threshold too.
6. "No change" needs evidence of its own (as in `harness.gate.baseline`): the one-sided 95% upper bound of the
   candidate level against the reference (a t prediction bound from the reference runs' spread) must stay below
   `margin`; on a history too noisy for that the cell is inconclusive, never a silent pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
from scipy.stats import t as student_t

from common.stats.changepoint import DEFAULT_WINDOW, change_points, isolated_outliers, split_test
from common.stats.noise import step_mde
from harness.gate import DEFAULT_MARGIN

REGRESSION, IMPROVEMENT, SAME, INCONCLUSIVE = "regression", "improvement", "no change", "inconclusive"
MAX_PVALUE = 0.001  # the t-test level of a change point (Otava's default max_pvalue; its first pass uses 0.01): at
# 0.01 flat simulated series of 10-40 runs with 3-10% noise flagged 1-8% of nights, at 0.001 0-2%
MIN_REFERENCE_RUNS = 3  # runs of the reference level before a change can be judged
MIN_HISTORY = MIN_REFERENCE_RUNS + 1  # runs in the series (since the latest acceptance), the candidate included
CI_LEVEL = 0.95
MAX_REPLAYS = 10  # history_quality replays the rule on at most this many prefixes of the reference level
STEP_RUNS = 3  # the MDE of the history rule is for a step with this many runs after it
LONE_JUMP_SD = 4.0  # a newest run this many sd (and the threshold) off a level without change points: inconclusive
EQUIVALENCE_LEVEL = 0.95  # one-sided level of that bound


@dataclass
class HistoryVerdict:
    verdict: str
    rel_change: float | None = None  # candidate level / reference level - 1
    ci: tuple[float, float] | None = None  # CI_LEVEL interval of rel_change (Welch, on log values)
    since: int | None = None  # 0-based index in the series given: the first run of the open change
    reference: tuple[int, int] | None = None  # [start, stop) of the reference segment
    outliers: list[int] = field(default_factory=list)
    change_points: list[int] = field(default_factory=list)
    decided_by: str = ""
    reason: str = ""  # why inconclusive
    upper: float | None = None  # one-sided EQUIVALENCE_LEVEL upper bound of rel_change, on a "no change"
    p_value: float | None = None  # the candidate level's t-test against the reference (split-adjusted): Holm uses it


def _label(i: int, run_ids: Sequence[str] | None) -> str:
    return f"run {i + 1}" + (f" ({run_ids[i]})" if run_ids and i < len(run_ids) else "")


def _rel_ci(ref: np.ndarray, cand: np.ndarray) -> tuple[float, float] | None:
    """CI_LEVEL Welch interval of mean(cand) / mean(ref) - 1 on log values (None when a side is not positive)."""
    if (ref <= 0).any() or (cand <= 0).any():
        return None
    a, b = np.log(ref), np.log(cand)
    diff = float(b.mean() - a.mean())
    va = float(a.var(ddof=1)) / a.size if a.size > 1 else 0.0
    vb = float(b.var(ddof=1)) / b.size if b.size > 1 else 0.0
    se = math.sqrt(va + vb)
    if se == 0.0:
        return math.exp(diff) - 1.0, math.exp(diff) - 1.0
    parts = [(v, n - 1) for v, n in ((va, a.size), (vb, b.size)) if v > 0]
    df = (va + vb) ** 2 / sum(v * v / d for v, d in parts)  # Welch-Satterthwaite
    q = float(student_t.ppf(0.5 + CI_LEVEL / 2.0, df))
    return math.exp(diff - q * se) - 1.0, math.exp(diff + q * se) - 1.0


def _upper(ref: np.ndarray, cand: np.ndarray) -> float | None:
    """The one-sided EQUIVALENCE_LEVEL upper bound of mean(cand) / mean(ref) - 1 (log values): the candidate's
    runs scatter as the reference runs do (their sd, df len(ref) - 1). None with fewer than 2 reference runs."""
    if ref.size < 2:
        return None
    a, b = np.log(ref), np.log(cand)
    s = float(a.std(ddof=1))
    q = float(student_t.ppf(EQUIVALENCE_LEVEL, a.size - 1))
    return math.exp(float(b.mean() - a.mean()) + q * s * math.sqrt(1.0 / a.size + 1.0 / b.size)) - 1.0


def _equivalent(res: HistoryVerdict, ref: np.ndarray, cand: np.ndarray, margin: float, what: str) -> HistoryVerdict:
    """Keep a "no change" only when a slowdown beyond `margin` is ruled out; else make it inconclusive."""
    res.upper = _upper(ref, cand)
    if res.upper is not None and res.upper < margin:
        res.decided_by += (f"; a slowdown above {100 * res.upper:+.1f}% is ruled out at "
                           f"{100 * EQUIVALENCE_LEVEL:g}% (margin {100 * margin:g}%)")
        return res
    res.verdict = INCONCLUSIVE
    spread = f"run-to-run sd {100 * float(np.log(ref).std(ddof=1)):.1f}%" if ref.size >= 2 else "one run"
    res.reason = (f"{what} {100 * (res.rel_change or 0.0):+.1f}% with no change point, but with this history's "
                  f"spread ({spread}, {ref.size} runs) a slowdown "
                  + (f"up to {100 * res.upper:+.1f}% " if res.upper is not None else "")
                  + f"cannot be ruled out, beyond the margin {100 * margin:g}% (more runs or a quieter machine "
                  "narrow it; --margin sets what a pass may hide)")
    return res


def _segments(kept: list[int], cps: list[int]) -> list[list[int]]:
    """Segments as lists of series indices, cut by change points given as positions in `kept`."""
    edges = [0, *cps, len(kept)]
    return [kept[a:b] for a, b in pairwise(edges) if b > a]


def history_verdict(series: Sequence[float], threshold: float, *, start: int = 0,
                    run_ids: Sequence[str] | None = None, max_pvalue: float = MAX_PVALUE,
                    window: int = DEFAULT_WINDOW, margin: float = DEFAULT_MARGIN) -> HistoryVerdict:
    """The verdict for the newest value of `series` (oldest first); `start`: index of the latest accepted run
    (the series before it is not looked at). Indices in the result refer to `series`."""
    x = np.asarray([float(v) for v in series], dtype=np.float64)
    if not np.isfinite(x).all() or (x <= 0).any():
        raise ValueError("a run series must hold positive finite values")
    idx = list(range(start, x.size))
    if len(idx) < MIN_HISTORY:
        since = f" since the accepted {_label(start, run_ids)}" if start else ""
        return HistoryVerdict(INCONCLUSIVE, reason=f"too few runs: {len(idx)}{since}; the history gate needs "
                              f">= {MIN_HISTORY} ({MIN_HISTORY - len(idx)} more)")
    out = [idx[i] for i in isolated_outliers(x[idx], threshold)]
    while True:  # change points; a one-run segment between two of them is an outlier too
        kept = [i for i in idx if i not in out]
        cps = [c.index for c in change_points(x[kept], window=window, max_pvalue=max_pvalue,
                                              min_magnitude=threshold)]
        segs = _segments(kept, cps)
        lone = [s[0] for s in segs[1:-1] if len(s) == 1]
        if not lone:
            break
        out = sorted({*out, *lone})
    res = HistoryVerdict(SAME, outliers=sorted(out), change_points=[s[0] for s in segs[1:]])
    ref_seg = segs[0]
    res.reference = (ref_seg[0], ref_seg[-1] + 1)
    notes = [f"outlier {_label(i, run_ids)} ({100 * (x[i] / float(np.median(x[ref_seg])) - 1):+.0f}%)"
             for i in res.outliers]
    if len(segs) == 1:
        res.rel_change = float(x[-1] / x[ref_seg].mean() - 1.0)
        res.decided_by = "; ".join([f"no change point in {len(idx)} runs", *notes])
        before = np.log(x[ref_seg[:-1]])
        jump = abs(math.log(x[-1]) - float(before.mean()))
        if abs(res.rel_change) > threshold and jump > LONE_JUMP_SD * float(before.std(ddof=1)):
            # too few runs for the t-test to see one far run (3 runs: df 2): never a silent pass on it
            res.verdict = INCONCLUSIVE
            res.reason = (f"{_label(x.size - 1, run_ids)} alone is {100 * res.rel_change:+.1f}% from the level of "
                          f"{len(ref_seg) - 1} earlier runs (beyond {LONE_JUMP_SD:g} of their sd): a step or an "
                          "outlier; one run cannot tell, the next run decides")
            return res
        return _equivalent(res, x[ref_seg[:-1]], x[-1:], margin, f"{_label(x.size - 1, run_ids)} is")
    if len(ref_seg) < MIN_REFERENCE_RUNS:
        res.verdict = INCONCLUSIVE
        res.reason = (f"the level before the change at {_label(segs[1][0], run_ids)} has {len(ref_seg)} run(s); "
                      f"needs >= {MIN_REFERENCE_RUNS}")
        return res
    # improvements (segments of >= 2 runs significantly below the reference) become the reference at once
    for s in segs[1:-1]:
        t = split_test(x[ref_seg], x[s])
        if len(s) >= 2 and t.p_value < max_pvalue and t.rel_change < -threshold and \
                x[s].mean() < x[ref_seg].mean():
            ref_seg = s
    res.reference = (ref_seg[0], ref_seg[-1] + 1)
    ref_mean = float(x[ref_seg].mean())
    cand = segs[-1]
    later = segs[segs.index(ref_seg) + 1:]
    res.rel_change = float(x[cand].mean() / ref_mean - 1.0)
    direction = 1.0 if res.rel_change > 0 else -1.0

    def beyond(s: list[int]) -> bool:
        return direction * (float(x[s].mean()) / ref_mean - 1.0) > threshold

    first = len(later)
    while first > 0 and beyond(later[first - 1]):
        first -= 1
    res.since = later[first][0] if first < len(later) else None
    ref_txt = f"the level of {_label(ref_seg[0], run_ids)}..{ref_seg[-1] + 1} ({len(ref_seg)} runs)"
    if len(cand) == 1:
        open_before = len(later) >= 2 and len(later[-2]) >= 2 and beyond(later[-2]) and beyond(cand) and \
            split_test(x[ref_seg], x[later[-2]]).p_value < max_pvalue
        if not open_before:
            res.verdict, res.since = INCONCLUSIVE, None
            res.reason = (f"{_label(cand[0], run_ids)} alone is {100 * res.rel_change:+.1f}% from {ref_txt}: a step "
                          "or an outlier; one run cannot tell, the next run decides")
            return res
        cand = later[-2] + cand  # the open change goes on: judge its whole level
        res.rel_change = float(x[cand].mean() / ref_mean - 1.0)
    test = split_test(x[ref_seg], x[cand])
    # the candidate level starts where the search put a change point: its p is adjusted for that choice as the
    # change points' are (Bonferroni over the splits of the span)
    p_adj = min(1.0, test.p_value * max(1, len(ref_seg) + len(cand) - 1))
    res.p_value = p_adj
    res.ci = _rel_ci(x[ref_seg], x[cand])
    ci_txt = f" [{100 * res.ci[0]:+.1f}%, {100 * res.ci[1]:+.1f}%]" if res.ci else ""
    if p_adj < max_pvalue and abs(res.rel_change) > threshold and res.since is not None:
        res.verdict = REGRESSION if res.rel_change > 0 else IMPROVEMENT
        word = "regressed" if res.verdict == REGRESSION else "improved"
        res.decided_by = "; ".join([f"{word} since {_label(res.since, run_ids)} ({100 * res.rel_change:+.1f}%"
                                    f"{ci_txt}) against {ref_txt}, t-test p={p_adj:.2g} (adjusted for the chosen "
                                    "split)", *notes])
    else:
        res.since = None
        res.decided_by = "; ".join([f"back at {ref_txt} ({100 * res.rel_change:+.1f}%{ci_txt}, p={p_adj:.2g})",
                                    *notes])
        return _equivalent(res, x[ref_seg], x[cand], margin, "the newest level is")
    return res


def history_quality(series: Sequence[float], reference: tuple[int, int], threshold: float,
                    max_pvalue: float = MAX_PVALUE) -> tuple[int, int, float | None]:
    """(replays, alarms, MDE) of the history rule on this cell's own A/A history, its reference level (runs of
    one level by the rule's own reading): the rule replayed on the newest MAX_REPLAYS prefixes that end inside
    it, counting any change it would have called there; and the smallest step it finds with 90% power from
    STEP_RUNS runs after it, given the reference runs' spread."""
    start, stop = reference
    ref = np.log(np.asarray(series[start:stop], dtype=np.float64))
    mde = step_mde(float(ref.std(ddof=1)), ref.size, STEP_RUNS, max_pvalue) if ref.size >= 3 else None
    ends = range(max(start + MIN_HISTORY, stop - MAX_REPLAYS + 1), stop + 1)
    alarms = sum(history_verdict(series[:end], threshold, start=start, max_pvalue=max_pvalue).verdict
                 in (REGRESSION, IMPROVEMENT) for end in ends)
    return len(ends), alarms, (max(mde, threshold) if mde is not None else None)
