"""A cell's processes -> its result rows: one row per scenario, every timing number recomputed from the raw
samples of the cell's timed processes, accuracy from its one untimed accuracy process.

Why here, in the measure room, and not in orchestrate: the local grid (`harness.orchestrate.runner`) and the Ray
fleet (`harness.fleet.cluster`) turn processes into rows the same way, and the fleet may not import orchestrate.
`timed_spec` is here for the same reason: every timed process of a cell, on any machine, does the same work before
its timed loops (no accuracy pass, no logits), so the processes of a cell are interchangeable.

Rows are built as `common.records.Row` (validated: a field of the wrong type fails here, in the writer, not in a
reader later); `rows_from_cell` and `failed_rows` hand them on as dicts (`row_dict`), the form the grid, the fleet,
the evidence and roofline steps still add fields to.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from common.model_id import model_text
from common.records import Row, parse_row
from common.results import ROW_FIELDS
from common.stats.accuracy import pack_correct
from common.stats.intervals import bimodal, order_statistic_ci, percentiles_over_processes, robust_cov
from common.stats.modes import mode_mix
from harness.measure.cell import CellSpec
from harness.measure.evidence import row_labels
from harness.measure.loop import Stats, Timing, verdict
from harness.measure.memory import phase_memory
from harness.measure.scenarios import LATENCY, THROUGHPUT
from harness.measure.settings import CellSettings
from harness.measure.trackers import noisy_reason


def timed_spec(spec: CellSpec) -> CellSpec:
    """The spec of a timed process: no accuracy pass and no logits, so every process of a cell does the same
    work before its timed loops (the accuracy process does that work, untimed)."""
    return dataclasses.replace(spec, accuracy=False, logits_out="")


def fixed_cost_s(result: dict[str, Any]) -> float | None:
    """What a process costs beyond its warm-up and timed loops: interpreter start, imports, data load,
    compile, accuracy pass, exit (the launcher's wall time minus every scenario's warm-up and timed seconds)."""
    wall = result.get("cell_wall_s")
    if not isinstance(wall, int | float):
        return None
    timed = sum(float(e.get("duration_s", 0.0)) + float(e.get("warmup_s", 0.0)) for e in result.get("scenarios", []))
    return max(0.0, float(wall) - timed)


def process_line(result: dict[str, Any]) -> str:
    """`ok (fixed 1.6 s)`: a process's status, and its fixed cost (wall time minus warm-up and timed loops)."""
    why = f" ({result.get('reason')})" if result.get("reason") else ""
    fixed = fixed_cost_s(result)
    return f"{result.get('status')}{why}" + (f" (fixed {fixed:.1f} s)" if fixed is not None else "")


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


def row_dict(row: Row) -> dict[str, Any]:
    """A written row as the results-JSON dict: every ROW_FIELDS key (None where unmeasured), nested parts as
    written (a field the writer did not set, e.g. a cluster-only one, stays absent)."""
    return row.model_dump(exclude_unset=True)


def failed_rows(s: CellSettings, backend: str, variant: str, artifacts: dict[str, Path], status: str,
                reason: str) -> list[dict[str, Any]]:
    """One row per scenario for a cell that measured nothing (`status`: unavailable, error, timeout; `reason`)."""
    return [row_dict(r) for r in failed_cell_rows(s, backend, variant, artifacts, status, reason)]


def failed_cell_rows(s: CellSettings, backend: str, variant: str, artifacts: dict[str, Path], status: str,
                     reason: str) -> list[Row]:
    """`failed_rows` as typed rows."""
    manifest = _manifest(artifacts, variant)
    rows = []
    for scenario, batch in s.scenarios():
        row = _empty_row(backend, variant, scenario, batch, manifest)
        row.update(status=status, reason=reason, invalid_reasons=[reason],
                   model=model_text(manifest) if manifest else None)
        rows.append(parse_row(row))
    return rows


def rows_from_cell(s: CellSettings, backend: str, variant: str, artifacts: dict[str, Path],
                   procs: list[dict[str, Any]], accuracy: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per scenario from the cell's processes (`procs`: round, started, result, and in runs with a reference
    arm pair and position; round 0 first) and its untimed accuracy process (`accuracy`; without it, round 0's own
    accuracy pass where it ran one)."""
    return [row_dict(r) for r in cell_rows(s, backend, variant, artifacts, procs, accuracy)]


def cell_rows(s: CellSettings, backend: str, variant: str, artifacts: dict[str, Path],
              procs: list[dict[str, Any]], accuracy: dict[str, Any] | None = None) -> list[Row]:
    """`rows_from_cell` as typed rows (validated here, in the writer)."""
    first: dict[str, Any] = procs[0]["result"] if procs else {"status": "error", "reason": "no process ran"}
    acc = accuracy if accuracy is not None and accuracy.get("status") == "ok" else first
    status = str(first.get("status", "error"))
    if status != "ok":
        return failed_cell_rows(s, backend, variant, artifacts, status, str(first.get("reason", "")))
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
            # from the cell's output where the cell reports them (the loaded file's hash, the model's name)
            artifact_sha256=first.get("artifact_sha256"), model=first.get("model"),
            artifact_file=first.get("artifact_file"),
            # a throughput model compiled apart carries its own note (OpenVINO's async model)
            compile_note=((first.get("throughput_compile_note") or first.get("compile_note"))
                          if scenario == THROUGHPUT else first.get("compile_note")) or desc.get("compile_note"),
        )
        if not found:
            row.update(status="error", reason=failed[0] if failed else f"cell returned no {scenario} batch {batch} "
                       "measurement")
        else:
            row.update(derive_rounds(found, per_process_s, s.max_cov, row["gmac"]))
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
        rows.append(parse_row(row))
    return rows


UNSTABLE = "robust CoV"  # the prefix of loop.verdict's reason for samples that vary more than max_cov


def _process_round(p: dict[str, Any], min_duration_s: float, max_cov: float, latency: bool) -> dict[str, Any]:
    entry = p["entry"]
    # runs with a reference arm: the launcher's pairing of this process with the other arm's (absent otherwise)
    paired: dict[str, Any] = {k: p[k] for k in ("pair", "position", "interleave") if k in p}
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
        "threads_after_load": (p.get("result") or {}).get("threads_after_load"), **paired,
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
    # A process whose samples vary more than max_cov is unstable. The row's estimates are medians over processes,
    # which stand up to a minority of disturbed ones, so the row is INVALID when most of its processes are unstable
    # (every one of 1, 2 of 3, 3 of 5), not on the first: at sub-millisecond latencies on 2 cores one process in
    # five above 0.15 is common on a quiet machine, and its p50 is still a fair member of the median.
    unstable = [i for i in used if any(x.startswith(UNSTABLE) for x in rounds[i]["invalid_reasons"])]
    for i in used:
        reasons += [f"round {rounds[i]['round'] + 1}: {x}" for x in rounds[i]["invalid_reasons"]
                    if not x.startswith(UNSTABLE)]
    if 2 * len(unstable) > len(used):
        reasons += [f"{len(unstable)} of {len(used)} processes unstable: "
                    + "; ".join(f"round {rounds[i]['round'] + 1}: {x}" for i in unstable
                                for x in rounds[i]["invalid_reasons"] if x.startswith(UNSTABLE))]
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
        "unstable_rounds": len(unstable),
        "fixed_cost_s": _median_or_none([r["fixed_s"] for r in rounds]),
        # the mode mix of the per-process p50s (the fast level and the share of slow processes): what the gate
        # judges, and what the report's modes strip draws
        "modes": mm.to_dict() if (mm := mode_mix(p50s)) else None,
    }


def derive_timing(entry: dict[str, Any], min_duration_s: float, max_cov: float,
                  gmac: float | None) -> dict[str, Any]:
    """The timing numbers of one process's scenario entry (a one-round cell)."""
    return derive_rounds([{"entry": entry}], min_duration_s, max_cov, gmac)


def _median_or_none(values: list[float | None]) -> float | None:
    vals = [float(v) for v in values if isinstance(v, int | float)]
    return float(np.median(vals)) if vals else None


def row_summary(rows: list[dict[str, Any]] | list[Row]) -> str:
    """One progress line for a cell's rows: p50 with its interval over processes, validity, best rate, accuracy."""
    typed = [parse_row(r) for r in rows]
    lat = next((r for r in typed if r.scenario == LATENCY), None)
    if lat is None or lat.status != "ok":
        return f"{typed[0].status if typed else 'error'} ({(typed[0].reason if typed else '')})"
    p50 = lat.p50()
    ci, level = lat.p50_ci_ms, lat.p50_ci_level
    ci_txt = f" [{ci[0]:.3f}, {ci[1]:.3f}]" + (f" ({100 * level:.4g}%)" if level else "") if ci else ""
    best = max((r.throughput_fps or 0.0) for r in typed)
    acc = lat.accuracy
    acc_txt = f", acc {acc:.3f}" if acc is not None else ""
    valid = "VALID" if lat.valid else "INVALID"
    n = len(lat.rounds or [])
    return f"ok, p50 {p50:.3f}{ci_txt} ms over {n} process(es) ({valid}), best {best:.0f} img/s{acc_txt}"


def load_logits(path: Path | None) -> np.ndarray | None:
    """The logits an accuracy process wrote (None when there are none or they cannot be read; never pickles)."""
    if path is None or not Path(path).is_file():
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None


def attach_correctness(rows: list[dict[str, Any]], logits: np.ndarray | None, labels: np.ndarray,
                       throughput_scored_apart: bool = False) -> None:
    """Store each row's per-image correctness (`correct_bits`, `common.stats.accuracy.pack_correct`) from the
    accuracy process's logits, for the paired accuracy test of `bench compare`, locally and on every fleet node;
    only on rows whose accuracy those logits made (a throughput row scored by a separately compiled model keeps
    its own accuracy and gets none)."""
    if logits is None or logits.ndim != 2:
        return
    pred = logits.argmax(axis=1)
    if pred.shape != labels.shape:
        return
    correct = pred == labels
    packed = pack_correct(correct, labels)
    acc = float(correct.mean()) if correct.size else math.nan
    for row in rows:  # dict rows (the grid's and the fleet's form): every ROW_FIELDS key is there
        if throughput_scored_apart and row["scenario"] == THROUGHPUT:
            continue
        if row["status"] == "ok" and isinstance(row["accuracy"], float) and abs(row["accuracy"] - acc) < 1e-9:
            row["correct_bits"] = packed
