"""The instruction set in the fingerprint and the report: flags -> features -> int8 path -> one sentence, and the
OpenVINO kernel names of a runtime model recorded on the 2-core AMD EPYC (Zen 3, AVX2 only) this was built on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backends.openvino.backend import primitive_type_counts
from common.isa import (
    ISA_FEATURES,
    flags_from_cpuinfo,
    int8_path,
    int8_sentence,
    isa_features,
    isa_record,
    kernel_isa,
    kernel_precision,
)
from reports.int8_path import int8_path_text
from reports.tables import summary_table

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
AVX2_SENTENCE = "no VNNI on this CPU: int8 convolutions use AVX2; expect smaller int8 gains than on VNNI CPUs."


def _fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / "openvino" / name).read_text())


def _run(features: dict[str, bool], primitive_types: dict[str, int]) -> dict[str, Any]:
    row = {"backend": "openvino", "variant": "l1-int8", "precision": "int8", "describe":
           {"primitive_types": primitive_types}}
    return {"fingerprint": {"isa": {"features": features}}, "results": [row]}


def test_flags_of_the_recorded_epyc_are_avx2_without_vnni() -> None:
    flags = flags_from_cpuinfo((FIXTURES / "cpuinfo" / "amd-epyc-zen3-avx2.txt").read_text())
    assert {"avx2", "fma", "sse4_2"} <= flags and "avx512f" not in flags
    rec = isa_record(flags)
    assert rec["features"] == {f: f in ("avx2", "fma") for f in ISA_FEATURES}
    assert rec["int8_path"] == "avx2"
    assert rec["int8_summary"] == AVX2_SENTENCE


@pytest.mark.parametrize(("flags", "path"), [
    ({"avx2", "fma", "avx512f", "avx512_vnni", "amx_tile", "amx_int8", "amx_bf16", "avx512_bf16"}, "amx"),
    ({"avx2", "fma", "avx512f", "avx512_vnni"}, "avx512_vnni"),
    ({"avx2", "fma", "avx_vnni"}, "avx_vnni"),
    ({"avx2", "fma", "avx512f"}, "avx512"),
    ({"avx2", "fma"}, "avx2"),
    ({"sse4_2"}, "baseline"),
    (set(), "unknown"),  # no flags at all (not x86 Linux): nothing is claimed
    ({"amx_tile", "avx2"}, "avx2"),  # AMX tiles without AMX-INT8 do not multiply int8
])
def test_int8_path_is_the_best_the_flags_allow(flags: set[str], path: str) -> None:
    rec = isa_record(flags)
    assert rec["int8_path"] == path
    assert rec["int8_summary"] == int8_sentence(rec["features"])  # type: ignore[arg-type]
    assert int8_path(isa_features(flags) if flags else {}) == path


def test_the_sentences_say_what_the_path_means() -> None:
    assert "VNNI dot-product" in int8_sentence(isa_features({"avx512f", "avx512_vnni"}))
    assert int8_sentence(isa_features({"avx512f"})).startswith("no VNNI on this CPU: int8 convolutions use AVX-512")
    assert "not recorded" in int8_sentence({})


@pytest.mark.parametrize(("name", "isa", "precision"), [
    ("jit_avx2_I8", "avx2", "I8"), ("brgconv_avx512_I8", "avx512", "I8"), ("brgconv_avx512_amx_I8", "amx", "I8"),
    ("jit_avx512_amx_1x1_I8", "amx", "I8"), ("gemm_avx2_FP32", "avx2", "FP32"), ("jit_sse42_I8", "sse42", "I8"),
    ("ref_any_I8", None, "I8"), ("jit_uni_I8", None, "I8"), ("unknown_f32", None, ""), ("jit_avx_FP32", "avx", "FP32"),
])
def test_openvino_kernel_names_parse(name: str, isa: str | None, precision: str) -> None:
    assert kernel_isa(name) == isa
    assert kernel_precision(name) == precision


def test_recorded_avx2_runtime_model_names_avx2_int8_convolutions() -> None:
    doc = _fixture("runtime-avx2-l1-int8.json")
    counts = primitive_type_counts(doc["ops"])
    assert counts["Convolution:jit_avx2_I8"] == 13  # every conv of VGG16 ran the AVX2 int8 kernel
    assert sum(n for k, n in counts.items() if k.startswith("Convolution:")) == 13
    assert not any(k.startswith(("Pooling", "Reorder", "Input")) for k in counts)  # conv/FC layers only
    text = int8_path_text(_run(doc["isa"], counts))
    assert text.startswith(AVX2_SENTENCE)
    assert "OpenVINO ran its int8 convolutions as jit_avx2_I8 (13 layers): avx2 kernels." in text


def test_constructed_avx512_vnni_runtime_model_reads_as_vnni() -> None:
    doc = _fixture("constructed-avx512-vnni-l1-int8.json")
    assert doc["how"].startswith("CONSTRUCTED")  # not a recording: the file says so
    counts = primitive_type_counts(doc["ops"])
    assert counts == {"Convolution:brgconv_avx512_I8": 13}
    text = int8_path_text(_run(doc["isa"], counts))
    assert text.startswith("AVX-512 VNNI on this CPU")
    assert "brgconv_avx512_I8 (13 layers): avx512 kernels" in text


def test_runs_recorded_before_the_isa_field_use_the_fingerprint_flags() -> None:
    run = {"fingerprint": {"cpu": {"flags": ["avx2", "fma"]}}, "results": []}
    assert int8_path_text(run) == AVX2_SENTENCE
    assert int8_path_text({}) == int8_sentence({})


def test_report_summary_has_the_int8_path_row() -> None:
    doc = _fixture("runtime-avx2-l1-int8.json")
    table = summary_table(_run(doc["isa"], primitive_type_counts(doc["ops"])))
    rows = {r[0]: r[1] for r in table.rows}
    assert rows["int8 path"].startswith(AVX2_SENTENCE)
