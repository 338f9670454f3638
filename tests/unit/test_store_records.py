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
from common.records import Run, parse_run
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
