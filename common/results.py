"""The result-JSON contract shared by the writer (harness) and every reader (store, reports, select).

A run is `{schema_version, run_id, created, fingerprint, config, config_hash, ..., results: [row, ...]}`, typed
field by field in `common.records` (published as results.schema.json); the field names, the reference cell that
ratios are quoted against, and the helpers that name a run's machine and settings live here
so that the harness and the reports agree without importing each other.
"""

from __future__ import annotations

import csv
import hashlib
import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.records import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION"]  # re-exported: the writers stamp runs with it
RESULT_FIELDS = ("schema_version", "run_id", "created", "fingerprint", "config", "config_hash", "dataset",
                 "synthetic", "harness_overhead_us", "rounds", "results", "agreement", "machine_peak_gmac_per_s")
# Top-level keys a run may carry besides RESULT_FIELDS: the layer table's file (`bench run`, `bench sweep`), the
# sweep's points ({points: [{variant, method, scope, sparsity, precision}], baseline, paper_point, tolerance}) and
# its frontier ({backend: {fastest_within_tolerance: {variant, p50_ms, accuracy, speedup_vs_dense_fp32_torch,
# ...}, pareto: [variant, ...], dense_accuracy}}); `bench run`'s measured files ({variant: {path, manifest_sha256}},
# what `bench accept` keeps) and its reference arm ({kind: dir|accepted|settings, path, settings}).
OPTIONAL_RESULT_FIELDS = ("layers_csv", "sweep", "frontier", "artifacts", "reference")
# Row keys of a run with a reference arm only: "candidate" or "reference", and the reference's --reference-set
# overrides (None: the same settings); each `rounds` entry then has `pair` (the round) and `position` (0: first).
ARM_ROW_FIELDS = ("arm", "reference_settings")


def is_reference(row: Any) -> bool:
    """A row of a run's reference arm (`bench run --reference`): measured beside the candidate to be judged
    against it within the run (`bench compare --paired`), never itself a cell of the run's tables or of a
    comparison across runs."""
    arm = row.get("arm") if isinstance(row, dict) else getattr(row, "arm", None)
    return arm == "reference"
ROW_FIELDS = (
    "backend", "variant", "device", "precision", "scenario", "batch_size", "status", "reason", "latency_ms",
    "throughput_fps", "n_samples", "duration_s", "valid", "invalid_reasons", "cold_start_ms", "accuracy",
    "macro_f1", "storage_bytes", "storage_mb", "compression_ratio", "params", "nonzero_params", "gmac",
    "int8_layers", "total_layers", "peak_rss_bytes",
    # extras the results store needs
    "samples_ms", "confusion", "loaded_bytes", "gmac_per_s", "describe", "label",
    # processes as the unit (benchmark.rounds): per-process numbers and noise, intervals over processes
    "rounds", "p50_ci_ms", "p99_ci_ms", "round_cov", "bimodal", "noisy_rounds", "fixed_cost_s",
    # labels from measurements, not from the variant's name: evidence of precision, agreement gate, file bytes,
    # memory, roofline
    "precision_reason", "precision_flag", "agreement", "agrees", "agreement_reason", "file_bytes", "memory",
    "fraction_of_peak", "gpu_timing",
    # what the agreement was measured against (a PyTorch reference or a cell of its own), and the variant's
    # validation accuracy from its manifest
    # (PyTorch at build time; the frontier chooses on it, the row's `accuracy` is the backend's test accuracy)
    "reference", "val_accuracy",
    # int8 variants (7-bit weights are exact on CPUs without VNNI): the stored weight range (7 or 8 bits) and the
    # integer encoding the files assume
    "weight_bits", "int8_encoding",
    # the real confidence levels of the order-statistic intervals; per-image correctness for paired tests
    "p50_ci_level", "p99_ci_level", "correct_bits",
    # a roofline per device (intensity, attainable, fraction <= 1), the runtime's own time per request
    "arithmetic_intensity", "attainable_gmac_per_s", "fraction_of_attainable", "roofline", "runtime_timing",
    # processes above benchmark.max_cov (most of them: INVALID); a row above its roof (measured once, read low)
    "unstable_rounds", "roof_measured_low",
    # result schema 2: the loaded file's hash, the model's name, the arm of an interleaved comparison and its
    # settings, the mode mix of the per-process p50s, the compiler's note
    "artifact_sha256", "model", "arm", "reference_settings", "modes", "compile_note", "artifact_file",
)
# Declared in common.records.Row but only present on rows of cluster runs (`bench run --cluster`).
CLUSTER_ROW_FIELDS = ("machine_id", "fingerprint_id", "target", "host_slot", "host_slots", "process_machines",
                      "accuracy_process")
# The cell every speedup is quoted against (the paper's baseline: the dense model in PyTorch).
REFERENCE_BACKEND = "torch-eager"
REFERENCE_VARIANT = "dense-fp32"


def new_run_id() -> str:
    """A run's id: UTC timestamp plus a random suffix, e.g. 20260101T120000Z-3fa2b1."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def canonical_json(obj: Any) -> str:
    """Sorted-key JSON; array-likes become lists, other non-JSON values their text (stable hashes)."""
    return json.dumps(obj, default=_plain, sort_keys=True)


def _plain(o: Any) -> Any:
    for attr in ("tolist", "item"):  # numpy arrays and scalars, without importing numpy here
        if hasattr(o, attr):
            return getattr(o, attr)()
    return str(o)


def fingerprint_id(run: dict[str, Any]) -> str:
    """The run's fingerprint id (`fingerprint.id`; a hash of the fingerprint if it carries none)."""
    fp = run.get("fingerprint")
    if isinstance(fp, dict) and fp.get("id"):
        return str(fp["id"])
    return hashlib.sha256(canonical_json(fp).encode()).hexdigest()[:12]


def machine_id(run: dict[str, Any]) -> str:
    """The id of the machine that ran `run` (`fingerprint.machine_id`; "fp-" + the fingerprint id for runs
    written before machine ids existed: one per fingerprint, never a hostname)."""
    fp = run.get("fingerprint")
    if isinstance(fp, dict) and isinstance(fp.get("machine_id"), str) and fp["machine_id"].strip():
        return str(fp["machine_id"]).strip()
    return "fp-" + fingerprint_id(run)


def row_machine(row: dict[str, Any], run: dict[str, Any]) -> tuple[str, str, dict[str, Any] | None]:
    """(machine id, fingerprint id, fingerprint) of the machine that measured `row`: a cluster run's rows name
    their node (`machine_id`, described in the run's `machines`), a local run's rows are the run's machine."""
    mid = row.get("machine_id")
    machines = run.get("machines")
    if isinstance(mid, str) and mid and isinstance(machines, dict) and isinstance(machines.get(mid), dict):
        fp = machines[mid].get("fingerprint")
        fp = fp if isinstance(fp, dict) else None
        return mid, str(row.get("fingerprint_id") or fingerprint_id({"fingerprint": fp})), fp
    fp = run.get("fingerprint")
    return machine_id(run), fingerprint_id(run), fp if isinstance(fp, dict) else None


def config_hash(run: dict[str, Any]) -> str:
    """The run's config hash (`config_hash`; a hash of `config` if it carries none)."""
    if run.get("config_hash"):
        return str(run["config_hash"])
    return hashlib.sha256(canonical_json(run.get("config")).encode()).hexdigest()[:16]


def _first_str(d: dict[str, Any], *keys: str) -> str | None:
    for k in keys:
        v = d.get(k)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return None


def hardware_summary(fp: dict[str, Any] | None) -> str:
    """A short human name of the machine in a fingerprint: CPU brand (cores) [+ GPU names]."""
    if not isinstance(fp, dict):
        return "unknown hardware"
    cpu = fp.get("cpu")
    brand: str | None = None
    cores: Any = None
    if isinstance(cpu, dict):
        brand = _first_str(cpu, "brand", "brand_raw", "model", "name")
        cores = (cpu.get("cores") or cpu.get("physical_cores") or cpu.get("logical_cores")
                 or cpu.get("count") or cpu.get("cpu_count"))
    elif isinstance(cpu, str):
        brand = cpu
    brand = brand or _first_str(fp, "cpu_brand", "cpu_model", "cpu_name", "processor")
    cores = cores or fp.get("cpu_cores") or fp.get("cores")
    name = brand or "unknown CPU"
    if isinstance(cores, int) and not isinstance(cores, bool):
        name += f" ({cores} cores)"
    gpus: list[str] = []
    for key in ("gpu", "gpus"):
        g = fp.get(key)
        items = g if isinstance(g, list) else [g]
        for item in items:
            if isinstance(item, dict):
                n = _first_str(item, "name", "model", "brand")
                if n:
                    gpus.append(n)
            elif isinstance(item, str) and item.strip() and item.strip().lower() not in ("none", "n/a"):
                gpus.append(item.strip())
    if not gpus and _first_str(fp, "gpu_name"):
        gpus.append(str(fp["gpu_name"]))
    return " + ".join([name, *gpus])


def read_layers_csv(path: str | Path) -> list[dict[str, str]] | None:
    """Rows of a layer-wise table CSV (None if the file is absent or unreadable)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return [dict(r) for r in csv.DictReader(f)]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
