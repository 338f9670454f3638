"""Typed records of a result file: a run (`results.json`, one line of `bench store export`), its rows and their
nested parts, with the unit and meaning of every field. The one definition the writer (`harness.measure.rows`),
the store and the reports share; `results.schema.json` at the repository root is generated from it.

Why pydantic (v2) and not dataclasses: the same classes give the published JSON Schema (`model_json_schema()`)
and validation in compiled code (pydantic-core; `TypeAdapter` validates a whole list of rows, or a stored row's
JSON text directly, without a Python pass per field), so `bench store import` refuses a bad file field by field
and the store reads 1,000 runs typed about as fast as it reads them as dicts.

Why a value may be None (declared here once, not on every field): a row whose cell did not run
(`status` != "ok") has no measurements; a number that does not apply to its row (latency percentiles of a
multi-request throughput row, GPU timing on a CPU, int8 fields of an fp32 variant, an interval over fewer than
two processes); or a run written before the field existed (a version-1 file, upgraded on read by `upgrade_run`).

Every record allows keys it does not declare (`extra="allow"`): a newer writer's addition does not make an older
reader refuse a file. Declared keys are checked strictly (no "1.5" for a number, no 0 for a boolean).

Regenerate the checked-in schema and docs page after changing a record: `python -m common.records`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

SCHEMA_VERSION = 2  # of the result JSON (not the store's table schema, harness.history.schema.SCHEMA_VERSION)
SCHEMA_FILE = "results.schema.json"
DOCS_FILE = "docs/results-schema.md"
SCHEMA_ID = "https://fer-bench.invalid/results.schema.json"


class Record(BaseModel):
    """Base of every record: strict on declared keys, keeps undeclared ones (forward compatible)."""

    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True, validate_default=False)


def _f(description: str, default: Any = None) -> Any:
    return Field(default=default, description=description)


# ------------------------------------------------------------------------------------------------ row parts
class Latency(Record):
    """A row's latency in milliseconds per request: each value is the median over the cell's processes of that
    process's own statistic (so p95 <= p99 always)."""

    min: float | None = _f("fastest request, ms")
    p50: float | None = _f("median request latency, ms")
    p90: float | None = _f("90th percentile latency, ms")
    p95: float | None = _f("95th percentile latency, ms")
    p99: float | None = _f("99th percentile latency, ms")
    mean: float | None = _f("mean latency, ms")
    stdev: float | None = _f("standard deviation of latency, ms")
    iqr: float | None = _f("interquartile range of latency, ms")
    cov: float | None = _f("coefficient of variation (stdev / mean), unitless")
    rcov: float | None = _f("robust coefficient of variation (MAD / median), unitless")


class Round(Record):
    """One timed process of a cell (benchmark.rounds fresh processes per cell): its own numbers and noise."""

    round: int = _f("round index of this process (0 = first)", 0)
    started: str | None = _f("UTC ISO 8601 time the process started")
    n: int = _f("timed samples this process took", 0)
    p50_ms: float | None = _f("this process's median latency, ms")
    p90_ms: float | None = _f("this process's 90th percentile latency, ms")
    p99_ms: float | None = _f("this process's 99th percentile latency, ms")
    rcov: float | None = _f("robust CoV (MAD / median) of this process's samples, unitless")
    fps: float | None = _f("images per second of this process's timed loop")
    duration_s: float | None = _f("timed seconds of this process")
    valid: bool | None = _f("this process met the duration, sample-count and stability rules")
    invalid_reasons: list[str] | None = _f("why this process is not valid (empty when valid)")
    steal_fraction: float | None = _f("share of the allowed CPUs' time stolen by the hypervisor, 0-1")
    other_cpu_fraction: float | None = _f("share of the allowed CPUs used by other processes, 0-1")
    cpu_mhz: float | None = _f("CPU clock during the loop, MHz")
    loadavg_1m: float | None = _f("1-minute load average during the loop")
    cpus_allowed: int | None = _f("CPUs this process was allowed to run on")
    noisy: str | None = _f('why the machine state disqualifies this process ("" when it does not)')
    fixed_s: float | None = _f("seconds the process cost beyond warm-up and timed loops (start, load, compile, exit)")
    steps: list[str] | None = _f("what the process did, in order")
    python_threads: list[str] | None = _f("Python threads alive during the timed loops")
    threads_after_load: list[str] | None = _f("Python threads alive after the model loaded")
    pair: int | None = _f("round index pairing this process with the other arm's process (runs with a reference arm)")
    position: int | None = _f("order of this process within its pair, 0 or 1 (runs with a reference arm)")
    interleave: Literal["blocks", "processes"] | None = _f(
        '"blocks": this process timed both arms in alternating blocks, so its pair is the same process; '
        '"processes" or absent: each arm had its own process (runs with a reference arm)')


class Memory(Record):
    """A row's memory, in bytes: the load of the model this row timed and the steady state of its loop."""

    load_peak_rss_bytes: int | None = _f("peak resident set while loading the model, bytes")
    model_rss_bytes: int | None = _f("resident set the loaded model added, bytes")
    steady_rss_bytes: int | None = _f("resident set during the timed loop, bytes")
    loop_peak_rss_bytes: int | None = _f("peak resident set during the timed loop, bytes")
    gpu_memory_bytes: int | None = _f("GPU memory the runtime held, bytes")
    second_model: bool | None = _f("the throughput scenario timed a second, separately compiled model")


class Roofline(Record):
    """The roofs a row was held against and which one binds."""

    device: str | None = _f('device of the roofs, e.g. "cpu" or "cuda"')
    precision: str | None = _f("precision whose compute roof applies")
    compute_gmac_per_s: float | None = _f("measured compute roof, GMAC/s")
    bandwidth_gb_per_s: float | None = _f("memory roof that applies, GB/s")
    memory_level: str | None = _f('memory level of that roof: "dram" or "cache"')
    bound: Literal["compute", "memory"] | None = _f("the lower roof at this row's arithmetic intensity")
    bytes_per_batch: float | None = _f("bytes moved per batch (weights + activations), bytes")


class CorrectBits(Record):
    """Per-image correctness of the accuracy process, packed (common.stats.accuracy.pack_correct)."""

    bits: str = _f("base64 of the packed correct/incorrect bits, one per test image", "")
    labels: str = _f("hash of the test labels the bits refer to", "")
    n: int = _f("number of test images", 0)


class DescribeHarness(Record):
    """How the harness drove the timed loop of this row."""

    requests_in_flight: int | None = _f("requests in flight at once")
    images_per_sample: int | None = _f("images per timed sample (the batch size)")
    warmup_iterations: int | None = _f("untimed iterations before the timed loop")
    min_samples: int | None = _f("fewest timed samples the loop had to take")
    capped: bool | None = _f("the loop stopped at its sample cap before its duration")


class Describe(Record):
    """What the runtime really did (backend-specific; the common keys are typed, the rest are the backend's own,
    e.g. OpenVINO's `primitive_types` {kernel: count}, ONNX Runtime's `optimized_ops` {op: count})."""

    device: str | None = _f('the device the runtime ran on, as it names it, e.g. "CPU"')
    label: str | None = _f('short precision label the runtime reports, e.g. "fp32", "int8"')
    int8_layers: int | None = _f("layers that ran int8 kernels")
    total_layers: int | None = _f("compute layers of the compiled model")
    primitive_types: dict[str, int] | None = _f("OpenVINO: compiled kernels by type, {kernel: count}")
    threads: int | None = _f("threads the runtime used")
    streams: int | None = _f("OpenVINO streams (parallel inference queues)")
    compile_note: str | None = _f("what the compiler did worth knowing (fusions, fallbacks)")
    harness: DescribeHarness | None = _f("how the harness drove the loop")


class RuntimeTiming(Record):
    """The runtime's own time per request beside the end-to-end time of the same calls (backend-specific beyond
    these two)."""

    runtime_p50_ms: float | None = _f("the runtime's own median time per request, ms")
    end_to_end_p50_ms: float | None = _f("median end-to-end time of the same calls, ms")


class Modes(Record):
    """The mode mix of the per-process p50s: a fast level and a share of slow processes."""

    fast_ms: float = _f("level of the fast mode, ms", 0.0)
    slow_share: float = _f("share of processes in the slow mode(s), 0-1", 0.0)
    n_slow: int = _f("processes in the slow mode(s)", 0)
    n: int = _f("processes considered", 0)
    threshold_ms: float = _f("p50 above which a process counts as slow, ms", 0.0)
    levels_ms: list[float] = _f("level of each mode found, fastest first, ms", [])


# ------------------------------------------------------------------------------------------------ the row
class Row(Record):
    """One result row: a backend x variant cell in one scenario at one batch size, measured over several
    processes (`rounds`)."""

    backend: str = Field(description='runtime that ran the cell, e.g. "openvino", "onnxruntime", "torch-eager"')
    variant: str = Field(description='model variant, e.g. "dense-fp32", "l1-int8"')
    scenario: str = Field(description='"latency" (one request at a time) or "throughput"')
    batch_size: int = Field(description="images per request")
    status: str = Field(description='"ok", "unavailable", "error" or "timeout"')
    reason: str | None = _f('why the cell did not run ("" when it did)')
    device: str | None = _f("device the runtime ran on, as the runtime names it")
    precision: str | None = _f('precision the variant ran in, as evidenced by the runtime, e.g. "fp32", "int8"')
    latency_ms: Latency | None = _f("latency percentiles, ms (latency rows and single-request throughput rows)")
    throughput_fps: float | None = _f("images per second: median over processes")
    n_samples: int | None = _f("timed samples over all processes")
    duration_s: float | None = _f("timed seconds over all processes")
    valid: bool | None = _f("the row met every measurement rule (VALID)")
    invalid_reasons: list[str] | None = _f("why the row is INVALID (empty when valid)")
    cold_start_ms: float | None = _f("load + compile + first inference of the first process, ms")
    accuracy: float | None = _f("top-1 test accuracy as this backend computed it, 0-1")
    macro_f1: float | None = _f("macro-averaged F1 on the test set, 0-1")
    storage_bytes: int | None = _f("parameter bytes of the variant, bytes")
    storage_mb: float | None = _f("parameter size of the variant, MB (10^6 bytes)")
    compression_ratio: float | None = _f("dense fp32 parameter bytes / this variant's, unitless")
    params: int | None = _f("parameters of the variant")
    nonzero_params: int | None = _f("non-zero parameters of the variant")
    gmac: float | None = _f("multiply-accumulates per image, GMAC (10^9)")
    int8_layers: int | None = _f("layers that ran int8 kernels")
    total_layers: int | None = _f("compute layers of the compiled model")
    peak_rss_bytes: int | None = _f("peak resident set of the first process, bytes")
    samples_ms: list[float] | None = _f("every timed sample of every process in round order, ms per sample")
    confusion: list[list[int]] | None = _f("confusion matrix on the test set, [true class][predicted class], counts")
    loaded_bytes: int | None = _f("bytes of the model file(s) the runtime loaded, bytes")
    gmac_per_s: float | None = _f("achieved compute rate: gmac x throughput_fps, GMAC/s")
    describe: Describe | None = _f("what the runtime really did (backend-specific, common keys typed)")
    label: str | None = _f("short precision label the runtime reports")
    rounds: list[Round] | None = _f("one entry per timed process, round order")
    p50_ci_ms: list[float] | None = _f("order-statistic interval of p50 over processes, [low, high] ms")
    p99_ci_ms: list[float] | None = _f("order-statistic interval of p99 over processes, [low, high] ms")
    round_cov: float | None = _f("robust CoV of the per-process p50s, unitless")
    bimodal: bool | None = _f("the per-process p50s fall into two separated groups")
    noisy_rounds: int | None = _f("processes marked noisy (steal or foreign load)")
    fixed_cost_s: float | None = _f("median per-process cost beyond warm-up and timed loops, s")
    precision_reason: str | None = _f("the evidence for `precision` (kernels seen, or their absence)")
    precision_flag: str | None = _f('a warning about the precision ("" when none), e.g. int8 simulated in fp32')
    agreement: float | None = _f("top-1 agreement with the reference's predictions, 0-1")
    agrees: bool | None = _f("agreement is at or above the threshold")
    agreement_reason: str | None = _f('why the row disagrees or is unverified ("" when it agrees)')
    file_bytes: int | None = _f("bytes of the model file(s), bytes")
    memory: Memory | None = _f("memory of the model load and the timed loop, bytes")
    fraction_of_peak: float | None = _f("gmac_per_s / the machine's compute peak of this precision, 0-1")
    gpu_timing: dict[str, Any] | None = _f("GPU-side time split of one request (GPU backends), ms per phase")
    reference: str | None = _f('what the agreement was measured against, e.g. "pytorch-reference (fp32)"')
    val_accuracy: float | None = _f("the variant's validation accuracy from its manifest (PyTorch at build time), 0-1")
    weight_bits: int | None = _f("int8 variants: stored weight range, 7 or 8 bits")
    int8_encoding: str | None = _f("int8 variants: the integer encoding the files assume")
    p50_ci_level: float | None = _f("real confidence level of p50_ci_ms, 0-1")
    p99_ci_level: float | None = _f("real confidence level of p99_ci_ms, 0-1")
    correct_bits: CorrectBits | None = _f("per-image correctness, for paired accuracy tests")
    arithmetic_intensity: float | None = _f("MACs per byte moved, MAC/byte")
    attainable_gmac_per_s: float | None = _f("roofline at this intensity: min(compute, bandwidth x intensity), GMAC/s")
    fraction_of_attainable: float | None = _f("gmac_per_s / attainable_gmac_per_s, 0-1 (above 1: roof read low)")
    roofline: Roofline | None = _f("the roofs this row was held against")
    runtime_timing: RuntimeTiming | None = _f("the runtime's own time per request beside end to end, ms")
    unstable_rounds: int | None = _f("processes whose samples varied more than benchmark.max_cov")
    roof_measured_low: bool | None = _f("the row ran above its attainable roof: the roofs, measured once before "
                                       "the cells, read low")
    # added in result schema 2
    artifact_sha256: str | None = _f("sha256 of the model file the backend loaded, hex")
    artifact_file: str | None = _f('name of that file in the artifact directory, e.g. "model.onnx"')
    model: str | None = _f('architecture and width of the model, e.g. "VGG16-FER x0.25"')
    arm: Literal["candidate", "reference"] | None = _f(
        "arm of an interleaved comparison; None = candidate in runs without a reference arm")
    reference_settings: dict[str, Any] | None = _f("config overrides the reference arm ran under")
    modes: Modes | None = _f("mode mix of the per-process p50s")
    compile_note: str | None = _f("what the runtime's compiler did worth knowing (from describe)")
    # cluster runs (`bench run --cluster`) only: absent on local rows
    machine_id: str | None = _f("cluster runs: the machine that measured this row (described in the run's machines)")
    fingerprint_id: str | None = _f("cluster runs: that machine's fingerprint id")
    target: str | None = _f("cluster runs: the hardware target label of the node")
    host_slot: Any = _f("cluster runs: the node slot of the first process")
    host_slots: list[Any] | None = _f("cluster runs: the node slot of each process")
    process_machines: list[Any] | None = _f("cluster runs: the machine of each process")
    accuracy_process: Any = _f("cluster runs: where the untimed accuracy process ran")

    def p50(self) -> float | None:
        """The row's median latency, ms (None without latency)."""
        return self.latency_ms.p50 if self.latency_ms is not None else None


# ------------------------------------------------------------------------------------------------ run parts
class RunRounds(Record):
    """How the cells' processes were ordered."""

    count: int = _f("processes per cell (benchmark.rounds)", 1)
    seed: int | None = _f("seed of the per-round shuffle")
    order: list[list[str]] | None = _f('cell order of each round, "backend/variant"')
    order_by_machine: dict[str, Any] | None = _f("cluster runs: each machine's order of rounds")


class Agreement(Record):
    """Top-1 agreement of one cell's predictions with its reference's."""

    backend: str = _f("runtime of the cell", "")
    variant: str = _f("variant of the cell", "")
    reference: str | None = _f("what the predictions were compared against")
    top1_agreement: float | None = _f("share of test images with the same top-1 class, 0-1")
    max_abs_logit_diff: float | None = _f("largest absolute logit difference, logit units")
    machine_id: str | None = _f("cluster runs: the machine of the cell")
    scenario: str | None = _f('"throughput" for a throughput model compiled apart (its own logits); None: every '
                              "scenario of the cell")


class MachinePeaks(Record):
    """The machine's measured roofs (empty when not measured)."""

    device: str | None = _f('"cpu" or "cuda"')
    fp32: float | None = _f("fp32 compute peak, GMAC/s")
    int8: float | None = _f("int8 compute peak, GMAC/s")
    fp16: float | None = _f("fp16 compute peak, GMAC/s")
    bf16: float | None = _f("bf16 compute peak, GMAC/s")
    bandwidth_gb_per_s: dict[str, float] | None = _f('memory bandwidth per level ("dram", "cache"), GB/s')
    kernels: dict[str, Any] | None = _f("the kernels each roof was measured with, and their rates")
    threads: int | None = _f("threads the roofs were measured with")
    other_cpu_fraction: float | None = _f("share of the CPUs other processes used while measuring, 0-1")
    error: str | None = _f("why the roofs were not measured")
    statistic: str | None = _f("how the roofs were reduced over processes, in words (the rows' statistic)")
    processes: list[dict[str, Any]] | None = _f("each roof process's own roofs, before the median")
    process_errors: list[str] | None = _f("why a roof process failed (the median is over the others)")
    gpu: dict[str, Any] | None = _f("the GPU's roofs: {device, fp32, tf32, fp16, bf16, int8 (GMAC/s), "
                                    "bandwidth_gb_per_s: {dram}, error}")


class SweepPoint(Record):
    """One compression point of a sweep."""

    variant: str = _f("variant name", "")
    method: str | None = _f('pruning criterion, e.g. "l1"')
    scope: str | None = _f('"local" (per layer) or "global"')
    sparsity: float | None = _f("fraction of filters removed per layer, 0-1 (None for a MAC-target point)")
    precision: str | None = _f('"fp32" or "int8"')
    macs_reduction: float | None = _f("MAC-target points: dense MACs / MACs reached, unitless")


class Sweep(Record):
    """The `sweep` block of a `bench sweep` run."""

    points: list[SweepPoint] = _f("the compression points", [])
    baseline: str | None = _f("variant every speedup is quoted against")
    paper_point: str | None = _f("the paper's compression point, if built")
    tolerance: float | None = _f("accuracy drop allowed below dense, 0-1")
    artifacts: dict[str, dict[str, Any]] | None = _f("per variant: manifest facts (val/test accuracy, gmac, recipe)")
    latency: dict[str, Any] | None = _f("hardware-aware points (--latency-target): the latency table used, per "
                                        "variant the target, predicted and measured p50 (ms) and the architecture "
                                        "chosen (widths per conv, removed convs), and the sum-of-parts error (%); "
                                        "`foreign`: other machines' choices for the same request measured here, "
                                        "each with its p50 / this machine's choice's p50 (x) and its interval")
    dense_arch: dict[str, Any] | None = _f("the dense model's architecture the points were cut from (in_channels, "
                                           "features, hidden): what another machine's choices are compared by")


class FrontierChoice(Record):
    """The fastest variant within the accuracy tolerance on one backend."""

    variant: str = _f("chosen variant", "")
    p50_ms: float | None = _f("its p50 latency, ms")
    p50_ci_ms: list[float] | None = _f("its p50 interval over processes, [low, high] ms")
    val_accuracy: float | None = _f("its validation accuracy, 0-1")
    delta_val_accuracy: float | None = _f("validation accuracy minus dense's, 0-1 scale")
    accuracy: float | None = _f("its test accuracy, 0-1")
    accuracy_ci95: list[float] | None = _f("95% interval of its test accuracy, [low, high] 0-1")
    delta_accuracy: float | None = _f("test accuracy minus dense's on this backend, 0-1 scale")
    speedup_vs_dense_fp32_torch: float | None = _f("p50 of dense-fp32 on torch-eager / its p50, x")
    speedup_ci95: list[float] | None = _f("95% interval of that speedup, [low, high] x")
    speedup_vs_paper: float | None = _f("p50 of the paper's point (L1, sparsity 0.5) on this backend / its p50, x")
    speedup_vs_paper_ci95: list[float] | None = _f("95% interval of that speedup over processes, [low, high] x")
    valid: bool | None = _f("its row is VALID")
    agrees: bool | None = _f("its row agrees with the reference")
    reference: str | None = _f("what its agreement was measured against")


class BackendFrontier(Record):
    """One backend's accuracy/latency frontier."""

    pareto: list[str] = _f("variants on the Pareto front (p50 vs validation accuracy)", [])
    chosen_on: str | None = _f('accuracy the choice is made on, "val_accuracy"')
    excluded: dict[str, str] | None = _f("variants not considered, with why")
    dense_val_accuracy: float | None = _f("dense-fp32 validation accuracy, 0-1")
    dense_accuracy: float | None = _f("dense-fp32 test accuracy on this backend (else torch-eager), 0-1")
    dense_accuracy_from: str | None = _f("backend dense_accuracy was measured on")
    fastest_within_tolerance: FrontierChoice | None = _f("the choice (None: no candidate within tolerance)")


class RunReference(Record):
    """What a run's reference arm was."""

    kind: Literal["dir", "accepted", "settings"] = Field(
        description='"dir": artifacts in a folder; "accepted": the accepted baseline; "settings": config overrides')
    path: str | None = _f("folder of the reference artifacts (kind dir)")
    settings: dict[str, Any] | None = _f("config overrides of the reference arm (kind settings)")
    interleave: Literal["blocks", "processes"] | None = _f(
        '"blocks": both arms in one process per round, timed in alternating blocks; "processes" (or absent, '
        'runs before the setting): each arm in its own process, ABBA order')


class Fingerprint(Record):
    """The machine and software a run ran on (cpu, gpus, os, versions, git, config, ...; free-form beyond these)."""

    id: str | None = _f("hash of the fingerprint, 12 hex digits")
    machine_id: str | None = _f("the machine's id (machine.id, else derived from the hardware)")
    cpu: dict[str, Any] | str | None = _f("the CPU: {brand, cores, flags, ...} (older runs: its name)")
    isa: dict[str, Any] | None = _f("the CPU's instruction-set features: {features: {name: bool}}")


class Run(Record):
    """One run: its machine, settings, and result rows."""

    schema_version: int = Field(description=f"version of this format ({SCHEMA_VERSION}); older files are upgraded")
    run_id: str = Field(description="UTC timestamp plus random suffix, e.g. 20260101T120000Z-3fa2b1")
    created: str = Field(description="UTC ISO 8601 time the run started")
    fingerprint: Fingerprint | None = _f("the machine and software of the driver")
    config: dict[str, Any] | None = _f("the resolved configuration, by section")
    config_hash: str | None = _f("hash of the measurement-relevant config sections")
    dataset: str | None = _f('data set name, e.g. "synthfer"')
    synthetic: bool | None = _f("the data set is generated (SynthFER), not real faces")
    harness_overhead_us: float | None = _f("the timing loop's own cost per iteration, microseconds")
    rounds: RunRounds | None = _f("how cells' processes were ordered")
    results: list[Row] = Field(description="the result rows")
    agreement: list[Agreement] | None = _f("top-1 agreement of each cell with its reference")
    machine_peak_gmac_per_s: MachinePeaks | None = _f("the machine's measured roofs")
    layers_csv: str | None = _f("path of the layer-wise table CSV")
    layers: list[dict[str, Any]] | None = _f("the layer-wise table, one object per layer (cells as text from the CSV)")
    sweep: Sweep | None = _f("`bench sweep`: the compression points")
    frontier: dict[str, BackendFrontier] | None = _f("`bench sweep`: {backend: frontier}")
    phase_seconds: dict[str, float] | None = _f("wall seconds per phase (data, training, grid, report)")
    cluster: dict[str, Any] | None = _f("cluster runs: {address, targets}")
    machines: dict[str, Any] | None = _f("cluster runs: {machine id: its fingerprint, overhead, peaks}")
    gate_changes: Any = _f("attached by `bench report`: open and accepted changes per cell")
    reference: RunReference | None = _f("the reference arm of an interleaved comparison (None: no reference arm)")


# --------------------------------------------------------------------------------- parse, upgrade, publish
class SchemaError(ValueError):
    """A run that does not conform: `where` is the path of the first bad field (results[3].latency_ms.p50)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where, self.message = where, message


ROWS = TypeAdapter(list[Row])


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def first_error(e: ValidationError) -> SchemaError:
    """The first error of a validation as (path, what is allowed)."""
    err = e.errors(include_url=False)[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    got = err.get("input")
    got_txt = json.dumps(got, default=str)[:60] if not isinstance(got, dict) else "an object"
    return SchemaError(_path(loc), f"{err['msg'].lower()} (got {got_txt})")


def upgrade_run(run: dict[str, Any]) -> dict[str, Any]:
    """A run dict in the current version: version 1 -> 2 adds no required key (every field added in 2 is
    optional, None when absent), so the upgrade only restamps the version. Raises SchemaError for a version this
    code does not know (newer, or not a number)."""
    version = run.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SchemaError("schema_version", f"must be an integer 1..{SCHEMA_VERSION} (got {version!r})")
    if version > SCHEMA_VERSION:
        raise SchemaError("schema_version", f"{version} was written by a newer bench; this one reads up to "
                          f"{SCHEMA_VERSION}: upgrade fer-bench")
    if version < SCHEMA_VERSION:
        run = {**run, "schema_version": SCHEMA_VERSION}
    return run


def parse_run(run: dict[str, Any] | Run) -> Run:
    """A run dict (any known version) validated into a Run; SchemaError names the first bad field."""
    if isinstance(run, Run):
        return run
    if not isinstance(run, dict):
        raise SchemaError("", f"a run must be a JSON object, got {type(run).__name__}")
    try:
        return Run.model_validate(upgrade_run(run))
    except ValidationError as e:
        raise first_error(e) from None


def parse_row(row: dict[str, Any] | Row, strict: bool = True) -> Row:
    """One row dict validated into a Row (a Row passes through)."""
    if isinstance(row, Row):
        return row
    try:
        return Row.model_validate(row, strict=strict)
    except ValidationError as e:
        raise first_error(e) from None


# What a reader takes for a required key that a partial dict (a hand-made row in a test or script) leaves out.
_ROW_UNKNOWN: dict[str, Any] = {"backend": "?", "variant": "?", "scenario": "?", "batch_size": 1, "status": "?"}
_RUN_UNKNOWN: dict[str, Any] = {"run_id": "?", "created": "", "results": []}


def as_row(row: dict[str, Any] | Row) -> Row:
    """A reader's entry: a row the harness wrote (dict or Row) as a Row, checked lax (readers of a row already
    written do not re-judge it; import and the writer check strictly); absent required keys read as unknown."""
    return row if isinstance(row, Row) else parse_row({**_ROW_UNKNOWN, **row}, strict=False)


def as_run(run: dict[str, Any] | Run) -> Run:
    """A reader's entry: a run the harness wrote or stored (dict, any known version, or Run) as a Run, lax;
    absent required keys read as unknown."""
    if isinstance(run, Run):
        return run
    results = run.get("results")
    full = {**_RUN_UNKNOWN, **run, "results": [{**_ROW_UNKNOWN, **r} if isinstance(r, dict) else r
                                              for r in results or []]}
    try:
        return Run.model_validate(upgrade_run(full), strict=False)
    except ValidationError as e:
        raise first_error(e) from None


def rows_of(rows: list[dict[str, Any]] | list[Row]) -> list[Row]:
    """A list of rows (dicts or Rows) as Rows, validated in one pass over the dicts."""
    if all(isinstance(r, Row) for r in rows):
        return list(rows)  # type: ignore[arg-type]
    try:
        return ROWS.validate_python([r.model_dump() if isinstance(r, Row) else r for r in rows])
    except ValidationError as e:
        err = first_error(e)
        raise SchemaError("results" + err.where, err.message) from None


# ------------------------------------------------------------------------------- slim views of stored rows
class View(BaseModel):
    """Base of a slim view of a record: it declares only what its reader reads, each field as the record declares
    it (`_as_in`, checked by `_check_view`: one definition of type, unit and meaning). Keys it does not declare are
    skipped while validating (from JSON text pydantic-core passes over them without building them); lax, as every
    reader of rows already written (the writer and `bench store import` check strictly)."""

    model_config = ConfigDict(extra="ignore", strict=False, validate_default=False)


_SAME: Any = object()


def _as_in(record: type[BaseModel], name: str, default: Any = _SAME) -> Any:
    """Field `name` of `record` (its default, unless given, and its description), for a view to declare under the
    same name."""
    f = record.model_fields[name]
    return Field(default=f.default if default is _SAME else default, description=f.description)


class DescribeSettings(View):
    """The settings a row ran under, from its `describe` (a view of Describe)."""

    threads: int | None = _as_in(Describe, "threads")
    streams: int | None = _as_in(Describe, "streams")
    harness: DescribeHarness | None = _as_in(Describe, "harness")


class SelectionRow(View):
    """A stored result row as `bench select` and `bench report --compare-hardware` read it
    (`ResultsStore.all_results_typed`): the row's fields they read, declared as in Row, and the run and machine
    it came from. A view, not a Row: a full row's per-process rounds, confusion matrix and correctness bits are
    never built (validating whole Rows made `bench select` 1.8x slower than reading dicts)."""

    backend: str = _as_in(Row, "backend")
    variant: str = _as_in(Row, "variant")
    device: str | None = _as_in(Row, "device")
    scenario: str = _as_in(Row, "scenario")
    batch_size: int = _as_in(Row, "batch_size")
    status: str = _as_in(Row, "status")
    reason: str | None = _as_in(Row, "reason")
    latency_ms: Latency | None = _as_in(Row, "latency_ms")
    throughput_fps: float | None = _as_in(Row, "throughput_fps")
    valid: bool | None = _as_in(Row, "valid")
    invalid_reasons: list[str] | None = _as_in(Row, "invalid_reasons")
    accuracy: float | None = _as_in(Row, "accuracy")
    storage_mb: float | None = _as_in(Row, "storage_mb")
    file_bytes: int | None = _as_in(Row, "file_bytes")
    describe: DescribeSettings | None = _as_in(Row, "describe")
    p50_ci_ms: list[float] | None = _as_in(Row, "p50_ci_ms")
    p99_ci_ms: list[float] | None = _as_in(Row, "p99_ci_ms")
    agreement: float | None = _as_in(Row, "agreement")
    agrees: bool | None = _as_in(Row, "agrees")
    agreement_reason: str | None = _as_in(Row, "agreement_reason")
    reference: str | None = _as_in(Row, "reference")
    val_accuracy: float | None = _as_in(Row, "val_accuracy")
    artifact_sha256: str | None = _as_in(Row, "artifact_sha256")
    model: str | None = _as_in(Row, "model")
    arm: Literal["candidate", "reference"] | None = _as_in(Row, "arm")
    compile_note: str | None = _as_in(Row, "compile_note")
    target: str | None = _as_in(Row, "target")
    # where it was measured: filled in by the store from the row's run (absent from a hand-made row: None)
    run_id: str | None = _as_in(Run, "run_id", default=None)
    created: str | None = _as_in(Run, "created", default=None)
    config_hash: str | None = _as_in(Run, "config_hash")
    dataset: str | None = _as_in(Run, "dataset")
    synthetic: bool | None = _as_in(Run, "synthetic")
    machine_id: str | None = _f("the machine that measured the row: a cluster run's node, else the run's machine "
                                "(common.results.row_machine)")
    fingerprint_id: str | None = _f("that machine's fingerprint id")
    hardware: str | None = _f('that machine in words, e.g. "Intel Xeon Platinum 8481C (2 cores)"')


_VIEWED: dict[type[BaseModel], type[BaseModel]] = {DescribeSettings: Describe}  # nested view -> record it views
_ROW_CONTEXT = ("run_id", "created", "config_hash", "dataset", "synthetic")  # SelectionRow's fields from Run


def _members(annotation: Any) -> set[Any]:
    """The types of a union annotation (a set of one for any other), nested views replaced by what they view."""
    args = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    return {_VIEWED.get(a, a) for a in args}


def _check_view(view: type[View], record: type[BaseModel], names: tuple[str, ...], nullable: bool = False) -> None:
    """TypeError unless each field in `names` of `view` has the type and description it has in `record` (where
    `nullable`, the view may add None: a field the record requires that the view may lack)."""
    for name in names:
        got, want = view.model_fields[name], record.model_fields[name]
        got_t, want_t = _members(got.annotation), _members(want.annotation)
        types_ok = got_t == want_t or (nullable and got_t == want_t | {type(None)})
        if not types_ok or got.description != want.description:
            raise TypeError(f"{view.__name__}.{name} is not declared as {record.__name__}.{name}: "
                            f"{got.annotation} vs {want.annotation}")


_check_view(DescribeSettings, Describe, tuple(DescribeSettings.model_fields))
_check_view(SelectionRow, Row, tuple(n for n in SelectionRow.model_fields if n in Row.model_fields
                                     and n not in ("machine_id", "fingerprint_id")))
_check_view(SelectionRow, Run, _ROW_CONTEXT, nullable=True)
SELECTION_ROWS = TypeAdapter(list[SelectionRow])


def selection_rows_of(rows: list[dict[str, Any]]) -> list[SelectionRow]:
    """Row dicts (hand-made in a test or script, or `all_results()`'s) as SelectionRows, lax, in one pass; absent
    required keys read as unknown."""
    try:
        return SELECTION_ROWS.validate_python([{**_ROW_UNKNOWN, **r} for r in rows], strict=False)
    except ValidationError as e:
        raise first_error(e) from None


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of a run (what results.schema.json holds)."""
    schema = Run.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": f"fer-bench result file, schema_version {SCHEMA_VERSION}", **schema}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=1, sort_keys=True) + "\n"


def _type_text(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return f"[{prop['$ref'].rsplit('/', 1)[-1]}](#{prop['$ref'].rsplit('/', 1)[-1].lower()})"
    if "anyOf" in prop:
        parts = [_type_text(p) for p in prop["anyOf"] if p.get("type") != "null"]
        nullable = any(p.get("type") == "null" for p in prop["anyOf"])
        return " or ".join(parts) + (" or null" if nullable else "")
    if "enum" in prop:
        return " / ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    t = prop.get("type", "any")
    if t == "array":
        return f"list of {_type_text(prop.get('items', {}))}"
    if t == "object" and isinstance(prop.get("additionalProperties"), dict):
        return f"object of {_type_text(prop['additionalProperties'])}"
    return str(t)


def docs_text() -> str:
    """docs/results-schema.md: every record and field, with type, unit and meaning, from the schema."""
    schema = json_schema()
    defs = schema.get("$defs", {})
    out = ["# The result file (results.json), schema version " + str(SCHEMA_VERSION), "",
           "<!-- generated by `python -m common.records` from common/records.py; do not edit by hand -->", "",
           "What `bench run` writes as `runs/<run_id>/results.json`, what `bench store export` writes one per line, "
           "and what `bench store import` accepts. The machine-readable contract is `results.schema.json` "
           "(JSON Schema 2020-12) at the repository root; validate a file with any JSON Schema validator, e.g. "
           "`python -c 'import json, jsonschema; jsonschema.validate(json.load(open(\"results.json\")), "
           "json.load(open(\"results.schema.json\")))'`.", "",
           "Units are in the field name (`_ms`, `_s`, `_bytes`, `_fps`, `_gmac_per_s`) or its description; shares "
           "and accuracies are 0-1. A null value means: the cell did not run, the number does not apply to the "
           "row, or the file was written before the field existed. Every object may carry keys not listed here "
           "(a newer writer's); readers ignore them.", "",
           "Versions: 1 (before the typed records) is read by upgrading it to 2 (same fields; 2 adds the optional "
           "row fields `artifact_sha256`, `model`, `arm`, `reference_settings`, `modes`, `compile_note`, the round "
           "fields `pair`, `position` and the run field `reference`). `bench store migrate` restamps stored "
           "version-1 runs.", ""]
    sections = [("Run", schema)] + [(name, defs[name]) for name in defs if name != "Run"]
    for name, d in sections:
        out += [f"## {name}", "", d.get("description", "").strip(), "", "| field | type | required | meaning |",
                "|---|---|---|---|"]
        required = set(d.get("required", []))
        for field, prop in d.get("properties", {}).items():
            desc = str(prop.get("description", "")).replace("|", "\\|")
            out.append(f"| `{field}` | {_type_text(prop).replace('|', '/')} | "
                       f"{'yes' if field in required else ''} | {desc} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def write_published(root: Path) -> list[Path]:
    """Write results.schema.json and docs/results-schema.md under `root` (the repository)."""
    paths = [(root / SCHEMA_FILE, schema_text()), (root / DOCS_FILE, docs_text())]
    for p, text in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return [p for p, _ in paths]


if __name__ == "__main__":  # python -m common.records [ROOT]: regenerate the published schema and its docs page
    for written in write_published(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()):
        print(f"wrote {written}")
