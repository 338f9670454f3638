"""A typed run (`common.records.Run`) -> report tables (plain data: title, header, rows of strings, notes).

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

from common.records import Row, Run, as_row, as_run
from common.results import REFERENCE_BACKEND, REFERENCE_VARIANT, hardware_summary, is_reference, read_layers_csv
from common.stats.accuracy import accuracy_ci
from reports.int8_path import int8_path_text, int8_paths_by_machine

RowLike = Row | dict[str, Any]  # the helpers the run summary also calls take its dict rows
RunLike = Run | dict[str, Any]  # a dict run (a test's, a script's) is taken through `as_run`; a Run passes as is


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


def is_ok(row: RowLike) -> bool:
    return as_row(row).status == "ok"


def is_invalid(row: RowLike) -> bool:
    r = as_row(row)
    return r.status == "ok" and r.valid is False


def invalid_text(row: Row) -> str:
    reasons = row.invalid_reasons or []
    return "INVALID" + (f": {'; '.join(str(r) for r in reasons)}" if reasons else "")


def status_text(row: Row) -> str:
    """'ok', or the status with its reason ('unavailable: tensorrt is not installed')."""
    status = row.status or "unknown"
    reason = (row.reason or "").strip()
    return status if status == "ok" or not reason else f"{status}: {reason}"


def mark(text: str, row: Row) -> str:
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


def processes(row: RowLike) -> str:
    """How many processes measured the row, how many of them were noisy (counted like the others), and a
    bimodality mark."""
    r = as_row(row)
    rounds = r.rounds or []
    text = str(len(rounds)) if rounds else "1"
    noisy = r.noisy_rounds or 0
    if noisy and rounds and noisy >= len(rounds):
        text += " (all noisy: INVALID)"
    elif noisy:
        text += f" ({noisy} noisy)"
    unstable = r.unstable_rounds or 0
    if unstable and r.valid is not False:
        text += f" ({unstable} unstable)"
    if r.bimodal:
        text += ", bimodal"
    return text


def acc_with_ci(row_in: RowLike) -> str:
    """Accuracy with its 95% bootstrap CI from the confusion matrix, e.g. '86.20% [84.7, 87.6]'."""
    row = as_row(row_in)
    if row.accuracy is None:
        return "n/a"
    ci = accuracy_ci({"confusion": row.confusion})
    if ci is None:
        return fpct(row.accuracy)
    return f"{fpct(row.accuracy)} [{100 * ci.low:.1f}, {100 * ci.high:.1f}]"


def cell_name(row: Row) -> str:
    backend = row.backend
    if row.device and row.device != "cpu":
        backend += f"[{row.device}]"
    return f"{backend}/{row.variant}"


def latency_row(rows: Iterable[Row], backend: str, variant: str) -> Row | None:
    for r in rows:
        if r.backend == backend and r.variant == variant and r.scenario == "latency":
            return r
    return None


def dataset_label(run: RunLike) -> str:
    run = as_run(run)
    data = (run.config or {}).get("data")  # the config is the resolved TOML, by section (free-form here)
    ds = run.dataset or (data.get("dataset") if isinstance(data, dict) else None) or "unknown"
    synthetic = run.synthetic
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


def summary_table(run: RunLike) -> Table:
    """Run id, time, data set (synthetic marked), hardware and int8 path (each machine's, for a cluster run),
    harness overhead, cell counts."""
    run = as_run(run)
    results = run.results
    ok = [r for r in results if r.status == "ok"]
    fp = run.fingerprint.model_dump(exclude_unset=True) if run.fingerprint is not None else None
    machines = int8_paths_by_machine(run)
    where = [["hardware", hardware_summary(fp)], ["int8 path", int8_path_text(run)]]
    if machines:  # a cluster run: each machine's own, from its fingerprint and its rows; the driver timed nothing
        where = [["driver (timed no cell)", hardware_summary(fp)]]
        for m in machines:
            where += [[f"hardware, machine {m.machine_id}", m.hardware_line()],
                      [f"int8 path, machine {m.machine_id}", m.path]]
    rows = [
        ["run id", run.run_id],
        ["created", run.created],
        ["data set", dataset_label(run)],
        *where,
        ["driver fingerprint id" if machines else "fingerprint id",
         str(run.fingerprint.id if run.fingerprint is not None else None)],
        ["config hash", str(run.config_hash)],
        ["harness overhead per iteration", f"{fnum(run.harness_overhead_us)} µs"],
        ["cells", f"{len(results)} ({len(ok)} ok, {sum(1 for r in ok if r.valid is False)} INVALID, "
                  f"{len(results) - len(ok)} not run or failed)"],
    ]
    notes = []
    if run.synthetic or dataset_label(run).endswith("(SYNTHETIC data)"):
        notes.append("SynthFER is a generated, synthetic data set: its accuracies say nothing about real faces.")
    return Table("Run", ["", ""], rows, notes, "run")


def fingerprint_table(run: RunLike) -> Table:
    """The machine/software fingerprint, flattened to key/value rows."""
    run = as_run(run)
    out: list[tuple[str, str]] = []
    _flatten("", run.fingerprint.model_dump(exclude_unset=True) if run.fingerprint is not None else {}, out)
    return Table("Fingerprint", ["key", "value"], [[k, v] for k, v in out], [], "fingerprint")


def _or_na(v: Any) -> str:
    return "n/a" if v is None else str(v)


def results_table(run: RunLike) -> Table:
    """Every cell with its status, validity and numbers."""
    run = as_run(run)
    header = ["backend", "variant", "device", "precision", "scenario", "batch", "status", "validity",
              "p50 ms [CI] level", "p99 ms [CI] level", "processes", "between-process rCoV", "CoV", "FPS",
              "accuracy [95% CI]", "n", "cold start ms", "int8 layers", "label"]
    rows = []
    for r in run.results:
        lat = r.latency_ms
        if r.status == "ok":
            validity = "VALID" if r.valid is not False else invalid_text(r)
            nums = [with_interval(lat.p50 if lat else None, r.p50_ci_ms, r.p50_ci_level),
                    with_interval(lat.p99 if lat else None, r.p99_ci_ms, r.p99_ci_level),
                    processes(r), fnum(r.round_cov, 3), fnum(lat.cov if lat else None, 2),
                    fnum(r.throughput_fps), acc_with_ci(r), _or_na(r.n_samples),
                    fnum(r.cold_start_ms), f"{_or_na(r.int8_layers)}/{_or_na(r.total_layers)}"]
        else:
            validity = "—"
            nums = ["—"] * 10
        rows.append([r.backend, r.variant, r.device or "", r.precision or "", r.scenario, str(r.batch_size),
                     status_text(r), validity, *nums, r.label or ""])
    notes = ["Latency p50/p99 (and every latency statistic): median of the per-process values over the cell's "
             "processes (benchmark.rounds, cell order shuffled per round) with the distribution-free order-statistic "
             "interval over processes and its real confidence level (3 processes: [min, max] 75%; 5: 93.75%; 10: "
             "[2nd, 9th] 97.9%); processes under heavy CPU steal or foreign load count like the others (count "
             "shown); 'bimodal': the process medians split into two groups (judged from 8 processes on).",
             "Accuracy intervals: 95% percentile bootstrap over the test images (from the confusion matrix).",
             "Latency in the throughput scenario is the time of one round (requests in flight x batch "
             "images); it is not a per-request latency."]
    return Table("All cells", header, rows, notes, "cells")


def _variants(results: list[Row]) -> list[str]:
    return list(dict.fromkeys(r.variant for r in results))


def _best_fps(rows: list[Row]) -> Row | None:
    ok = [r for r in rows if r.status == "ok" and r.throughput_fps is not None]
    return max(ok, key=lambda r: float(r.throughput_fps or 0.0), default=None)


def _ref_row(rows: list[Row]) -> Row | None:
    """The row whose accuracy stands for a variant: torch-eager latency cell, else any ok cell."""
    ok = [r for r in rows if r.status == "ok" and r.accuracy is not None]
    ok.sort(key=lambda r: (r.backend != REFERENCE_BACKEND, r.scenario != "latency"))
    return ok[0] if ok else None


def _failure(rows: list[Row]) -> str:
    return "; ".join(sorted({f"{r.backend}: {status_text(r)}" for r in rows if r.status != "ok"})) or "n/a"


def table1(run: RunLike) -> Table:
    """Paper Table 1: per method (variant) storage, compression ratio, accuracy and best FPS."""
    run = as_run(run)
    results = run.results
    rows = []
    for v in _variants(results):
        vr = [r for r in results if r.variant == v]
        ref, fast = _ref_row(vr), _best_fps(vr)
        static = next((r for r in vr if r.status == "ok" and r.storage_mb is not None), None)
        if ref is None and fast is None:
            rows.append([v, "n/a", "n/a", _failure(vr), "n/a", ""])
            continue
        rows.append([
            v,
            fnum(static.storage_mb) if static else "n/a",
            (f"{fnum(static.compression_ratio)}x" if static and static.compression_ratio else "n/a"),
            acc_with_ci(ref) if ref else "n/a",
            mark(fnum(fast.throughput_fps), fast) if fast else "n/a",
            f"{cell_name(fast)} b{fast.batch_size}" if fast else "",
        ])
    return Table("Table 1 — compression method: storage, ratio, accuracy, speed",
                 ["method", "storage MB", "compression ratio", "accuracy [95% CI]", "best FPS", "FPS measured on"],
                 rows, ["Accuracy from the torch-eager cell of each variant (any ok cell if it did not run)."],
                 "table1")


def table2(run: RunLike) -> Table:
    """Paper Table 2: per data set, the reference (dense-fp32) vs each compressed variant."""
    run = as_run(run)
    results = run.results
    ds = dataset_label(run)
    ref_rows = [r for r in results if r.variant == REFERENCE_VARIANT]
    ref = _ref_row(ref_rows)
    rows = []
    for v in _variants(results):
        if v == REFERENCE_VARIANT:
            continue
        vr = [r for r in results if r.variant == v]
        comp = _ref_row(vr)
        static = next((r for r in vr if r.status == "ok" and r.compression_ratio is not None), None)
        delta = "n/a"
        if ref is not None and comp is not None and ref.accuracy is not None and comp.accuracy is not None:
            delta = f"{100 * (comp.accuracy - ref.accuracy):+.2f} pts"
        rows.append([
            ds,
            acc_with_ci(ref) if ref else (_failure(ref_rows) if ref_rows else "not run"),
            v,
            acc_with_ci(comp) if comp else _failure(vr),
            delta,
            f"{fnum(static.compression_ratio)}x" if static else "n/a",
        ])
    return Table("Table 2 — data set: reference vs compressed accuracy",
                 ["data set", f"reference ({REFERENCE_VARIANT}) accuracy", "compressed variant",
                  "compressed accuracy", "Δ accuracy", "compression ratio"], rows, [], "table2")


def layer_rows(run: RunLike) -> tuple[list[dict[str, Any]] | None, str]:
    """The layer-wise rows (from `layers` or the `layers_csv` file) and where they came from."""
    run = as_run(run)
    if run.layers:
        return run.layers, "stored with the run"
    path = run.layers_csv
    if path:
        rows = read_layers_csv(Path(path))
        if rows:
            return list(rows), path
        return None, f"{path} is missing or unreadable"
    return None, "the run carries no layers.csv"


def table4(run: RunLike) -> Table:
    """Paper Table 4: layer-wise compression, with whatever columns layers.csv has (a layer row is the CSV's own
    columns, so it stays a dict)."""
    run = as_run(run)
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


def agreement_table(run: RunLike) -> Table:
    """Top-1 agreement and max |Δ logit| of each backend against the PyTorch reference."""
    run = as_run(run)
    rows = [[a.variant, a.backend, a.scenario or "all", str(a.reference), fpct(a.top1_agreement),
             fnum(a.max_abs_logit_diff)] for a in run.agreement or []]
    notes = ["scenario: 'throughput' where the throughput scenario ran a separately compiled model, checked on its "
             "own logits; 'all' where every scenario ran the model that was checked."] if rows else \
        ["No agreement data in this run."]
    return Table("Agreement with the reference", ["variant", "backend", "scenario", "reference", "top-1 agreement",
                                                  "max |Δ logit|"], rows, notes, "agreement")


def labels_table(run: RunLike) -> Table:
    """Per cell, what was measured rather than declared: precision from runtime evidence, agreement gate,
    parameter vs file storage, memory per phase, and the fraction of the machine's measured peak."""
    run = as_run(run)
    from common.records import MachinePeaks, Memory
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

    cells: dict[tuple[str, str], list[Row]] = {}
    for r in run.results:
        cells.setdefault((r.backend, r.variant), []).append(r)
    rows = []
    for (backend, variant), group in cells.items():
        ok = [r for r in group if r.status == "ok"]
        if not ok:
            continue
        lat = next((r for r in ok if r.scenario == "latency"), ok[0])
        mem = lat.memory or Memory()
        agree = agreement_cell(lat)
        if lat.agrees is False:
            agree += f" {lat.agreement_reason or ''}"
        rows.append([backend, variant, precision_cell(lat), lat.precision_reason or "", agree,
                     fnum(lat.storage_mb), mb(lat.file_bytes), mb(mem.load_peak_rss_bytes),
                     mb(mem.steady_rss_bytes), mb(mem.gpu_memory_bytes), peak_cell(list(group)),
                     runtime_cell(lat)])
    peaks = run.machine_peak_gmac_per_s or MachinePeaks()
    notes = [*encoding_notes(run.results),
             "precision: what the runtime shows it ran (int8 only with int8 kernels counted on conv/FC layers); "
             "agreement: top-1 vs the variant's reference, PyTorch (ONNX Runtime fp32 for an imported ONNX file) "
             "(✗ below benchmark.min_agreement_*).",
             "param MB: parameters x bytes at the precision (the paper's metric); file MB: the file(s) the backend "
             "loaded. load RSS: peak while compiling; steady RSS: median sampled during the timed loop."]
    if peak_text(peaks):
        notes.append(f"machine roofs: {peak_text(peaks)}; % roof = achieved GMAC/s over the attainable "
                     "min(compute peak of the row's precision, bandwidth x its arithmetic intensity), on the device "
                     "the row ran on, at batch 1 / the largest batch (older results: % of the compute peak).")
    over = [r for r in run.results if (f := roof_fraction(r)) is not None and f > 1.0]
    if over:
        notes.append(f"{len(over)} row(s) above 100% of their attainable roof: a roof was measured low (a bug in "
                     "the peak measurement, not a fast row); their fractions are not a roofline.")
    if any(runtime_cell(r) != "—" for r in run.results):
        notes.append("runtime / e2e p50: the runtime's own time per request (OpenVINO InferRequest.latency) beside "
                     "the end-to-end time of the same calls through our infer, read after the timed loop.")
    if peaks.error:
        notes.append(f"machine peak not measured: {peaks.error}")
    notes += [f"{r.backend}/{r.variant} {r.scenario}: {r.compile_note}" for r in run.results
              if r.status == "ok" and r.compile_note]
    return Table("Measured labels: precision, agreement, storage, memory, roofline",
                 ["backend", "variant", "precision", "evidence", "agreement", "param MB", "file MB",
                  "load RSS MB", "steady RSS MB", "GPU MB", "% roof b1/bN", "runtime / e2e p50 ms"], rows, notes,
                 "labels")


def changes_table(run: RunLike) -> Table:
    """Open and accepted changes per cell (`run.gate_changes`, attached by `bench report` from the store: the
    history gate over the run's machine and config, and `bench accept` records; the gate's own document)."""
    run = as_run(run)
    raw = run.gate_changes
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


def candidate_view(run: RunLike) -> Run:
    """The run without its reference arm's rows: every table of typical figures shows the candidate; the
    reference arm (`bench run --reference`) is what the candidate is judged against, in `paired_table`."""
    run = as_run(run)
    if not any(is_reference(r) for r in run.results):
        return run
    return run.model_copy(update={"results": [r for r in run.results if not is_reference(r)]})


def paired_table(run: RunLike) -> Table | None:
    """Candidate and reference arm of every cell side by side (None for a run without a reference arm)."""
    run = as_run(run)
    refs = {(r.backend, r.variant, r.device, r.scenario, r.batch_size): r for r in run.results if is_reference(r)}
    if not refs:
        return None
    body = []
    for c in run.results:
        r = refs.get((c.backend, c.variant, c.device, c.scenario, c.batch_size))
        if is_reference(c) or r is None:
            continue
        cp, rp = (x.latency_ms.p50 if x.latency_ms else None for x in (c, r))
        cf, rf = (x.modes.fast_ms if x.modes else None for x in (c, r))
        ratio = (cf / rf) if cf and rf else None
        body.append([cell_name(c), c.scenario, str(c.batch_size), fnum(cp), fnum(rp), fnum(cf), fnum(rf),
                     "—" if ratio is None else f"{ratio:.3f}", _in_process_ratio(c, r),
                     "/".join(fpct(x.modes.slow_share, 0) if x.modes else "—" for x in (c, r)),
                     str(len(c.rounds or []))])
    ref = run.reference
    what = (f"{ref.kind}: {ref.path or ''} {ref.settings or ''}".strip() if ref is not None else "reference arm")
    how = ("both files in one process per round, timed in alternating blocks: the in-process ratio is the level "
           "`bench compare --paired RUN` judges" if ref is not None and ref.interleave == "blocks" else
           "pair by pair in separate processes, ABBA order: `bench compare --paired RUN` judges the fast-mode "
           "levels and the slow shares (level and mix)")
    notes = [f"Reference arm ({what}) measured beside the candidate in every round, {how}, Holm across cells. "
             "Fast-mode level: the median of the processes in the fastest mode; slow share: processes outside it; "
             "in-process ratio: the median over shared processes of candidate p50 / reference p50."]
    return Table("Candidate against its reference arm (paired, within this run)",
                 ["cell", "scenario", "batch", "p50 cand ms", "p50 ref ms", "fast cand ms", "fast ref ms",
                  "fast ratio", "in-process ratio", "slow share cand/ref", "pairs"], body, notes, "paired")


def _in_process_ratio(c: Row, r: Row) -> str:
    """The median of candidate/reference p50 over the processes that timed both arms ("—" for separate ones)."""
    ref_p50 = {x.pair: x.p50_ms for x in r.rounds or [] if x.interleave == "blocks" and x.p50_ms}
    ratios = sorted(x.p50_ms / ref_p50[x.pair] for x in c.rounds or []
                    if x.interleave == "blocks" and x.p50_ms and ref_p50.get(x.pair))
    if not ratios:
        return "—"
    k = len(ratios)
    return f"{(ratios[(k - 1) // 2] + ratios[k // 2]) / 2:.3f}"


def all_tables(run: RunLike) -> list[Table]:
    """Every table of the report, in order (the run enters typed, once, from `reports.report.write_report`);
    the typical tables show the candidate arm, the paired table both arms."""
    full = as_run(run)
    run = candidate_view(full)
    paired = paired_table(full)
    return [summary_table(run), table1(run), table2(run), *([paired] if paired else []), table4(run),
            results_table(run), labels_table(run), agreement_table(run), changes_table(run), fingerprint_table(run)]
