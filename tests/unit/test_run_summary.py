"""What `bench run` prints under its table (harness.cli.run): the reference arm's lines, the backends that could not
run, the harness overhead and the speedup over the dense PyTorch reference, all read from the run's typed records;
the results dict and its `Run` print the same."""

from __future__ import annotations

from typing import Any

import pytest

from common.records import as_run
from harness.cli.run import _print_summary, reference_text


def _paired(make_run: Any) -> dict[str, Any]:
    """A run with a reference arm (its latency p50s twice the candidate's) and an unavailable TensorRT cell."""
    run = make_run("r1", backends=("torch-eager", "openvino", "tensorrt"), variants=("dense-fp32", "l1-int8"),
                   batch_sizes=(8,), n=60)
    cand = [{**r, "arm": "candidate"} for r in run["results"]]
    ref = [{**r, "arm": "reference", "latency_ms": {**r["latency_ms"], "p50": 2 * r["latency_ms"]["p50"]},
            "rounds": r["rounds"][:2]} for r in cand if r["status"] == "ok"]
    run["results"] = cand + ref
    run["reference"] = {"kind": "dir", "path": "/refs/old", "settings": {"benchmark.threads": 2}}
    return run


def _p50(run: dict[str, Any], backend: str, variant: str, arm: str = "candidate") -> float:
    (row,) = [r for r in run["results"] if (r["backend"], r["variant"], r["scenario"], r["arm"]) ==
              (backend, variant, "latency", arm)]
    return float(row["latency_ms"]["p50"])


def test_the_reference_arm_is_listed_cell_by_cell_with_both_p50s(make_run: Any) -> None:
    run = _paired(make_run)
    lines = reference_text(run).splitlines()
    assert lines[0] == ("reference arm (dir): /refs/old under benchmark.threads=2; each of its processes ran back "
                        "to back with the candidate's (ABBA order)")
    c, x = _p50(run, "openvino", "l1-int8"), _p50(run, "openvino", "l1-int8", "reference")
    assert f"  openvino l1-int8: p50 {c:.3f} ms candidate, {x:.3f} ms reference (3 + 2 processes)" in lines
    assert len(lines) == 1 + 4  # one line per ok latency cell with both arms; the unavailable TensorRT has none
    assert reference_text(as_run(run)) == reference_text(run)
    assert reference_text(make_run("r2")) == ""  # no reference arm: nothing printed
    run["reference"] = {**run["reference"], "settings": None, "interleave": "blocks"}
    assert reference_text(run).splitlines()[0] == ("reference arm (dir): /refs/old; both arms in one process per "
                                                   "round, timed in alternating blocks")


def test_summary_lines_read_from_the_typed_run(make_run: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run = _paired(make_run)
    _print_summary(run)
    out = capsys.readouterr().out
    _print_summary(as_run(run))
    assert capsys.readouterr().out == out
    assert "tensorrt: unavailable — tensorrt is not installed; pip install fer-bench[tensorrt]" in out
    assert "harness overhead: 1.30 µs per iteration" in out
    speedup = _p50(run, "torch-eager", "dense-fp32") / _p50(run, "openvino", "l1-int8")
    (line,) = [ln for ln in out.splitlines() if "│ openvino" in ln and "l1-int8" in ln]  # its table row
    assert f"{speedup:.1f}x" in line and "VALID" in line
    assert "reference arm (dir): /refs/old" in out
