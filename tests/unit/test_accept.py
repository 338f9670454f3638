"""`bench accept`: a step stays flagged by `compare --history` on every run until it is accepted (stored with
who/when/why, schema v4), then the level from the accepted run on is the baseline; `bench history` shows it."""

from __future__ import annotations

import json
import sqlite3

import pytest

import harness.cli.entry as cli
from harness.history.store import SCHEMA_VERSION, ResultsStore

SLOW = {("openvino", "l1-int8"): 1.25}


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", ("compare", "accept", "history", "report"))
    return cli.main


def _history(tmp_path, make_run) -> str:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    with ResultsStore(url) as store:
        for i in range(4):
            store.save_run(make_run(f"b{i}", seed=i, created=f"2026-01-0{i + 1}T02:00:00Z", n=120))
        for i in range(6):
            store.save_run(make_run(f"s{i}", seed=10 + i, created=f"2026-01-1{i}T02:00:00Z", n=120, factors=SLOW))
    return url


def test_a_step_stays_flagged_for_five_runs_and_clears_after_accept(tmp_path, make_run, bench, capsys):
    url = _history(tmp_path, make_run)
    for i in range(1, 6):  # the second to the sixth slow run: flagged on each, always since the first slow run
        assert bench(["compare", "--store", url, "--history", "--candidate", f"s{i}"]) == 1, i
        err = capsys.readouterr().err
        assert "openvino/l1-int8 latency b1" in err
    capsys.readouterr()
    assert bench(["history", "--store", url, "--changes", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    lat = [c for c in before["open"] if c["cell"] == "openvino/l1-int8 latency b1"]
    assert lat and lat[0]["verdict"] == "regression" and lat[0]["since_run"] == "s0"
    assert "regressed since run 5 (s0) (+2" in lat[0]["text"] and before["accepted"] == []

    assert bench(["accept", "--store", url, "s0", "--reason", "OpenVINO 2026.5 is slower here; expected",
                  "--who", "ana"]) == 0
    assert "accepted run s0 (every cell) by ana" in capsys.readouterr().out
    assert bench(["compare", "--store", url, "--history"]) == 0  # the level from s0 on is the baseline
    capsys.readouterr()
    assert bench(["history", "--store", url, "--changes", "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["open"] == []
    assert [(a["run_id"], a["who"], a["reason"]) for a in after["accepted"]] == [
        ("s0", "ana", "OpenVINO 2026.5 is slower here; expected")]
    assert bench(["history", "--store", url]) == 0
    assert "by ana" in capsys.readouterr().out
    with ResultsStore(url) as store:
        (rec,) = store.acceptances()
    assert rec["created"].endswith("Z") and rec["backend"] is None


def test_an_acceptance_for_one_cell_leaves_the_others_flagged(tmp_path, make_run, bench, capsys):
    url = _history(tmp_path, make_run)
    assert bench(["accept", "--store", url, "s0", "--reason", "known", "--backend", "openvino",
                  "--variant", "l1-int8", "--scenario", "throughput"]) == 0
    capsys.readouterr()
    assert bench(["compare", "--store", url, "--history"]) == 1
    err = capsys.readouterr().err
    assert "openvino/l1-int8 latency b1" in err and "throughput" not in err.split("check failed")[1]


def test_accept_refuses_bad_input_with_one_line(tmp_path, make_run, bench, capsys):
    url = _history(tmp_path, make_run)
    assert bench(["accept", "--store", url, "nope", "--reason", "x"]) == 2
    assert "unknown run id 'nope'" in capsys.readouterr().err
    assert bench(["accept", "--store", url, "s0", "--reason", "  "]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --reason") and err.count("\n") == 1
    with ResultsStore(url) as store:
        assert store.acceptances() == []


def test_a_v3_store_is_migrated_to_v4_with_the_acceptance_table(tmp_path, make_run):
    path = tmp_path / "v3.sqlite"
    with ResultsStore(f"sqlite:///{path}") as store:
        store.save_run(make_run("a", created="2026-01-01T00:00:00Z"))
    con = sqlite3.connect(path)  # what a v3 bench left: no acceptance table, version 3
    con.execute("DROP TABLE accepted_changes")
    con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with ResultsStore(f"sqlite:///{path}") as store:
        assert store.schema_version() == SCHEMA_VERSION == 4
        assert store.acceptances() == [] and store.count_runs() == 1
        store.accept("a", "baseline moved", "ci")
        assert [a["reason"] for a in store.acceptances(["a"])] == ["baseline moved"]
    con = sqlite3.connect(path)
    try:
        cols = {r[1] for r in con.execute("PRAGMA table_info(accepted_changes)")}
    finally:
        con.close()
    assert {"run_id", "reason", "who", "created", "backend", "variant", "scenario", "batch_size"} <= cols


def test_the_report_shows_open_and_accepted_changes(tmp_path, make_run, bench, capsys):
    url = _history(tmp_path, make_run)
    assert bench(["report", "--store", url, "s5", "--out", str(tmp_path / "open")]) == 0
    md = (tmp_path / "open" / "report.md").read_text()
    assert "Changes in the history" in md and "regressed since run 5 (s0)" in md
    assert bench(["accept", "--store", url, "s0", "--reason", "expected", "--who", "ana"]) == 0
    assert bench(["report", "--store", url, "s5", "--out", str(tmp_path / "accepted")]) == 0
    md = (tmp_path / "accepted" / "report.md").read_text()
    assert "regressed since" not in md and "by ana at" in md and ": expected" in md
