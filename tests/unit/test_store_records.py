"""The store and the result records: a real version-1 export imports, migrates and reads typed; a file that does
not conform is refused with one line naming its first bad field, and nothing is stored."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

import harness.cli.entry as cli
from common.errors import UserError
from common.records import Run, SelectionRow, parse_run, selection_rows_of
from harness.history.store import ResultsStore

V1_EXPORT = Path(__file__).resolve().parents[1] / "fixtures" / "results_v1_export.jsonl"


def v1_run() -> dict[str, Any]:
    return json.loads(V1_EXPORT.read_text(encoding="utf-8").splitlines()[0])


def _dump(url: str) -> str:
    """Everything stored, as text (runs with their rows and samples), to tell whether a store changed."""
    with ResultsStore(url) as store:
        return hashlib.sha256("\n".join(json.dumps(r, sort_keys=True) for r in store.iter_runs()).encode()).hexdigest()


def test_v1_export_imports_and_reads_typed(tmp_path: Path, capsys: Any) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    assert cli.main(["store", "import", str(V1_EXPORT), "--store", url]) == 0
    assert "imported 1 new runs" in capsys.readouterr().out
    raw = v1_run()
    with ResultsStore(url) as store:
        typed = store.load_run_typed(raw["run_id"])
        as_dict = store.load_run(raw["run_id"])
    assert isinstance(typed, Run) and typed.schema_version == 2
    assert as_dict["schema_version"] == 2 and as_dict["results"] == raw["results"]  # upgraded, rows as exported
    assert typed == parse_run(raw)  # every field of every row, samples included, read back as the types
    assert typed.results[0].samples_ms == raw["results"][0]["samples_ms"]
    assert typed.results[0].rounds and typed.results[0].rounds[0].pair is None


def test_non_conforming_import_is_refused_and_nothing_is_stored(tmp_path: Path, capsys: Any) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    with ResultsStore(url) as store:
        store.save_run({**v1_run(), "run_id": "already-there"})
    before = _dump(url)
    good = v1_run()
    bad = copy.deepcopy(good)
    bad["run_id"] = "bad-one"
    bad["results"][3]["latency_ms"]["p50"] = "fast"
    src = tmp_path / "mixed.jsonl"
    src.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")  # the good run comes first
    capsys.readouterr()
    assert cli.main(["store", "import", str(src), "--store", url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "run bad-one" in err[0] and "results[3].latency_ms.p50" in err[0] and "valid number" in err[0]
    assert _dump(url) == before  # not even the conforming run before it was stored


def test_a_bad_enum_and_a_newer_version_name_what_is_allowed(tmp_path: Path, capsys: Any) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    for mutate, expect in ((lambda r: r["results"][0].__setitem__("arm", "baseline"),
                            "results[0].arm: input should be 'candidate' or 'reference'"),
                           (lambda r: r.__setitem__("schema_version", 3), "schema_version: 3 was written by a newer")):
        run = v1_run()
        mutate(run)
        src = tmp_path / "one.json"
        src.write_text(json.dumps(run), encoding="utf-8")
        capsys.readouterr()
        assert cli.main(["store", "import", str(src), "--store", url]) == 2
        assert expect in capsys.readouterr().err
    with ResultsStore(url) as store:
        assert store.count_runs() == 0


def test_migrate_upgrades_stored_version_1_runs(tmp_path: Path, capsys: Any) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    raw = v1_run()
    with ResultsStore(url) as store:
        store.save_run(raw)  # stored as the old code stored it: version 1
        assert store.load_run()["schema_version"] == 1
        assert store.load_run_typed().schema_version == 2  # typed reads upgrade on the fly
    capsys.readouterr()
    assert cli.main(["store", "migrate", "--store", url]) == 0
    assert "1 runs (1 upgraded to result version 2)" in capsys.readouterr().out
    with ResultsStore(url) as store:
        assert store.load_run()["schema_version"] == 2
        assert store.load_run()["results"] == raw["results"]
    assert cli.main(["store", "migrate", "--store", url]) == 0
    assert "upgraded" not in capsys.readouterr().out  # nothing left to upgrade


def test_typed_reads_equal_the_dict_reads(tmp_path: Path, make_run: Any) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    with ResultsStore(url) as store:
        for i in range(3):
            store.save_run(make_run(f"r{i}", created=f"2026-01-0{i + 1}T00:00:00Z", seed=i))
        for rid in store.run_ids():
            assert store.load_run_typed(rid) == parse_run(store.load_run(rid))
        typed = list(store.iter_runs_typed(samples=False))
        assert [r.run_id for r in typed] == ["r0", "r1", "r2"] and typed[0].results[0].samples_ms is None
        like = store.runs_like_typed(typed[-1], 5, samples=False)
        assert [r.run_id for r in like] == [r["run_id"] for r in store.runs_like(store.load_run("r2"), 5, False)]


def test_a_stored_run_that_does_not_conform_is_named_on_typed_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    run = v1_run()
    run["results"][1]["n_samples"] = "many"  # the dict store takes it as it is
    with ResultsStore(url) as store:
        store.save_run(run)
        with pytest.raises(Exception, match=r"stored run .*: results\[1\]\.n_samples: input should be a valid integer"):
            store.load_run_typed()


def _cluster_run(make_run: Any) -> dict[str, Any]:
    """A cluster run: its rows name the node that measured them, described in the run's `machines`."""
    run = make_run("c", created="2026-01-05T00:00:00Z", backends=("openvino",), seed=7)
    for i, r in enumerate(run["results"]):
        node = "box-a" if i % 2 else "box-b"
        r.update(machine_id=node, fingerprint_id=f"fp-{node}", target=f"edge-{node[-1]}")
    run["machines"] = {m: {"fingerprint": {"id": f"fp-{m}", "machine_id": m, "cpu": {"brand": f"CPU {m}", "cores": 4}}}
                       for m in ("box-a", "box-b")}
    return run


def test_selection_rows_equal_the_dict_rows(tmp_path: Path, make_run: Any) -> None:
    """`all_results_typed` reads, row for row, what `all_results` reads (the fields a SelectionRow declares):
    local, cluster, reference-arm and real version-1 runs; the reference arm is left out of both."""
    arm = make_run("arm", created="2026-01-03T00:00:00Z", backends=("onnxruntime",), seed=3)
    arm["results"] += [{**r, "arm": "reference", "variant": "ref-" + r["variant"]} for r in arm["results"]]
    with ResultsStore(f"sqlite:///{tmp_path / 'h.sqlite'}") as store:
        store.save_run(make_run("a", created="2026-01-01T00:00:00Z", seed=1))
        store.save_run(arm)
        store.save_run(_cluster_run(make_run))
        store.save_run(v1_run())
        dicts, typed = store.all_results(), store.all_results_typed()
    assert typed == selection_rows_of(dicts) and len(typed) == len(dicts) > 0
    assert all(isinstance(r, SelectionRow) for r in typed)
    assert {r.run_id for r in typed} == {"a", "arm", "c", v1_run()["run_id"]}
    assert not any(r.variant.startswith("ref-") or r.arm == "reference" for r in typed)
    nodes = {(r.machine_id, r.fingerprint_id, r.hardware, r.target) for r in typed if r.run_id == "c"}
    assert nodes == {("box-a", "fp-box-a", "CPU box-a (4 cores)", "edge-a"),
                     ("box-b", "fp-box-b", "CPU box-b (4 cores)", "edge-b")}
    real = next(r for r in typed if r.run_id == v1_run()["run_id"])
    assert real.describe is not None and real.describe.threads == 1 and real.latency_ms is not None
    assert real.latency_ms.p50 == v1_run()["results"][0]["latency_ms"]["p50"] and real.synthetic is True


def test_a_stored_row_that_does_not_conform_is_named_on_selection_read(tmp_path: Path) -> None:
    """A field the selection reads that does not conform is named; one it never reads does not stop it."""
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    run = v1_run()
    run["results"][1]["n_samples"] = "many"  # not read by select: passed over
    with ResultsStore(url) as store:
        store.save_run(run)
        assert len(store.all_results_typed()) == len(run["results"])
        run["results"][1]["latency_ms"]["p50"] = "fast"
        store.save_run(run, replace=True)
        with pytest.raises(UserError, match=r"stored run .*: results\[1\]\.latency_ms\.p50: input should be a "
                                            r"valid number"):
            store.all_results_typed()
