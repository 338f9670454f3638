"""The grid end to end on tiny real artifacts: exact result schema, statuses, agreement, reproducible numbers."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from backends.registry import resolve_config
from common.config import Config, load_config
from common.errors import UserError
from common.results import RESULT_FIELDS, ROW_FIELDS
from common.stats.accuracy import unpack_correct
from fer.data import FerData
from harness.measure.agreement import compare_logits
from harness.measure.loop import Stats
from harness.orchestrate.runner import run_grid

CACHE = tempfile.mkdtemp(prefix="bench-test-cache-")  # reference logits cache: never the repo's .bench-cache
LATENCY_FIELDS = {"min", "p50", "p90", "p95", "p99", "mean", "stdev", "iqr", "cov", "rcov"}
AGREEMENT_FIELDS = {"variant", "backend", "reference", "top1_agreement", "max_abs_logit_diff", "scenario"}


def _cfg(variants: list[str], **over: str) -> Config:
    sets = {"benchmark.threads": "1", "benchmark.min_duration_s": "0.05", "benchmark.min_iterations": "20",
            "benchmark.warmup_s": "0.02", "benchmark.batch_sizes": "[1, 4]", "benchmark.cell_timeout_s": "120",
            "benchmark.rounds": "2", "store.cache_dir": json.dumps(CACHE),
            "benchmark.variants": json.dumps(variants),
            "benchmark.backends": json.dumps(["torch-eager", "openvino", "onnxruntime", "tensorrt"]), **over}
    return resolve_config(load_config(None, [f"{k}={v}" for k, v in sets.items()]))


@pytest.fixture(scope="module")
def grid(artifacts: dict[str, Path], tiny_data: FerData, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    variants = [v for v in ("dense-fp32", "dense-int8") if v in artifacts] + ["l1-int8-missing"]
    cfg = _cfg([v for v in variants if v != "l1-int8-missing"] + ["cdcp-int8"])
    arts = {v: p for v, p in artifacts.items() if v in ("dense-fp32", "dense-int8")}
    messages: list[str] = []
    run_dir = tmp_path_factory.mktemp("runs") / "run-1"
    results = run_grid(cfg, arts, tiny_data, run_dir=run_dir, progress=messages.append)
    return {"results": results, "messages": messages, "run_dir": run_dir, "cfg": cfg, "arts": arts}


def test_results_have_exactly_the_documented_fields(grid: dict[str, Any]) -> None:
    r = grid["results"]
    assert set(r) == set(RESULT_FIELDS)
    assert r["schema_version"] == 2 and r["run_id"] == "run-1" and r["dataset"] == "tiny-random" and r["synthetic"]
    assert len(r["fingerprint"]["id"]) == 12 and r["fingerprint"]["config"] == r["config"]
    assert r["config_hash"] == grid["cfg"].section_hash("data", "model", "train", "compress", "benchmark", "backends")
    for row in r["results"]:
        assert set(row) == set(ROW_FIELDS), set(row) ^ set(ROW_FIELDS)
        assert row["status"] in ("ok", "unavailable", "error", "timeout")
    for a in r["agreement"]:
        assert set(a) == AGREEMENT_FIELDS
    on_disk = json.loads((grid["run_dir"] / "results.json").read_text())
    assert on_disk["run_id"] == "run-1" and len(on_disk["results"]) == len(r["results"])
    assert (grid["run_dir"] / "cells").is_dir()
    rounds = r["rounds"]
    assert rounds["count"] == 2 and rounds["seed"] == 0 and len(rounds["order"]) == 2
    ran = {f"{row['backend']}/{row['variant']}" for row in r["results"] if row["status"] == "ok"}
    assert all(set(order) == ran for order in rounds["order"])  # every ok cell once per round
    assert (grid["run_dir"] / "cells" / "openvino__dense-fp32__r1.log").is_file()  # a second process ran


def test_every_cell_and_scenario_has_a_row(grid: dict[str, Any]) -> None:
    rows = grid["results"]["results"]
    variants = grid["cfg"].benchmark.variants
    assert len(rows) == 4 * len(variants) * 3  # backends x variants x (latency@1, throughput@1, throughput@4)
    for row in rows:
        if row["variant"] == "cdcp-int8":
            assert row["status"] in ("error", "unavailable")
            if row["status"] == "error":
                assert "no artifact for variant 'cdcp-int8'; available: " in row["reason"]
        elif row["backend"] == "tensorrt" and not torch.cuda.is_available():
            assert row["status"] == "unavailable" and "pip install .[tensorrt]" in row["reason"]
        elif row["backend"] != "tensorrt":
            assert row["status"] == "ok", row["reason"]
    assert any("openvino dense-fp32: ok, p50" in m for m in grid["messages"])


def test_ok_rows_are_reproducible_from_raw_samples(grid: dict[str, Any]) -> None:
    ok = [r for r in grid["results"]["results"] if r["status"] == "ok"]
    assert ok
    for row in ok:
        samples = row["samples_ms"]
        assert row["n_samples"] == len(samples) > 0
        rounds = row["rounds"]
        assert len(rounds) == 2 and sum(p["n"] for p in rounds) == len(samples)
        parts = np.split(np.asarray(samples), np.cumsum([p["n"] for p in rounds])[:-1])
        for p, x in zip(rounds, parts, strict=True):
            per_sample = p["fps"] * x.sum() / 1e3 / len(x)
            assert per_sample == pytest.approx(round(per_sample), rel=1e-6)  # whole images per timed call
        assert [p["p50_ms"] for p in rounds] == pytest.approx([float(np.median(x)) for x in parts])
        used = parts  # every process counts, noisy or not
        for p in rounds:
            assert set(p) >= {"p50_ms", "p99_ms", "n", "started", "steal_fraction", "other_cpu_fraction",
                              "cpu_mhz", "loadavg_1m", "noisy", "fixed_s"}
            assert p["fixed_s"] is not None and p["fixed_s"] > 0
        assert row["noisy_rounds"] == sum(1 for p in rounds if p["noisy"])
        assert row["throughput_fps"] == pytest.approx(np.median([p["fps"] for p, x in zip(rounds, parts, strict=True)
                                                                 if any(x is u for u in used)]))
        if row["scenario"] == "latency":
            assert row["batch_size"] == 1 and set(row["latency_ms"]) == LATENCY_FIELDS
            per = [Stats.from_samples(x).to_dict() for x in used]  # each field: the median over processes
            assert row["latency_ms"] == pytest.approx({k: float(np.median([d[k] for d in per])) for k in per[0]})
            lo, hi = row["p50_ci_ms"]  # 2 processes: [min, max], a 50% interval, and it says so
            assert lo <= row["latency_ms"]["p50"] <= hi and row["p50_ci_level"] == pytest.approx(0.5)
            assert row["latency_ms"]["p95"] <= row["latency_ms"]["p99"]
            bits = unpack_correct(row.get("correct_bits"))  # per-image correctness from the first round's logits
            assert bits is not None and float(bits.mean()) == pytest.approx(row["accuracy"])
            few = any("too few samples for p99" in x for x in row["invalid_reasons"])
            assert few == any(p["n"] < 100 for p, x in zip(rounds, parts, strict=True)
                              if any(x is u for u in used))  # per process: 0.025 s each
            assert row["valid"] == (not row["invalid_reasons"])
        elif row["describe"].get("requests_in_flight", 1) > 1:
            assert row["latency_ms"] is None  # never a per-request latency from a multi-request run
        assert row["accuracy"] is not None and row["confusion"] is not None
        assert row["cold_start_ms"] > 0 and row["peak_rss_bytes"] > 0 and row["loaded_bytes"] > 0
        assert row["params"] > 0 and row["storage_mb"] > 0 and row["gmac"] > 0
        assert row["gmac_per_s"] == pytest.approx(row["gmac"] * row["throughput_fps"])
        assert row["label"] and row["device"] and row["total_layers"] == 15


def test_int8_rows_report_int8_layers(grid: dict[str, Any]) -> None:
    rows = {(r["backend"], r["scenario"], r["batch_size"]): r for r in grid["results"]["results"]
            if r["variant"] == "dense-int8" and r["status"] == "ok"}
    assert rows[("openvino", "latency", 1)]["int8_layers"] >= 13
    assert rows[("onnxruntime", "latency", 1)]["int8_layers"] >= 13
    assert "int8" in rows[("torch-eager", "latency", 1)]["label"]


def test_rows_and_report_say_which_int8_encoding_ran(grid: dict[str, Any]) -> None:
    """weight_bits and the encoding come from the manifest into every row of the variant and into the report."""
    from reports.tables import labels_table

    ok = [r for r in grid["results"]["results"] if r["status"] == "ok"]
    for r in ok:
        if r["variant"] == "dense-int8":
            assert r["weight_bits"] == 7 and r["int8_encoding"].startswith("cpu: u8 act (zp 0) x s7 weight"), r
        else:
            assert r["weight_bits"] is None and r["int8_encoding"] is None, r
    notes = labels_table(grid["results"]).notes
    assert any(n.startswith("int8 weights 7-bit (dense-int8): cpu: u8 act (zp 0) x s7 weight") for n in notes), notes


def test_agreement_against_the_pytorch_reference(grid: dict[str, Any]) -> None:
    agreement = grid["results"]["agreement"]
    pairs = {(a["variant"], a["backend"]) for a in agreement}
    for variant in grid["arts"]:
        assert (variant, "openvino") in pairs and (variant, "onnxruntime") in pairs
    for a in agreement:
        assert a["top1_agreement"] >= 0.9, a
        if a["variant"].endswith("fp32"):
            assert a["reference"] == "pytorch-reference (fp32; torch-eager's own cell)"
            assert a["max_abs_logit_diff"] < 1e-2
        else:  # real int8 kernels on torch-eager are compared with the fake-quant reference, not used as it
            assert a["reference"].startswith("pytorch-reference (int8 simulated (fake-quant)")


def test_harness_overhead_is_below_two_percent_of_the_fastest_cell(grid: dict[str, Any]) -> None:
    r = grid["results"]
    p50s = [row["latency_ms"]["p50"] for row in r["results"] if row["status"] == "ok" and row["scenario"] == "latency"]
    assert r["harness_overhead_us"] < 0.02 * min(p50s) * 1e3


def test_compare_logits() -> None:
    ref = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    got = np.array([[0.9, 0.0], [2.0, 1.0]], dtype=np.float32)
    assert compare_logits(got, ref) == pytest.approx({"top1_agreement": 0.5, "max_abs_logit_diff": 2.0})
    with pytest.raises(ValueError):
        compare_logits(got[:1], ref)


def test_invalid_requests_fail_the_whole_run(artifacts: dict[str, Path], tiny_data: FerData) -> None:
    with pytest.raises(UserError, match="valid: torch-eager"):
        run_grid(_cfg(["dense-fp32"]), artifacts, tiny_data, backends=["openvino", "tflite"])


def test_unavailable_backend_does_not_stop_the_sweep(artifacts: dict[str, Path], tiny_data: FerData) -> None:
    cfg = _cfg(["dense-fp32"], **{"backends.onnxruntime.provider": '"tensorrt"'})
    r = run_grid(cfg, artifacts, tiny_data, backends=["onnxruntime", "openvino"])
    by_backend = {(row["backend"], row["scenario"], row["batch_size"]): row for row in r["results"]}
    assert by_backend[("onnxruntime", "latency", 1)]["status"] == "unavailable"
    assert "TensorrtExecutionProvider" in by_backend[("onnxruntime", "latency", 1)]["reason"]
    assert by_backend[("openvino", "latency", 1)]["status"] == "ok"


def test_rows_carry_measured_labels(grid: dict[str, Any]) -> None:
    """Precision from evidence, agreement gate, file bytes = size on disk, memory per phase, roofline."""
    results = grid["results"]
    peaks = results["machine_peak_gmac_per_s"]
    assert peaks["fp32"] > 0 and peaks["int8"] > 0
    ok = [r for r in results["results"] if r["status"] == "ok"]
    for row in ok:
        art = grid["arts"][row["variant"]]
        loaded = {"torch-eager": "model.pt"}.get(row["backend"], "model.onnx")
        assert row["file_bytes"] == (art / loaded).stat().st_size
        assert row["precision_reason"]
        if row["variant"] == "dense-int8" and row["backend"] in ("openvino", "onnxruntime"):
            assert row["precision"] == "int8" and row["int8_layers"] > 0
        if row["variant"] == "dense-fp32":
            assert row["precision"] == "fp32" and row["precision_flag"] == ""
        if row["agreement_reason"] == "reference":  # torch-eager computed the reference: nothing to compare
            assert row["agreement"] is None and row["agrees"] is True
        else:  # every other row, OpenVINO's throughput rows too: checked on the logits of the model it timed
            assert row["agreement"] is not None and 0.0 <= row["agreement"] <= 1.0
            assert row["agrees"] == (row["agreement"] >= (0.99 if row["precision"].startswith("int8") else 0.999))
        mem = row["memory"]
        assert mem["load_peak_rss_bytes"] > 0 and mem["steady_rss_bytes"] > 0 and mem["model_rss_bytes"] >= 0
        key = {"int8-simulated": "fp32"}.get(row["precision"], row["precision"])
        assert row["fraction_of_peak"] == pytest.approx(row["gmac_per_s"] / peaks[key])
        # the roofline: intensity of the row's model at its precision and batch, attainable = the lower roof
        assert row["arithmetic_intensity"] > 0 and row["roofline"]["device"] == "cpu"
        bw = peaks["bandwidth_gb_per_s"][row["roofline"]["memory_level"]]
        assert row["attainable_gmac_per_s"] == pytest.approx(min(peaks[key], bw * row["arithmetic_intensity"]))
        assert row["fraction_of_attainable"] == pytest.approx(row["gmac_per_s"] / row["attainable_gmac_per_s"])
        # above 1 would mean a roof measured below what a runtime reached: a bug in the peak, never a fast row
        assert row["fraction_of_attainable"] <= 1.0, (row["backend"], row["variant"], row["scenario"],
                                                      row["batch_size"], row["roofline"], peaks["method"])
    ref = [r for r in ok if r["backend"] == "torch-eager" and r["variant"] == "dense-fp32"]
    # the reference itself: shown "ref", not a 100% nobody measured
    assert ref and all(r["agreement"] is None and r["agrees"] and r["agreement_reason"] == "reference" for r in ref)


def test_the_processes_of_a_cell_are_interchangeable(grid: dict[str, Any]) -> None:
    """Every timed process of a cell did the same work before timing (no accuracy pass in any of them: it ran
    in one untimed process per cell) and ran its loops with no other thread of ours; the rows' accuracy comes
    from that accuracy process."""
    ok = [r for r in grid["results"]["results"] if r["status"] == "ok"]
    assert ok
    for row in ok:
        steps = [tuple(p["steps"]) for p in row["rounds"]]
        assert len(set(steps)) == 1, (row["backend"], row["variant"], steps)
        assert steps[0][:3] == ("load", "first_infer", "describe") and "accuracy" not in steps[0]
        assert f"{row['scenario']}:{row['batch_size']}" in steps[0]
        for p in row["rounds"]:  # the threads alive in the loop: those the runtime had at load, none of ours
            assert p["python_threads"] == p["threads_after_load"] and "MainThread" in p["python_threads"]
        assert row["accuracy"] is not None
    messages = grid["messages"]
    assert sum(m.startswith("[accuracy] ") for m in messages) == len({(r["backend"], r["variant"]) for r in ok})
    assert all(" (fixed " in m for m in messages if m.startswith("[round ") and ": ok" in m)  # per process

