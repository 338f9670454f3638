"""Regression test between runs, per cell (backend, variant, device, scenario, batch size).

Every compared cell ends in exactly one verdict, and `bench compare` exits by them (`Comparison.exit_code`):
regression (1), improvement, no change, inconclusive with its reason (3: too few processes or runs, every process
noisy, candidate missing/unavailable/error, baseline missing), or broken (1: ok before, now error/timeout/
unavailable). A cell neither run measured (e.g. TensorRT without a GPU in both) is listed, not compared. The gate
never passes when it cannot tell: exit 0 needs every compared cell tested and none regressed.

All samples of one process share one machine state, so the unit of a latency test is a process or a run, never
a sample (asv `rounds` + `_stats.is_different`, pyperf worker processes, Google Benchmark repetitions). Every
process counts the same way: a process marked noisy is counted like any other (never "dropped unless that leaves
too few"); a side whose processes are all noisy is inconclusive.
A run's value of a cell, what the gate judges, is its LEVEL: the fast mode of its per-process p50s
(`common.stats.modes`: at 2 threads processes land in 3-4 modes and the mix changes per run, so the median over
processes moves 6-17% between runs while the fast mode moves 0.5%); the median stays the typical latency in the
tables (`base_p50_ms`, `cand_p50_ms`). The MIX (share of processes outside the fast mode) is tested with Fisher's
exact test and shown; between two nights it moves beyond binomial, so across runs it does not gate (it does in
`--paired`, `harness.gate.paired`). Holm's step-down correction over every test of the comparison (each cell's
latency and accuracy) makes "alpha" the false-alarm rate of the whole `bench compare`, not of each cell.
* one baseline run (`--baseline A --candidate B`): the change
  B / A is judged against this machine's run-to-run noise learned from same-config reruns (`harness.gate.baseline`:
  the t-corrected A/A bound, or inconclusive without enough A/A history unless beyond +50% / -33%) AND the
  practical `threshold`.
* several baseline runs (`--history`): runs are the unit, over the cell's series of run p50s (oldest first, the
  candidate last), from its latest accepted change on (`bench accept`): Otava-style change points, outliers set
  aside, the candidate's level against the reference level (`harness.gate.history`).
Mann-Whitney U over the pooled raw samples is reported as a diagnostic column only: on thousands of samples it
gives p ~ 0 for any machine-state difference (measured: p50 0.25 vs 0.33 ms between runs minutes apart).
Accuracy: both runs score the same test images, so the test is paired: McNemar's exact test on the per-image
correctness (`correct_bits`) of one reference run (the baseline, or the first run of the history since the latest
acceptance; never a pool of runs) and the candidate, at `alpha`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu

from common.errors import UserError
from common.records import Round, Row, Run, as_row, as_run
from common.results import config_hash, fingerprint_id, is_reference
from common.stats.accuracy import counts_from_confusion, mcnemar, mcnemar_min_pvalue, unpack_correct
from common.stats.levels import MixTest, holm, mix_fisher
from common.stats.modes import FAST_WIDTH, mode_mix
from harness.gate import DEFAULT_MARGIN
from harness.gate.baseline import baseline_verdict
from harness.gate.history import CI_LEVEL as HISTORY_CI_LEVEL
from harness.gate.history import HistoryVerdict, history_quality, history_verdict

CellKey = tuple[str, str, str, str, int]  # backend, variant, device, scenario, batch_size

REGRESSION, IMPROVEMENT, SAME = "regression", "improvement", "no change"
BROKEN, INCONCLUSIVE = "regression (broken)", "inconclusive"
NOT_MEASURED = "not measured"  # neither run measured the cell (e.g. unavailable in both): listed, not compared
UNTESTED = INCONCLUSIVE  # the old name: a cell that was not tested is inconclusive, never a pass
EXIT_OK, EXIT_REGRESSION, EXIT_INCONCLUSIVE = 0, 1, 3
MIN_SAMPLES = 5  # fewer raw samples than this on either side: the Mann-Whitney diagnostic is not run
LEVEL_STATISTIC = "fast-mode level (median of the fast mode's per-process p50s)"
CORRECTION = "holm"


def cell_key(row: Row | dict[str, Any]) -> CellKey:
    """The identity of a measurement cell across runs."""
    r = as_row(row)
    return r.backend, r.variant, str(r.device or ""), r.scenario, int(r.batch_size or 1)


def _run_tag(row: Row) -> str | None:
    """The id of the run a row came from, as `compare_runs` tags it (`_run_id`, an undeclared key kept as an
    extra of the record); None on an untagged row."""
    tag = getattr(row, "_run_id", None)
    return None if tag is None else str(tag)


def cell_label(key: CellKey) -> str:
    backend, variant, device, scenario, batch = key
    dev = f"[{device}]" if device and device != "cpu" else ""
    return f"{backend}{dev}/{variant} {scenario} b{batch}"


@dataclass
class CellComparison:
    """The verdict for one cell; numbers are None where a side has none. `reason` says why a verdict is
    inconclusive (or what broke), in one line."""

    key: CellKey
    latency: str = INCONCLUSIVE
    accuracy: str = NOT_MEASURED
    reason: str = ""
    base_status: str | None = None
    cand_status: str | None = None
    base_p50_ms: float | None = None
    cand_p50_ms: float | None = None
    rel_change: float | None = None  # of the level (the statistic judged)
    base_level_ms: float | None = None  # the fast-mode level judged (history: the reference level's mean)
    cand_level_ms: float | None = None
    statistic: str = LEVEL_STATISTIC
    judged: str = ""  # what decided a change: "level" (across runs the mix does not gate)
    gate_p: float | None = None  # the latency test's p-value (two-sided)
    gate_p_adjusted: float | None = None  # after Holm over every test of the comparison
    accuracy_p_adjusted: float | None = None
    mix: MixTest | None = None  # slow-mode shares and Fisher's exact test: shown, not gating across runs
    p_value: float | None = None  # Mann-Whitney U over the pooled raw samples: a diagnostic, not the gate
    base_n: int = 0
    cand_n: int = 0
    method: str = ""  # "processes" (one baseline run) or "runs" (a history series)
    ratio_ci: list[float] | None = None  # the interval of cand/base behind the verdict
    ci_level: float | None = None  # its confidence level
    base_processes: int = 0
    cand_processes: int = 0
    series_ms: list[float] | None = None  # runs: the cell's run p50s, oldest first, candidate last
    series_runs: list[str] | None = None  # runs: their run ids
    history: HistoryVerdict | None = None  # runs: the change points, outliers and reference behind the verdict
    aa_runs: int = 0  # the A/A history: same-config runs of this cell on this machine
    aa_df: int = 0
    aa_sigma: float | None = None  # run-to-run sd of log values
    aa_pairs: int = 0  # comparisons the rule was replayed on in that history
    aa_false_alarms: int = 0  # of them flagged although nothing changed
    aa_inconclusive: int = 0  # of them the rule could not judge (refused to pass)
    upper: float | None = None  # "no change": the one-sided 95% upper bound of the change, below the margin
    mde: float | None = None  # smallest slowdown the rule detects with 90% power at its alpha
    decided_by: str = ""
    base_accuracy: float | None = None
    cand_accuracy: float | None = None
    accuracy_p_value: float | None = None
    accuracy_decided_by: str = ""
    accuracy_reason: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def compared(self) -> bool:
        return self.latency != NOT_MEASURED

    @property
    def is_regression(self) -> bool:
        return self.latency in (REGRESSION, BROKEN) or self.accuracy == REGRESSION

    @property
    def is_inconclusive(self) -> bool:
        return self.compared and not self.is_regression and INCONCLUSIVE in (self.latency, self.accuracy)

    def why(self) -> str:
        """One line: the reason of an inconclusive or broken verdict (latency first, then accuracy)."""
        parts = [f"latency: {self.reason}" if self.reason and self.latency in (INCONCLUSIVE, BROKEN) else "",
                 f"accuracy: {self.accuracy_reason}" if self.accuracy == INCONCLUSIVE and self.accuracy_reason
                 else ""]
        return "; ".join(p for p in parts if p)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        backend, variant, device, scenario, batch = self.key
        d.pop("key")
        return {"backend": backend, "variant": variant, "device": device, "scenario": scenario,
                "batch_size": batch, "regression": self.is_regression, "inconclusive": self.is_inconclusive, **d}


@dataclass
class Comparison:
    """All cells compared, with what was compared against what."""

    baseline_ids: list[str]
    candidate_id: str
    threshold: float
    alpha: float
    cells: list[CellComparison]
    warnings: list[str] = field(default_factory=list)
    margin: float = DEFAULT_MARGIN
    tests: int = 0  # tests in the Holm family

    def family(self) -> str:
        return (f"Holm over {self.tests} test(s) (latency and accuracy of every cell): the chance of any false "
                f"alarm in this comparison is <= {self.alpha:g}")

    @property
    def regressions(self) -> list[CellComparison]:
        return [c for c in self.cells if c.is_regression]

    @property
    def inconclusive(self) -> list[CellComparison]:
        return [c for c in self.cells if c.is_inconclusive]

    def exit_code(self, allow_inconclusive: bool = False) -> int:
        """1 on any regression; else 3 when a compared cell could not be tested (0 with `allow_inconclusive`);
        else 0: every compared cell was tested and none regressed."""
        if self.regressions:
            return EXIT_REGRESSION
        if self.inconclusive and not allow_inconclusive:
            return EXIT_INCONCLUSIVE
        return EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline_ids,
            "candidate": self.candidate_id,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "margin": self.margin,
            "correction": CORRECTION,
            "family_wise_alpha": self.alpha,
            "family": self.family(),
            "level_statistic": LEVEL_STATISTIC,
            "regressions": len(self.regressions),
            "inconclusive": len(self.inconclusive),
            "improvements": sum(1 for c in self.cells if IMPROVEMENT in (c.latency, c.accuracy)),
            "exit_code": self.exit_code(),
            "warnings": self.warnings,
            "cells": [c.to_dict() for c in self.cells],
        }


def samples_diagnostic(base: Sequence[float], cand: Sequence[float]) -> float | None:
    """Mann-Whitney U p-value over two runs' raw samples (None with < MIN_SAMPLES on a side): shown, never gates."""
    b = np.asarray(base, dtype=np.float64)
    c = np.asarray(cand, dtype=np.float64)
    b, c = b[np.isfinite(b)], c[np.isfinite(c)]
    if len(b) < MIN_SAMPLES or len(c) < MIN_SAMPLES:
        return None
    return float(mannwhitneyu(c, b, alternative="two-sided").pvalue)


def _rounds(row: Row) -> list[Round]:
    return [r for r in row.rounds or [] if r.p50_ms is not None]


def process_p50s(row: Row | dict[str, Any]) -> list[float]:
    """The row's per-process p50s, every process counted the same way (noisy or not); a row of an older harness
    without rounds counts as one process (the median of its samples)."""
    r = as_row(row)
    rounds = _rounds(r)
    if rounds:
        return [float(x.p50_ms) for x in rounds if x.p50_ms is not None]
    samples = [float(x) for x in r.samples_ms or []]
    if samples:
        return [float(np.median(samples))]
    p50 = r.p50()
    return [float(p50)] if p50 is not None else []


def all_noisy(row: Row | dict[str, Any]) -> bool:
    """True when the row has processes and every one of them was marked noisy (steal or foreign load)."""
    rounds = _rounds(as_row(row))
    return bool(rounds) and all(r.noisy for r in rounds)


def run_p50(row: Row | dict[str, Any]) -> float | None:
    """A run's typical latency of a cell (for tables): the median of its per-process p50s."""
    vals = process_p50s(row)
    return float(np.median(vals)) if vals else None


def run_level(row: Row | dict[str, Any]) -> float | None:
    """A run's value of a cell for the gate: the fast-mode level of its per-process p50s."""
    mm = mode_mix(process_p50s(row))
    return mm.fast_ms if mm is not None else None


def _order(k: CellKey) -> tuple[str, str, str, bool, int]:
    return k[0], k[1], k[2], k[3] != "latency", k[4]


def _status_verdict(cc: CellComparison, b_rows: list[Row], c_row: Row | None) -> bool:
    """Settle the cells that cannot be measured against each other (missing or failed on a side); True if settled.

    Not ok on both sides: not measured, not compared. Ok before, now error/timeout/unavailable: broken (a
    regression). Missing candidate, missing baseline, or a failed side otherwise: inconclusive, with the reason."""
    b_ok = any(r.status == "ok" for r in b_rows)
    if c_row is None:
        cc.latency = INCONCLUSIVE if b_ok else NOT_MEASURED
        cc.reason = "candidate missing: the cell is not in the candidate run"
        return True
    if cc.cand_status != "ok":
        why = str(c_row.reason or "").strip()
        if b_ok:
            cc.latency = BROKEN
            cc.reason = f"was ok, now {cc.cand_status}" + (f": {why}" if why else "")
        elif b_rows:
            cc.latency = NOT_MEASURED
            cc.reason = f"not measured in either run (candidate {cc.cand_status}, baseline {cc.base_status})"
        else:
            cc.latency = INCONCLUSIVE
            cc.reason = f"candidate {cc.cand_status}" + (f": {why}" if why else "") + "; baseline missing"
        return True
    if not b_rows:
        cc.latency = INCONCLUSIVE
        cc.reason = "baseline missing: a new cell, not in the baseline run(s)"
        return True
    if not b_ok:
        cc.latency = INCONCLUSIVE
        cc.reason = f"baseline {cc.base_status}: nothing to compare the candidate with"
        return True
    return False


def compare_cells(
    baseline_rows: Sequence[Row | dict[str, Any]],
    candidate_rows: Sequence[Row | dict[str, Any]],
    *,
    threshold: float = 0.05,
    alpha: float = 0.01,
    accepted: Sequence[Mapping[str, Any]] = (),
    history: bool | None = None,
    aa_values: Mapping[CellKey, Sequence[Sequence[float]]] | None = None,
    quality: bool = True,
    margin: float = DEFAULT_MARGIN,
) -> list[CellComparison]:
    """Compare candidate cells with baseline cells. One baseline row per cell: processes are the unit; several
    (a history, oldest first, each row with its run's id in `_run_id`): runs are the unit. `accepted`: the stored
    acceptances (`bench accept`; run_id plus optional backend/variant/device/scenario/batch_size filters).
    `history`: runs as the unit (`--history`) even with one earlier run; None: when there are several.
    `aa_values`: per cell, groups of same-config run values on this machine (oldest first): the A/A history.
    `quality`: also replay the rule on that history (false alarms, MDE); `bench gate validate` turns it off.
    `margin`: the largest slowdown a "no change" may hide (beyond it an unsignificant change is inconclusive)."""
    base: dict[CellKey, list[Row]] = {}
    for r in map(as_row, baseline_rows):  # a reference arm is judged within its run (--paired), never across runs
        if not is_reference(r):
            base.setdefault(cell_key(r), []).append(r)
    cand: dict[CellKey, Row] = {cell_key(r): r for r in map(as_row, candidate_rows) if not is_reference(r)}
    out: list[CellComparison] = []
    for key in sorted(set(base) | set(cand), key=_order):
        cc = CellComparison(key=key)
        b_rows, c_row = base.get(key, []), cand.get(key)
        b_ok = [r for r in b_rows if r.status == "ok"]
        cc.base_status = "ok" if b_ok else (b_rows[-1].status if b_rows else None)
        cc.cand_status = c_row.status if c_row else None
        out.append(cc)
        if _status_verdict(cc, b_rows, c_row) or c_row is None:
            continue
        b_samples = [s for r in b_ok for s in (r.samples_ms or [])]
        c_samples = list(c_row.samples_ms or [])
        cc.base_n, cc.cand_n = len(b_samples), len(c_samples)
        cc.p_value = samples_diagnostic(b_samples, c_samples)
        cc.cand_p50_ms = run_p50(c_row)
        if not (history if history is not None else len(b_ok) > 1):  # one baseline run: processes are the unit
            _process_cell(cc, b_ok[0], c_row, threshold, alpha, (aa_values or {}).get(key, ()), quality, margin)
        else:  # a history: runs are the unit
            _history_cell(cc, b_ok, c_row, threshold, accepted, quality, margin)
        if any(r.valid is False for r in [*b_ok, c_row]):
            cc.notes.append("an INVALID measurement is involved")
        ref = b_ok[0]
        if cc.method == "runs":  # one reference run: the first since the latest acceptance
            start = accepted_start(key, [_run_tag(r) or "" for r in b_ok] + [str(_run_tag(c_row))], accepted)
            ref = b_ok[start] if start < len(b_ok) else c_row
        _compare_accuracy(cc, ref, c_row, alpha, f"run {_run_tag(ref) or 'baseline'}")
    apply_holm(out, alpha, margin)
    return out


def holm_tests(cells: Sequence[CellComparison]) -> list[tuple[CellComparison, str, float]]:
    """The family of a comparison: every cell's latency test and accuracy test that gave a p-value."""
    return [*((c, "latency", c.gate_p) for c in cells if c.gate_p is not None),
            *((c, "accuracy", c.accuracy_p_value) for c in cells if c.accuracy_p_value is not None)]


def apply_holm(cells: Sequence[CellComparison], alpha: float, margin: float) -> None:
    """Holm's step-down over every test of the comparison: a change stays called only where its adjusted p-value
    is below alpha (so alpha bounds the chance of any false alarm in the whole comparison, whatever the cells
    share: a night effect slows them all). A latency change that does not survive is "no change" when a slowdown
    beyond the margin is ruled out, else inconclusive; an accuracy change that does not survive is no change."""
    tests = holm_tests(cells)
    for (c, kind, _p), adj in zip(tests, holm([p for _c, _k, p in tests]), strict=True):
        if kind == "latency":
            c.gate_p_adjusted = adj
            if c.latency in (REGRESSION, IMPROVEMENT):
                if adj < alpha:
                    c.judged = "level"
                    continue
                survived = f"p={c.gate_p:.2g} is not significant after Holm over {len(tests)} tests " \
                           f"(adjusted p={adj:.2g} >= alpha {alpha:g})"
                if c.upper is not None and c.upper < margin:
                    c.latency = SAME
                    c.notes.append(survived)
                else:
                    c.latency, c.reason = INCONCLUSIVE, survived + "; a slowdown beyond the margin is not ruled out"
        else:
            c.accuracy_p_adjusted = adj
            if c.accuracy in (REGRESSION, IMPROVEMENT) and adj >= alpha:
                c.accuracy = SAME
                c.notes.append(f"accuracy: McNemar p={_p:.2g}, adjusted p={adj:.2g} after Holm: not significant")


def _process_cell(cc: CellComparison, b_row: Row, c_row: Row, threshold: float, alpha: float,
                  aa_groups: Sequence[Sequence[float]], quality: bool = True,
                  margin: float = DEFAULT_MARGIN) -> None:
    b_vals, c_vals = process_p50s(b_row), process_p50s(c_row)
    cc.method, cc.base_processes, cc.cand_processes = "processes", len(b_vals), len(c_vals)
    cc.base_p50_ms = float(np.median(b_vals)) if b_vals else None
    bm, cm = mode_mix(b_vals), mode_mix(c_vals)
    cc.base_level_ms = bm.fast_ms if bm else None
    cc.cand_level_ms = cm.fast_ms if cm else None
    if bm is not None and cm is not None:
        cc.mix = mix_fisher(cm, bm)
    noisy = [side for side, row in (("baseline", b_row), ("candidate", c_row)) if all_noisy(row)]
    if noisy:
        cc.latency = INCONCLUSIVE
        cc.reason = f"every process of the {' and the '.join(noisy)} was noisy (steal or foreign load)"
        return
    v = baseline_verdict(b_vals, c_vals, aa_groups, threshold, alpha, replay=quality, margin=margin)
    cc.latency, cc.rel_change, cc.decided_by, cc.reason = v.verdict, v.rel_change, v.decided_by, v.reason
    cc.ratio_ci = [1.0 + v.ci[0], 1.0 + v.ci[1]] if v.ci else None
    cc.ci_level, cc.mde, cc.aa_pairs, cc.aa_false_alarms = v.ci_level, v.mde, v.aa_pairs, v.aa_alarms
    cc.aa_inconclusive, cc.upper, cc.gate_p = v.aa_inconclusive, v.upper, v.p_value
    if v.noise is not None:
        cc.aa_runs, cc.aa_df, cc.aa_sigma = v.noise.runs, v.noise.df, v.noise.sigma


def accepted_start(key: CellKey, run_ids: Sequence[str], accepted: Sequence[Mapping[str, Any]]) -> int:
    """Index in `run_ids` of the newest run accepted for this cell (0 when none): the series starts there."""
    names = ("backend", "variant", "device", "scenario", "batch_size")
    hits = [i for i, rid in enumerate(run_ids) for a in accepted
            if a.get("run_id") == rid and all(a.get(n) in (None, "", v) for n, v in zip(names, key, strict=True))]
    return max(hits, default=0)


def _history_cell(cc: CellComparison, b_ok: list[Row], c_row: Row, threshold: float,
                  accepted: Sequence[Mapping[str, Any]], quality: bool = True,
                  margin: float = DEFAULT_MARGIN) -> None:
    cc.method = "runs"
    pairs = [(_run_tag(r) or "", v) for r in b_ok if (v := run_level(r)) is not None and v > 0]
    typical = [v for r in b_ok if (v := run_p50(r)) is not None]
    cc.base_p50_ms = float(np.median(typical)) if typical else None
    cc.cand_level_ms = run_level(c_row)
    if all_noisy(c_row):
        cc.latency = INCONCLUSIVE
        cc.reason = "every process of the candidate was noisy (steal or foreign load)"
        return
    if cc.cand_level_ms is None or cc.cand_level_ms <= 0:
        cc.latency, cc.reason = INCONCLUSIVE, "the candidate row has no latency values"
        return
    tag = _run_tag(c_row)
    ids = [rid for rid, _ in pairs] + ["candidate" if tag is None else tag]
    cc.series_ms = [*(v for _, v in pairs), cc.cand_level_ms]
    cc.series_runs = ids
    start = accepted_start(cc.key, ids, accepted)
    hv = history_verdict(cc.series_ms, threshold, start=start, run_ids=ids, margin=margin)
    cc.history, cc.upper, cc.gate_p = hv, hv.upper, hv.p_value
    cc.latency, cc.rel_change, cc.decided_by, cc.reason = hv.verdict, hv.rel_change, hv.decided_by, hv.reason
    cc.ratio_ci = [1.0 + hv.ci[0], 1.0 + hv.ci[1]] if hv.ci else None
    cc.ci_level = HISTORY_CI_LEVEL if hv.ci else None
    if hv.reference:
        ref = cc.series_ms[hv.reference[0]:hv.reference[1]]
        cc.base_level_ms = float(np.mean(ref))
        if quality:
            cc.aa_pairs, cc.aa_false_alarms, cc.mde = history_quality(cc.series_ms, hv.reference, threshold)
        cc.aa_runs, cc.aa_df = len(ref), len(ref) - 1
        cc.aa_sigma = float(np.std(np.log(ref), ddof=1)) if len(ref) > 1 else None
    if start:
        cc.notes.append(f"series from the accepted run {start + 1} ({ids[start]}) on")


def _accuracy_of(row: Row) -> tuple[float | None, tuple[int, int] | None, np.ndarray | None]:
    """(accuracy, (correct, total) from the confusion matrix, per-image correctness) of a row."""
    bits = row.correct_bits.model_dump() if row.correct_bits is not None else None  # unpack_correct reads JSON
    return (float(row.accuracy) if row.accuracy is not None else None, counts_from_confusion(row.confusion),
            unpack_correct(bits))


def _compare_accuracy(cc: CellComparison, ref_row: Row, c_row: Row, alpha: float,
                      ref_name: str) -> None:
    """McNemar's exact test between the reference run's and the candidate's predictions on the same images (one
    reference run: across a history the first run since the latest acceptance, never a pool of runs). Rows
    without per-image correctness (older runs) are decided only where no pairing could change the answer."""
    (ra, rcnt, rbits), (ca, ccnt, cbits) = _accuracy_of(ref_row), _accuracy_of(c_row)
    cc.base_accuracy, cc.cand_accuracy = ra, ca
    if ca is None:
        cc.accuracy = NOT_MEASURED
        return
    if ra is None:
        cc.accuracy, cc.accuracy_reason = INCONCLUSIVE, f"no accuracy in the reference run {ref_name}"
        return
    r_lab = ref_row.correct_bits.labels if rbits is not None and ref_row.correct_bits is not None else None
    c_lab = c_row.correct_bits.labels if cbits is not None and c_row.correct_bits is not None else None
    if rbits is not None and cbits is not None and rbits.size == cbits.size and r_lab == c_lab:
        m = mcnemar(rbits, cbits)
        cc.accuracy_p_value = m.p_value
        cc.accuracy_decided_by = (f"McNemar exact vs {ref_name}: {m.lost} images lost, {m.gained} gained of {m.n}, "
                                  f"p={m.p_value:.2g}")
        cc.accuracy = SAME if m.p_value >= alpha else (REGRESSION if m.change < 0 else IMPROVEMENT)
        return
    if rcnt is None or ccnt is None or rcnt[1] != ccnt[1] or (rbits is not None and cbits is not None):
        cc.accuracy, cc.accuracy_reason = INCONCLUSIVE, (f"the candidate and {ref_name} scored different test sets; "
                                                         "no paired test")
        return
    net = ccnt[0] - rcnt[0]
    p_min = mcnemar_min_pvalue(net)
    if p_min >= alpha:  # no pairing of the predictions could make this change significant
        cc.accuracy, cc.accuracy_p_value = SAME, 1.0 if net == 0 else None
        cc.accuracy_decided_by = f"net {net:+d} images vs {ref_name}: below any significant McNemar result"
        return
    cc.accuracy = INCONCLUSIVE
    cc.accuracy_reason = (f"net {net:+d} images vs {ref_name}, but no per-image correctness stored (a run of an older "
                          "bench): McNemar's paired test needs it")


def code_version(run: Run | dict[str, Any]) -> str | None:
    """The code a run measured with: the git commit its fingerprint recorded (`fingerprint.git.commit`); a run from
    a dirty tree is its own version (its uncommitted edits are unknown), None when no commit was recorded."""
    r = as_run(run)
    git = getattr(r.fingerprint, "git", None)  # free-form part of the fingerprint: a plain dict, not a record
    commit = git.get("commit") if isinstance(git, dict) else None
    if not isinstance(commit, str) or not commit:
        return None
    return f"{commit}+dirty:{r.run_id}" if isinstance(git, dict) and git.get("dirty") else commit


def _drop_missed(vals: list[float]) -> list[float]:
    """A group's run levels without the runs whose fast level sits a mode above the group's (they missed the fast
    mode: a mix event, not level noise, and one of them would inflate the noise 30-fold)."""
    if len(vals) < 3:
        return vals
    low = float(np.median(vals))
    return [v for v in vals if v <= low * (1.0 + FAST_WIDTH)]


def aa_values(groups: Sequence[Sequence[Run | dict[str, Any]]]) -> dict[CellKey, list[list[float]]]:
    """Per cell, the run levels of each group of same-config runs of the same code (each group oldest first; ok
    rows only). Runs of different code never pool as A/A noise: a group is split by `code_version`; runs that
    recorded no commit (older runs) pool by config alone, a limitation the docs state."""
    out: dict[CellKey, list[list[float]]] = {}
    for g in groups:
        per: dict[tuple[CellKey, str | None], list[float]] = {}
        for run in sorted(map(as_run, g), key=lambda r: r.created):
            version = code_version(run)
            for row in run.results:
                if is_reference(row):
                    continue
                if row.status == "ok" and (v := run_level(row)) is not None and v > 0:
                    per.setdefault((cell_key(row), version), []).append(v)
        for (k, _version), vals in per.items():
            out.setdefault(k, []).append(_drop_missed(vals))
    return out


def _fingerprint_id(run: Run) -> str:
    """`common.results.fingerprint_id` of a record: it reads the stored JSON, so it gets the fingerprint as stored
    (the keys it was written with, no defaults added)."""
    fp = run.fingerprint.model_dump(exclude_unset=True) if run.fingerprint is not None else None
    return fingerprint_id({"fingerprint": fp})


def _config_hash(run: Run) -> str:
    return config_hash({"config_hash": run.config_hash, "config": run.config})


def check_comparable(baselines: Sequence[Run | dict[str, Any]], candidate: Run | dict[str, Any],
                     allow_mismatch: bool) -> list[str]:
    """UserError if the hardware fingerprints differ (unless allowed); warnings for other differences."""
    warnings: list[str] = []
    cand = as_run(candidate)
    fp_c = _fingerprint_id(cand)
    for b in map(as_run, baselines):
        fp_b = _fingerprint_id(b)
        if fp_b != fp_c:
            msg = (f"run {b.run_id} has fingerprint {fp_b} but run {cand.run_id} has "
                   f"{fp_c}: results from different machines/software are not comparable")
            if not allow_mismatch:
                raise UserError(msg + " (pass --allow-hardware-mismatch to compare anyway)")
            warnings.append(msg)
        if _config_hash(b) != _config_hash(cand):
            warnings.append(f"run {b.run_id} used a different config ({_config_hash(b)} vs {_config_hash(cand)})")
    return warnings


def compare_runs(
    baselines: Sequence[Run | dict[str, Any]],
    candidate: Run | dict[str, Any],
    *,
    threshold: float = 0.05,
    alpha: float = 0.01,
    allow_hardware_mismatch: bool = False,
    accepted: Sequence[Mapping[str, Any]] = (),
    history: bool | None = None,
    aa_history: Sequence[Sequence[Run | dict[str, Any]]] = (),
    quality: bool = True,
    margin: float = DEFAULT_MARGIN,
) -> Comparison:
    """Compare `candidate` with one baseline run (processes as the unit) or several (runs as the unit)."""
    if not baselines:
        raise UserError("nothing to compare against: no baseline run")
    if not 0.0 < threshold < 10.0:
        raise UserError(f"--threshold {threshold}: must be a relative change between 0 and 10 (0.05 = 5%)")
    if not 0.0 < alpha < 0.5:
        raise UserError(f"alpha {alpha}: must be between 0 and 0.5")
    if not threshold <= margin < 10.0:
        raise UserError(f"--margin {margin}: must be at least the threshold ({threshold}) and below 10 "
                        "(0.10 = a pass may hide at most a 10% slowdown)")
    runs, cand = [as_run(b) for b in baselines], as_run(candidate)  # each run parsed once
    warnings = check_comparable(runs, cand, allow_hardware_mismatch)
    ids = [b.run_id for b in runs]
    if cand.run_id in ids:
        warnings.append(f"run {cand.run_id} is compared with itself")
    ordered = sorted(runs, key=lambda b: b.created)  # a series runs oldest first
    # each row tagged with its run's id (`_run_id`, an extra of the record); a shallow copy, the stored row unchanged
    rows = [r.model_copy(update={"_run_id": b.run_id}) for b in ordered for r in b.results]
    cand_rows = [r.model_copy(update={"_run_id": cand.run_id}) for r in cand.results]
    cells = compare_cells(rows, cand_rows, threshold=threshold, alpha=alpha, accepted=accepted, history=history,
                          aa_values=aa_values(aa_history), quality=quality, margin=margin)
    return Comparison(ids, cand.run_id, threshold, alpha, cells, warnings, margin,
                      tests=len(holm_tests(cells)))
