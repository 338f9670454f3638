"""The roofline: model traffic from real ONNX graphs, the roofs each row is held to (its own device's), the
attainable min(compute, bandwidth x intensity), the peak kernels really running in their precision, the roofs
timed with the rows' statistic (median over processes of each process's mean rate), measured once and never
raised to fit a row, and a row above its roof labelled so in the report."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper, save

from harness.measure import peaks_cpu, peaks_gpu, roofline
from harness.measure.roofline import (
    ROOF_PROCESSES,
    attach_roofline,
    is_gpu_row,
    measure_peaks,
    median_of_processes,
    over_roof,
    row_roofline,
)
from harness.measure.traffic import Traffic, model_traffic

CPU = {"fp32": 100.0, "int8": 200.0, "bandwidth_gb_per_s": {"dram": 10.0, "cache": 50.0}, "llc_bytes": 1_000_000,
       "gpu": {"device": "cuda:X", "fp32": 10_000.0, "int8": 400_000.0, "bandwidth_gb_per_s": {"dram": 1000.0}}}


def _conv_gemm_model(path: Path, qdq: bool) -> Path:
    """x [N,2,8,8] -> Conv(4 filters 3x3, pad 1) -> Flatten -> Gemm(256 -> 5): MACs and sizes known by hand."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(np.zeros(4, np.float32), "b"),
             numpy_helper.from_array(rng.standard_normal((5, 256)).astype(np.float32), "fw"),
             numpy_helper.from_array(np.zeros(5, np.float32), "fb")]
    nodes = []
    if qdq:  # int8 weights reaching the Conv through DequantizeLinear, as in the CPU QDQ encoding
        inits += [numpy_helper.from_array(np.round(w * 10).astype(np.int8), "wq"),
                  numpy_helper.from_array(np.array(0.1, np.float32), "ws"),
                  numpy_helper.from_array(np.array(0, np.int8), "wz")]
        nodes.append(helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"]))
    else:
        inits.append(numpy_helper.from_array(w, "w"))
    nodes += [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
              helper.make_node("Flatten", ["c"], ["f"]),
              helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], inits)
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("qdq", [False, True])
def test_traffic_counts_macs_weights_and_activations_of_each_layer(tmp_path: Path, qdq: bool) -> None:
    t = model_traffic(_conv_gemm_model(tmp_path / "m.onnx", qdq))
    assert t is not None
    conv_out = 4 * 8 * 8
    assert t.macs == conv_out * 2 * 3 * 3 + 256 * 5
    assert t.weights == 4 * 2 * 9 + 5 * 256 and t.biases == 4 + 5 and t.layers == 2
    assert t.activations == (2 * 64 + conv_out) + (256 + 5)  # each layer's input and output once
    # fp32 at batch 4: weights once, activations per image
    assert t.bytes_moved("fp32", 4) == 4 * t.weights + 4 * t.biases + 4 * 4 * t.activations
    assert t.intensity("int8", 1) == pytest.approx(t.macs / (t.weights + 4 * t.biases + t.activations))
    assert t.intensity("int8", 32) > t.intensity("int8", 1) > t.intensity("fp32", 1)


def test_traffic_of_an_unreadable_file_is_none(tmp_path: Path) -> None:
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    assert model_traffic(tmp_path / "bad.onnx") is None


def _row(**kw: object) -> dict[str, object]:
    return {"status": "ok", "variant": "v", "precision": "fp32", "batch_size": 1, "device": "CPU",
            "gmac_per_s": 5.0, **kw}


def test_attainable_is_the_lower_roof_and_the_fraction_is_against_it() -> None:
    t = Traffic(macs=1000, weights=100, biases=0, activations=150, layers=2)
    small = row_roofline(_row(), t, CPU)  # fp32 b1: 1000 MACs / 1000 bytes = 1 MAC/B; cache (1 kB fits)
    assert small["arithmetic_intensity"] == pytest.approx(1.0)
    assert small["roofline"]["memory_level"] == "cache"
    assert small["attainable_gmac_per_s"] == pytest.approx(min(100.0, 50.0 * 1.0))
    assert small["roofline"]["bound"] == "memory"
    assert small["fraction_of_attainable"] == pytest.approx(5.0 / 50.0)
    assert small["fraction_of_peak"] == pytest.approx(5.0 / 100.0)  # the compute roof alone
    int8 = row_roofline(_row(precision="int8", batch_size=64), t, CPU)  # 64000 / (100 + 9600) MAC/B
    i = 64000 / (100 + 64 * 150)
    assert int8["arithmetic_intensity"] == pytest.approx(i)
    assert int8["attainable_gmac_per_s"] == pytest.approx(min(200.0, 50.0 * i))
    big = Traffic(macs=10**9, weights=10**7, biases=0, activations=10**5, layers=1)  # 40 MB fp32: DRAM
    r = row_roofline(_row(), big, CPU)
    assert r["roofline"]["memory_level"] == "dram" and r["roofline"]["bound"] == "compute"
    assert r["attainable_gmac_per_s"] == pytest.approx(100.0)
    sim = row_roofline(_row(precision="int8-simulated"), t, CPU)  # fake-quant runs float kernels on fp32 bytes
    assert sim["roofline"]["precision"] == "fp32" and sim["arithmetic_intensity"] == pytest.approx(1.0)


def test_a_cuda_row_is_held_to_the_gpu_roofs_never_the_cpus() -> None:
    t = Traffic(macs=10**9, weights=10**6, biases=0, activations=10**5, layers=1)
    for device in ("cuda:NVIDIA H200", "CUDA", "TENSORRT"):
        assert is_gpu_row({"device": device})
        r = row_roofline(_row(device=device, gmac_per_s=500.0), t, CPU)
        assert r["roofline"]["device"] == "gpu" and r["roofline"]["compute_gmac_per_s"] == 10_000.0
        assert r["fraction_of_attainable"] == pytest.approx(500.0 / r["attainable_gmac_per_s"])
    no_gpu_roofs = {k: v for k, v in CPU.items() if k != "gpu"}
    r = row_roofline(_row(device="cuda:X", gmac_per_s=500.0), t, no_gpu_roofs)
    assert r["attainable_gmac_per_s"] is None and r["fraction_of_attainable"] is None and r["fraction_of_peak"] is None
    assert not is_gpu_row({"device": "CPU"}) and not is_gpu_row({"device": "cpu"})


def test_rows_above_their_roof_are_found_and_failed_rows_get_none() -> None:
    t = Traffic(macs=1000, weights=100, biases=0, activations=150, layers=2)
    rows = [_row(gmac_per_s=20.0), _row(gmac_per_s=80.0), _row(status="error", gmac_per_s=None)]
    attach_roofline(rows, CPU, {"v": t})
    assert [r["fraction_of_attainable"] for r in rows[:2]] == [pytest.approx(0.4), pytest.approx(1.6)]
    assert over_roof(rows) == [rows[1]]
    assert rows[2]["fraction_of_attainable"] is None and rows[2]["arithmetic_intensity"] is None
    attach_roofline(rows, CPU)  # no traffic known (e.g. a caller that passes none): no fraction, no guess
    assert rows[0]["fraction_of_attainable"] is None and rows[0]["fraction_of_peak"] == pytest.approx(0.2)


def test_the_int8_peak_kernel_takes_u8_in_and_runs_int8_convolutions() -> None:
    """The int8 roof is a real int8 kernel: a u8 model input (nothing quantized in the timed call), i8 weights,
    u8 out, and OpenVINO's runtime shows the convolutions in u8/i8. Runs on AVX2 as on AVX-512."""
    ov = pytest.importorskip("openvino")
    from harness.measure.peaks_cpu import _ov_conv_chain, ov_conv_gmac

    model = _ov_conv_chain(ov, (1, 32, 12, 2), "int8")
    assert model.inputs[0].get_element_type() == ov.Type.u8
    assert model.outputs[0].get_element_type() == ov.Type.u8
    gmac, ran = ov_conv_gmac((1, 32, 12, 2), "int8", 1)
    assert gmac > 0 and set(ran.split("/")) <= {"u8", "i8"}
    gmac, ran = ov_conv_gmac((1, 32, 12, 2), "fp32", 1)
    assert gmac > 0 and ran == "f32"


def test_integer_gemm_and_triad_measure_something() -> None:
    pytest.importorskip("onnxruntime")
    from harness.measure.peaks_cpu import cpu_has_bf16, llc_bytes, memory_gb_per_s, ort_matmul_integer_gmac

    assert ort_matmul_integer_gmac(128, 1) > 0
    speeds = memory_gb_per_s(1 << 16, 2)
    assert set(speeds) == {f"{k} {t}t" for k in ("triad", "copy", "read") for t in (1, 2)}
    assert all(v > 0 for v in speeds.values())
    assert llc_bytes() > 0
    assert cpu_has_bf16() == any(f in Path("/proc/cpuinfo").read_text() for f in ("avx512_bf16", "amx_bf16"))


def test_a_row_above_its_roof_is_marked_and_the_roofs_stand() -> None:
    """No "raise the roof until the rows fit": the roofs are what was measured before the cells; a row above
    them is marked roof_measured_low (and one below is not), and the report's % roof cell says so."""
    from reports.labels import peak_cell
    from reports.tables import labels_table

    t = Traffic(macs=1000, weights=100, biases=0, activations=150, layers=2)  # memory roof 50 (cache) at b1
    peaks = copy.deepcopy(CPU)
    rows = [_row(backend="ort", scenario="throughput", gmac_per_s=20.0),
            _row(backend="ov", scenario="throughput", gmac_per_s=45.0),
            _row(backend="ov", scenario="latency", gmac_per_s=60.0)]  # above its 50 GMAC/s roof
    attach_roofline(rows, peaks, {"v": t})
    assert peaks == CPU  # nothing re-measured, nothing raised
    assert [r["roof_measured_low"] for r in rows] == [False, False, True]
    assert rows[2]["fraction_of_attainable"] == pytest.approx(60.0 / 50.0)
    assert over_roof(rows) == [rows[2]]
    # the cell's label: the latency row is above although the cell shows its throughput rows' fractions
    assert peak_cell(rows[1:]).endswith("(roof measured low)")
    assert "roof measured low" not in peak_cell(rows[:1])
    table = labels_table({"results": rows, "machine_peak_gmac_per_s": {**CPU, "threads": 2}})
    cells = {r[0]: r[table.header.index("% roof b1/bN")] for r in table.rows}
    assert cells["ov"].endswith("(roof measured low)") and "roof measured low" not in cells["ort"]
    assert any("above 100% of their attainable roof" in n for n in table.notes)


def _proc(fp32: float, dram: float, busy: float, kernel: str = "torch.mm fp32 512") -> dict[str, object]:
    return {"device": "cpu", "threads": 2, "fp32": fp32, "int8": 2 * fp32, "llc_bytes": 1 << 20,
            "bandwidth_gb_per_s": {"dram": dram, "cache": 4 * dram}, "other_cpu_fraction": busy,
            "method": {"fp32": kernel}, "kernels": {"fp32": [{"kernel": kernel, "gmac_per_s": fp32}]}}


def test_the_roof_is_the_median_of_its_processes_as_a_rows_rate_is() -> None:
    procs = [_proc(50.0, 10.0, 0.0), _proc(90.0, 40.0, 0.5, kernel="OpenVINO conv"), _proc(60.0, 20.0, 0.1)]
    peaks = median_of_processes(procs)
    assert peaks["fp32"] == 60.0 and peaks["int8"] == 120.0  # not the best (90), not the mean (66.7)
    assert peaks["bandwidth_gb_per_s"] == {"dram": 20.0, "cache": 80.0}  # not 40 (best), not 23.3 (mean)
    assert peaks["other_cpu_fraction"] == 0.1
    assert peaks["threads"] == 2 and isinstance(peaks["threads"], int) and peaks["llc_bytes"] == 1 << 20
    assert [p["fp32"] for p in peaks["processes"]] == [50.0, 90.0, 60.0] and "median" in peaks["statistic"]
    assert peaks["method"]["fp32"] == ("torch.mm fp32 512 (2 of 3 processes); OpenVINO conv (1 of 3 processes)")
    assert peaks["kernels"]["fp32"] == [{"kernel": "torch.mm fp32 512", "gmac_per_s": 55.0, "processes": 2},
                                        {"kernel": "OpenVINO conv", "gmac_per_s": 90.0, "processes": 1}]
    skewed = median_of_processes([_proc(10.0, 1.0, 0.0), _proc(11.0, 1.0, 0.0), _proc(99.0, 1.0, 0.0)])
    assert skewed["fp32"] == 11.0  # the mean would be 40
    failed = median_of_processes([_proc(50.0, 10.0, 0.0), {"error": "boom"}, _proc(70.0, 20.0, 0.0)])
    assert failed["fp32"] == 60.0 and failed["process_errors"] == ["boom"] and len(failed["processes"]) == 2
    assert median_of_processes([{"error": "a"}, {"error": "b"}]) == {"error": "a"}


def test_the_roofs_are_measured_by_a_fixed_number_of_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, ...]] = []
    values = iter([50.0, 90.0, 60.0, 1000.0, 3000.0, 1500.0])

    def fake(module: str, *args: str) -> dict[str, object]:
        calls.append((module, *args))
        return _proc(next(values), 10.0, 0.0)

    monkeypatch.setattr(roofline, "_run_json", fake)
    peaks = measure_peaks(4, gpu=False)
    assert calls == [("harness.measure.peaks_cpu", "4")] * ROOF_PROCESSES and "gpu" not in peaks
    assert peaks["fp32"] == 60.0
    calls.clear()
    values = iter([50.0, 90.0, 60.0, 1000.0, 3000.0, 1500.0])
    peaks = measure_peaks(4, gpu=True)
    assert calls[ROOF_PROCESSES:] == [("harness.measure.peaks_gpu",)] * ROOF_PROCESSES
    assert peaks["gpu"]["fp32"] == 1500.0


class _Clock:
    """perf_counter stand-in: only the fake calls move it, by the durations given, in order."""

    def __init__(self, durations: list[float]) -> None:
        self.now, self.durations = 0.0, list(durations)

    def __call__(self) -> float:
        return self.now

    def call(self) -> None:
        self.now += self.durations.pop(0)


def test_a_cpu_kernel_rate_is_its_work_over_the_sum_of_its_call_times(monkeypatch: pytest.MonkeyPatch) -> None:
    """As a row's process: the mean of its timed calls (2.0 s here), not its fastest call (1.0 s); the warm-up
    call (9 s) is not counted."""
    clock = _Clock([9.0, 1.0, 3.0, 2.0, 1.0, 3.0])
    monkeypatch.setattr(peaks_cpu.time, "perf_counter", clock)
    assert peaks_cpu.mean_seconds(clock.call, budget_s=0.25) == pytest.approx(2.0)
    assert not clock.durations


def test_a_gpu_kernel_rate_is_its_work_over_the_total_time_of_its_calls() -> None:
    blocks_ms = iter([10.0, 30.0, 20.0, 10.0, 30.0])

    class Event:
        def __init__(self, enable_timing: bool) -> None:
            self.ms = 0.0

        def record(self) -> None:
            pass

        def synchronize(self) -> None:
            pass

        def elapsed_time(self, end: object) -> float:
            return next(blocks_ms)

    torch = SimpleNamespace(cuda=SimpleNamespace(Event=Event, synchronize=lambda: None))
    # 100 ms over 5 blocks of 10 calls: 2 ms a call (the best block would say 1 ms)
    assert peaks_gpu._cuda_seconds(torch, lambda: None, reps=5, inner=10) == pytest.approx(0.002)


def test_the_machine_roofs_line_states_the_statistic() -> None:
    from reports.labels import peak_text

    peaks = median_of_processes([_proc(50.0, 10.0, 0.0), _proc(90.0, 30.0, 0.0), _proc(70.0, 20.0, 0.0)])
    text = peak_text(peaks)
    assert text.startswith("fp32 70.0, int8 140.0 GMAC/s at 2 threads") and "median of 3 processes" in text
    assert "median" not in peak_text({"fp32": 80.0, "threads": 2})  # a run measured before: no claim
