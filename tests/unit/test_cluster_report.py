"""A cluster run in the report and on the console: each machine's hardware, ISA and int8 path from its own
fingerprint and its own rows (never the driver's, never another node's), and each machine's rows held to the
roofs that machine measured. Pure Python, no Ray (the real cluster is tests/integration/test_cluster.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from common.isa import int8_sentence, isa_features
from harness.fleet.cluster import _node_roofline
from harness.measure.traffic import Traffic
from reports.int8_path import int8_path_text, int8_paths_by_machine
from reports.markdown import render_markdown
from reports.tables import summary_table

AVX2 = isa_features({"avx2", "fma"})
VNNI = isa_features({"avx2", "fma", "avx512f", "avx512_vnni"})
AMX = isa_features({"avx2", "fma", "avx512f", "avx512_vnni", "amx_tile", "amx_int8", "amx_bf16"})
KERNELS = {"box-avx2": "jit_avx2_I8", "box-vnni": "brgconv_avx512_I8"}


def _fp(fid: str, brand: str, cores: int, features: dict[str, bool]) -> dict[str, Any]:
    return {"id": fid, "cpu": {"brand": brand, "cores": cores}, "isa": {"features": features}}


def _rows(machine: str, fid: str, target: str, kernel: str) -> list[dict[str, Any]]:
    where = {"machine_id": machine, "fingerprint_id": fid, "target": target, "status": "ok", "scenario": "latency",
             "batch_size": 1}
    return [{**where, "backend": "openvino", "variant": "l1-int8", "precision": "int8", "device": "CPU",
             "describe": {"primitive_types": {f"Convolution:{kernel}": 13, "FullyConnected:jit_gemm_FP32": 2}}},
            {**where, "backend": "onnxruntime", "variant": "dense-fp32", "precision": "fp32", "device": "CPU"}]


def _run() -> dict[str, Any]:
    """Two nodes of different ISA, the driver a third CPU (AMX) that timed nothing."""
    return {
        "run_id": "r1", "fingerprint": _fp("fpD", "Intel Xeon Platinum 8481C", 4, AMX),
        "machines": {"box-avx2": {"fingerprint": _fp("fpA", "AMD EPYC 7B13", 2, AVX2), "target": "edge-a"},
                     "box-vnni": {"fingerprint": _fp("fpB", "Intel Xeon Gold 6330", 8, VNNI), "target": "edge-b"}},
        "results": [*_rows("box-avx2", "fpA", "edge-a", KERNELS["box-avx2"]),
                    *_rows("box-vnni", "fpB", "edge-b", KERNELS["box-vnni"])],
    }


def test_each_machine_gets_its_own_hardware_isa_and_int8_path() -> None:
    avx2, vnni = int8_paths_by_machine(_run())
    assert (avx2.machine_id, avx2.target, avx2.hardware, avx2.isa) == ("box-avx2", "edge-a", "AMD EPYC 7B13 (2 cores)",
                                                                       "AVX2")
    assert (vnni.machine_id, vnni.target, vnni.hardware, vnni.isa) == (
        "box-vnni", "edge-b", "Intel Xeon Gold 6330 (8 cores)", "AVX2, AVX-512, AVX-512 VNNI")
    assert avx2.path == (f"{int8_sentence(AVX2)} OpenVINO ran its int8 convolutions as jit_avx2_I8 (13 layers): "
                         "avx2 kernels.")
    assert vnni.path == (f"{int8_sentence(VNNI)} OpenVINO ran its int8 convolutions as brgconv_avx512_I8 (13 "
                         "layers): avx512 kernels.")


def test_the_console_line_names_every_machine_and_never_the_drivers_cpu() -> None:
    """`bench run` prints "int8 path: " + this text."""
    lines = int8_path_text(_run()).splitlines()
    assert lines[0] == "per machine:"
    assert lines[1] == (f"  box-avx2 (AMD EPYC 7B13 (2 cores); ISA AVX2; target edge-a): {int8_sentence(AVX2)} "
                        "OpenVINO ran its int8 convolutions as jit_avx2_I8 (13 layers): avx2 kernels.")
    assert lines[2].startswith("  box-vnni (Intel Xeon Gold 6330 (8 cores); ISA AVX2, AVX-512, AVX-512 VNNI; target "
                               f"edge-b): {int8_sentence(VNNI)} OpenVINO ran its int8 convolutions as "
                               "brgconv_avx512_I8")
    assert len(lines) == 3 and "AMX" not in "\n".join(lines) and "8481C" not in "\n".join(lines)


def test_the_report_has_a_hardware_and_an_int8_path_row_per_machine() -> None:
    table = summary_table(_run())
    rows = {r[0]: r[1] for r in table.rows}
    assert rows["hardware, machine box-avx2"] == "AMD EPYC 7B13 (2 cores); ISA AVX2; target edge-a"
    assert rows["hardware, machine box-vnni"] == ("Intel Xeon Gold 6330 (8 cores); ISA AVX2, AVX-512, AVX-512 VNNI; "
                                                  "target edge-b")
    for machine, features in (("box-avx2", AVX2), ("box-vnni", VNNI)):
        path = rows[f"int8 path, machine {machine}"]
        assert path.startswith(int8_sentence(features)) and KERNELS[machine] in path
        other = next(k for m, k in KERNELS.items() if m != machine)
        assert other not in path  # one node's kernels are never credited to the other
    assert "int8 path" not in rows and "hardware" not in rows  # no one-machine claim about a cluster run
    assert rows["driver (timed no cell)"] == "Intel Xeon Platinum 8481C (4 cores)"
    md = render_markdown("t", [table], [])
    assert "| hardware, machine box-avx2 | AMD EPYC 7B13 (2 cores); ISA AVX2; target edge-a |" in md
    assert "| int8 path, machine box-vnni | " + int8_sentence(VNNI) in md


def test_a_machine_without_its_fingerprint_borrows_nothing() -> None:
    run = _run()
    run["results"] += _rows("box-x", "fpX", "edge-c", "jit_avx512_amx_I8")
    run["machines"]["box-x"] = {"fingerprint": _fp("fpOther", "Intel Xeon w9", 56, AMX)}  # rows name another
    x = int8_paths_by_machine(run)[2]
    assert (x.machine_id, x.hardware, x.isa) == ("box-x", "unknown hardware", "not recorded")
    assert x.path.startswith(int8_sentence({})) and "jit_avx512_amx_I8" in x.path  # its own rows still count


def test_a_local_run_keeps_its_one_sentence() -> None:
    run = _run()
    run.pop("machines")
    for r in run["results"]:
        del r["machine_id"], r["fingerprint_id"], r["target"]
    assert not int8_paths_by_machine(run)
    assert int8_path_text(run).startswith(int8_sentence(AMX))  # the run's own machine
    assert {r[0] for r in summary_table(run).rows} >= {"hardware", "int8 path"}


def test_each_machines_rows_are_held_to_that_machines_roofs() -> None:
    """Measured by each node before its cells; a row above its own machine's roof is marked, the roofs stand."""
    t = {"l1-int8": Traffic(macs=10**9, weights=10**7, biases=0, activations=10**5, layers=1),
         "dense-fp32": Traffic(macs=10**9, weights=10**7, biases=0, activations=10**5, layers=1)}
    run = _run()
    slow = {"fp32": 20.0, "int8": 40.0, "threads": 2}
    fast = {"fp32": 200.0, "int8": 400.0, "threads": 8}
    machines = {"box-avx2": {"machine_id": "box-avx2", "machine_peak_gmac_per_s": copy.deepcopy(slow)},
                "box-vnni": {"machine_id": "box-vnni", "machine_peak_gmac_per_s": copy.deepcopy(fast)}}
    for r in run["results"]:
        r["gmac_per_s"] = 60.0  # above box-avx2's int8 and fp32 roofs, below box-vnni's
    for m in machines.values():
        _node_roofline(m, run["results"], t)
    for r in run["results"]:
        roofs = slow if r["machine_id"] == "box-avx2" else fast
        key = r["precision"]
        assert r["roofline"]["compute_gmac_per_s"] == roofs[key]
        assert r["fraction_of_attainable"] == pytest.approx(60.0 / roofs[key])
        assert r["roof_measured_low"] is (r["machine_id"] == "box-avx2")
    assert machines["box-avx2"]["machine_peak_gmac_per_s"] == slow  # nothing raised to fit the rows
    off = {"machine_id": "box-avx2", "machine_peak_gmac_per_s": {}}  # benchmark.roofline off: rows untouched
    fresh = _run()["results"]
    _node_roofline(off, fresh, t)
    assert all("roofline" not in r for r in fresh)
