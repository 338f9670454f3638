"""Timing loop, statistics and verdict: the rules a benchmark number must satisfy before it is quoted."""

from __future__ import annotations

import time

import numpy as np
import pytest

from harness.measure.loop import P99_MIN_SAMPLES, Stats, Timing, harness_overhead_us, timed_loop, verdict, warmup


def test_stats_match_numpy_on_known_samples() -> None:
    samples = list(np.arange(1.0, 101.0))
    s = Stats.from_samples(samples)
    assert s.min == 1.0
    assert s.p50 == pytest.approx(50.5)
    assert s.p99 == pytest.approx(np.percentile(samples, 99))
    assert s.iqr == pytest.approx(np.percentile(samples, 75) - np.percentile(samples, 25))
    assert s.stdev == pytest.approx(np.std(samples, ddof=1))
    assert s.cov == pytest.approx(s.stdev / s.mean)
    assert set(s.to_dict()) == {"min", "p50", "p90", "p95", "p99", "mean", "stdev", "iqr", "cov", "rcov"}


def test_stats_reject_empty() -> None:
    with pytest.raises(ValueError):
        Stats.from_samples([])


def test_loop_runs_until_min_iterations_when_duration_is_met() -> None:
    t = timed_loop(lambda: None, 0.0, 37)
    assert len(t.samples_ms) == 37 and not t.capped


def test_loop_runs_until_min_duration_when_iterations_are_met() -> None:
    t = timed_loop(lambda: time.sleep(0.001), 0.05, 1)
    assert t.duration_s >= 0.05
    assert len(t.samples_ms) >= 10
    assert all(s >= 0.9 for s in t.samples_ms)  # each sample is one ~1 ms call, in ms


def test_loop_hard_cap_is_reported_in_the_verdict() -> None:
    t = timed_loop(lambda: time.sleep(0.002), 0.0, 10_000, max_duration_s=0.03)
    assert t.capped and len(t.samples_ms) < 10_000
    valid, reasons = verdict(t, 0.0, 10_000, 10.0)
    assert not valid and any("time cap" in r for r in reasons)


def test_warmup_is_by_time() -> None:
    t0 = time.perf_counter()
    n = warmup(lambda: time.sleep(0.001), 0.03)
    assert time.perf_counter() - t0 >= 0.03 and n >= 5
    assert warmup(lambda: None, 0.0) == 1


def test_verdict_names_each_failed_rule() -> None:
    few = Timing([1.0] * 20, 0.02)
    valid, reasons = verdict(few, 1.0, 10, 0.25)
    assert not valid
    assert any("too few samples for p99" in r for r in reasons)
    assert any("duration not reached" in r for r in reasons)
    noisy = Timing([1.0, 10.0] * 100, 2.0)
    valid, reasons = verdict(noisy, 1.0, 100, 0.25)
    rcov = Stats.from_samples(noisy.samples_ms).rcov
    assert not valid and reasons == [f"robust CoV (MAD/median) {rcov:.3f} > benchmark.max_cov 0.25"]


def test_rare_preemptions_do_not_invalidate_a_steady_cell() -> None:
    """12 spikes of 5 ms among 5,000 samples of ~0.3 ms: classic CoV is large, the bulk is steady."""
    rng = np.random.default_rng(0)
    samples = list(0.3 + rng.normal(0, 0.005, 5000))
    samples[::417] = [5.0] * len(samples[::417])
    s = Stats.from_samples(samples)
    assert s.cov > 0.25 and s.rcov < 0.05
    assert verdict(Timing(samples, 2.0), 1.0, 100, 0.25) == (True, [])
    ok = Timing([1.0, 1.01] * P99_MIN_SAMPLES, 2.0)
    assert verdict(ok, 1.0, 100, 0.25) == (True, [])
    # throughput rows quote no p99: few samples are fine there
    assert verdict(Timing([1.0] * 20, 2.0), 1.0, 10, 0.25, need_p99=False) == (True, [])


def test_harness_overhead_is_invisible_on_a_fast_model() -> None:
    # < 2% of a 0.3 ms model's p50 = 6 us; the loop itself costs well under 1 us on these CPUs
    assert 0.0 < harness_overhead_us(iterations=5000, repeats=3) < 6.0


def _entry(p50: float, other: float = 0.05, steal: float = 0.0) -> dict[str, object]:
    samples = [p50, p50 * 1.01] * 100
    return {"scenario": "latency", "samples_ms": samples, "duration_s": 2.0, "min_samples": 100,
            "images_per_sample": 1, "requests_in_flight": 1, "warmup_s": 0.5,
            "noise": {"other_cpu_fraction": other, "steal_fraction": steal, "cpu_mhz": None, "loadavg_1m": 1.0,
                      "cpus_allowed": 2}}


def test_a_noisy_process_counts_like_every_other() -> None:
    """Noisy processes are marked and counted, never dropped (dropping them "unless too few are left" made the
    gate test a cell on one quiet process, or not at all, depending on how many were noisy)."""
    from harness.measure.rows import derive_rounds

    procs = [{"round": 0, "entry": _entry(1.0)}, {"round": 1, "entry": _entry(2.0, other=0.5)},
             {"round": 2, "entry": _entry(1.1)}, {"round": 3, "entry": _entry(3.0, steal=0.3)}]
    row = derive_rounds(procs, 1.0, 0.25, 0.01)
    assert row["noisy_rounds"] == 2 and row["valid"]
    assert [bool(r["noisy"]) for r in row["rounds"]] == [False, True, False, True]
    assert row["rounds"][1]["noisy"].startswith("other processes used 50% of the allowed CPUs")
    assert row["rounds"][3]["noisy"].startswith("CPU steal 30%")
    p50s = [1.005, 2.01, 1.1055, 3.015]
    assert row["latency_ms"]["p50"] == pytest.approx(np.median(p50s))  # all four processes
    assert row["p50_ci_ms"] == pytest.approx([1.005, 3.015]) and row["p50_ci_level"] == pytest.approx(0.875)
    assert row["n_samples"] == 800 and len(row["samples_ms"]) == 800  # every process's raw samples are kept
    assert row["throughput_fps"] == pytest.approx(np.median([1e3 / v for v in p50s]))
    assert row["gmac_per_s"] == pytest.approx(0.01 * row["throughput_fps"])


def test_every_latency_statistic_is_the_median_over_processes_so_p95_never_exceeds_p99() -> None:
    """One definition for every percentile of a row. Pooled p95 next to a median-of-processes p99 showed
    p95 > p99 when one process had a long tail; medians of per-process values keep the order."""
    from harness.measure.loop import Stats
    from harness.measure.rows import derive_rounds

    rng = np.random.default_rng(7)
    for trial in range(200):
        procs = []
        for i in range(int(rng.integers(1, 8))):
            tail = rng.uniform(1.0, 6.0) if rng.random() < 0.3 else 1.0  # some processes with a long tail
            samples = np.exp(rng.normal(0, 0.05, 150)) * rng.uniform(0.8, 1.5)
            samples[rng.random(150) < 0.08] *= tail
            procs.append({"round": i, "entry": {**_entry(1.0), "samples_ms": samples.tolist()}})
        lat = derive_rounds(procs, 1.0, 0.25, None)["latency_ms"]
        assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"], trial
        per = [Stats.from_samples(p["entry"]["samples_ms"]) for p in procs]
        for f in ("p50", "p90", "p95", "p99", "mean", "min"):
            assert lat[f] == pytest.approx(np.median([getattr(x, f) for x in per])), (trial, f)


def _unstable(p50: float) -> dict[str, object]:
    """A process whose samples spread +-50% around p50 (robust CoV 1.4826 x MAD / median = 0.741)."""
    return {**_entry(p50), "samples_ms": [p50 * 0.5, p50, p50 * 1.5] * 70}


@pytest.mark.parametrize(("n", "n_unstable", "valid"), [(5, 2, True), (5, 3, False), (3, 1, True), (3, 2, False),
                                                         (1, 1, False), (1, 0, True)])
def test_a_row_is_invalid_when_most_of_its_processes_are_unstable(n: int, n_unstable: int, valid: bool) -> None:
    """The row's estimates are medians over processes: a minority of unstable processes (robust CoV above
    max_cov) is counted and shown, a majority makes the row INVALID with every unstable round named."""
    from harness.measure.rows import derive_rounds

    procs = [{"round": i, "entry": _unstable(1.0) if i < n_unstable else _entry(1.0)} for i in range(n)]
    row = derive_rounds(procs, 1.0, 0.25, None)
    assert row["valid"] is valid and row["unstable_rounds"] == n_unstable
    if not valid:
        assert row["invalid_reasons"] == [f"{n_unstable} of {n} processes unstable: " + "; ".join(
            f"round {i + 1}: robust CoV (MAD/median) 0.741 > benchmark.max_cov 0.25" for i in range(n_unstable))]
    else:
        assert row["invalid_reasons"] == []


def test_every_process_noisy_makes_the_row_invalid() -> None:
    from harness.measure.rows import derive_rounds

    row = derive_rounds([{"entry": _entry(1.0, other=0.9)}, {"entry": _entry(1.0, other=0.8)}], 1.0, 0.25, None)
    assert not row["valid"] and row["invalid_reasons"][0].startswith("every process was noisy")
    assert row["latency_ms"]["p50"] == pytest.approx(1.005)


def test_rows_are_reproducible_from_their_raw_samples_and_round_counts() -> None:
    from harness.measure.rows import derive_rounds

    rng = np.random.default_rng(0)
    procs = [{"round": i, "entry": {**_entry(1.0), "samples_ms": list(rng.normal(m, 0.01, 150))}}
             for i, m in enumerate((1.0, 1.3, 1.31, 1.02, 1.01, 1.29, 1.0, 1.3))]  # 8: enough to call two modes
    row = derive_rounds(procs, 1.0, 0.25, None)
    splits = np.cumsum([r["n"] for r in row["rounds"]])[:-1]
    per_process = np.split(np.asarray(row["samples_ms"]), splits)
    medians = [float(np.median(p)) for p in per_process]
    assert [r["p50_ms"] for r in row["rounds"]] == pytest.approx(medians)
    assert row["latency_ms"]["p50"] == pytest.approx(np.median(medians))
    assert row["bimodal"] and row["round_cov"] is not None and row["round_cov"] > 0.1
    assert row["fixed_cost_s"] is None  # no launcher wall time in these entries


def test_fixed_cost_is_wall_time_minus_warmup_and_timed_loops() -> None:
    from harness.measure.rows import fixed_cost_s

    result = {"cell_wall_s": 10.0, "scenarios": [{"duration_s": 2.0, "warmup_s": 0.5},
                                                 {"duration_s": 1.0, "warmup_s": 0.5}]}
    assert fixed_cost_s(result) == pytest.approx(6.0)
    assert fixed_cost_s({"scenarios": []}) is None


def test_noise_probe_measures_against_the_affinity_set() -> None:
    import os

    from harness.measure.trackers import NoiseProbe, allowed_cpus

    assert allowed_cpus() == sorted(os.sched_getaffinity(0))
    probe = NoiseProbe()
    end = time.perf_counter() + 0.2
    while time.perf_counter() < end:  # our own busy loop is not "other processes"
        pass
    noise = probe.finish()
    assert noise["cpus_allowed"] == len(os.sched_getaffinity(0))
    assert 0.0 <= noise["other_cpu_fraction"] <= 1.0 and 0.0 <= noise["steal_fraction"] <= 1.0
    assert noise["loadavg_1m"] == pytest.approx(os.getloadavg()[0], abs=5.0)


def test_rounds_split_the_iteration_floor_but_keep_enough_for_a_p99() -> None:
    from harness.measure.settings import per_process_iterations

    assert per_process_iterations(200, 1) == 200
    assert per_process_iterations(200, 3) == P99_MIN_SAMPLES  # 67 would be too few for a p99
    assert per_process_iterations(3000, 10) == 300
    assert per_process_iterations(20, 2) == 20  # never above the configured floor


def test_rounds_carry_their_pairing_when_the_launcher_gives_one_and_validate_as_the_type() -> None:
    """`pair`/`position` of a reference-arm run reach each round entry; without them the entry has neither key
    (the output of runs without a reference arm is unchanged), and both forms are valid rounds of a Row."""
    from common.records import Round
    from harness.measure.rows import derive_rounds

    paired = derive_rounds([{"round": i, "pair": i, "position": i % 2, "entry": _entry(1.0 + i / 10)}
                            for i in range(3)], 1.0, 0.25, None)
    assert [(r["pair"], r["position"]) for r in paired["rounds"]] == [(0, 0), (1, 1), (2, 0)]
    plain = derive_rounds([{"round": i, "entry": _entry(1.0)} for i in range(3)], 1.0, 0.25, None)
    assert not {"pair", "position"} & set(plain["rounds"][0])
    typed = [Round.model_validate(r) for r in paired["rounds"] + plain["rounds"]]
    assert [t.pair for t in typed] == [0, 1, 2, None, None, None]
