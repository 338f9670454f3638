"""What `bench run`, the report and `bench history` print about rounds: the interval, the process count, the
noisy processes counted, bimodality, the fixed cost per process; and the `nightly` profile."""

from __future__ import annotations

import pytest

from common.config import load_config, profile_overrides
from common.errors import UserError
from reports.tables import processes, results_table, with_interval


def test_interval_and_process_texts() -> None:
    assert with_interval(0.2521, [0.2493, 0.2604]) == "0.252 [0.249, 0.260]"
    assert with_interval(0.2521, [0.2493, 0.2604], 0.75) == "0.252 [0.249, 0.260] 75%"
    assert with_interval(0.2521, [0.2493, 0.2604], 0.9375) == "0.252 [0.249, 0.260] 93.8%"
    assert with_interval(0.2521, None) == "0.252"
    rounds = [{"p50_ms": 0.25, "noisy": ""}, {"p50_ms": 0.26, "noisy": "steal"}, {"p50_ms": 0.25, "noisy": ""}]
    assert processes({"rounds": rounds, "noisy_rounds": 1}) == "3 (1 noisy)"
    assert processes({"rounds": rounds, "noisy_rounds": 3}) == "3 (all noisy: INVALID)"
    assert processes({"rounds": rounds, "noisy_rounds": 0, "bimodal": True}) == "3, bimodal"
    assert processes({}) == "1"


def test_report_table_shows_the_interval_over_processes(make_run) -> None:
    run = make_run("r1")
    row = next(r for r in run["results"] if r["status"] == "ok" and r["scenario"] == "latency")
    row["p50_ci_ms"] = [0.2493, 0.2604]
    row["p50_ci_level"] = 0.9375
    row["latency_ms"]["p50"] = 0.2521
    table = results_table(run)
    i = table.header.index("p50 ms [CI] level")
    assert any(r[i] == "0.252 [0.249, 0.260] 93.8%" for r in table.rows)
    assert any("order-statistic interval over processes and its real confidence level" in n for n in table.notes)


def test_summary_prints_interval_processes_and_fixed_cost(make_run, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli.run import _print_summary

    run = make_run("r1")
    run["rounds"] = {"count": 3, "seed": 0, "order": []}
    for r in run["results"]:
        if r["status"] == "ok":
            r.update(p50_ci_ms=[r["latency_ms"]["p50"] * 0.98, r["latency_ms"]["p50"] * 1.03], noisy_rounds=1,
                     fixed_cost_s=2.8, p50_ci_level=0.75)
    _print_summary(run)
    out = capsys.readouterr().out
    assert "p50 ms [CI] level" in out and "3 (1 noisy)" in out and "] 75%" in out
    assert "fixed cost per process" in out and "2.8 s, paid 3x per cell" in out


def test_nightly_profile_sets_more_rounds_and_unknown_profiles_are_refused() -> None:
    cfg = load_config(None, profile_overrides("nightly"))
    assert cfg.benchmark.rounds == 20 and cfg.benchmark.min_duration_s == 3.0  # GATE_PROCESSES per arm
    assert load_config(None, profile_overrides(None)).benchmark.rounds == 5
    full = load_config(None, profile_overrides("full"))  # the paper's scale, one profile away from the quickstart
    assert (full.model.width, full.train.batch_size, full.train.lr, full.compress.finetune_epochs) == (1.0, 32, 1e-3, 3)
    assert load_config(None, []).model.width == 0.25
    with pytest.raises(UserError, match="valid: full, nightly"):
        profile_overrides("weekly")


def test_fixed_cost_is_printed_per_round() -> None:
    from harness.cli.run import fixed_by_round

    rows = [{"scenario": "latency", "rounds": [{"round": 0, "fixed_s": 1.6}, {"round": 1, "fixed_s": 1.5}]},
            {"scenario": "latency", "rounds": [{"round": 0, "fixed_s": 2.0}, {"round": 1, "fixed_s": 1.7},
                                               {"round": 2, "fixed_s": None}]},
            {"scenario": "throughput", "rounds": [{"round": 0, "fixed_s": 99.0}]}]  # same processes: not twice
    assert fixed_by_round(rows) == "round 1 1.8 s, round 2 1.6 s"
