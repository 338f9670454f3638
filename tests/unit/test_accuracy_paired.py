"""Accuracy, paired: per-image correctness stored compactly per row, McNemar's exact test between two runs on the
same images, one reference run across a history; where the unpaired z-test and the paired test disagree."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest, norm

from common.stats.accuracy import (
    mcnemar,
    mcnemar_min_pvalue,
    mcnemar_pvalue,
    pack_correct,
    unpack_correct,
)
from harness.gate.regression import INCONCLUSIVE, REGRESSION, SAME, compare_runs
from harness.measure.rows import attach_correctness, load_logits

LABELS = np.repeat(np.arange(7), 300)
CELL = ("openvino", "l1-int8")


def _z_test_p(c1: int, c2: int, n: int) -> float:
    """The unpaired two-proportion z-test the gate used before (same n on both sides), for the comparison."""
    p1, p2, pooled = c1 / n, c2 / n, (c1 + c2) / (2 * n)
    se = math.sqrt(pooled * (1 - pooled) * 2 / n)
    return float(2 * norm.sf(abs(p1 - p2) / se))


def test_correctness_packs_to_a_few_hundred_characters_and_back() -> None:
    rng = np.random.default_rng(0)
    correct = rng.random(2100) < 0.85
    packed = pack_correct(correct, LABELS)
    assert packed["n"] == 2100 and len(packed["bits"]) == 352  # 263 bytes, base64
    back = unpack_correct(packed)
    assert back is not None and np.array_equal(back, correct)
    assert unpack_correct({"n": 2100, "bits": "!!"}) is None and unpack_correct(None) is None
    assert unpack_correct({**packed, "n": 9999}) is None


def test_mcnemar_is_the_exact_binomial_test_on_the_discordant_pairs() -> None:
    ref = np.zeros(100, dtype=bool)
    ref[:60] = True
    cand = ref.copy()
    cand[:12] = False  # 12 lost
    cand[60:64] = True  # 4 gained
    m = mcnemar(ref, cand)
    assert (m.lost, m.gained, m.n) == (12, 4, 100)
    assert m.p_value == pytest.approx(binomtest(4, 16, 0.5).pvalue) and m.change == pytest.approx(-0.08)
    assert mcnemar_pvalue(0, 0) == 1.0 and mcnemar_pvalue(21, 0) == pytest.approx(2 * 0.5**21)
    assert mcnemar_min_pvalue(0) == 1.0 and mcnemar_min_pvalue(5) == pytest.approx(0.0625)


def test_paired_and_unpaired_disagree_on_a_consistent_loss() -> None:
    """21 of 2100 images lost and none gained: the z-test sees 85.0% vs 84.0% (p ~ 0.37, "no change"); the pairs
    show a real change (p ~ 1e-6)."""
    ref = np.zeros(2100, dtype=bool)
    ref[:1785] = True
    cand = ref.copy()
    cand[:21] = False
    assert _z_test_p(int(ref.sum()), int(cand.sum()), 2100) > 0.3
    assert mcnemar(ref, cand).p_value < 1e-5


def test_paired_and_unpaired_agree_when_errors_only_move_around() -> None:
    """Many images swap, the net change is the same 21: unpaired and paired both say no change here."""
    ref = np.zeros(2100, dtype=bool)
    ref[:1785] = True
    cand = ref.copy()
    cand[:100] = False  # 100 lost
    cand[1785:1864] = True  # 79 gained
    assert _z_test_p(int(ref.sum()), int(cand.sum()), 2100) > 0.3 and mcnemar(ref, cand).p_value > 0.1


def _with_bits(run: dict, correct: np.ndarray) -> dict:
    run = copy.deepcopy(run)
    for r in run["results"]:
        if (r["backend"], r["variant"]) == CELL and r["status"] == "ok":
            r["correct_bits"] = pack_correct(correct, LABELS)
            r["accuracy"] = float(correct.mean())
    return run


def test_the_gate_calls_the_consistent_loss_a_regression(make_run) -> None:
    ref = np.zeros(2100, dtype=bool)
    ref[:1785] = True
    cand = ref.copy()
    cand[:21] = False
    base = _with_bits(make_run("a", seed=1), ref)
    lost = _with_bits(make_run("b", seed=2, created="2026-01-11T00:00:00Z"), cand)
    cell = next(c for c in compare_runs([base], lost).cells if c.key[:2] == CELL and c.key[3] == "latency")
    assert cell.accuracy == REGRESSION and "21 images lost, 0 gained of 2100" in cell.accuracy_decided_by


def test_a_history_compares_with_one_reference_run_never_a_pool(make_run) -> None:
    """Across a history the reference is the first run (since the latest acceptance): the same images are never
    counted twice. The drop happened at run 3; the candidate is compared with run 1, not with runs 1-4 pooled."""
    ref = np.zeros(2100, dtype=bool)
    ref[:1785] = True
    low = ref.copy()
    low[:30] = False
    runs = [_with_bits(make_run(f"h{i}", seed=i, created=f"2026-01-0{i + 1}T00:00:00Z"), ref if i < 2 else low)
            for i in range(5)]
    cmp = compare_runs(runs[:4], runs[4], history=True)
    cell = next(c for c in cmp.cells if c.key[:2] == CELL and c.key[3] == "latency")
    assert cell.accuracy == REGRESSION and "vs run h0: 30 images lost" in cell.accuracy_decided_by
    accepted = [{"run_id": "h2", "backend": None}]
    cmp = compare_runs(runs[:4], runs[4], history=True, accepted=accepted)  # accepted at the lower level
    cell = next(c for c in cmp.cells if c.key[:2] == CELL and c.key[3] == "latency")
    assert cell.accuracy == SAME and "vs run h2: 0 images lost, 0 gained" in cell.accuracy_decided_by


def test_older_rows_without_bits_are_decided_only_where_no_pairing_could_matter(make_run) -> None:
    def strip(run: dict) -> dict:
        run = copy.deepcopy(run)
        for r in run["results"]:
            r.pop("correct_bits", None)
        return run

    base = strip(make_run("a", seed=1))
    same = strip(make_run("b", seed=2, created="2026-01-11T00:00:00Z"))
    drop = strip(make_run("c", seed=3, created="2026-01-12T00:00:00Z", accuracies={CELL: 0.80}))
    assert all(c.accuracy == SAME for c in compare_runs([base], same).cells if c.compared)
    cell = next(c for c in compare_runs([base], drop).cells if c.key[:2] == CELL and c.key[3] == "latency")
    assert cell.accuracy == INCONCLUSIVE and "no per-image correctness stored" in cell.why()


def test_rows_store_correctness_from_the_accuracy_process_logits(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(2100, 7)).astype(np.float32)
    logits[np.arange(2100), LABELS] += 1.5
    path = tmp_path / "l.npy"
    np.save(path, logits)
    correct = logits.argmax(1) == LABELS
    rows = [{"status": "ok", "scenario": "latency", "accuracy": float(correct.mean())},
            {"status": "ok", "scenario": "throughput", "accuracy": float(correct.mean())},
            {"status": "ok", "scenario": "throughput", "accuracy": 0.5},  # scored by another model
            {"status": "error", "scenario": "latency", "accuracy": None}]
    attach_correctness(rows, load_logits(path), LABELS)
    got = unpack_correct(rows[0]["correct_bits"])
    assert got is not None and np.array_equal(got, correct) and rows[1]["correct_bits"] == rows[0]["correct_bits"]
    assert "correct_bits" not in rows[2] and "correct_bits" not in rows[3]
    apart = [dict(r) for r in rows[:2]]
    for r in apart:
        r.pop("correct_bits")
    attach_correctness(apart, load_logits(path), LABELS, throughput_scored_apart=True)
    assert "correct_bits" in apart[0] and "correct_bits" not in apart[1]
    assert load_logits(tmp_path / "missing.npy") is None and load_logits(None) is None
    (tmp_path / "bad.npy").write_bytes(b"not an array")
    assert load_logits(tmp_path / "bad.npy") is None
