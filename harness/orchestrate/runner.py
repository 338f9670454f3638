"""The benchmark grid: backends x variants in `benchmark.rounds` rounds, one fresh subprocess
(`python -m harness.measure.cell`) per cell per round.

Randomized interleaved trials (Abedi & Brecht, ICPE 2017; asv `rounds`; Google Benchmark random
interleaving): each round runs every cell once, in an order shuffled per round with `benchmark.round_seed`
(recorded in the results), so a slow spell of the machine hits different cells in different rounds instead
of one cell in full. Each process times `min_duration_s / rounds` (and `min_iterations / rounds`, at least the
100 a p99 needs), so R rounds cost about one long process of timing (plus R fixed costs, measured, printed per
process and reported). The processes of a cell are interchangeable: every timed process does the same work before
its timed loops (load, first inference, describe); the accuracy pass and the logits for the agreement check run
in one more, untimed process per cell (cheaper than an accuracy pass in every round, and it keeps the timed
processes alike).
A crash or hang costs one process (status error/timeout) and the sweep goes on. Each cell yields one result
row per scenario (latency at batch 1; throughput at each benchmark.batch_sizes entry); the headline numbers
are medians over processes with order-statistic intervals and their real levels (common.stats.intervals).
After the grid, every backend's test-split logits are compared with the reference of the same variant (PyTorch;
ONNX Runtime fp32 for an imported ONNX file: harness.measure.agreement) for top-1 agreement and max |delta logit|.
`run_grid` returns the results dict (schema in RESULT_FIELDS / ROW_FIELDS); with `run_dir` it also writes
run_dir/results.json (atomically) and each cell's log under run_dir/cells/.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
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
from common.stats.accuracy import pack_correct
from common.stats.intervals import bimodal, order_statistic_ci, percentiles_over_processes, robust_cov
from fer.data import FerData
from harness.measure.agreement import agreement_rows, reference_is_cell
from harness.measure.cell import CellSpec
from harness.measure.evidence import attach_agreement, row_labels
from harness.measure.fingerprint import fingerprint
from harness.measure.launcher import cell_spec, run_cell_subprocess
from harness.measure.loop import P99_MIN_SAMPLES, Stats, Timing, harness_overhead_us, verdict
from harness.measure.memory import phase_memory
from harness.measure.roofline import attach_roofline, is_gpu_row, measure_peaks, variant_traffic
from harness.measure.scenarios import LATENCY, THROUGHPUT
from harness.measure.settings import CellSettings
from harness.measure.trackers import noisy_reason

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
    sections = [s for s in config if s not in ("store", "machine")]  # where, not what, is measured
    say("measuring harness overhead")
    overhead = harness_overhead_us()
    rows: list[dict[str, Any]] = []
    logits: dict[tuple[str, str], Path] = {}
    labels_of: dict[tuple[str, str], str] = {}
    avail = {n: probe(n) for n in names}
    cells = [(b, v) for b in names for v in variants]
    b = cfg.benchmark
    n_rounds = int(b.rounds)
    per_process = cell_settings(cfg)
    rng = random.Random(b.round_seed)
    orders: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-cells-") as tmp:
        work = Path(tmp)
        images_path, labels_path = work / "test_images.npy", work / "test_labels.npy"
        np.save(images_path, data.test.as_float())
        np.save(labels_path, np.asarray(data.test.labels, dtype=np.int64))
        log_dir = (run_dir / "cells") if run_dir is not None else work / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        runnable: list[tuple[str, str]] = []
        for backend, variant in cells:
            a = avail[backend]
            if not a.available:
                rows += _failed_rows(per_process, backend, variant, artifacts, "unavailable", a.reason)
                say(f"{backend} {variant}: unavailable ({a.reason})")
            elif variant not in artifacts:
                reason = f"no artifact for variant {variant!r}; available: {', '.join(sorted(artifacts)) or 'none'}"
                rows += _failed_rows(per_process, backend, variant, artifacts, "error", reason)
                say(f"{backend} {variant}: error ({reason})")
            else:
                runnable.append((backend, variant))
        procs: dict[tuple[str, str], list[dict[str, Any]]] = {c: [] for c in runnable}
        accuracy: dict[tuple[str, str], dict[str, Any]] = {}
        for rnd in range(n_rounds):
            order = [c for c in runnable if rnd == 0 or procs[c][0]["result"].get("status") == "ok"]
            rng.shuffle(order)
            orders.append([f"{bk}/{v}" for bk, v in order])
            for i, (backend, variant) in enumerate(order, 1):
                prefix = f"[round {rnd + 1}/{n_rounds}, {i}/{len(order)}] {backend} {variant}"
                stem = f"{backend}__{variant}" + (f"__r{rnd}" if rnd else "")
                spec = timed_spec(cell_spec(per_process, backend, artifacts[variant], images_path, labels_path,
                                            work / "-"))
                started = datetime.now(UTC).isoformat(timespec="seconds")
                result = run_cell_subprocess(spec, work / stem, b.cell_timeout_s, log_dir / f"{stem}.log", b.threads)
                procs[(backend, variant)].append({"round": rnd, "started": started, "result": result})
                say(f"{prefix}: {_process_line(result)}")
        if per_process.accuracy:  # one untimed process per cell: accuracy, and the logits of the agreement check
            for backend, variant in [c for c in runnable if procs[c][0]["result"].get("status") == "ok"]:
                stem = f"{backend}__{variant}__accuracy"
                out_logits = work / f"{backend}__{variant}.logits.npy"
                spec = cell_spec(per_process, backend, artifacts[variant], images_path, labels_path, out_logits,
                                 timing=False)
                result = run_cell_subprocess(spec, work / stem, b.cell_timeout_s, log_dir / f"{stem}.log", b.threads)
                accuracy[(backend, variant)] = result
                if result.get("status") == "ok" and out_logits.is_file():
                    logits[(backend, variant)] = out_logits
                    labels_of[(backend, variant)] = str(result.get("describe", {}).get("label", ""))
                say(f"[accuracy] {backend} {variant}: {_process_line(result)}")
        for backend, variant in runnable:
            new_rows = _rows_from_cell(per_process, backend, variant, artifacts, procs[(backend, variant)],
                                       accuracy.get((backend, variant)))
            first = procs[(backend, variant)][0]["result"] if procs[(backend, variant)] else {}
            attach_correctness(new_rows, logits.get((backend, variant)), np.load(labels_path),
                               throughput_scored_apart="throughput_metrics" in first)
            rows += new_rows
            say(f"{backend} {variant}: {_summary(new_rows)}")
        no_reference: dict[str, str] = {}
        agreement = agreement_rows(per_process, variants, names, artifacts, logits, labels_of, images_path, labels_path,
                                   work, log_dir, say, no_reference)
    references = {v: "torch-eager" for v in variants if reference_is_cell(per_process, v, logits, labels_of)}
    attach_agreement(rows, agreement, references, cfg.benchmark.min_agreement_int8, cfg.benchmark.min_agreement_fp32,
                     no_reference)
    peaks = _machine_peak(cfg, say, gpu=any(is_gpu_row(r) for r in rows if r.get("status") == "ok"))
    attach_roofline(rows, peaks, variant_traffic({v: artifacts[v] for v in variants if v in artifacts}))
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
        "rounds": {"count": n_rounds, "seed": int(b.round_seed), "order": orders},
        "results": rows,
        "agreement": agreement,
        "machine_peak_gmac_per_s": peaks,
    }
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / "results.json", results)
    return results


def per_process_iterations(min_iterations: int, rounds: int) -> int:
    """The iteration floor of one process: the cell's floor split over the rounds, but never below what a p99
    needs (P99_MIN_SAMPLES) nor above the configured floor."""
    return min(int(min_iterations), max(P99_MIN_SAMPLES, math.ceil(int(min_iterations) / max(1, rounds))))


def _machine_peak(cfg: Config, say: Progress, gpu: bool = False) -> dict[str, Any]:
    """The machine's roofs at the benchmark's thread count, the GPU's too when a row ran on one ({} when
    switched off)."""
    if not cfg.benchmark.roofline:
        return {}
    say(f"measuring the machine's roofs: peak GMAC/s per precision and memory bandwidth ({cfg.benchmark.threads} "
        f"threads{'; and the GPU' if gpu else ''})")
    return measure_peaks(cfg.benchmark.threads, gpu=gpu)


def timed_spec(spec: CellSpec) -> CellSpec:
    """The spec of a timed process: no accuracy pass and no logits, so every process of a cell does the same
    work before its timed loops (the accuracy process does that work, untimed)."""
    return dataclasses.replace(spec, accuracy=False, logits_out="")


def _process_line(result: dict[str, Any]) -> str:
    """`ok (fixed 1.6 s)`: a process's status, and its fixed cost (wall time minus warm-up and timed loops)."""
    why = f" ({result.get('reason')})" if result.get("reason") else ""
    fixed = fixed_cost_s(result)
    return f"{result.get('status')}{why}" + (f" (fixed {fixed:.1f} s)" if fixed is not None else "")


def new_run_id() -> str:
    """UTC timestamp plus a random suffix, e.g. 20260101T120000Z-3fa2b1."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


# ---- rows ----------------------------------------------------------------------------------------------
def _static(manifest: dict[str, Any]) -> dict[str, Any]:
    return {k: manifest.get(k) for k in ("storage_bytes", "storage_mb", "compression_ratio", "params",
                                          "nonzero_params", "gmac", "val_accuracy", "weight_bits", "int8_encoding")}


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


def _failed_rows(s: CellSettings, backend: str, variant: str, artifacts: dict[str, Path], status: str,
                 reason: str) -> list[dict[str, Any]]:
    manifest = _manifest(artifacts, variant)
    rows = []
    for scenario, batch in s.scenarios():
        row = _empty_row(backend, variant, scenario, batch, manifest)
        row.update(status=status, reason=reason, invalid_reasons=[reason])
        rows.append(row)
    return rows


def cell_settings(cfg: Config) -> CellSettings:
    """What one process of a cell needs from the config: R rounds share the timed duration and iteration floor."""
    b = cfg.benchmark
    n = int(b.rounds)
    return CellSettings(
        threads=int(b.threads), batch_sizes=tuple(int(x) for x in b.batch_sizes), warmup_s=float(b.warmup_s),
        min_duration_s=b.min_duration_s / n, min_iterations=per_process_iterations(b.min_iterations, n),
        max_cov=float(b.max_cov), accuracy=bool(b.accuracy), timeout_s=float(b.cell_timeout_s),
        memory_mb=int(b.cell_memory_mb), backend_options={k: dict(v) for k, v in cfg.backends.items()},
        cache_dir=str(cfg.store.cache_dir))


def _rows_from_cell(s: CellSettings, backend: str, variant: str, artifacts: dict[str, Path],
                    procs: list[dict[str, Any]], accuracy: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per scenario from the cell's processes (`procs`: round, started, result; round 0 first) and its
    untimed accuracy process (`accuracy`; without it, round 0's own accuracy pass where it ran one)."""
    first: dict[str, Any] = procs[0]["result"] if procs else {"status": "error", "reason": "no process ran"}
    acc = accuracy if accuracy is not None and accuracy.get("status") == "ok" else first
    status = str(first.get("status", "error"))
    if status != "ok":
        return _failed_rows(s, backend, variant, artifacts, status, str(first.get("reason", "")))
    manifest = _manifest(artifacts, variant)
    rows = []
    per_process_s = s.min_duration_s
    for scenario, batch in s.scenarios():
        row = _empty_row(backend, variant, scenario, batch, manifest)
        throughput_model = scenario == THROUGHPUT and "throughput_metrics" in acc
        metrics = acc.get("throughput_metrics" if throughput_model else "metrics") or {}
        found: list[dict[str, Any]] = []
        failed: list[str] = []
        for p in procs:
            res = p["result"]
            entry = next((e for e in res.get("scenarios", []) if (e.get("scenario"), int(e.get("batch_size", 0)))
                          == (scenario, batch)), None)
            if res.get("status") != "ok" or entry is None or entry.get("status") != "ok":
                why = (entry or {}).get("reason") or res.get("reason") or f"no {scenario} batch {batch} measurement"
                failed.append(f"round {p['round'] + 1}: {res.get('status')}: {why}")
                continue
            found.append({**p, "entry": entry})
        entry0 = found[0]["entry"] if found else {}
        desc: dict[str, Any] = dict(entry0.get("describe") or first.get("describe") or {})
        row.update(
            status="ok", cold_start_ms=first.get("cold_start_ms"), peak_rss_bytes=first.get("peak_rss_bytes"),
            loaded_bytes=first.get("loaded_bytes"), file_bytes=first.get("loaded_bytes"), describe=desc,
            device=desc.get("device"), label=desc.get("label"), memory=phase_memory(first, scenario, batch),
            gpu_timing=entry0.get("gpu_timing"), runtime_timing=entry0.get("runtime_timing"),
            **row_labels(manifest.get("precision"), desc),
            int8_layers=desc.get("int8_layers"), total_layers=desc.get("total_layers"),
            accuracy=metrics.get("accuracy"), macro_f1=metrics.get("macro_f1"), confusion=metrics.get("confusion"),
        )
        if not found:
            row.update(status="error", reason=failed[0] if failed else f"cell returned no {scenario} batch {batch} "
                       "measurement")
        else:
            row.update(derive_rounds(found, per_process_s, s.max_cov, row.get("gmac")))
            if failed:
                row["invalid_reasons"] = [*row["invalid_reasons"], *failed]
                row["valid"] = False
            row["describe"] = {**desc, "harness": {k: entry0.get(k) for k in (
                "requests_in_flight", "images_per_sample", "warmup_iterations", "min_samples", "capped")}}
        if row["status"] != "ok":
            row.update(valid=False, invalid_reasons=[row["reason"]])
        elif accuracy is not None and accuracy.get("status") != "ok":  # timed, but no accuracy and no agreement
            row.update(valid=False, invalid_reasons=[*row["invalid_reasons"], f"accuracy process: "
                       f"{accuracy.get('status')}: {accuracy.get('reason', '')}"])
        rows.append(row)
    return rows


def fixed_cost_s(result: dict[str, Any]) -> float | None:
    """What a process costs beyond its warm-up and timed loops: interpreter start, imports, data load,
    compile, accuracy pass, exit (the launcher's wall time minus every scenario's warm-up and timed seconds)."""
    wall = result.get("cell_wall_s")
    if not isinstance(wall, int | float):
        return None
    timed = sum(float(e.get("duration_s", 0.0)) + float(e.get("warmup_s", 0.0)) for e in result.get("scenarios", []))
    return max(0.0, float(wall) - timed)


def _process_round(p: dict[str, Any], min_duration_s: float, max_cov: float, latency: bool) -> dict[str, Any]:
    entry = p["entry"]
    samples = [float(s) for s in entry.get("samples_ms", [])]
    stats = Stats.from_samples(samples) if samples else None
    timing = Timing(samples, float(entry.get("duration_s", 0.0)), bool(entry.get("capped", False)))
    valid, reasons = verdict(timing, min_duration_s, int(entry.get("min_samples", 1)), max_cov,
                             need_p99=latency, stats=stats)
    noise = dict(entry.get("noise") or {})
    if "other_cpu_fraction" in entry and "other_cpu_fraction" not in noise:  # cells of older harness versions
        noise["other_cpu_fraction"] = entry["other_cpu_fraction"]
    per_sample = int(entry.get("images_per_sample", 1))
    return {
        "round": int(p.get("round", 0)), "started": p.get("started"), "n": len(samples),
        "p50_ms": stats.p50 if stats else None, "p90_ms": stats.p90 if stats else None,
        "p99_ms": stats.p99 if stats else None, "rcov": stats.rcov if stats else None,
        "fps": per_sample * len(samples) / (sum(samples) / 1e3) if samples and sum(samples) > 0 else None,
        "duration_s": timing.duration_s, "valid": valid, "invalid_reasons": reasons,
        "steal_fraction": noise.get("steal_fraction"), "other_cpu_fraction": noise.get("other_cpu_fraction"),
        "cpu_mhz": noise.get("cpu_mhz"), "loadavg_1m": noise.get("loadavg_1m"),
        "cpus_allowed": noise.get("cpus_allowed"), "noisy": noisy_reason(noise),
        "fixed_s": fixed_cost_s(p.get("result") or {}),
        # what the process did, in order (the same in every process of a cell), and our threads in its loops
        "steps": (p.get("result") or {}).get("steps"), "python_threads": entry.get("python_threads"),
        "threads_after_load": (p.get("result") or {}).get("threads_after_load"),
    }


def derive_rounds(procs: list[dict[str, Any]], min_duration_s: float, max_cov: float,
                  gmac: float | None) -> dict[str, Any]:
    """Every timing number of a row, recomputed from the raw samples of its processes (`procs`: dicts with
    `entry`, the cell's scenario entry, and optionally round/started/result).

    `samples_ms` is every process's samples concatenated in round order (`rounds[i].n` splits them back).
    Every process counts the same way: one marked noisy (steal or foreign load, harness.measure.trackers) is kept
    in the estimate and counted (`noisy_rounds`); when every process is noisy the row is INVALID. Every field of
    latency_ms (p50, p90, p95, p99, mean, ...) is the median over the processes of that process's own value
    (`common.stats.intervals.percentiles_over_processes`: one definition, so p95 <= p99 always); p50 and p99 get
    distribution-free order-statistic intervals over processes with their real levels (`p50_ci_level`: 3
    processes 75%, 5 93.75%). throughput_fps is the median per-process rate. latency_ms is set for latency rows
    and single-request throughput rows only, never from a multi-request run.
    """
    if not procs:
        return {"valid": False, "invalid_reasons": ["no samples"], "samples_ms": [], "n_samples": 0}
    entry0 = procs[0]["entry"]
    latency = entry0["scenario"] == LATENCY
    in_flight = int(entry0.get("requests_in_flight", 1))
    rounds = [_process_round(p, min_duration_s, max_cov, latency) for p in procs]
    samples_all = [float(s) for p in procs for s in p["entry"].get("samples_ms", [])]
    if not samples_all:
        return {"valid": False, "invalid_reasons": ["no samples"], "samples_ms": [], "n_samples": 0,
                "rounds": rounds}
    used = [i for i, r in enumerate(rounds) if r["n"]]
    reasons: list[str] = []
    if all(rounds[i]["noisy"] for i in used):
        reasons.append(f"every process was noisy, e.g. {rounds[used[0]]['noisy']}")
    for i in used:
        reasons += [f"round {rounds[i]['round'] + 1}: {x}" for x in rounds[i]["invalid_reasons"]]
    per_process = [Stats.from_samples(procs[i]["entry"].get("samples_ms", [])).to_dict() for i in used]
    stats = percentiles_over_processes(per_process)
    p50s = [float(rounds[i]["p50_ms"]) for i in used]
    p99s = [float(rounds[i]["p99_ms"]) for i in used]
    fps = float(np.median([float(rounds[i]["fps"]) for i in used if rounds[i]["fps"]]))
    p50_ci, p99_ci = order_statistic_ci(p50s), order_statistic_ci(p99s)
    return {
        "latency_ms": stats if (latency or in_flight == 1) else None,
        "throughput_fps": fps,
        "n_samples": len(samples_all),
        "duration_s": float(sum(r["duration_s"] for r in rounds)),
        "valid": not reasons,
        "invalid_reasons": reasons,
        "samples_ms": samples_all,
        "gmac_per_s": (gmac * fps) if gmac else None,
        "rounds": rounds,
        "p50_ci_ms": p50_ci.as_list() if p50_ci else None,
        "p99_ci_ms": p99_ci.as_list() if p99_ci else None,
        "p50_ci_level": p50_ci.level if p50_ci else None,
        "p99_ci_level": p99_ci.level if p99_ci else None,
        "round_cov": robust_cov(p50s),
        "bimodal": bimodal(p50s),
        "noisy_rounds": sum(1 for r in rounds if r["noisy"]),
        "fixed_cost_s": _median_or_none([r["fixed_s"] for r in rounds]),
    }


def attach_correctness(rows: list[dict[str, Any]], logits_path: Path | None, labels: np.ndarray,
                       throughput_scored_apart: bool = False) -> None:
    """Store each row's per-image correctness (`correct_bits`, `common.stats.accuracy.pack_correct`) from the
    first round's logits, for the paired accuracy test of `bench compare`; only on rows whose accuracy those logits
    made (a throughput row scored by a separately compiled model keeps its own accuracy and gets none)."""
    if logits_path is None or not Path(logits_path).is_file():
        return
    try:
        pred = np.load(logits_path).argmax(axis=1)
    except (OSError, ValueError):
        return
    if pred.shape != labels.shape:
        return
    correct = pred == labels
    packed = pack_correct(correct, labels)
    acc = float(correct.mean()) if correct.size else math.nan
    for row in rows:
        if throughput_scored_apart and row.get("scenario") == THROUGHPUT:
            continue
        if row.get("status") == "ok" and isinstance(row.get("accuracy"), float) and abs(row["accuracy"] - acc) < 1e-9:
            row["correct_bits"] = packed


def derive_timing(entry: dict[str, Any], min_duration_s: float, max_cov: float,
                  gmac: float | None) -> dict[str, Any]:
    """The timing numbers of one process's scenario entry (a one-round cell)."""
    return derive_rounds([{"entry": entry}], min_duration_s, max_cov, gmac)


def _median_or_none(values: list[float | None]) -> float | None:
    vals = [float(v) for v in values if isinstance(v, int | float)]
    return float(np.median(vals)) if vals else None


def _summary(rows: list[dict[str, Any]]) -> str:
    lat = next((r for r in rows if r["scenario"] == LATENCY), None)
    if lat is None or lat["status"] != "ok":
        return f"{rows[0]['status'] if rows else 'error'} ({(rows[0]['reason'] if rows else '')})"
    p50 = (lat.get("latency_ms") or {}).get("p50")
    ci, level = lat.get("p50_ci_ms"), lat.get("p50_ci_level")
    ci_txt = f" [{ci[0]:.3f}, {ci[1]:.3f}]" + (f" ({100 * level:.4g}%)" if level else "") if ci else ""
    best = max((r.get("throughput_fps") or 0.0) for r in rows)
    acc = lat.get("accuracy")
    acc_txt = f", acc {acc:.3f}" if acc is not None else ""
    valid = "VALID" if lat.get("valid") else "INVALID"
    n = len(lat.get("rounds") or [])
    return f"ok, p50 {p50:.3f}{ci_txt} ms over {n} process(es) ({valid}), best {best:.0f} img/s{acc_txt}"


