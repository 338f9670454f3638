"""`bench history` over a real store: table and JSON, filters, store URL from --store or the config."""

from __future__ import annotations

import json

import pytest

import harness.cli.entry as cli
from harness.history.store import ResultsStore

MY_COMMANDS = ("history", "report", "compare", "select")


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", MY_COMMANDS)
    return cli.main


def test_history_json_and_filters(tmp_path, make_run, bench, capsys):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    with ResultsStore(url) as store:
        store.save_run(make_run("a", created="2026-01-01T00:00:00Z", backends=("torch-eager",)))
        store.save_run(make_run("b", created="2026-01-02T00:00:00Z"))
    assert bench(["history", "--store", url, "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [r["run_id"] for r in runs] == ["b", "a"]
    assert set(runs[0]) >= {"run_id", "created", "fingerprint_id", "dataset", "best_p50_ms", "best_fps",
                            "best_accuracy", "hardware"}
    assert bench(["history", "--store", url, "--json", "--backend", "openvino", "--limit", "5"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)["runs"]] == ["b"]
    assert bench(["history", "--store", url]) == 0
    out = capsys.readouterr().out
    assert "b" in out and "Intel Xeon Platinum 8481C" in out and "l1-int8" in out and "synthfer (synthetic)" in out
    assert bench(["history", "--store", url, "--limit", "0"]) == 2


def test_history_reads_store_url_from_config(tmp_path, make_run, bench, capsys, monkeypatch):
    db = tmp_path / "elsewhere" / "runs.sqlite"
    with ResultsStore(f"sqlite:///{db}") as store:
        store.save_run(make_run("from-config"))
    monkeypatch.chdir(tmp_path)
    assert bench(["history", "--json", "--set", f'store.url="sqlite:///{db}"']) == 0
    assert json.loads(capsys.readouterr().out)["runs"][0]["run_id"] == "from-config"
    assert bench(["history", "--store", "bogus url"]) == 2
    assert "not a database URL" in capsys.readouterr().err


def test_history_shows_the_interval_of_the_best_p50(tmp_path, make_run, bench, capsys):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    run = make_run("ci")
    lat = [r for r in run["results"] if r["status"] == "ok" and r["scenario"] == "latency"]
    best = min(lat, key=lambda r: r["latency_ms"]["p50"])
    p50 = best["latency_ms"]["p50"]
    best["p50_ci_ms"] = [p50 * 0.9, p50 * 1.1]
    with ResultsStore(url) as store:
        store.save_run(run)
    assert bench(["history", "--store", url, "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["runs"]
    assert entry["best_p50_ci_ms"] == pytest.approx([p50 * 0.9, p50 * 1.1])
    assert bench(["history", "--store", url]) == 0
    assert f"{p50:.3f} [{p50 * 0.9:.3f}, {p50 * 1.1:.3f}]" in capsys.readouterr().out


def test_history_and_compare_show_rows_that_disagree_with_the_reference(tmp_path, make_run, bench, capsys):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    base, cand = make_run("base", created="2026-01-01T00:00:00Z"), make_run("cand", created="2026-01-02T00:00:00Z")
    bad = [r for r in cand["results"] if (r["backend"], r["variant"]) == ("openvino", "l1-int8")]
    for r in bad:
        r.update(agreement=0.6, agrees=False, agreement_reason="top-1 agreement 0.6000 below 0.99")
    with ResultsStore(url) as store:
        store.save_run(base)
        store.save_run(cand)
    assert bench(["history", "--store", url, "--json"]) == 0
    runs = {r["run_id"]: r for r in json.loads(capsys.readouterr().out)["runs"]}
    assert runs["cand"]["disagree"] == len(bad) and runs["base"]["disagree"] == 0
    bench(["compare", "--store", url, "--baseline", "base", "--candidate", "cand"])
    out = capsys.readouterr().out
    assert "agree cand" in out and "60.0% ✗" in out
