"""A run dict -> report tables (plain data: title, header, rows of strings, notes).

Markdown and HTML render the same `Table` objects. Rules: a number that was not measured is never
invented; a failed or unavailable cell shows its status and reason; a number from an INVALID
measurement carries the INVALID mark and its reasons.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.results import REFERENCE_BACKEND, REFERENCE_VARIANT, hardware_summary, read_layers_csv
from common.stats.accuracy import accuracy_ci
from reports.int8_path import int8_path_text


@dataclass
class Table:
    """A rendered-agnostic table: every cell already formatted as text."""

    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    anchor: str = ""


# ------------------------------------------------------------------------------------------ formatting


def fnum(v: Any, digits: int = 3) -> str:
    """A number with `digits` significant figures; 'n/a' for missing or non-finite values."""
    if isinstance(v, bool) or v is None:
        return "n/a"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "n/a"
    if not math.isfinite(f):
        return "n/a"
    a = abs(f)
    if a == 0:
        return "0"
    if a >= 1000:
        return f"{f:,.0f}"
    if a < 1e-3:
        return f"{f:.{max(0, digits - 1)}e}"
    return f"{f:.{max(0, digits - 1 - math.floor(math.log10(a)))}f}"


def fpct(v: Any, digits: int = 2) -> str:
    """A fraction as a percentage ('86.20%'); 'n/a' when missing."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(float(v)):
        return "n/a"
    return f"{100.0 * float(v):.{digits}f}%"


def is_ok(row: dict[str, Any]) -> bool:
    return row.get("status") == "ok"


def is_invalid(row: dict[str, Any]) -> bool:
    return is_ok(row) and row.get("valid") is False


def invalid_text(row: dict[str, Any]) -> str:
    reasons = row.get("invalid_reasons") or []
    if isinstance(reasons, str):
        reasons = [reasons]
    return "INVALID" + (f": {'; '.join(str(r) for r in reasons)}" if reasons else "")


def status_text(row: dict[str, Any]) -> str:
    """'ok', or the status with its reason ('unavailable: tensorrt is not installed')."""
    status = str(row.get("status") or "unknown")
    reason = str(row.get("reason") or "").strip()
    return status if status == "ok" or not reason else f"{status}: {reason}"


def mark(text: str, row: dict[str, Any]) -> str:
    """Append the INVALID mark to a timing number measured in an invalid cell (validity is about timing:
    too few samples, duration not reached, CoV too high; the cell's accuracy is not affected)."""
    return f"{text} (INVALID)" if is_invalid(row) and text != "n/a" else text


def with_interval(value: Any, ci: Any, level: Any = None) -> str:
    """'0.252 [0.249, 0.260] 94%' with the interval's real confidence level when known (the bare number when
    there is no interval)."""
    if isinstance(ci, list | tuple) and len(ci) == 2 and all(isinstance(x, int | float) for x in ci):
        lvl = f" {fpct(level, 0 if round(100 * level) == 100 * level else 1)}" if isinstance(level, float) else ""
        return f"{fnum(value)} [{fnum(ci[0])}, {fnum(ci[1])}]{lvl}"
    return fnum(value)


def processes(row: dict[str, Any]) -> str:
    """How many processes measured the row, how many of them were noisy (counted like the others), and a
    bimodality mark."""
    rounds = row.get("rounds")
    text = str(len(rounds)) if isinstance(rounds, list) and rounds else "1"
    noisy = row.get("noisy_rounds") or 0
    if noisy and isinstance(rounds, list) and noisy >= len(rounds):
        text += " (all noisy: INVALID)"
    elif noisy:
        text += f" ({noisy} noisy)"
    unstable = row.get("unstable_rounds") or 0
    if unstable and row.get("valid") is not False:
        text += f" ({unstable} unstable)"
    if row.get("bimodal"):
        text += ", bimodal"
    return text


def acc_with_ci(row: dict[str, Any]) -> str:
    """Accuracy with its 95% bootstrap CI from the confusion matrix, e.g. '86.20% [84.7, 87.6]'."""
    acc = row.get("accuracy")
    if not isinstance(acc, int | float) or isinstance(acc, bool):
        return "n/a"
    ci = accuracy_ci(row)
    if ci is None:
        return fpct(acc)
    return f"{fpct(acc)} [{100 * ci.low:.1f}, {100 * ci.high:.1f}]"


def cell_name(row: dict[str, Any]) -> str:
    dev = row.get("device")
    backend = str(row.get("backend"))
    if dev and dev != "cpu":
        backend += f"[{dev}]"
    return f"{backend}/{row.get('variant')}"


def latency_row(rows: Iterable[dict[str, Any]], backend: str, variant: str) -> dict[str, Any] | None:
    for r in rows:
        if r.get("backend") == backend and r.get("variant") == variant and r.get("scenario") == "latency":
            return r
    return None


def dataset_label(run: dict[str, Any]) -> str:
    ds = run.get("dataset") or ((run.get("config") or {}).get("data") or {}).get("dataset") or "unknown"
    synthetic = run.get("synthetic")
    if synthetic is None:
        synthetic = ds == "synthfer"
    return f"{ds} (SYNTHETIC data)" if synthetic else str(ds)


def _flatten(prefix: str, v: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(v, dict):
        if not v and prefix:
            out.append((prefix, "{}"))
        for k, x in v.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), x, out)
    elif isinstance(v, list):
        out.append((prefix, ", ".join(str(x) for x in v) if all(not isinstance(x, dict | list) for x in v)
                    else str(v)))
    else:
        out.append((prefix, "n/a" if v is None else str(v)))


# ---------------------------------------------------------------------------------------------- tables


def summary_table(run: dict[str, Any]) -> Table:
    """Run id, time, data set (synthetic marked), hardware, harness overhead, cell counts."""
    results = run.get("results") or []
    ok = [r for r in results if is_ok(r)]
    rows = [
        ["run id", str(run.get("run_id"))],
        ["created", str(run.get("created"))],
        ["data set", dataset_label(run)],
        ["hardware", hardware_summary(run.get("fingerprint"))],
        ["int8 path", int8_path_text(run)],
        ["fingerprint id", str((run.get("fingerprint") or {}).get("id"))],
        ["config hash", str(run.get("config_hash"))],
        ["harness overhead per iteration", f"{fnum(run.get('harness_overhead_us'))} µs"],
        ["cells", f"{len(results)} ({len(ok)} ok, {sum(1 for r in ok if r.get('valid') is False)} INVALID, "
                  f"{len(results) - len(ok)} not run or failed)"],
    ]
    notes = []
    if run.get("synthetic") or dataset_label(run).endswith("(SYNTHETIC data)"):
        notes.append("SynthFER is a generated, synthetic data set: its accuracies say nothing about real faces.")
    return Table("Run", ["", ""], rows, notes, "run")


def fingerprint_table(run: dict[str, Any]) -> Table:
    """The machine/software fingerprint, flattened to key/value rows."""
    out: list[tuple[str, str]] = []
    _flatten("", run.get("fingerprint") or {}, out)
    return Table("Fingerprint", ["key", "value"], [[k, v] for k, v in out], [], "fingerprint")


def results_table(run: dict[str, Any]) -> Table:
    """Every cell with its status, validity and numbers."""
    header = ["backend", "variant", "device", "precision", "scenario", "batch", "status", "validity",
              "p50 ms [CI] level", "p99 ms [CI] level", "processes", "between-process rCoV", "CoV", "FPS",
              "accuracy [95% CI]", "n", "cold start ms", "int8 layers", "label"]
    rows = []
    for r in run.get("results") or []:
        lat = r.get("latency_ms") if isinstance(r.get("latency_ms"), dict) else {}
        if is_ok(r):
            validity = "VALID" if r.get("valid") is not False else invalid_text(r)
            nums = [with_interval(lat.get("p50"), r.get("p50_ci_ms"), r.get("p50_ci_level")),
                    with_interval(lat.get("p99"), r.get("p99_ci_ms"), r.get("p99_ci_level")),
                    processes(r), fnum(r.get("round_cov"), 3), fnum(lat.get("cov"), 2),
                    fnum(r.get("throughput_fps")), acc_with_ci(r), str(r.get("n_samples", "n/a")),
                    fnum(r.get("cold_start_ms")),
                    f"{r.get('int8_layers', 'n/a')}/{r.get('total_layers', 'n/a')}"]
        else:
            validity = "—"
            nums = ["—"] * 10
        rows.append([str(r.get("backend")), str(r.get("variant")), str(r.get("device") or ""),
                     str(r.get("precision") or ""), str(r.get("scenario")), str(r.get("batch_size")),
                     status_text(r), validity, *nums, str(r.get("label") or "")])
    notes = ["Latency p50/p99 (and every latency statistic): median of the per-process values over the cell's "
             "processes (benchmark.rounds, cell order shuffled per round) with the distribution-free order-statistic "
             "interval over processes and its real confidence level (3 processes: [min, max] 75%; 5: 93.75%; 10: "
             "[2nd, 9th] 97.9%); processes under heavy CPU steal or foreign load count like the others (count "
             "shown); 'bimodal': the process medians split into two groups (judged from 8 processes on).",
             "Accuracy intervals: 95% percentile bootstrap over the test images (from the confusion matrix).",
             "Latency in the throughput scenario is the time of one round (requests in flight x batch "
             "images); it is not a per-request latency."]
    return Table("All cells", header, rows, notes, "cells")


def _variants(results: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for r in results:
        seen.setdefault(str(r.get("variant")), None)
    return list(seen)


def _best_fps(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    ok = [r for r in rows if is_ok(r) and isinstance(r.get("throughput_fps"), int | float)]
    return max(ok, key=lambda r: float(r["throughput_fps"]), default=None)


def _ref_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row whose accuracy stands for a variant: torch-eager latency cell, else any ok cell."""
    ok = [r for r in rows if is_ok(r) and isinstance(r.get("accuracy"), int | float)]
    ok.sort(key=lambda r: (r.get("backend") != REFERENCE_BACKEND, r.get("scenario") != "latency"))
    return ok[0] if ok else None


def _failure(rows: list[dict[str, Any]]) -> str:
    return "; ".join(sorted({f"{r.get('backend')}: {status_text(r)}" for r in rows if not is_ok(r)})) or "n/a"


def table1(run: dict[str, Any]) -> Table:
    """Paper Table 1: per method (variant) storage, compression ratio, accuracy and best FPS."""
    results = run.get("results") or []
    rows = []
    for v in _variants(results):
        vr = [r for r in results if r.get("variant") == v]
        ref, fast = _ref_row(vr), _best_fps(vr)
        static = next((r for r in vr if is_ok(r) and r.get("storage_mb") is not None), None)
        if ref is None and fast is None:
            rows.append([v, "n/a", "n/a", _failure(vr), "n/a", ""])
            continue
        rows.append([
            v,
            fnum(static.get("storage_mb")) if static else "n/a",
            (f"{fnum(static.get('compression_ratio'))}x" if static and static.get("compression_ratio") else "n/a"),
            acc_with_ci(ref) if ref else "n/a",
            mark(fnum(fast.get("throughput_fps")), fast) if fast else "n/a",
            f"{cell_name(fast)} b{fast.get('batch_size')}" if fast else "",
        ])
    return Table("Table 1 — compression method: storage, ratio, accuracy, speed",
                 ["method", "storage MB", "compression ratio", "accuracy [95% CI]", "best FPS", "FPS measured on"],
                 rows, ["Accuracy from the torch-eager cell of each variant (any ok cell if it did not run)."],
                 "table1")


def table2(run: dict[str, Any]) -> Table:
    """Paper Table 2: per data set, the reference (dense-fp32) vs each compressed variant."""
    results = run.get("results") or []
    ds = dataset_label(run)
    ref_rows = [r for r in results if r.get("variant") == REFERENCE_VARIANT]
    ref = _ref_row(ref_rows)
    rows = []
    for v in _variants(results):
        if v == REFERENCE_VARIANT:
            continue
        vr = [r for r in results if r.get("variant") == v]
        comp = _ref_row(vr)
        static = next((r for r in vr if is_ok(r) and r.get("compression_ratio") is not None), None)
        delta = "n/a"
        if ref is not None and comp is not None:
            delta = f"{100 * (float(comp['accuracy']) - float(ref['accuracy'])):+.2f} pts"
        rows.append([
            ds,
            acc_with_ci(ref) if ref else (_failure(ref_rows) if ref_rows else "not run"),
            v,
            acc_with_ci(comp) if comp else _failure(vr),
            delta,
            f"{fnum(static.get('compression_ratio'))}x" if static else "n/a",
        ])
    return Table("Table 2 — data set: reference vs compressed accuracy",
                 ["data set", f"reference ({REFERENCE_VARIANT}) accuracy", "compressed variant",
                  "compressed accuracy", "Δ accuracy", "compression ratio"], rows, [], "table2")


def layer_rows(run: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, str]:
    """The layer-wise rows (from `layers` or the `layers_csv` file) and where they came from."""
    layers = run.get("layers")
    if isinstance(layers, list) and all(isinstance(x, dict) for x in layers) and layers:
        return layers, "stored with the run"
    path = run.get("layers_csv")
    if path:
        rows = read_layers_csv(Path(str(path)))
        if rows:
            return rows, str(path)
        return None, f"{path} is missing or unreadable"
    return None, "the run carries no layers.csv"


def table4(run: dict[str, Any]) -> Table:
    """Paper Table 4: layer-wise compression, with whatever columns layers.csv has."""
    rows, source = layer_rows(run)
    if not rows:
        return Table("Table 4 — layer-wise compression", [], [], [f"Not available: {source}."], "table4")
    known = {k for _, k in _LAYER_SINGLE} | {k for _, *pair in _LAYER_PAIRS for k in pair} | {"compression_ratio"}
    if known <= set(rows[0]):
        header = [h for h, *_ in _LAYER_SINGLE[:3]] + [h for h, *_ in _LAYER_PAIRS] + ["ratio", "variant"]
        body = [[_cell(r.get(k)) for _, k in _LAYER_SINGLE[:3]]
                + [_pair(r.get(b), r.get(a)) for _, b, a in _LAYER_PAIRS]
                + [f"{_cell(r.get('compression_ratio'))}x", _cell(r.get("variant"))] for r in rows]
    else:  # a layers.csv of another shape: show its own columns
        header = list(dict.fromkeys(str(k) for r in rows for k in r))
        body = [[_cell(r.get(k)) for k in header] for r in rows]
    return Table("Table 4 — layer-wise compression", header, body, [f"Source: {source}."], "table4")


# Table 4 in reading order: layer, type, output size, then each quantity as before -> after, then the ratio.
_LAYER_SINGLE = [("layer", "layer"), ("type", "type"), ("output size", "output_size")]
_LAYER_PAIRS = [("channels", "channels_before", "channels_after"), ("params", "params_before", "params_after"),
                ("storage KB", "storage_before_kb", "storage_after_kb")]


def _pair(before: Any, after: Any) -> str:
    b, a = _cell(before), _cell(after)
    return f"{b} -> {a}" if b or a else ""


def _cell(v: Any) -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, float):
        return fnum(v, 4)
    return str(v)


def agreement_table(run: dict[str, Any]) -> Table:
    """Top-1 agreement and max |Δ logit| of each backend against the PyTorch reference."""
    rows = [[str(a.get("variant")), str(a.get("backend")), str(a.get("reference")),
             fpct(a.get("top1_agreement")), fnum(a.get("max_abs_logit_diff"))]
            for a in run.get("agreement") or [] if isinstance(a, dict)]
    notes = [] if rows else ["No agreement data in this run."]
    return Table("Agreement with the reference", ["variant", "backend", "reference", "top-1 agreement",
                                                  "max |Δ logit|"], rows, notes, "agreement")


def labels_table(run: dict[str, Any]) -> Table:
    """Per cell, what was measured rather than declared: precision from runtime evidence, agreement gate,
    parameter vs file storage, memory per phase, and the fraction of the machine's measured peak."""
    from reports.labels import (
        agreement_cell,
        encoding_notes,
        mb,
        peak_cell,
        peak_text,
        precision_cell,
        roof_fraction,
        runtime_cell,
    )

    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in run.get("results") or []:
        cells.setdefault((str(r.get("backend")), str(r.get("variant"))), []).append(r)
    rows = []
    for (backend, variant), group in cells.items():
        ok = [r for r in group if is_ok(r)]
        if not ok:
            continue
        lat = next((r for r in ok if r.get("scenario") == "latency"), ok[0])
        mem_raw = lat.get("memory")
        mem: dict[str, Any] = mem_raw if isinstance(mem_raw, dict) else {}
        agree = agreement_cell(lat)
        if lat.get("agrees") is False:
            agree += f" {lat.get('agreement_reason', '')}"
        rows.append([backend, variant, precision_cell(lat), str(lat.get("precision_reason") or ""), agree,
                     fnum(lat.get("storage_mb")), mb(lat.get("file_bytes")), mb(mem.get("load_peak_rss_bytes")),
                     mb(mem.get("steady_rss_bytes")), mb(mem.get("gpu_memory_bytes")), peak_cell(group),
                     runtime_cell(lat)])
    peaks = run.get("machine_peak_gmac_per_s") or {}
    notes = [*encoding_notes(run.get("results") or []),
             "precision: what the runtime shows it ran (int8 only with int8 kernels counted on conv/FC layers); "
             "agreement: top-1 vs the variant's reference, PyTorch (ONNX Runtime fp32 for an imported ONNX file) "
             "(✗ below benchmark.min_agreement_*).",
             "param MB: parameters x bytes at the precision (the paper's metric); file MB: the file(s) the backend "
             "loaded. load RSS: peak while compiling; steady RSS: median sampled during the timed loop."]
    if peak_text(peaks):
        notes.append(f"machine roofs: {peak_text(peaks)}; % roof = achieved GMAC/s over the attainable "
                     "min(compute peak of the row's precision, bandwidth x its arithmetic intensity), on the device "
                     "the row ran on, at batch 1 / the largest batch (older results: % of the compute peak).")
    over = [r for r in run.get("results") or [] if isinstance(roof_fraction(r), int | float) and roof_fraction(r) > 1.0]
    if over:
        notes.append(f"{len(over)} row(s) above 100% of their attainable roof: a roof was measured low (a bug in "
                     "the peak measurement, not a fast row); their fractions are not a roofline.")
    if any(runtime_cell(r) != "—" for r in run.get("results") or []):
        notes.append("runtime / e2e p50: the runtime's own time per request (OpenVINO InferRequest.latency) beside "
                     "the end-to-end time of the same calls through our infer, read after the timed loop.")
    if peaks.get("error"):
        notes.append(f"machine peak not measured: {peaks['error']}")
    return Table("Measured labels: precision, agreement, storage, memory, roofline",
                 ["backend", "variant", "precision", "evidence", "agreement", "param MB", "file MB",
                  "load RSS MB", "steady RSS MB", "GPU MB", "% roof b1/bN", "runtime / e2e p50 ms"], rows, notes,
                 "labels")


def changes_table(run: dict[str, Any]) -> Table:
    """Open and accepted changes per cell (`run["gate_changes"]`, attached by `bench report` from the store: the
    history gate over the run's machine and config, and `bench accept` records)."""
    raw = run.get("gate_changes")
    doc: dict[str, Any] = raw if isinstance(raw, dict) else {}
    rows = [[str(c.get("cell")), str(c.get("verdict")), str(c.get("since_run") or "—"),
             fpct(c.get("rel_change"), 1), str(c.get("text") or "")] for c in doc.get("open") or []]
    rows += [[", ".join(f"{k}={a[k]}" for k in ("machine_id", "backend", "variant", "scenario", "batch_size")
                        if a.get(k) is not None) or "every cell", "accepted", str(a.get("run_id")), "—",
              f"by {a.get('who')} at {a.get('created')}: {a.get('reason')}"] for a in doc.get("accepted") or []]
    notes = [f"The history gate over {doc.get('runs', 0)} run(s) of this machine and config (`bench history "
             "--changes`); an open regression stays listed until its level comes back or someone runs `bench "
             "accept`."] if doc else ["This run is not in a results store: no history to read changes from."]
    return Table("Changes in the history", ["cell", "verdict", "since run", "change", "detail"], rows, notes,
                 "changes")


def all_tables(run: dict[str, Any]) -> list[Table]:
    """Every table of the report, in order."""
    return [summary_table(run), table1(run), table2(run), table4(run), results_table(run),
            labels_table(run), agreement_table(run), changes_table(run), fingerprint_table(run)]
