"""`bench select` honours every constraint, explains every loss, and uses the latest measurement."""

from __future__ import annotations

import itertools
import json

import pytest

import harness.cli.entry as cli
from common.errors import UserError
from common.records import selection_rows_of as typed  # hand-made row dicts as the store's typed rows
from harness.history.store import ResultsStore
from reports.select import Constraints, parse_min_accuracy, select

MY_COMMANDS = ("history", "report", "compare", "select")


@pytest.fixture
def rows(tmp_path, make_run):
    """Stored results of two machines; the laptop's openvino/l1-int8 cell is INVALID."""
    with ResultsStore(f"sqlite:///{tmp_path / 'h.sqlite'}") as store:
        store.save_run(make_run("xeon-1", created="2026-01-01T00:00:00Z", seed=1))
        store.save_run(make_run("laptop-1", created="2026-01-02T00:00:00Z", seed=2, fingerprint="fp-l",
                                cpu="Intel Core i7-1185G7", factors={k: 1.6 for k in [
                                    ("openvino", "dense-fp32"), ("openvino", "l1-fp32"),
                                    ("openvino", "dense-int8"), ("onnxruntime", "l1-int8")]},
                                invalid=(("openvino", "l1-int8"),)))
        yield store.all_results_typed()


def _meets(ch, c: Constraints) -> bool:
    return ((c.max_latency_ms is None or ch.p99_ms <= c.max_latency_ms)
            and (c.min_accuracy is None or ch.accuracy >= c.min_accuracy)
            and (c.max_storage_mb is None or ch.storage_mb <= c.max_storage_mb))


@pytest.mark.parametrize("objective", ["latency", "throughput", "storage"])
def test_every_constraint_is_honoured(rows, objective):
    grid = itertools.product([None, 0.35, 1.2, 5.0], [None, 0.85, 0.855], [None, 4.0, 20.0], [1, 32])
    for max_lat, min_acc, max_st, batch in grid:
        c = Constraints(max_latency_ms=max_lat, min_accuracy=min_acc, max_storage_mb=max_st, batch=batch,
                        objective=objective)
        sel = select(rows, c)
        assert all(_meets(ch, c) for ch in sel.ranked), c
        for ch, why in sel.rejected:  # everything rejected broke a rule, and says which
            assert why
            if not why.startswith(("status", "invalid measurement", "not measured")):
                assert not _meets(ch, c), (c, ch, why)
        assert len(sel.ranked) + len(sel.rejected) == 2 * 16  # 2 machines x 4 backends x 4 variants
        key = {"latency": lambda ch: ch.p50_ms, "throughput": lambda ch: -ch.throughput_fps,
               "storage": lambda ch: ch.storage_mb}[objective]
        values = [key(ch) for ch in sel.ranked]
        assert values == sorted(values)
        if sel.ranked:
            assert sel.recommended is sel.ranked[0]
            assert all(sel.lost[i].startswith(f"ranked #{i + 1}") for i in range(1, len(sel.ranked)))
        else:
            assert sel.message.startswith("nothing feasible")


def test_recommendation_and_reasons(rows):
    sel = select(rows, Constraints(max_latency_ms=1.0, min_accuracy=0.85, objective="latency"))
    best = sel.recommended
    assert (best.backend, best.variant, best.hardware) == ("openvino", "l1-fp32",
                                                            "Intel Xeon Platinum 8481C (2 cores)")
    why = {(ch.backend, ch.variant, ch.hardware.split()[1]): w for ch, w in sel.rejected}
    assert why[("openvino", "l1-int8", "Xeon")].startswith("accuracy 84.80% < min 85.00%")
    assert why[("torch-eager", "dense-fp32", "Xeon")].startswith("p99 ")
    assert why[("openvino", "l1-int8", "Core")] == "invalid measurement: CoV 0.31 above max_cov 0.25"
    assert why[("tensorrt", "l1-int8", "Core")].startswith("status unavailable: tensorrt is not installed")
    d = sel.to_dict()
    assert set(d["recommended"]) >= {"backend", "variant", "hardware", "batch_size", "p50_ms", "p99_ms",
                                     "throughput_fps", "accuracy", "storage_mb", "run_id"}
    assert d["ranked"][0]["why"] == "recommended" and all(r["why"] for r in d["rejected"])


def test_nothing_feasible_names_the_binding_constraint(rows):
    sel = select(rows, Constraints(max_latency_ms=0.1))
    assert sel.recommended is None
    assert "--max-latency-ms" in sel.message and "binds" in sel.message and "0.3" in sel.message
    sel = select(rows, Constraints(max_latency_ms=0.5, min_accuracy=0.855))
    assert sel.recommended is None and sel.message.count("--") == 2


def test_latest_measurement_wins(tmp_path, make_run):
    with ResultsStore(f"sqlite:///{tmp_path / 'h.sqlite'}") as store:
        store.save_run(make_run("old", created="2026-01-01T00:00:00Z", backends=("openvino",)))
        store.save_run(make_run("new", created="2026-01-05T00:00:00Z", backends=("openvino",),
                                factors={("openvino", "l1-int8"): 3.0}))
        store.save_run(make_run("b32-only", created="2026-01-09T00:00:00Z", backends=("openvino",),
                                batch_sizes=(32,)))  # also has batch-1 latency cells
        rows = store.all_results_typed()
    sel = select(rows, Constraints(objective="latency"))
    assert {ch.run_id for ch in sel.ranked} == {"b32-only"}
    rows = [r for r in rows if r.run_id != "b32-only"]
    sel = select(rows, Constraints(objective="latency"))
    l1 = next(ch for ch in sel.ranked if ch.variant == "l1-int8")
    assert l1.run_id == "new" and l1.p50_ms == pytest.approx(0.81, rel=0.1)
    assert sel.recommended.variant == "l1-fp32"  # the slowed-down int8 lost its first place


def test_batch_without_measurement_is_rejected(rows):
    sel = select(rows, Constraints(batch=8))
    assert sel.recommended is None
    assert all(why.startswith(("not measured at batch 8", "status")) for _, why in sel.rejected)


def test_bad_constraints_are_user_errors():
    with pytest.raises(UserError, match="--objective"):
        Constraints(objective="cost")
    with pytest.raises(UserError, match="--batch"):
        Constraints(batch=0)
    with pytest.raises(UserError, match="--max-latency-ms"):
        Constraints(max_latency_ms=-1.0)
    with pytest.raises(UserError, match="--min-accuracy"):
        parse_min_accuracy(150.0)
    assert parse_min_accuracy(85.0) == pytest.approx(0.85) and parse_min_accuracy(0.85) == 0.85


def test_select_command(tmp_path, make_run, monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMANDS", MY_COMMANDS)
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    assert cli.main(["select", "--store", url]) == 2  # empty store
    assert "holds no results" in capsys.readouterr().err
    with ResultsStore(url) as store:
        store.save_run(make_run("r"))
    assert cli.main(["select", "--store", url, "--min-accuracy", "85", "--max-storage-mb", "20",
                     "--batch", "32", "--objective", "throughput", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rec = data["recommended"]
    assert rec["batch_size"] == 32 and rec["accuracy"] >= 0.85 and rec["storage_mb"] <= 20
    assert rec["throughput_fps"] == max(r["throughput_fps"] for r in data["ranked"])
    assert cli.main(["select", "--store", url, "--max-latency-ms", "0.01"]) == 1
    captured = capsys.readouterr()
    assert "nothing feasible" in captured.err and "--max-latency-ms" in captured.err
    assert cli.main(["select", "--store", url, "--batch", "0"]) == 2


def _fleet_run(make_run, run_id: str, created: str, threads: int, slow_b: float = 1.0, fast_ovn: float = 1.0):
    """A cluster run: every cell measured on edge-a (box-a) and edge-b (box-b, slower by `slow_b`) at `threads`."""
    a = make_run(run_id, created=created, seed=3, backends=("openvino", "onnxruntime"),
                 factors={("openvino", "l1-int8"): fast_ovn})
    b = make_run(run_id, created=created, seed=4, backends=("openvino", "onnxruntime"),
                 factors={k: slow_b for k in itertools.product(("openvino", "onnxruntime"),
                                                               ("dense-fp32", "l1-fp32", "dense-int8", "l1-int8"))})
    rows = []
    for run, machine, target in ((a, "box-a", "edge-a"), (b, "box-b", "edge-b")):
        for r in run["results"]:
            rows.append({**r, "machine_id": machine, "target": target, "fingerprint_id": f"fp-{machine}",
                         "describe": {"threads": threads}})
    a["results"] = rows
    a["machines"] = {m: {"target": t, "fingerprint": {"id": f"fp-{m}", "machine_id": m, "cpu": {"brand": cpu}}}
                     for m, t, cpu in (("box-a", "edge-a", "Edge CPU A"), ("box-b", "edge-b", "Edge CPU B"))}
    return a


def test_select_across_machines_names_the_machine_and_never_mixes_settings(tmp_path, make_run, capsys):
    url = f"sqlite:///{tmp_path / 'fleet.sqlite'}"
    with ResultsStore(url) as store:
        store.save_run(_fleet_run(make_run, "f-2threads", "2026-02-01T00:00:00Z", threads=2, slow_b=1.5))
        # a later run at threads=1 where openvino/l1-int8 on box-a is faster: a different choice, not a newer
        # measurement of the threads=2 one
        store.save_run(_fleet_run(make_run, "f-1thread", "2026-02-02T00:00:00Z", threads=1, slow_b=1.5,
                                  fast_ovn=0.5))
        rows = store.all_results_typed()
    sel = select(rows, Constraints())
    best = sel.recommended
    assert (best.machine_id, best.target, best.threads, best.backend, best.variant) == \
        ("box-a", "edge-a", 1, "openvino", "l1-int8")
    assert best.hardware == "Edge CPU A" and "machine box-a" in sel.message and "threads 1" in sel.message
    ovn = [c for c in sel.ranked if (c.backend, c.variant, c.machine_id) == ("openvino", "l1-int8", "box-a")]
    assert sorted((c.threads, c.run_id) for c in ovn) == [(1, "f-1thread"), (2, "f-2threads")]  # kept apart
    assert {c.machine_id for c in sel.ranked} == {"box-a", "box-b"}

    assert cli.main(["select", "--store", url, "--target", "edge-b", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["recommended"]["machine_id"] == "box-b" and out["recommended"]["target"] == "edge-b"
    assert {r["machine_id"] for r in out["ranked"]} == {"box-b"}
    assert cli.main(["select", "--store", url, "--machine", "box-a"]) == 0
    printed = capsys.readouterr().out
    assert "recommended: openvino/l1-int8 (threads 1) on machine box-a (Edge CPU A)" in " ".join(printed.split())
    assert cli.main(["select", "--store", url, "--machine", "nope"]) == 2
    assert "stored: box-a, box-b" in capsys.readouterr().err


def test_report_compare_hardware_puts_machines_side_by_side(tmp_path, make_run, capsys):
    url = f"sqlite:///{tmp_path / 'fleet.sqlite'}"
    with ResultsStore(url) as store:
        store.save_run(_fleet_run(make_run, "f-2threads", "2026-02-01T00:00:00Z", threads=2, slow_b=3.0))
    out = tmp_path / "cmp"
    assert cli.main(["report", "--compare-hardware", "--store", url, "--out", str(out)]) == 0
    md = (out / "compare_hardware.md").read_text()
    assert "box-a p50 / p99 ms" in md and "box-b p50 / p99 ms" in md and "box-a: Edge CPU A, target edge-a" in md
    line = next(ln for ln in md.splitlines() if ln.startswith("| openvino | l1-int8 | not recorded, config cfg-1 |"
                                                               " threads 2"))
    a, b = (float(c.split("/")[0]) for c in line.strip("|").split("|")[4:6])
    assert "keyed by their run's config hash" in md  # these rows carry no artifact_sha256
    assert 2.5 < b / a < 3.6  # box-b was made 3x slower
    assert (out / "compare_hardware.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "compare_hardware.html" in capsys.readouterr().out


def test_compare_history_of_a_fleet_run_is_per_machine(tmp_path, make_run, capsys):
    url = f"sqlite:///{tmp_path / 'fleet.sqlite'}"
    with ResultsStore(url) as store:
        for i in range(1, 5):
            store.save_run(_fleet_run(make_run, f"n{i}", f"2026-02-0{i}T00:00:00Z", threads=2, slow_b=3.0))
    # unchanged machines: box-b is 3x slower than box-a in every run, which is no regression of either
    assert cli.main(["compare", "--store", url, "--history"]) == 0
    err = capsys.readouterr().err
    assert "machine box-a:" in err and "machine box-b:" in err
    with ResultsStore(url) as store:  # the next two nights openvino/l1-int8 is 2x slower on box-a only
        for i in (5, 6):
            store.save_run(_fleet_run(make_run, f"n{i}", f"2026-02-0{i}T00:00:00Z", threads=2, slow_b=3.0,
                                      fast_ovn=2.0))
    assert cli.main(["compare", "--store", url, "--history"]) == 1
    err = capsys.readouterr().err
    assert "box-a: openvino/l1-int8" in err and "box-b: openvino/l1-int8" not in err


def test_a_cell_with_per_scenario_streams_is_one_choice(tmp_path, make_run):
    run = _fleet_run(make_run, "s1", "2026-02-01T00:00:00Z", threads=2)
    for r in run["results"]:  # OpenVINO: one stream for latency, two for throughput, in the same cell
        if r["backend"] == "openvino":
            r["describe"] = {"threads": 2, "streams": 1 if r["scenario"] == "latency" else 2}
    with ResultsStore(f"sqlite:///{tmp_path / 's.sqlite'}") as store:
        store.save_run(run)
        rows = store.all_results_typed()
    sel = select(rows, Constraints(objective="throughput", batch=32))
    ovn = [c for c in sel.ranked if (c.backend, c.variant, c.machine_id) == ("openvino", "l1-int8", "box-a")]
    assert len(ovn) == 1 and ovn[0].streams == "1 (latency), 2 (throughput)" and ovn[0].throughput_fps
    assert "streams 1 (latency), 2 (throughput)" in ovn[0].name


def test_a_row_that_disagrees_with_the_reference_is_rejected_and_why(make_run):
    run = make_run("r-1")
    for r in run["results"]:
        if (r["backend"], r["variant"]) == ("openvino", "l1-int8") and r["status"] == "ok":
            r.update(agreement=0.6, agrees=False, agreement_reason="top-1 agreement 0.6000 with the PyTorch "
                     "reference is below 0.99 (benchmark.min_agreement_int8)")
    rows = [{**r, "run_id": "r-1", "created": run["created"], "hardware": "x"} for r in run["results"]]
    sel = select(typed(rows), Constraints(batch=1))
    why = {(ch.backend, ch.variant): w for ch, w in sel.rejected}
    assert "disagrees with the PyTorch reference: top-1 agreement 0.6000" in why[("openvino", "l1-int8")]
    assert all((ch.backend, ch.variant) != ("openvino", "l1-int8") for ch in sel.ranked)


def test_max_storage_uses_the_loaded_file_bytes(make_run):
    run = make_run("r-1", backends=("openvino",), variants=("l1-int8",))
    for r in run["results"]:
        r["file_bytes"] = 9_000_000  # the file on disk is larger than the parameter formula says
    rows = [{**r, "run_id": "r-1", "created": run["created"], "hardware": "x"} for r in run["results"]]
    assert rows[0]["storage_mb"] < 9.0
    sel = select(typed(rows), Constraints(batch=1, max_storage_mb=8.0))
    assert sel.recommended is None
    assert "file size 9 MB > max 8 MB" in sel.rejected[0][1]
    ok = select(typed(rows), Constraints(batch=1, max_storage_mb=10.0)).recommended
    assert ok is not None and ok.storage_mb == 9.0 and ok.storage_source == "file"


def _unverified_rows(make_run, cells=(("openvino", "l1-int8"),)):
    """Stored-like rows where `cells` carry no agreement (agrees None): e.g. an older cluster row."""
    run = make_run("r-1", backends=("openvino", "onnxruntime"))
    for r in run["results"]:
        if (r["backend"], r["variant"]) in cells:
            r.update(agreement=None, agrees=None, reference=None, agreement_reason="")
    return [{**r, "run_id": "r-1", "created": run["created"], "hardware": "x"} for r in run["results"]]


def test_an_unverified_row_is_refused_and_named(make_run):
    rows = _unverified_rows(make_run)
    sel = select(typed(rows), Constraints(batch=1))
    why = {(ch.backend, ch.variant): w for ch, w in sel.rejected}
    assert why[("openvino", "l1-int8")].startswith("unverified: its outputs were never compared with a reference")
    assert "--allow-unverified" in why[("openvino", "l1-int8")]
    assert all((ch.backend, ch.variant) != ("openvino", "l1-int8") for ch in sel.ranked)
    # openvino/l1-int8 is the fastest cell: refusing it moves the recommendation, and the message says which
    best = sel.recommended
    assert (best.backend, best.variant, best.agrees) == ("onnxruntime", "l1-int8", True)
    assert "Refused 1 unverified choice(s)" in sel.message and "openvino/l1-int8" in sel.message
    assert {(ch.backend, ch.variant) for ch, w in sel.rejected if w.startswith("unverified")} == {
        ("openvino", "l1-int8")}


def test_allow_unverified_admits_it_marked(make_run):
    rows = _unverified_rows(make_run)
    sel = select(typed(rows), Constraints(batch=1, allow_unverified=True))
    best = sel.recommended
    assert (best.backend, best.variant, best.agrees) == ("openvino", "l1-int8", None)
    assert "UNVERIFIED" in best.name and "UNVERIFIED" in sel.message
    assert "Refused" not in sel.message
    d = sel.to_dict()
    assert d["recommended"]["agrees"] is None and d["constraints"]["allow_unverified"] is True
    # a disagreeing row stays refused: --allow-unverified admits unknown answers, never wrong ones
    for r in rows:
        if (r["backend"], r["variant"]) == ("onnxruntime", "l1-int8"):
            r.update(agreement=0.5, agrees=False, reference="onnxruntime-reference (fp32 graph ...)",
                     agreement_reason="top-1 agreement 0.5000 with the ONNX Runtime fp32 reference is below 0.99")
    why = {(ch.backend, ch.variant): w for ch, w in select(typed(rows), Constraints(allow_unverified=True)).rejected}
    assert why[("onnxruntime", "l1-int8")].startswith("disagrees with the ONNX Runtime fp32 reference: top-1")


def test_a_choice_is_unverified_if_either_row_it_uses_is(make_run):
    rows = _unverified_rows(make_run, cells=())
    for r in rows:  # only the throughput row at batch 32 lacks agreement
        if (r["backend"], r["variant"], r["scenario"]) == ("openvino", "l1-int8", "throughput"):
            r.update(agrees=None, agreement=None)
    sel = select(typed(rows), Constraints(batch=32, objective="throughput"))
    assert any(ch.variant == "l1-int8" and ch.backend == "openvino" and w.startswith("unverified")
               for ch, w in sel.rejected)
    assert select(typed(rows), Constraints(batch=1)).recommended.variant == "l1-int8"  # batch 1 uses the latency row


def test_select_command_refuses_unverified_unless_allowed(tmp_path, make_run, capsys):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    run = make_run("r", backends=("openvino",))
    for r in run["results"]:
        r.update(agreement=None, agrees=None, reference=None)  # nothing was checked
    with ResultsStore(url) as store:
        store.save_run(run)
    assert cli.main(["select", "--store", url]) == 1
    captured = capsys.readouterr()
    text = " ".join((captured.out + captured.err).split())
    assert "UNVERIFIED" in text and "Refused 4 unverified choice(s)" in text and "--allow-unverified" in text
    assert cli.main(["select", "--store", url, "--allow-unverified", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["recommended"]["variant"] == "l1-int8" and out["recommended"]["agrees"] is None
    assert "UNVERIFIED" in out["message"]


def test_unchecked_answers_are_named_before_noisy_timing(make_run):
    rows = _unverified_rows(make_run)
    for r in rows:
        if (r["backend"], r["variant"]) == ("openvino", "l1-int8"):
            r.update(valid=False, invalid_reasons=["CoV 0.4 above max_cov 0.25"])
    why = {(ch.backend, ch.variant): w for ch, w in select(typed(rows), Constraints()).rejected}
    assert why[("openvino", "l1-int8")].startswith("unverified")
    why = {(ch.backend, ch.variant): w for ch, w in select(typed(rows), Constraints(allow_unverified=True)).rejected}
    assert why[("openvino", "l1-int8")] == "invalid measurement: CoV 0.4 above max_cov 0.25"


def test_latency_from_the_throughput_scenario_says_how_many_requests_were_in_flight(make_run):
    run = make_run("r", backends=("openvino",), variants=("l1-int8",), batch_sizes=(32,))
    rows = [{**r, "run_id": "r", "created": run["created"], "hardware": "x"} for r in run["results"]]
    one = select(typed(rows), Constraints(batch=32, objective="throughput")).recommended
    assert one.latency_source == "throughput scenario: time per batch of 32"  # nothing recorded: one request
    for r in rows:  # OpenVINO's throughput mode: the harness kept 4 requests in flight (describe.harness)
        r["describe"] = {"threads": 2, "harness": {"requests_in_flight": 4 if r["scenario"] == "throughput" else 1}}
    four = select(typed(rows), Constraints(batch=32, objective="throughput")).recommended
    assert four.latency_source == "throughput scenario: time per round of 4 request(s) x batch 32 in flight"
    assert select(typed(rows), Constraints(batch=1)).recommended.latency_source == "latency scenario"
