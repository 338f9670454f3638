"""The paired verdict (`bench compare --paired RUN`): candidate against reference WITHIN one run.

Peers cancel machine drift by measuring both sides in one session: Chromium Pinpoint runs A and B on one bot and
adds repeats while the answer is UNKNOWN, asv `continuous` interleaves the two commits. A paired run does the
same: each cell has a candidate row and a reference row (`row["arm"]`: "candidate" or "reference"; missing =
candidate) with the same cell key, and each process (round) carries `pair` (rounds of the two arms with the same
`pair` ran seconds apart, ABBA: `position` 0 or 1 inside the pair). The night's shift and the host's slow phases
(consecutive processes slow together for tens of seconds) fall on both arms of a pair.

Per cell two things are judged (`common.stats.levels`):
* LEVEL: the fast-mode level of each arm (median of its fast-mode processes, `common.stats.modes`), compared by a
  pooled t-test on their log values. Not per-pair log ratios: a pair's two processes land in modes independently
  (0.112 against 0.148 ms is +-28%), so per-pair ratios are multimodal and only the ~q^2 pairs with both processes
  in one mode carry the level; the pairing instead guarantees both arms saw the same night.
* MIX: the share of processes outside the fast mode, McNemar's exact test on the pairs (a phase that slows both
  processes of a pair cancels).
Where both arms were timed in ONE process per pair (`bench run --reference ... --interleave blocks`, the default
for other files), both sit in that process's mode: the level is then the per-pair log ratio of their p50s, judged
by a one-sample t (BLOCKS_STATISTIC), and no mix is judged. Measured on a quiet 2-vCPU Zen 3: per-process p50s of
one file spread 1.6-2.2x, the in-process ratio of two files 1-2% (docs/measuring.md).
A cell's p-value is 2 x the smaller of the two (Bonferroni inside the cell); Holm across the cells makes the
false-alarm rate one figure for the whole comparison (<= alpha per night, whatever the cells share). A regression
says which was judged ("level" / "mix"). "No change" needs the level's one-sided 95% upper bound below `margin`;
otherwise the cell is inconclusive and `inconclusive_cells` names it, so the runner can add pairs (as Pinpoint
adds repeats).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from common.errors import UserError
from common.records import Round, Row, Run, as_run
from common.results import is_reference
from common.stats.levels import LevelDiff, MixTest, holm, level_diff, mix_mcnemar, ratio_level, same_mode
from common.stats.modes import GATE_PROCESSES, ModeMix, fast_members, mode_mix
from harness.gate import DEFAULT_MARGIN
from harness.gate.regression import (
    BROKEN,
    EXIT_INCONCLUSIVE,
    EXIT_OK,
    EXIT_REGRESSION,
    IMPROVEMENT,
    INCONCLUSIVE,
    REGRESSION,
    SAME,
    CellKey,
    cell_key,
    cell_label,
)

CANDIDATE, REFERENCE = "candidate", "reference"
MIN_PAIRS = 3  # fewer pairs than this: inconclusive (add pairs)
MIX_THRESHOLD = 0.15  # the practical threshold of a mix change: slow share up by 15 points or more
LEVEL_STATISTIC = "fast-mode level (median of the fast mode's per-process p50s; pooled t on log values)"
# arms timed in one process (`bench run --interleave blocks`): both sit in that process's mode, so the ratio of
# their p50s in each process is the level, and there is no mix between the arms to judge
BLOCKS_STATISTIC = "in-process ratio (candidate p50 over reference p50 within each shared process; t on log ratios)"
MIX_STATISTIC = "slow-mode share (McNemar exact on the pairs)"
CORRECTION = "holm"


def arm(row: Row | dict[str, Any]) -> str:
    """The arm of a paired run's row: "reference" or "candidate" (missing / None = candidate)."""
    return REFERENCE if is_reference(row) else CANDIDATE


@dataclass
class PairedCell:
    """The verdict for one cell of a paired run."""

    key: CellKey
    verdict: str = INCONCLUSIVE
    judged: list[str] = field(default_factory=list)  # "level" and/or "mix": what decided a change
    level: LevelDiff | None = None
    mix: MixTest | None = None
    cand_modes: ModeMix | None = None
    ref_modes: ModeMix | None = None
    cand_p50_ms: float | None = None  # the typical latency (median over processes), for the tables
    ref_p50_ms: float | None = None
    pairs: int = 0
    p_value: float | None = None  # the cell's p: 2 x min(level p, mix p)
    p_adjusted: float | None = None  # after Holm across the cells
    reason: str = ""
    decided_by: str = ""
    # P(an arm's processes all miss the other's faster modes by chance), for the slower of the two fast levels:
    # the share of the faster arm's processes below the slower arm's fast level, q, gives (1 - q)^n
    miss_p: float | None = None
    interleave: str = "processes"  # "blocks": every pair is one process timing both arms (BLOCKS_STATISTIC)

    @property
    def label(self) -> str:
        return cell_label(self.key)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        backend, variant, device, scenario, batch = d.pop("key")
        blocks = self.interleave == "blocks"
        return {"backend": backend, "variant": variant, "device": device, "scenario": scenario,
                "batch_size": batch, "level_statistic": BLOCKS_STATISTIC if blocks else LEVEL_STATISTIC,
                "mix_statistic": "not judged: the arms share each process's mode" if blocks else MIX_STATISTIC, **d}


@dataclass
class PairedJudgement:
    """Every cell of a paired run, with the one false-alarm rate of the whole comparison."""

    run_id: str
    alpha: float
    threshold: float
    margin: float
    cells: list[PairedCell]
    correction: str = CORRECTION

    @property
    def regressions(self) -> list[PairedCell]:
        return [c for c in self.cells if c.verdict in (REGRESSION, BROKEN)]

    @property
    def inconclusive(self) -> list[PairedCell]:
        return [c for c in self.cells if c.verdict == INCONCLUSIVE]

    def exit_code(self, allow_inconclusive: bool = False) -> int:
        if self.regressions:
            return EXIT_REGRESSION
        if self.inconclusive and not allow_inconclusive:
            return EXIT_INCONCLUSIVE
        return EXIT_OK

    def family(self) -> str:
        return (f"Holm over {len(self.cells)} cell(s): the chance of any false alarm in this comparison is "
                f"<= {self.alpha:g}")

    def to_dict(self) -> dict[str, Any]:
        return {"mode": "paired", "run": self.run_id, "alpha": self.alpha, "threshold": self.threshold,
                "margin": self.margin, "correction": self.correction, "family_wise_alpha": self.alpha,
                "family": self.family(), "regressions": len(self.regressions),
                "inconclusive": len(self.inconclusive), "exit_code": self.exit_code(),
                "cells": [c.to_dict() for c in self.cells]}


def _rounds(row: Row) -> list[Round]:
    return [x for x in row.rounds or [] if x.p50_ms is not None and math.isfinite(x.p50_ms) and x.p50_ms > 0]


def _typed(run: Run | dict[str, Any]) -> Run:
    """The run as a record; a dict's row without a status counts as ok here (as the paired gate always read it),
    so the default is filled before parsing (the parse would take it for unknown)."""
    if isinstance(run, Run):
        return run
    rows = run.get("results") or []
    return as_run({**run, "results": [{"status": "ok", **r} for r in rows if isinstance(r, dict)]})


def paired_rows(run: Run | dict[str, Any]) -> dict[CellKey, tuple[Row | None, Row | None]]:
    """Cell key -> (candidate row, reference row) of a paired run's ok rows; UserError without any reference."""
    out: dict[CellKey, list[Row | None]] = {}
    refs = 0
    typed = _typed(run)
    for row in typed.results:
        a = arm(row)
        refs += a == REFERENCE
        slot = out.setdefault(cell_key(row), [None, None])
        slot[0 if a == CANDIDATE else 1] = row
    if refs == 0:
        raise UserError(f"run {typed.run_id} has no reference arm (no row with arm = 'reference'): "
                        "--paired needs a run measured with a candidate and a reference arm")
    return {k: (v[0], v[1]) for k, v in out.items()}


def _values(row: Row | None) -> tuple[list[float], dict[int, float]]:
    rounds = _rounds(row) if row is not None and row.status == "ok" else []
    by_pair = {int(r.pair): float(r.p50_ms) for r in rounds if r.pair is not None and r.p50_ms is not None}
    return [float(r.p50_ms) for r in rounds if r.p50_ms is not None], by_pair


def _same_process(row: Row | None) -> bool:
    """Every timed process of the row also timed the other arm (interleave "blocks")."""
    rounds = _rounds(row) if row is not None else []
    return bool(rounds) and all(getattr(r, "interleave", None) == "blocks" for r in rounds)


def _judge_cell(key: CellKey, c_row: Row | None, r_row: Row | None,
                alpha: float) -> PairedCell:
    """The cell's tests (before Holm): its p-value, or the reason it cannot be tested."""
    cell = PairedCell(key)
    c_vals, c_pairs = _values(c_row)
    r_vals, r_pairs = _values(r_row)
    if c_row is None or r_row is None:
        cell.reason = f"the {'candidate' if c_row is None else 'reference'} arm is missing for this cell"
        return cell
    c_status, r_status = c_row.status, r_row.status
    if c_status != "ok" and r_status == "ok":  # the reference runs, the candidate fails: broken
        cell.verdict = BROKEN
        cell.reason = f"the reference arm is ok, the candidate {c_status}: {c_row.reason or ''}".rstrip(": ")
        return cell
    if c_status != "ok" or r_status != "ok":
        cell.reason = f"candidate {c_status}, reference {r_status}: nothing to compare"
        return cell
    common = sorted(set(c_pairs) & set(r_pairs))
    cell.pairs = len(common)
    if cell.pairs < MIN_PAIRS:
        cell.reason = (f"{cell.pairs} complete pair(s) (ok rounds with the same `pair` in both arms); needs >= "
                       f"{MIN_PAIRS}, {GATE_PROCESSES} recommended")
        return cell
    cell.cand_modes, cell.ref_modes = mode_mix(c_vals), mode_mix(r_vals)
    cell.cand_p50_ms, cell.ref_p50_ms = float(np.median(c_vals)), float(np.median(r_vals))
    if _same_process(c_row) and _same_process(r_row):
        cell.interleave = "blocks"
        cell.level = ratio_level([math.log(c_pairs[p] / r_pairs[p]) for p in common], confidence=1.0 - alpha)
        cell.p_value = cell.level.p_value if cell.level is not None else 1.0
        return cell
    pooled = mode_mix([*c_vals, *r_vals])
    if pooled is None:  # not reached: both arms hold >= MIN_PAIRS positive values
        cell.reason = "no positive per-process p50 in either arm"
        return cell
    thr = pooled.threshold_ms  # one threshold from both arms: swapping a pair's arms leaves it unchanged
    cell.mix = mix_mcnemar([(c_pairs[p] > thr, r_pairs[p] > thr) for p in common])
    cell.level = level_diff(c_vals, r_vals, confidence=1.0 - alpha)
    cell.miss_p = _miss_p(c_vals, r_vals)
    p_level = cell.level.p_value if cell.level is not None else 1.0
    p_mix = cell.mix.p_value if cell.mix is not None else 1.0
    cell.p_value = min(1.0, 2.0 * min(p_level, p_mix))
    return cell


# Below this chance of an arm missing the other's faster modes by luck, the arm moved as a whole. Why not alpha: the
# host's slow phases make misses cluster (consecutive processes slow together), so (1 - q)^n, which assumes
# independent processes, understates one missed mode (alpha / cells gave 3 alarm nights in 100 simulated A/A
# nights of 6 cells); a 1.5x or 2x slowdown puts the arm past two or more of the other's modes, q >= 0.6 and
# (1 - q)^20 < 1e-8, while a single missed mode (q <= 0.4) stays above 3e-5. A slowdown that lands exactly one mode
# up (+30% here) stays inconclusive: it looks like a miss, and more pairs decide it.
MISS_BOUND = 1e-6


def _miss_p(c_vals: list[float], r_vals: list[float]) -> float:
    """The chance that the slower-looking arm's processes all landed in slower modes than the other arm's fastest
    while both arms have one distribution: the other arm put a share q of its processes below the slower arm's
    fast level (its fast mode's lower edge, by the gap rule), and none of n landed there: (1 - q)^n. Not just the
    fast mode's share: a 2x slowdown puts the candidate's fast level on the reference's fourth mode, and the
    candidate missing the reference's first three modes by chance is what must be unlikely."""
    from common.stats.modes import GAP

    c_fast, r_fast = fast_members(c_vals), fast_members(r_vals)
    if not c_fast.size or not r_fast.size:
        return 1.0
    slow_vals, fast_vals = (c_vals, r_vals) if np.median(c_fast) >= np.median(r_fast) else (r_vals, c_vals)
    edge = float(np.median(fast_members(slow_vals))) / (1.0 + GAP)
    q = float(np.mean(np.asarray(fast_vals, float) < edge))
    return float((1.0 - q) ** len(slow_vals))


def _decide(cell: PairedCell, alpha: float, threshold: float, margin: float, miss_alpha: float) -> None:
    """The verdict of a tested cell from its Holm-adjusted p-value."""
    lv, mx, cm, rm = cell.level, cell.mix, cell.cand_modes, cell.ref_modes
    significant = cell.p_adjusted is not None and cell.p_adjusted < alpha
    # one arm's fastest processes on a slower mode of the other: the levels of two different modes, unless that
    # arm missing the other's faster modes is itself too unlikely (`miss_p` < miss_alpha): then the whole arm moved (a
    # +30% or 2x slowdown lands on a slower mode's level) and the level is judged. Without that bound a 2x
    # slowdown was inconclusive in 9 of 10 simulated cells.
    missed = cell.interleave != "blocks" and lv is not None and cm is not None and rm is not None \
        and (same_mode(cm, rm) or same_mode(rm, cm)) and (cell.miss_p is None or cell.miss_p >= miss_alpha)
    if significant and lv is not None and lv.p_value <= (mx.p_value if mx else 1.0) and \
            abs(lv.ratio - 1.0) > threshold and not missed:
        cell.judged.append("level")
    if significant and mx is not None and mx.p_value <= (lv.p_value if lv else 1.0) and \
            abs(mx.share_cand - mx.share_ref) >= MIX_THRESHOLD:
        cell.judged.append("mix")
    adj = f"Holm-adjusted p={cell.p_adjusted:.2g}" if cell.p_adjusted is not None else ""
    if cell.judged:
        slower = (lv.ratio > 1.0) if "level" in cell.judged and lv is not None else \
            (mx is not None and mx.share_cand > mx.share_ref)
        cell.verdict = REGRESSION if slower else IMPROVEMENT
        what = []
        if "level" in cell.judged and lv is not None:
            n = (f"{lv.n_cand} shared processes" if cell.interleave == "blocks"
                 else f"{lv.n_cand}/{lv.n_ref} fast-mode processes")
            what.append(f"level {100 * (lv.ratio - 1):+.1f}% [{100 * (lv.low - 1):+.1f}%, {100 * (lv.high - 1):+.1f}%]"
                        f" ({n})")
        if "mix" in cell.judged and mx is not None:
            what.append(f"slow-mode share {100 * mx.share_ref:.0f}% -> {100 * mx.share_cand:.0f}%")
        cell.decided_by = "; ".join(what) + f", {adj}"
        return
    if missed and cm is not None and rm is not None:
        cell.reason = (f"one arm's fastest processes sit on a slower mode of the other (candidate "
                       f"{cm.fast_ms:.4g} ms, {cm.n_fast} of {cm.n} in its fastest mode; reference "
                       f"{rm.fast_ms:.4g} ms, {rm.n_fast} of {rm.n}): the fast levels are not comparable, "
                       f"the mix shows no change ({adj}): add pairs")
        return
    if lv is None:
        cell.reason = "too few fast-mode processes to estimate the level (needs 3 over both arms): add pairs"
        return
    if lv.upper_95 - 1.0 < margin:
        cell.verdict = SAME
        cell.decided_by = (f"level {100 * (lv.ratio - 1):+.1f}%, a slowdown above {100 * (lv.upper_95 - 1):+.1f}% "
                           f"ruled out at 95% (margin {100 * margin:g}%); {adj}")
        return
    cell.reason = (f"level {100 * (lv.ratio - 1):+.1f}% is not significant ({adj}), but a slowdown up to "
                   f"{100 * (lv.upper_95 - 1):+.1f}% cannot be ruled out (margin {100 * margin:g}%): add pairs")


def judge_paired(run: Run | dict[str, Any], *, alpha: float = 0.01, threshold: float = 0.05,
                 margin: float = DEFAULT_MARGIN) -> PairedJudgement:
    """The verdict of every cell of a paired run, Holm across cells at family-wise `alpha`."""
    if not 0.0 < alpha < 0.5:
        raise UserError(f"alpha {alpha}: must be between 0 and 0.5")
    if not 0.0 < threshold <= margin:
        raise UserError(f"--threshold {threshold} / --margin {margin}: need 0 < threshold <= margin")
    typed = _typed(run)
    rows = paired_rows(typed)
    cells = [_judge_cell(k, c, r, alpha) for k, (c, r) in sorted(rows.items())]
    tested = [c for c in cells if c.p_value is not None]
    for c, adj in zip(tested, holm([c.p_value for c in tested if c.p_value is not None]), strict=True):
        c.p_adjusted = adj
    for c in tested:
        _decide(c, alpha, threshold, margin, miss_alpha=MISS_BOUND)
    return PairedJudgement(typed.run_id, alpha, threshold, margin, cells)


def inconclusive_cells(run: Run | dict[str, Any], *, alpha: float = 0.01, threshold: float = 0.05,
                       margin: float = DEFAULT_MARGIN) -> list[CellKey]:
    """The cells a runner should add pairs to (inconclusive), as Pinpoint adds repeats while UNKNOWN."""
    return [c.key for c in judge_paired(run, alpha=alpha, threshold=threshold, margin=margin).inconclusive]

