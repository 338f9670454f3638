"""The reference arm end to end on tiny real artifacts: ABBA order of the processes, both arms through the real
SQLite store, `--reference DIR`, `--reference accepted` after a real `bench accept`, `--reference-set`, the rounds
added while a cell is inconclusive, and the refusals of a bad REF."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

import harness.cli.entry as cli
from backends.registry import resolve_config
from common.config import load_config
from common.errors import UserError
from common.results import ARM_ROW_FIELDS, ROW_FIELDS
from fer.data import FerData
from harness.gate.paired import BLOCKS_STATISTIC, LEVEL_STATISTIC
from harness.history.store import ResultsStore
from harness.measure.settings import cell_settings
from harness.orchestrate.reference import ReferenceArm
from harness.orchestrate.runner import MoreRounds, arm_order, run_grid

CACHE = tempfile.mkdtemp(prefix="bench-test-cache-")
SMALL = {"benchmark.threads": "1", "benchmark.min_duration_s": "0.04", "benchmark.min_iterations": "20",
         "benchmark.warmup_s": "0.02", "benchmark.batch_sizes": "[1]", "benchmark.cell_timeout_s": "120",
         "benchmark.rounds": "2", "benchmark.accuracy": "false", "benchmark.roofline": "false",
         "store.cache_dir": json.dumps(CACHE)}
CLI_SETS = [*(f"{k}={v}" for k, v in SMALL.items() if k != "store.cache_dir"), "data.synthfer_train=70",
            "data.synthfer_val=70", "data.synthfer_test=70"]
LINE = re.compile(r"\[(?:extra )?round (\d+)/\d+, \d+/\d+\] onnxruntime (\S+) \[(candidate|reference)\]")


def _cfg(variants: list[str], **over: str) -> Any:
    sets = {**SMALL, "benchmark.variants": json.dumps(variants), "benchmark.backends": '["onnxruntime"]', **over}
    return resolve_config(load_config(None, [f"{k}={v}" for k, v in sets.items()]))


def _arm(cfg: Any, kind: str, artifacts: dict[tuple[str, str], Path], settings: dict[str, Any] | None = None,
         path: str | None = None, interleave: str = "processes") -> ReferenceArm:
    return ReferenceArm(kind, path, settings, cell_settings(cfg), int(cfg.benchmark.threads), artifacts, interleave)


def _by_arm(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The latency row of each arm (one cell)."""
    return {r["arm"]: r for r in results["results"] if r["scenario"] == "latency"}


def _launch_order(messages: list[str]) -> list[tuple[int, str]]:
    """(round, arm) of every timed process, in the order the runner started them."""
    return [(int(m.group(1)), m.group(3)) for m in (LINE.search(x) for x in messages) if m]


@pytest.fixture(scope="module")
def arts(tmp_path_factory: pytest.TempPathFactory, make_fp32_artifact: Any) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("arm-arts")
    return {"candidate": make_fp32_artifact(root / "cand", seed=0),
            "reference": make_fp32_artifact(root / "ref", width=0.0625, seed=1)}  # other files: fewer params


@pytest.fixture(scope="module")
def dir_run(arts: dict[str, Path], tiny_data: FerData) -> dict[str, Any]:
    """One run with `--reference DIR` semantics, its progress lines, and what needs_more was shown."""
    cfg = _cfg(["dense-fp32"])
    ref = _arm(cfg, "dir", {("onnxruntime", "dense-fp32"): arts["reference"]}, path=str(arts["reference"]))
    shown: list[list[dict[str, Any]]] = []

    def conclusive(rows: list[dict[str, Any]]) -> bool:
        shown.append(rows)
        return False

    messages: list[str] = []
    results = run_grid(cfg, {"dense-fp32": arts["candidate"]}, tiny_data, progress=messages.append, reference=ref,
                       more=MoreRounds(conclusive, max_extra_rounds=3))
    return {"results": results, "messages": messages, "shown": shown}


BLOCKS_LINE = re.compile(r"\[round (\d+)/\d+, \d+/\d+\] onnxruntime \S+ \[(candidate|reference), same process\]")


def test_blocks_time_both_files_in_one_process_per_round(arts: dict[str, Path], tiny_data: FerData) -> None:
    """--interleave blocks: one process per round holds both arms (one pid, one log per round), each arm's rows
    time its own file (the sha256 of the file each loaded), every process entry says `interleave: blocks`, and
    the arm whose blocks led alternates (ABBA over rounds)."""
    cfg = _cfg(["dense-fp32"])
    ref = _arm(cfg, "dir", {("onnxruntime", "dense-fp32"): arts["reference"]}, path=str(arts["reference"]),
               interleave="blocks")
    messages: list[str] = []
    results = run_grid(cfg, {"dense-fp32": arts["candidate"]}, tiny_data, progress=messages.append, reference=ref)
    assert results["reference"]["interleave"] == "blocks"
    launched = [(int(m.group(1)), m.group(2)) for m in (BLOCKS_LINE.search(x) for x in messages) if m]
    assert launched == [(1, "candidate"), (1, "reference"), (2, "candidate"), (2, "reference")]
    rows = _by_arm(results)
    cand, other = rows["candidate"], rows["reference"]
    assert cand["status"] == other["status"] == "ok", (cand["reason"], other["reason"])
    for name, row in (("candidate", cand), ("reference", other)):
        manifest = json.loads((arts[name] / "manifest.json").read_text())
        assert row["artifact_sha256"] == manifest["files"]["model.onnx"]["sha256"]
        assert [(e["pair"], e["interleave"]) for e in row["rounds"]] == [(0, "blocks"), (1, "blocks")]
        assert all(e["n"] >= 20 for e in row["rounds"])
    assert cand["artifact_sha256"] != other["artifact_sha256"]
    # the candidate's blocks led in round 0, the reference's in round 1
    assert [e["position"] for e in cand["rounds"]] == [0, 1]
    assert [e["position"] for e in other["rounds"]] == [1, 0]
    # ONNX Runtime's two sessions in one process run without spinning workers (recorded where it is)
    assert cand["describe"]["spinning"] is False and other["describe"]["spinning"] is False


def test_blocks_cannot_take_settings_and_need_a_reference(arts: dict[str, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    base = ["run", "--artifact", str(arts["candidate"]), "--backend", "onnxruntime", "--no-report", *_sets(tmp_path)]
    _refused(*_run([*base, "--reference-set", "benchmark.threads=2", "--interleave", "blocks"], capsys)[::2],
             "--interleave blocks", "benchmark.threads", "--interleave processes")
    _refused(*_run([*base, "--interleave", "processes"], capsys)[::2], "--interleave", "--reference")


def test_abba_order_of_the_processes() -> None:
    assert arm_order(["candidate", "reference"], 0) == ["candidate", "reference"]
    assert arm_order(["candidate", "reference"], 1) == ["reference", "candidate"]
    assert arm_order(["candidate", "reference"], 4) == ["candidate", "reference"]
    assert arm_order(["candidate"], 1) == ["candidate"]


def test_pairs_run_back_to_back_candidate_first_in_even_rounds(dir_run: dict[str, Any]) -> None:
    assert _launch_order(dir_run["messages"]) == [(1, "candidate"), (1, "reference"), (2, "reference"),
                                                  (2, "candidate")]
    rows = _by_arm(dir_run["results"])
    assert [(e["round"], e["pair"], e["position"]) for e in rows["candidate"]["rounds"]] == [(0, 0, 0), (1, 1, 1)]
    assert [(e["round"], e["pair"], e["position"]) for e in rows["reference"]["rounds"]] == [(0, 0, 1), (1, 1, 0)]
    # each reference process started no earlier than its partner when it ran second, and vice versa
    for c, r in zip(rows["candidate"]["rounds"], rows["reference"]["rounds"], strict=True):
        first, second = (c, r) if c["position"] == 0 else (r, c)
        assert first["started"] <= second["started"]


def test_reference_rows_measure_the_reference_files(dir_run: dict[str, Any], arts: dict[str, Path]) -> None:
    results = dir_run["results"]
    assert results["reference"] == {"kind": "dir", "path": str(arts["reference"]), "settings": None,
                                    "interleave": "processes"}
    assert [r["arm"] for r in results["results"]] == ["candidate"] * 2 + ["reference"] * 2  # latency, throughput
    cand, ref = _by_arm(results)["candidate"], _by_arm(results)["reference"]
    assert set(ref) == set(ROW_FIELDS) | set(ARM_ROW_FIELDS)
    assert set(cand) == set(ROW_FIELDS) | {"arm"}
    key = ("backend", "variant", "scenario", "batch_size", "device")
    assert [cand[k] for k in key] == [ref[k] for k in key]
    assert cand["status"] == ref["status"] == "ok" and ref["reference_settings"] is None
    manifests = {k: json.loads((p / "manifest.json").read_text()) for k, p in arts.items()}
    assert manifests["candidate"]["params"] != manifests["reference"]["params"]
    assert cand["params"] == manifests["candidate"]["params"] and ref["params"] == manifests["reference"]["params"]
    assert ref["file_bytes"] == manifests["reference"]["files"]["model.onnx"]["bytes"]
    assert len(ref["rounds"]) == 2 and len(ref["samples_ms"]) == sum(e["n"] for e in ref["rounds"])


def test_needs_more_sees_both_arms_and_a_conclusive_cell_gets_no_round(dir_run: dict[str, Any]) -> None:
    (rows,) = dir_run["shown"]  # asked once, after the configured rounds
    assert [(r["arm"], r["scenario"]) for r in rows] == [("candidate", "latency"), ("candidate", "throughput"),
                                                         ("reference", "latency"), ("reference", "throughput")]
    assert all(len(r["rounds"]) == 2 for r in rows)
    extra = dir_run["results"]["rounds"]["extra"]
    assert extra["added"] == 0 and extra["stopped"] == "conclusive" and extra["max_extra_rounds"] == 3


def test_both_arms_and_their_rounds_survive_the_sqlite_store(dir_run: dict[str, Any], tmp_path: Path) -> None:
    results = dict(dir_run["results"], run_id="arm-store-1")
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    with ResultsStore(url) as store:
        store.save_run(results)
    with ResultsStore(url) as store:  # reopened: what a later `bench compare --paired` reads
        back = store.load_run("arm-store-1")
        listed = store.all_results()
    assert back["reference"] == results["reference"]
    assert [r["arm"] for r in back["results"]] == ["candidate"] * 2 + ["reference"] * 2
    for old, new in zip(results["results"], back["results"], strict=True):
        assert new["rounds"] == old["rounds"] and new["samples_ms"] == old["samples_ms"]
        assert new["params"] == old["params"]
    # every stored row (select, --compare-hardware) is the candidate's: a reference arm is judged within its run
    assert sorted(r["arm"] for r in listed) == ["candidate"] * 2


def test_inconclusive_cells_get_rounds_up_to_the_cap(arts: dict[str, Path], tiny_data: FerData) -> None:
    cfg = _cfg(["dense-fp32"])
    first_cpu = min(os.sched_getaffinity(0))
    ref = _arm(_cfg(["dense-fp32"], **{"benchmark.cpus": f"[{first_cpu}]"}), "settings", {},
               settings={"benchmark.cpus": [first_cpu]})
    asked: list[int] = []

    def always(rows: list[dict[str, Any]]) -> bool:
        asked.append(len(rows[0]["rounds"]))
        return True

    messages: list[str] = []
    results = run_grid(cfg, {"dense-fp32": arts["candidate"]}, tiny_data, progress=messages.append, reference=ref,
                       more=MoreRounds(always, max_extra_rounds=1))
    assert asked == [2]  # asked after the two configured rounds; the cap of one added round ends the loop
    extra = results["rounds"]["extra"]
    assert extra["added"] == 1 and extra["stopped"] == "max_extra_rounds" and extra["cells"] == [
        ["onnxruntime/dense-fp32"]]
    assert len(results["rounds"]["order"]) == 3
    assert _launch_order(messages)[-2:] == [(1, "candidate"), (1, "reference")]  # extra round 1 = round index 2
    for row in results["results"]:
        assert [(e["pair"], e["position"]) for e in row["rounds"]][-1] == (2, 0 if row["arm"] == "candidate" else 1)
        assert len(row["rounds"]) == 3
        # the reference processes were confined to one CPU (benchmark.cpus), the candidate's were not
        allowed = 1 if row["arm"] == "reference" else len(os.sched_getaffinity(0))
        assert [e["cpus_allowed"] for e in row["rounds"]] == [allowed] * 3


def test_cpus_outside_the_affinity_are_refused(arts: dict[str, Path], tiny_data: FerData) -> None:
    cfg = _cfg(["dense-fp32"], **{"benchmark.cpus": f"[{max(os.sched_getaffinity(0)) + 1}]"})
    with pytest.raises(UserError, match=r"benchmark.cpus = \[\d+\]: this machine lets bench run on CPUs"):
        run_grid(cfg, {"dense-fp32": arts["candidate"]}, tiny_data)


def test_the_time_cap_stops_added_rounds_without_a_reference(arts: dict[str, Path], tiny_data: FerData) -> None:
    cfg = _cfg(["dense-fp32"], **{"benchmark.rounds": "1"})
    results = run_grid(cfg, {"dense-fp32": arts["candidate"]}, tiny_data,
                       more=MoreRounds(lambda rows: True, max_extra_rounds=5, time_cap_s=0.01))
    extra = results["rounds"]["extra"]
    assert extra["added"] == 0 and extra["stopped"] == "time_cap"
    row = results["results"][0]
    assert row.get("arm") is None and len(row["rounds"]) == 1 and results.get("reference") is None


# ---------------------------------------------------------------------------------------------- the CLI


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = int(e.code) if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def _refused(code: int, err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err[-1500:])
    for n in needles:
        assert n in lines[0], lines[0]


def _sets(root: Path) -> list[str]:
    sets = [*CLI_SETS, f"store.cache_dir={root / 'cache'}", f"store.runs_dir={root / 'runs'}",
            f"store.url=sqlite:///{root / 'h.sqlite'}"]
    return [x for s in sets for x in ("--set", s)]


def test_reference_set_runs_the_same_files_under_the_other_setting(arts: dict[str, Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    code, out_text, err = _run(["run", "--artifact", str(arts["candidate"]), "--backend", "onnxruntime",
                                "--reference-set", "benchmark.threads=2", "--json-out", str(out), "--no-report",
                         *_sets(tmp_path)], capsys)
    assert code == 0, err[-2000:]
    results = json.loads(out.read_text())
    assert results["reference"] == {"kind": "settings", "path": None, "settings": {"benchmark.threads": 2},
                                    "interleave": "processes"}  # settings are per process: never one shared process
    rows = _by_arm(results)
    assert rows["candidate"]["describe"]["threads"] == 1 and rows["reference"]["describe"]["threads"] == 2
    assert rows["reference"]["reference_settings"] == {"benchmark.threads": 2}
    assert rows["candidate"]["file_bytes"] == rows["reference"]["file_bytes"]  # the same files
    with ResultsStore(f"sqlite:///{tmp_path / 'h.sqlite'}") as store:
        stored = store.load_run(results["run_id"])
    assert [r["arm"] for r in stored["results"]] == ["candidate"] * 2 + ["reference"] * 2
    assert "reference arm (settings): the candidate's files under benchmark.threads=2" in err + out_text


def test_reference_accepted_measures_the_kept_files_after_the_cache_changed(
        arts: dict[str, Path], make_fp32_artifact: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "cache-old"
    shutil.copytree(arts["reference"], old)  # variant dense-fp32 at width 1/16: the accepted build
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    code, _, err = _run(["run", "--artifact", str(old), "--backend", "onnxruntime", "--no-report",
                         *_sets(tmp_path), "--set", "benchmark.rounds=1"], capsys)
    assert code == 0, err[-2000:]
    code, out, err = _run(["accept", "latest", "--reason", "the new baseline", "--who", "t", "--store", url,
                           "--json"], capsys)
    assert code == 0, err
    record = json.loads(out)
    kept = Path(record["artifacts"]["dense-fp32"])
    assert kept.parent.parent == tmp_path / "artifacts" and (kept / "model.onnx").is_file()
    old_params = json.loads((old / "manifest.json").read_text())["params"]
    shutil.rmtree(old)  # the cache moved on: the accepted files exist only in the kept store now
    out_json = tmp_path / "paired.json"
    code, _, err = _run(["run", "--artifact", str(arts["candidate"]), "--backend", "onnxruntime", "--reference",
                         "accepted", "--json-out", str(out_json), "--no-report", *_sets(tmp_path)], capsys)
    assert code == 0, err[-2000:]
    results = json.loads(out_json.read_text())
    assert results["reference"] == {"kind": "accepted", "path": str(tmp_path / "artifacts"), "settings": None,
                                    "interleave": "blocks"}
    rows = _by_arm(results)
    assert rows["reference"]["params"] == old_params != rows["candidate"]["params"]
    assert rows["reference"]["status"] == "ok" and len(rows["reference"]["rounds"]) == 2


def test_reference_dir_of_variant_directories(arts: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    refs = tmp_path / "refs"
    shutil.copytree(arts["reference"], refs / "dense-fp32")
    out = tmp_path / "r.json"
    code, _, err = _run(["run", "--artifact", str(arts["candidate"]), "--backend", "onnxruntime", "--reference",
                         str(refs), "--json-out", str(out), "--no-report", "--no-store", *_sets(tmp_path),
                         "--set", "benchmark.rounds=1"], capsys)
    assert code == 0, err[-2000:]
    results = json.loads(out.read_text())
    assert results["reference"]["kind"] == "dir" and results["reference"]["path"] == str(refs.resolve())
    rows = _by_arm(results)
    assert rows["reference"]["params"] == json.loads((refs / "dense-fp32" / "manifest.json").read_text())["params"]
    assert results["artifacts"]["dense-fp32"]["path"] == str(arts["candidate"].resolve())


def test_bad_references_are_refused(arts: dict[str, Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    base = ["run", "--artifact", str(arts["candidate"]), "--backend", "onnxruntime", "--no-report", *_sets(tmp_path)]
    _refused(*_run([*base, "--reference", str(tmp_path / "nowhere")], capsys)[::2], "no such directory",
             "'accepted'")
    (tmp_path / "empty").mkdir()
    _refused(*_run([*base, "--reference", str(tmp_path / "empty")], capsys)[::2], "no artifact for variant",
             "dense-fp32")
    _refused(*_run([*base, "--reference", "accepted"], capsys)[::2], "holds no acceptance", "bench accept RUN")
    _refused(*_run([*base, "--reference-set", "benchmark.rounds=3"], capsys)[::2], "benchmark.threads")
    _refused(*_run([*base, "--reference-set", "benchmark.threads=lots"], capsys)[::2], "benchmark.threads")
    _refused(*_run([*base, "--paired-time-cap-s", "30"], capsys)[::2], "--max-extra-rounds")
    _refused(*_run([*base, "--max-extra-rounds", "-1"], capsys)[::2], "--max-extra-rounds -1")
    _refused(*_run([*base, "--max-extra-rounds", "2"], capsys)[::2], "--max-extra-rounds", "--reference")
    assert not (tmp_path / "h.sqlite").exists() or ResultsStore(
        f"sqlite:///{tmp_path / 'h.sqlite'}").count_runs() == 0  # nothing ran, nothing stored


def test_accepted_without_kept_files_names_how_to_accept(arts: dict[str, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    with ResultsStore(url) as store:  # a run stored without artifact directories (e.g. by an older bench)
        store.save_run({"run_id": "old-1", "created": "2026-01-01T00:00:00Z", "results": []})
    code, out, _err = _run(["accept", "old-1", "--reason", "r", "--who", "t", "--store", url], capsys)
    assert code == 0 and "no files kept" in out
    base = ["run", "--artifact", str(arts["candidate"]), "--backend", "onnxruntime", "--no-report", *_sets(tmp_path)]
    _refused(*_run([*base, "--reference", "accepted"], capsys)[::2], "kept no files for variant dense-fp32",
             "bench accept RUN")


@pytest.mark.parametrize("interleave", ["blocks", "processes"])
def test_a_slowdown_built_as_a_file_is_a_paired_regression_and_the_same_file_is_not(
        interleave: str, arts: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The gate end to end on real work, not scaled numbers: the same graph plus input-dependent MatMuls
    (compression.slowdown, several times the tiny model's own work) measured beside the original in one paired run
    is a regression judged on the level; the original beside itself is not a regression."""
    from compression.slowdown import add_slowdown

    slow_onnx = tmp_path / "slow.onnx"
    add_slowdown(arts["candidate"] / "model.onnx", slow_onnx, extra_mmacs=12.0)
    code, _, err = _run(["import", str(slow_onnx), "--out", str(tmp_path / "slow"), "--name", "dense-fp32"], capsys)
    assert code == 0, err
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    # a loaded machine can leave too few fast-mode processes in 8 pairs: pairs are added while the paired judge is
    # inconclusive, as the runner does for users (--max-extra-rounds asks harness.gate.paired)
    rounds = ["--set", "benchmark.rounds=8", "--max-extra-rounds", "12"]
    for cand, expect in ((tmp_path / "slow", 1), (arts["candidate"], (0, 3))):
        code, _, err = _run(["run", "--artifact", str(cand), "--backend", "onnxruntime", "--reference",
                             str(arts["candidate"]), "--interleave", interleave, "--no-report", *_sets(tmp_path),
                             *rounds], capsys)
        assert code == 0, err[-2000:]
        code, out, err = _run(["compare", "--paired", "latest", "--store", url, "--json"], capsys)
        doc = json.loads(out)
        cells = [c for c in doc["cells"] if c["scenario"] == "latency"]
        statistic = {c["level_statistic"] for c in cells}
        assert statistic == {BLOCKS_STATISTIC if interleave == "blocks" else LEVEL_STATISTIC}
        if expect == 1:
            assert code == 1, (out[-2000:], err[-2000:])
            assert any(c["verdict"] == "regression" and "level" in c["judged"] for c in cells), cells
        else:
            assert code in expect, (out[-2000:], err[-2000:])  # no change, or inconclusive: never a regression
            assert all(c["verdict"] != "regression" for c in cells), cells
