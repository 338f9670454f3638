"""`bench select` keys a choice on what was timed, applies the dense model's accuracy floor by default, and calls
choices inside each other's p50 intervals indistinguishable instead of ranking them on point estimates."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

import harness.cli.entry as cli
from common.errors import UserError
from common.records import selection_rows_of
from harness.history.store import ResultsStore
from reports.select import Choice, Constraints, filter_rows, rank_ties, select

MY_COMMANDS = ("select", "report")
VAL = {"dense-fp32": 0.890, "l1-fp32": 0.884, "dense-int8": 0.887, "l1-int8": 0.881}


def _sha(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def _identify(run: dict[str, Any], width: float, val: dict[str, float] | None = None) -> dict[str, Any]:
    """Give each row what the cell records: the model text, the sha256 of the file its backend loads (one per
    variant and file kind, different for another width) and the variant's validation accuracy."""
    for r in run["results"]:
        kind = "model.pt" if r["backend"].startswith("torch") else "model.onnx"
        r.update(model=f"VGG16-FER x{width:g}", artifact_sha256=_sha(width, r["variant"], kind),
                 val_accuracy=(val or VAL)[r["variant"]])
    return run


def _store(tmp_path, runs: list[dict[str, Any]]) -> str:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    with ResultsStore(url) as store:
        for run in runs:
            store.save_run(run)
    return url


def test_two_widths_under_one_variant_name_are_two_choices(tmp_path, make_run, monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli, "COMMANDS", MY_COMMANDS)
    quarter = _identify(make_run("w025", created="2026-03-01T00:00:00Z", backends=("openvino",)), 0.25)
    full = _identify(make_run("w100", created="2026-03-02T00:00:00Z", backends=("openvino",),
                              factors={("openvino", v): 6.0 for v in VAL}), 1.0)
    url = _store(tmp_path, [quarter, full])
    assert cli.main(["select", "--store", url, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    l1 = [r for r in out["ranked"] if r["variant"] == "l1-int8"]
    assert sorted(r["model"] for r in l1) == ["VGG16-FER x0.25", "VGG16-FER x1"]  # not the latest run only
    assert {r["artifact_sha256"] for r in l1} == {_sha(0.25, "l1-int8", "model.onnx"), _sha(1.0, "l1-int8",
                                                                                            "model.onnx")}
    assert all(r["identity"] == "artifact_sha256" for r in out["ranked"])
    # one model asked for, by name or by a prefix of its file's sha256
    assert cli.main(["select", "--store", url, "--json", "--model", "VGG16-FER x1"]) == 0
    assert {r["model"] for r in json.loads(capsys.readouterr().out)["ranked"]} == {"VGG16-FER x1"}
    prefix = _sha(0.25, "l1-int8", "model.onnx")[:10]
    assert cli.main(["select", "--store", url, "--json", "--artifact-sha", prefix]) == 0
    picked = json.loads(capsys.readouterr().out)["ranked"]
    assert [(r["variant"], r["model"]) for r in picked] == [("l1-int8", "VGG16-FER x0.25")]
    assert cli.main(["select", "--store", url, "--model", "VGG16-FER x0.5"]) == 2
    assert "stored models: VGG16-FER x0.25, VGG16-FER x1" in capsys.readouterr().err
    assert cli.main(["select", "--store", url, "--artifact-sha", "zz"]) == 2
    # the text table names the model of every choice
    assert cli.main(["select", "--store", url]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "VGG16-FER x0.25" in printed and "VGG16-FER x1" in printed


def test_rows_without_identity_fall_back_to_the_config_hash_and_say_so(make_run) -> None:
    a, b = make_run("a", config_hash="cfg-a"), make_run("b", config_hash="cfg-b", created="2026-01-11T00:00:00Z")
    rows = [{**r, "run_id": run["run_id"], "created": run["created"], "config_hash": run["config_hash"],
             "hardware": "x"} for run in (a, b) for r in run["results"]]
    sel = select(selection_rows_of(rows), Constraints())
    ov = [ch for ch in sel.ranked if (ch.backend, ch.variant) == ("openvino", "l1-int8")]
    assert sorted(ch.run_id for ch in ov) == ["a", "b"]
    assert all(ch.identity.startswith("config_hash") and ch.artifact_sha256 is None for ch in ov)


def test_default_floor_refuses_a_point_16_points_below_dense(tmp_path, make_run, monkeypatch, capsys) -> None:
    """A fast variant that lost 16 accuracy points is never recommended by plain `bench select`: the dense
    model's validation accuracy less one point is the floor, printed with what it excluded."""
    monkeypatch.setattr(cli, "COMMANDS", MY_COMMANDS)
    val = {**VAL, "l1-int8": 0.7276}
    run = _identify(make_run("sweep", backends=("openvino",), factors={("openvino", "l1-int8"): 0.5}), 0.25, val)
    for r in run["results"]:
        if r["variant"] == "l1-int8" and r["status"] == "ok":
            r["accuracy"] = 0.73
    url = _store(tmp_path, [run])
    assert cli.main(["select", "--store", url, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["recommended"]["variant"] != "l1-int8"
    assert out["recommended"]["val_accuracy"] >= 0.89 - 0.01
    assert "validation accuracy >= dense VGG16-FER x0.25 val 89.00% - 1 point(s) = 88.00%" in out["floor"]
    why = {r["variant"]: r["why"] for r in out["rejected"] if r["backend"] == "openvino"}
    assert why["l1-int8"].startswith("val accuracy 72.76% < floor 88.00%")
    assert cli.main(["select", "--store", url]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "Accuracy floor: validation accuracy >= dense VGG16-FER x0.25 val 89.00%" in printed
    assert "it excluded 1: openvino/l1-int8 (VGG16-FER x0.25" in printed
    # a wider tolerance or an explicit --min-accuracy is the user's call: then it may win
    assert cli.main(["select", "--store", url, "--json", "--tolerance", "20"]) == 0
    assert json.loads(capsys.readouterr().out)["recommended"]["variant"] == "l1-int8"
    assert cli.main(["select", "--store", url, "--json", "--min-accuracy", "0.5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["recommended"]["variant"] == "l1-int8" and "floor is not applied" in out["floor"]
    assert cli.main(["select", "--store", url, "--tolerance", "-1"]) == 2


def test_a_model_without_a_stored_dense_has_no_floor_and_the_text_says_so(make_run) -> None:
    run = _identify(make_run("r", backends=("openvino",), variants=("l1-int8",)), 0.5, VAL)
    rows = [{**r, "run_id": "r", "created": run["created"], "hardware": "x", "dataset": "synthfer"}
            for r in run["results"]]
    sel = select(selection_rows_of(rows), Constraints())
    assert sel.recommended is not None
    assert "no floor for VGG16-FER x0.5 (no dense-fp32 validation accuracy stored)" in sel.floor


def _choice(name: str, p50: float, ci: list[float] | None, p99_hi: float) -> Choice:
    return Choice("openvino", "cpu", name, "x", 1, "r", "t", p50_ms=p50, p99_ms=p99_hi * 0.9, p50_ci_ms=ci,
                  p99_ci_ms=[p99_hi * 0.8, p99_hi])


def test_overlapping_p50_intervals_are_ties_ranked_by_p99_upper_bound() -> None:
    # the case: 0.116 [0.113, 0.173] vs 0.143 [0.142, 0.232] overlap: no winner on the point estimate
    ov, ort = _choice("ov", 0.116, [0.113, 0.173], 0.40), _choice("ort", 0.143, [0.142, 0.232], 0.30)
    far = _choice("far", 0.300, [0.290, 0.310], 0.35)
    ranked = [ov, ort, far]
    tied = rank_ties(ranked, "latency")
    assert [c.variant for c in ranked] == ["ort", "ov", "far"]  # the smaller p99 upper bound first among ties
    assert [c.variant for c in tied] == ["ov"]
    # separated intervals: the point order stands and nothing is tied
    a, b = _choice("a", 0.116, [0.113, 0.120], 0.40), _choice("b", 0.143, [0.142, 0.150], 0.30)
    ranked = [a, b]
    assert rank_ties(ranked, "latency") == [] and [c.variant for c in ranked] == ["a", "b"]
    # no interval stored (one process): nothing can be called a tie, and storage is exact
    ranked = [_choice("c", 0.1, None, 0.4), _choice("d", 0.11, [0.1, 0.2], 0.3)]
    assert rank_ties(ranked, "latency") == [] and ranked[0].variant == "c"
    assert rank_ties([ov, ort], "storage") == []


def test_select_json_lists_indistinguishable_from_best(tmp_path, make_run, monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli, "COMMANDS", MY_COMMANDS)
    run = _identify(make_run("r", backends=("openvino", "onnxruntime"), variants=("l1-int8",)), 0.25,
                    {"l1-int8": 0.88})
    for r in run["results"]:
        if r["status"] == "ok" and r["scenario"] == "latency":
            wide = r["backend"] == "openvino"
            r["latency_ms"]["p50"] = 0.116 if wide else 0.143
            r["p50_ci_ms"] = [0.113, 0.173] if wide else [0.142, 0.232]
            r["p99_ci_ms"] = [0.2, 0.5] if wide else [0.2, 0.3]
    url = _store(tmp_path, [run])
    assert cli.main(["select", "--store", url, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["recommended"]["backend"] == "onnxruntime"  # slower point, but the tighter tail among equals
    assert [c["backend"] for c in out["indistinguishable_from_best"]] == ["openvino"]
    assert "p99 upper bound" in out["tie_rule"]
    assert out["ranked"][1]["why"].startswith("indistinguishable from the recommended choice")
    assert cli.main(["select", "--store", url]) == 0
    assert "Indistinguishable from it (p50 intervals overlap)" in " ".join(capsys.readouterr().out.split())


def test_bad_filters_are_user_errors() -> None:
    rows = selection_rows_of([{"model": "VGG16-FER x0.25", "artifact_sha256": "ab" * 32}])
    with pytest.raises(UserError, match="at least 6 hex digits"):
        filter_rows(rows, None, None, None, ["ab"])
    assert filter_rows(rows, None, None, ["vgg16-fer X0.25"], ["ababab"]) == rows


def test_compare_hardware_keeps_two_models_of_one_variant_apart(tmp_path, make_run, monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli, "COMMANDS", MY_COMMANDS)
    runs = []
    for width in (0.25, 1.0):
        for machine, fp in (("a", "fp-a"), ("b", "fp-b")):
            runs.append(_identify(make_run(f"{machine}{width}", fingerprint=fp, backends=("openvino",),
                                           created=f"2026-04-0{len(runs) + 1}T00:00:00Z"), width))
    url = _store(tmp_path, runs)
    out = tmp_path / "cmp"
    assert cli.main(["report", "--compare-hardware", "--store", url, "--out", str(out)]) == 0
    capsys.readouterr()
    md = (out / "compare_hardware.md").read_text()
    lines = [ln for ln in md.splitlines() if ln.startswith("| openvino | l1-int8 |")]
    assert len(lines) == 2
    assert any("VGG16-FER x0.25 " + _sha(0.25, "l1-int8", "model.onnx")[:12] in ln for ln in lines)
    assert any("VGG16-FER x1 " + _sha(1.0, "l1-int8", "model.onnx")[:12] in ln for ln in lines)
    assert "keyed by their run's config hash" not in md


def test_a_choice_compiled_without_snippets_says_so(make_run) -> None:
    run = _identify(make_run("r", backends=("openvino",), variants=("l1-int8",)), 0.25, {"l1-int8": 0.88})
    note = "Snippets disabled (SNIPPETS_MODE=DISABLE, every Subgraph fusion, float ones too)"
    rows = [{**r, "run_id": "r", "created": run["created"], "hardware": "x", "compile_note": note}
            for r in run["results"]]
    sel = select(selection_rows_of(rows), Constraints())
    assert sel.recommended is not None and sel.recommended.compile_note == note
    assert "[compiled without Snippets]" in sel.message and sel.to_dict()["recommended"]["compile_note"] == note
