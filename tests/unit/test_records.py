"""The typed result records: the published schema and docs match the types, a real version-1 file upgrades and
validates field by field, and a bad field is named by its path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import Field

from common.records import (
    DOCS_FILE,
    SCHEMA_FILE,
    SCHEMA_VERSION,
    Round,
    Row,
    Run,
    SchemaError,
    docs_text,
    parse_run,
    schema_text,
    upgrade_run,
)
from common.results import CLUSTER_ROW_FIELDS, ROW_FIELDS

ROOT = Path(__file__).resolve().parents[2]
V1_EXPORT = ROOT / "tests" / "fixtures" / "results_v1_export.jsonl"
REGENERATE = "regenerate with: python -m common.records"


def v1_runs() -> list[dict[str, Any]]:
    return [json.loads(line) for line in V1_EXPORT.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_checked_in_schema_matches_the_types() -> None:
    assert (ROOT / SCHEMA_FILE).read_text(encoding="utf-8") == schema_text(), f"{SCHEMA_FILE} is stale; {REGENERATE}"


def test_docs_page_matches_the_types() -> None:
    assert (ROOT / DOCS_FILE).read_text(encoding="utf-8") == docs_text(), f"{DOCS_FILE} is stale; {REGENERATE}"


def test_every_field_has_a_type_and_a_meaning() -> None:
    defs = json.loads(schema_text())["$defs"]
    for name, d in [("Run", json.loads(schema_text())), *defs.items()]:
        for field, prop in d.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field} has no description"


def test_row_declares_exactly_the_documented_row_fields() -> None:
    assert set(Row.model_fields) == set(ROW_FIELDS) | set(CLUSTER_ROW_FIELDS)
    for new in ("artifact_sha256", "model", "arm", "reference_settings", "modes", "compile_note"):
        assert Row.model_fields[new].default is None
    assert {"pair", "position"} <= set(Round.model_fields)
    assert Run.model_fields["reference"].default is None


def test_the_real_version_1_export_upgrades_and_every_field_validates() -> None:
    runs = v1_runs()
    assert runs and all(r["schema_version"] == 1 for r in runs)
    schema = json.loads((ROOT / SCHEMA_FILE).read_text(encoding="utf-8"))
    for raw in runs:
        run = parse_run(raw)
        assert run.schema_version == SCHEMA_VERSION == 2
        assert len(run.results) == len(raw["results"])
        # every declared field of every row read as its type, none left as an undeclared extra
        for typed, row in zip(run.results, raw["results"], strict=True):
            assert not typed.model_extra, typed.model_extra
            assert set(row) <= set(Row.model_fields)
            assert typed.latency_ms is None or typed.latency_ms.p50 == row["latency_ms"]["p50"]
            assert [r.p50_ms for r in typed.rounds or []] == [r["p50_ms"] for r in row["rounds"] or []]
            assert typed.artifact_sha256 is None and typed.modes is None  # added in 2: absent from a v1 file
        jsonschema.validate(upgrade_run(raw), schema)
        # the typed run writes back what it read (plus the version)
        again = run.model_dump(exclude_unset=True)
        assert again == {**raw, "schema_version": 2}


@pytest.mark.parametrize(("path", "value", "where", "allowed"), [
    (("results", 1, "latency_ms", "p50"), "fast", "results[1].latency_ms.p50", "valid number"),
    (("results", 0, "valid"), 1, "results[0].valid", "valid boolean"),
    (("results", 0, "rounds", 2, "n"), 2.5, "results[0].rounds[2].n", "valid integer"),
    (("results", 3, "arm"), "baseline", "results[3].arm", "'candidate' or 'reference'"),
])
def test_a_bad_field_is_named_by_its_path(path: tuple[Any, ...], value: Any, where: str, allowed: str) -> None:
    raw = copy.deepcopy(v1_runs()[0])
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(SchemaError) as e:
        parse_run(raw)
    assert e.value.where == where and allowed in e.value.message, str(e.value)
    with pytest.raises(jsonschema.ValidationError):  # the published schema refuses it as well
        jsonschema.validate(upgrade_run(raw), json.loads(schema_text()))


def test_a_newer_or_unknown_version_is_refused() -> None:
    raw = v1_runs()[0]
    with pytest.raises(SchemaError, match="newer bench"):
        parse_run({**raw, "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(SchemaError, match="schema_version"):
        parse_run({**raw, "schema_version": "2"})


def test_a_view_declares_its_fields_as_the_record_does() -> None:
    """SelectionRow takes each field's type and meaning from Row (and Run): a view that drifts from its record is
    refused when it is defined."""
    from common.records import SelectionRow, View, _as_in, _check_view

    for name in ("backend", "latency_ms", "p50_ci_ms", "arm", "val_accuracy"):
        assert SelectionRow.model_fields[name].description == Row.model_fields[name].description
    assert SelectionRow.model_fields["run_id"].description == Run.model_fields["run_id"].description

    class Retyped(View):
        accuracy: int | None = _as_in(Row, "accuracy")  # Row: float | None

    class Reworded(View):
        accuracy: float | None = Field(default=None, description="accuracy")

    class Loosened(View):
        run_id: str | None = _as_in(Run, "run_id", default=None)  # Run requires it

    _check_view(Loosened, Run, ("run_id",), nullable=True)
    for view, record, nullable in ((Retyped, Row, False), (Reworded, Row, False), (Loosened, Run, False)):
        with pytest.raises(TypeError, match="is not declared as"):
            _check_view(view, record, tuple(view.model_fields), nullable)
