"""Rows take accuracy from the cell's untimed accuracy process; a failed accuracy process makes them INVALID."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.measure.rows import rows_from_cell, timed_spec
from harness.measure.settings import CellSettings

S = CellSettings(threads=1, batch_sizes=(), warmup_s=0.0, min_duration_s=0.0, min_iterations=1, max_cov=1.0,
                 accuracy=True, timeout_s=10.0, memory_mb=0)


def _procs() -> list[dict[str, Any]]:
    samples = list(np.random.default_rng(0).normal(1.0, 0.01, 200))
    entry = {"scenario": "latency", "batch_size": 1, "status": "ok", "samples_ms": samples, "duration_s": 0.2,
             "min_samples": 1, "images_per_sample": 1, "requests_in_flight": 1}
    return [{"round": r, "started": "", "result": {"status": "ok", "scenarios": [entry], "steps": ["load"]}}
            for r in range(2)]


def test_accuracy_comes_from_the_accuracy_process() -> None:
    acc = {"status": "ok", "metrics": {"accuracy": 0.625, "macro_f1": 0.5, "confusion": [[1]]}}
    (row,) = rows_from_cell(S, "openvino", "v", {}, _procs(), acc)
    assert row["accuracy"] == 0.625 and row["status"] == "ok"
    assert not any("accuracy process" in r for r in row["invalid_reasons"])


def test_a_failed_accuracy_process_makes_the_rows_invalid() -> None:
    (row,) = rows_from_cell(S, "openvino", "v", {}, _procs(), {"status": "timeout", "reason": "killed"})
    assert row["accuracy"] is None and row["valid"] is False
    assert "accuracy process: timeout: killed" in row["invalid_reasons"]


def test_timed_processes_do_no_accuracy_pass(tmp_path: Any) -> None:
    from harness.measure.launcher import cell_spec

    spec = timed_spec(cell_spec(S, "openvino", tmp_path, tmp_path / "i.npy", tmp_path / "l.npy", tmp_path / "o"))
    assert spec.accuracy is False and spec.logits_out == "" and spec.timing is True
