"""The pure label functions: precision from layer evidence, the agreement gate, the roofline fraction."""

from __future__ import annotations

import pytest

from harness.measure.evidence import (
    agreement_threshold,
    agrees,
    attach_agreement,
    precision_from_evidence,
    reference_kind,
)
from harness.measure.memory import phase_memory
from harness.measure.roofline import fraction_of_peak, peak_key
from reports.labels import agreement_cell


def test_int8_only_with_int8_layers() -> None:
    e = precision_from_evidence("int8", {"precision": "int8", "int8_layers": 15, "total_layers": 15})
    assert (e.precision, e.partial) == ("int8", "")
    assert "15/15" in e.reason


def test_partial_int8_is_flagged_with_the_count() -> None:
    e = precision_from_evidence("int8", {"precision": "int8", "int8_layers": 13, "total_layers": 15})
    assert e.precision == "int8" and "13/15" in e.partial


def test_declared_int8_without_int8_kernels_is_float() -> None:
    e = precision_from_evidence("int8", {"precision": "int8", "int8_layers": 0, "total_layers": 15})
    assert e.precision == "fp32" and "0/15" in e.partial and "declared int8" in e.reason
    bf = precision_from_evidence("int8", {"precision": "int8", "compute_precision": "bf16", "int8_layers": 0,
                                          "total_layers": 15})
    assert bf.precision == "bf16"
    none = precision_from_evidence("int8", {"precision": "int8"})  # no evidence at all: never int8
    assert none.precision == "fp32" and "no layer evidence" in none.reason


def test_fake_quant_is_int8_simulated_and_fp32_stays_fp32() -> None:
    e = precision_from_evidence("int8", {"label": "int8 simulated (fake-quant)", "int8_layers": 0,
                                         "total_layers": 15})
    assert e.precision == "int8-simulated"
    f = precision_from_evidence("fp32", {"precision": "fp32", "int8_layers": 0, "total_layers": 15})
    assert (f.precision, f.partial) == ("fp32", "")
    assert precision_from_evidence("fp32", {"precision": "bf16", "int8_layers": 0}).precision == "bf16"


def test_agreement_gate() -> None:
    assert agreement_threshold("int8", 0.99, 0.999) == 0.99
    assert agreement_threshold("int8-simulated", 0.99, 0.999) == 0.99
    assert agreement_threshold("fp32", 0.99, 0.999) == 0.999
    assert agrees(0.995, 0.99) is True and agrees(0.6, 0.99) is False
    assert agrees(None, 0.99) is None and agrees(float("nan"), 0.99) is None


def test_attach_agreement_gates_rows_and_says_why() -> None:
    rows = [{"backend": "openvino", "variant": "v", "status": "ok", "precision": "int8"},
            {"backend": "torch-eager", "variant": "v", "status": "ok", "precision": "int8-simulated"},
            {"backend": "onnxruntime", "variant": "v", "status": "ok", "precision": "fp32"},
            {"backend": "tensorrt", "variant": "v", "status": "unavailable", "precision": "int8"}]
    agreement = [{"backend": "openvino", "variant": "v", "top1_agreement": 0.6},
                 {"backend": "onnxruntime", "variant": "v", "top1_agreement": 0.9995}]
    attach_agreement(rows, agreement, {"v": "torch-eager"}, 0.99, 0.999)
    ov, te, ort, trt = rows
    assert ov["agrees"] is False and "0.6000" in ov["agreement_reason"]
    assert "min_agreement_int8" in ov["agreement_reason"]
    # the reference is not measured against itself: no percentage, a "reference" reason (shown "ref")
    assert te["agreement"] is None and te["agrees"] is True and te["agreement_reason"] == "reference"
    assert agreement_cell(te) == "ref" and agreement_cell(ort) == "100.0%"
    assert ort["agrees"] is True and ort["agreement_reason"] == ""
    assert trt["agreement"] is None and trt["agrees"] is None


def test_attach_agreement_matches_each_machine_names_the_reference_and_says_why_unverified() -> None:
    """A cluster run: one entry per (backend, variant, machine); a row with no entry is unverified, with the
    reason the reference could not be had."""
    rows = [{"backend": "openvino", "variant": "v", "status": "ok", "precision": "fp32", "machine_id": m}
            for m in ("box-a", "box-b", "box-c")]
    rows.append({"backend": "openvino", "variant": "w", "status": "ok", "precision": "fp32", "machine_id": "box-a"})
    ref = "onnxruntime-reference (fp32 graph on the CPU provider, graph optimizations off)"
    agreement = [{"backend": "openvino", "variant": "v", "machine_id": "box-a", "top1_agreement": 1.0,
                  "reference": ref},
                 {"backend": "openvino", "variant": "v", "machine_id": "box-b", "top1_agreement": 0.5,
                  "reference": ref}]
    attach_agreement(rows, agreement, {}, 0.99, 0.999, {"w": "the onnxruntime reference cell failed: error: boom"})
    a, b, c, w = rows
    assert (a["agrees"], a["reference"]) == (True, ref)
    assert b["agrees"] is False and "with the ONNX Runtime fp32 reference is below 0.999" in b["agreement_reason"]
    assert c["agrees"] is None and c["agreement_reason"] == "unverified: no reference logits to compare with"
    assert w["agrees"] is None
    assert w["agreement_reason"] == "unverified: the onnxruntime reference cell failed: error: boom"


def test_fraction_of_peak_uses_the_row_precision() -> None:
    peaks = {"fp32": 10.0, "int8": 80.0, "bf16": 20.0}
    assert fraction_of_peak(40.0, "int8", peaks) == pytest.approx(0.5)
    assert fraction_of_peak(5.0, "fp32", peaks) == pytest.approx(0.5)
    assert fraction_of_peak(5.0, "int8-simulated", peaks) == pytest.approx(0.5)
    assert fraction_of_peak(None, "int8", peaks) is None and fraction_of_peak(1.0, "int8", {}) is None
    assert peak_key("fp16") == "fp16" and peak_key("int4") is None  # fp16: a GPU peak; no int4 roof


def test_second_model_memory_is_not_counted_into_the_first() -> None:
    result = {
        "load_memory": {"rss_before_bytes": 100, "peak_rss_bytes": 180, "model_rss_bytes": 50},
        "throughput_load_memory": {"rss_before_bytes": 160, "peak_rss_bytes": 260, "model_rss_bytes": 70},
        "scenarios": [{"scenario": "latency", "batch_size": 1, "steady_rss_bytes": 150},
                      {"scenario": "throughput", "batch_size": 4, "steady_rss_bytes": 240}],
        "describe": {}, "throughput_describe": {"gpu_memory_bytes": 7},
    }
    lat = phase_memory(result, "latency", 1)
    tp = phase_memory(result, "throughput", 4)
    assert lat == {"load_peak_rss_bytes": 180, "model_rss_bytes": 50, "steady_rss_bytes": 150,
                   "loop_peak_rss_bytes": None, "gpu_memory_bytes": None, "second_model": False}
    assert tp["model_rss_bytes"] == 70 and tp["steady_rss_bytes"] == 190 and tp["second_model"]
    assert tp["gpu_memory_bytes"] == 7


def test_peak_text_says_when_the_machine_was_busy() -> None:
    from reports.labels import peak_text

    assert peak_text({}) == "" and peak_text({"error": "x"}) == ""
    quiet = peak_text({"fp32": 80.0, "int8": 300.0, "threads": 2, "other_cpu_fraction": 0.0})
    assert quiet == "fp32 80.0, int8 300.0 GMAC/s at 2 threads"
    assert "read low" in peak_text({"fp32": 8.0, "threads": 2, "other_cpu_fraction": 0.6})


def test_labels_table_flags_fractions_above_the_peak(make_run) -> None:
    from reports.tables import labels_table

    run = make_run("r")
    run["machine_peak_gmac_per_s"] = {"fp32": 10.0, "int8": 40.0, "threads": 2, "other_cpu_fraction": 0.0}
    for r in run["results"]:
        if r["status"] == "ok":
            r.update(file_bytes=3_800_000, agreement=1.0, agrees=True, precision_reason="x", precision_flag="",
                     memory={"load_peak_rss_bytes": 1e8, "steady_rss_bytes": 2e8}, fraction_of_peak=0.5)
    run["results"][0]["fraction_of_peak"] = 1.5
    t = labels_table(run)
    assert any("above 100% of their attainable roof" in n for n in t.notes)
    assert any("fp32 10.0, int8 40.0 GMAC/s at 2 threads" in n for n in t.notes)
    row = next(r for r in t.rows if r[:2] == ["openvino", "l1-int8"])
    assert row[6] == "3.80" and row[8] == "200.00"  # file MB, steady RSS MB
    assert row[-1] == "—"  # no runtime-only figure recorded
    lat = next(r for r in run["results"] if (r["backend"], r["variant"], r["scenario"]) == ("openvino", "l1-int8",
                                                                                            "latency"))
    lat["runtime_timing"] = {"runtime_p50_ms": 0.2312, "end_to_end_p50_ms": 0.2366, "calls": 200}
    row = next(r for r in labels_table(run).rows if r[:2] == ["openvino", "l1-int8"])
    assert row[-1] == "0.231 / 0.237" and t.header[-1] == "runtime / e2e p50 ms"


def test_openvino_throughput_rows_take_only_their_own_models_agreement() -> None:
    """OpenVINO compiles a second model for throughput: its rows never inherit the latency model's agreement.
    With that model's own entry they are gated on it; without one they are "not checked" (agrees None, which
    `bench select` refuses unless --allow-unverified). ONNX Runtime runs one model for both: one entry serves."""
    def cell(backend: str) -> list[dict[str, object]]:
        return [{"backend": backend, "variant": "v", "status": "ok", "precision": "int8", "scenario": sc}
                for sc in ("latency", "throughput")]

    latency_only = [{"backend": b, "variant": "v", "top1_agreement": 0.999} for b in ("openvino", "onnxruntime")]
    rows = cell("openvino") + cell("onnxruntime")
    attach_agreement(rows, latency_only, {}, 0.99, 0.999)
    ov_lat, ov_tp, ort_lat, ort_tp = rows
    assert ov_lat["agrees"] is True and ort_lat["agrees"] is True and ort_tp["agrees"] is True
    assert ov_tp["agreement"] is None and ov_tp["agrees"] is None
    assert ov_tp["agreement_reason"].startswith("not checked: the throughput rows time a separately compiled")
    assert agreement_cell(ov_tp) == "not checked"
    from common.records import selection_rows_of
    from reports.select import Constraints, select  # select treats it as unchecked: refused, and says so

    sel = select(selection_rows_of([{**r, "run_id": "r", "created": "t", "hardware": "x", "batch_size": 1,
                                     "latency_ms": {"p50": 1.0, "p99": 2.0}} for r in rows
                                    if r["scenario"] == "throughput"]),
                 Constraints())
    assert [(c.backend, why.split(":")[0]) for c, why in sel.rejected] == [("openvino", "unverified")]
    own = [*latency_only, {"backend": "openvino", "variant": "v", "scenario": "throughput", "top1_agreement": 0.5}]
    rows = cell("openvino")
    attach_agreement(rows, own, {}, 0.99, 0.999)
    assert rows[0]["agrees"] is True and rows[1]["agreement"] == 0.5 and rows[1]["agrees"] is False


def test_an_integer_graph_reference_is_named_for_what_it_is(tmp_path) -> None:
    import json

    from harness.measure.agreement import _reference_name, graph_arithmetic

    names = {}
    for kind, q in (("int8", {"int8_nodes": 9, "qdq_nodes": 0}), ("qdq", {"int8_nodes": 0, "qdq_nodes": 30}),
                    ("fp32", {"int8_nodes": 0, "qdq_nodes": 0})):
        d = tmp_path / kind
        d.mkdir()
        (d / "manifest.json").write_text(json.dumps({"variant": kind, "quantization": q}))
        assert graph_arithmetic(d) == kind
        names[kind] = _reference_name("onnxruntime", "", graph_arithmetic(d))
    assert "int8, ONNX Runtime unoptimized" in names["int8"] and "fp32" not in names["int8"]
    assert "fp32 graph" in names["fp32"] and "Q/DQ graph in float" in names["qdq"]
    assert reference_kind(names["int8"]) == "ONNX Runtime int8 (unoptimized)"
    assert reference_kind(names["fp32"]) == "ONNX Runtime fp32"
