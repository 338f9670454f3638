"""The benchmark grid: backends x variants, one fresh subprocess (`python -m harness.cell`) per cell.

A crash or hang costs one cell (status error/timeout) and the sweep goes on. Each cell yields one result
row per scenario (latency at batch 1; throughput at each benchmark.batch_sizes entry). After the grid,
every backend's test-split logits are compared with the PyTorch reference of the same variant (top-1
agreement, max |delta logit|). `run_grid` returns the results dict (schema in RESULT_FIELDS / ROW_FIELDS);
with `run_dir` it also writes run_dir/results.json (atomically) and each cell's log under run_dir/cells/.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from backends.registry import check_name, probe, resolve_config
from common.atomic import write_json_atomic
from common.config import Config
from common.errors import UserError
from common.results import ROW_FIELDS, SCHEMA_VERSION
from fer.data import FerData
from harness.agreement import agreement_rows, reference_is_cell
from harness.evidence import attach_agreement, row_labels
from harness.fingerprint import fingerprint
from harness.launcher import cell_spec, run_cell_subprocess, scenarios
from harness.measure import Stats, Timing, harness_overhead_us, verdict
from harness.memory import phase_memory
from harness.roofline import attach_roofline, measure_peaks
from harness.scenarios import LATENCY, THROUGHPUT

MAX_OTHER_CPU = 0.25  # share of the CPUs other processes may use during a timed loop before it is INVALID
Progress = Callable[[str], None]


def run_grid(cfg: Config, artifacts: dict[str, Path], data: FerData, backends: list[str] | None = None,
             run_dir: Path | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Run every backend x variant cell of `cfg.benchmark` on `data.test`; return the results dict."""
    say = progress or (lambda _msg: None)
    cfg = resolve_config(cfg)
    names = [check_name(b) for b in (backends or cfg.benchmark.backends)]
    bad = [b for b in cfg.benchmark.batch_sizes if int(b) <= 0]
    if bad:
        raise UserError(f"benchmark.batch_sizes = {cfg.benchmark.batch_sizes}: every batch size must be >= 1")
    variants = list(cfg.benchmark.variants)
    run_id = run_dir.name if run_dir is not None else new_run_id()
    created = datetime.now(UTC).isoformat(timespec="seconds")
    config = cfg.to_dict()
    sections = [s for s in config if s != "store"]
    say("measuring harness overhead")
    overhead = harness_overhead_us()
    rows: list[dict[str, Any]] = []
    logits: dict[tuple[str, str], Path] = {}
    labels_of: dict[tuple[str, str], str] = {}
    avail = {n: probe(n) for n in names}
    cells = [(b, v) for b in names for v in variants]
    with tempfile.TemporaryDirectory(prefix="bench-cells-") as tmp:
        work = Path(tmp)
        images_path, labels_path = work / "test_images.npy", work / "test_labels.npy"
        np.save(images_path, data.test.as_float())
        np.save(labels_path, np.asarray(data.test.labels, dtype=np.int64))
        log_dir = (run_dir / "cells") if run_dir is not None else work / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        for i, (backend, variant) in enumerate(cells, 1):
            prefix = f"[{i}/{len(cells)}] {backend} {variant}"
            a = avail[backend]
            if not a.available:
                rows += _failed_rows(cfg, backend, variant, artifacts, "unavailable", a.reason)
                say(f"{prefix}: unavailable ({a.reason})")
                continue
            if variant not in artifacts:
                reason = f"no artifact for variant {variant!r}; available: {', '.join(sorted(artifacts)) or 'none'}"
                rows += _failed_rows(cfg, backend, variant, artifacts, "error", reason)
                say(f"{prefix}: error ({reason})")
                continue
            say(f"{prefix}: running")
            out_logits = work / f"{backend}__{variant}.logits.npy"
            spec = cell_spec(cfg, backend, artifacts[variant], images_path, labels_path, out_logits)
            result = run_cell_subprocess(spec, work / f"{backend}__{variant}", cfg.benchmark.cell_timeout_s,
                                         log_dir / f"{backend}__{variant}.log", cfg.benchmark.threads)
            new_rows = _rows_from_cell(cfg, backend, variant, artifacts, result)
            rows += new_rows
            if result.get("status") == "ok" and out_logits.is_file():
                logits[(backend, variant)] = out_logits
                labels_of[(backend, variant)] = str(result.get("describe", {}).get("label", ""))
            say(f"{prefix}: {_summary(new_rows)}")
        agreement = agreement_rows(cfg, variants, names, artifacts, logits, labels_of, images_path, labels_path,
                               work, log_dir, say)
    references = {v: "torch-eager" for v in variants if reference_is_cell(cfg, v, logits, labels_of)}
    attach_agreement(rows, agreement, references, cfg.benchmark.min_agreement_int8, cfg.benchmark.min_agreement_fp32)
    peaks = _machine_peak(cfg, say)
    attach_roofline(rows, peaks)
    results = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created": created,
        "fingerprint": fingerprint(config),
        "config": config,
        "config_hash": cfg.section_hash(*sections),
        "dataset": data.name,
        "synthetic": bool(data.synthetic),
        "harness_overhead_us": overhead,
        "results": rows,
        "agreement": agreement,
        "machine_peak_gmac_per_s": peaks,
    }
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / "results.json", results)
    return results


def _machine_peak(cfg: Config, say: Progress) -> dict[str, float]:
    """The machine's peak GMAC/s per precision at the benchmark's thread count ({} when switched off)."""
    if not cfg.benchmark.roofline:
        return {}
    say(f"measuring the machine's peak GMAC/s per precision ({cfg.benchmark.threads} threads)")
    return measure_peaks(cfg.benchmark.threads)


def new_run_id() -> str:
    """UTC timestamp plus a random suffix, e.g. 20260101T120000Z-3fa2b1."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


# ---- rows ----------------------------------------------------------------------------------------------
def _static(manifest: dict[str, Any]) -> dict[str, Any]:
    return {k: manifest.get(k) for k in ("storage_bytes", "storage_mb", "compression_ratio", "params",
                                          "nonzero_params", "gmac")}


def _manifest(artifacts: dict[str, Path], variant: str) -> dict[str, Any]:
    path = artifacts.get(variant)
    if path is None:
        return {}
    try:
        return dict(json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError):
        return {}


def _empty_row(backend: str, variant: str, scenario: str, batch: int, manifest: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(ROW_FIELDS)
    row.update(backend=backend, variant=variant, scenario=scenario, batch_size=batch, status="error", reason="",
               precision=manifest.get("precision"), valid=False, invalid_reasons=[], samples_ms=[], describe={},
               **_static(manifest))
    return row


def _failed_rows(cfg: Config, backend: str, variant: str, artifacts: dict[str, Path], status: str,
                 reason: str) -> list[dict[str, Any]]:
    manifest = _manifest(artifacts, variant)
    rows = []
    for scenario, batch in scenarios(cfg):
        row = _empty_row(backend, variant, scenario, batch, manifest)
        row.update(status=status, reason=reason, invalid_reasons=[reason])
        rows.append(row)
    return rows


def _rows_from_cell(cfg: Config, backend: str, variant: str, artifacts: dict[str, Path],
                    result: dict[str, Any]) -> list[dict[str, Any]]:
    status = str(result.get("status", "error"))
    if status != "ok":
        return _failed_rows(cfg, backend, variant, artifacts, status, str(result.get("reason", "")))
    manifest = _manifest(artifacts, variant)
    by_key = {(e["scenario"], int(e["batch_size"])): e for e in result.get("scenarios", [])}
    rows = []
    b = cfg.benchmark
    for scenario, batch in scenarios(cfg):
        row = _empty_row(backend, variant, scenario, batch, manifest)
        entry = by_key.get((scenario, batch))
        throughput_model = scenario == THROUGHPUT and "throughput_metrics" in result
        metrics = result.get("throughput_metrics" if throughput_model else "metrics") or {}
        desc = (entry or {}).get("describe") or result.get("describe") or {}
        row.update(
            status="ok", cold_start_ms=result.get("cold_start_ms"), peak_rss_bytes=result.get("peak_rss_bytes"),
            loaded_bytes=result.get("loaded_bytes"), file_bytes=result.get("loaded_bytes"), describe=desc,
            device=desc.get("device"), label=desc.get("label"), memory=phase_memory(result, scenario, batch),
            gpu_timing=(entry or {}).get("gpu_timing"), **row_labels(manifest.get("precision"), desc),
            int8_layers=desc.get("int8_layers"), total_layers=desc.get("total_layers"),
            accuracy=metrics.get("accuracy"), macro_f1=metrics.get("macro_f1"), confusion=metrics.get("confusion"),
        )
        if entry is None:
            row.update(status="error", reason=f"cell returned no {scenario} batch {batch} measurement")
        elif entry.get("status") != "ok":
            row.update(status="error", reason=entry.get("reason", ""))
        else:
            row.update(derive_timing(entry, b.min_duration_s, b.max_cov, row.get("gmac")))
            row["describe"] = {**desc, "harness": {k: entry.get(k) for k in (
                "other_cpu_fraction", "requests_in_flight", "images_per_sample", "warmup_iterations", "min_samples",
                "capped")}}
        if row["status"] != "ok":
            row.update(valid=False, invalid_reasons=[row["reason"]])
        rows.append(row)
    return rows


def derive_timing(entry: dict[str, Any], min_duration_s: float, max_cov: float,
                  gmac: float | None) -> dict[str, Any]:
    """Every timing number of a row, recomputed from the raw samples of a cell's scenario entry.

    Latency rows: stats of per-request latency. Throughput rows: images/s over the timed calls; latency_ms
    only when one request was in flight (a batched synchronous call is one request), never from a
    multi-request run.
    """
    samples = [float(s) for s in entry.get("samples_ms", [])]
    if not samples:
        return {"valid": False, "invalid_reasons": ["no samples"], "samples_ms": [], "n_samples": 0}
    stats = Stats.from_samples(samples)
    per_sample = int(entry.get("images_per_sample", 1))
    in_flight = int(entry.get("requests_in_flight", 1))
    fps = per_sample * len(samples) / (sum(samples) / 1e3)
    timing = Timing(samples, float(entry.get("duration_s", 0.0)), bool(entry.get("capped", False)))
    latency = entry["scenario"] == LATENCY
    valid, reasons = verdict(timing, min_duration_s, int(entry.get("min_samples", 1)), max_cov,
                             need_p99=latency, stats=stats)
    busy = entry.get("other_cpu_fraction")
    if busy is not None and busy > MAX_OTHER_CPU:
        reasons.append(f"machine busy: other processes used {busy:.0%} of the CPUs during the timed loop "
                       f"(> {MAX_OTHER_CPU:.0%})")
        valid = False
    return {
        "latency_ms": stats.to_dict() if (latency or in_flight == 1) else None,
        "throughput_fps": fps,
        "n_samples": len(samples),
        "duration_s": float(entry.get("duration_s", 0.0)),
        "valid": valid,
        "invalid_reasons": reasons,
        "samples_ms": samples,
        "gmac_per_s": (gmac * fps) if gmac else None,
    }


def _summary(rows: list[dict[str, Any]]) -> str:
    lat = next((r for r in rows if r["scenario"] == LATENCY), None)
    if lat is None or lat["status"] != "ok":
        return f"{rows[0]['status'] if rows else 'error'} ({(rows[0]['reason'] if rows else '')})"
    p50 = (lat.get("latency_ms") or {}).get("p50")
    best = max((r.get("throughput_fps") or 0.0) for r in rows)
    acc = lat.get("accuracy")
    acc_txt = f", acc {acc:.3f}" if acc is not None else ""
    valid = "VALID" if lat.get("valid") else "INVALID"
    return f"ok, p50 {p50:.3f} ms ({valid}), best {best:.0f} img/s{acc_txt}"


