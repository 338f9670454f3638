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

import random
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
from common.results import SCHEMA_VERSION, new_run_id
from fer.data import FerData
from harness.measure.agreement import agreement_rows, reference_is_cell
from harness.measure.evidence import attach_agreement
from harness.measure.fingerprint import fingerprint
from harness.measure.launcher import cell_spec, run_cell_subprocess
from harness.measure.loop import harness_overhead_us
from harness.measure.roofline import (
    is_gpu_row,
    measure_peaks,
    settle_roofs,
    variant_traffic,
)
from harness.measure.rows import (
    attach_correctness,
    failed_rows,
    load_logits,
    process_line,
    row_summary,
    rows_from_cell,
    timed_spec,
)
from harness.measure.settings import cell_settings

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
                rows += failed_rows(per_process, backend, variant, artifacts, "unavailable", a.reason)
                say(f"{backend} {variant}: unavailable ({a.reason})")
            elif variant not in artifacts:
                reason = f"no artifact for variant {variant!r}; available: {', '.join(sorted(artifacts)) or 'none'}"
                rows += failed_rows(per_process, backend, variant, artifacts, "error", reason)
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
                say(f"{prefix}: {process_line(result)}")
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
                say(f"[accuracy] {backend} {variant}: {process_line(result)}")
        for backend, variant in runnable:
            new_rows = rows_from_cell(per_process, backend, variant, artifacts, procs[(backend, variant)],
                                       accuracy.get((backend, variant)))
            first = procs[(backend, variant)][0]["result"] if procs[(backend, variant)] else {}
            attach_correctness(new_rows, load_logits(logits.get((backend, variant))), np.load(labels_path),
                               throughput_scored_apart="throughput_metrics" in first)
            rows += new_rows
            say(f"{backend} {variant}: {row_summary(new_rows)}")
        no_reference: dict[str, str] = {}
        agreement = agreement_rows(per_process, variants, names, artifacts, logits, labels_of, images_path, labels_path,
                                   work, log_dir, say, no_reference)
    references = {v: "torch-eager" for v in variants if reference_is_cell(per_process, v, logits, labels_of)}
    attach_agreement(rows, agreement, references, cfg.benchmark.min_agreement_int8, cfg.benchmark.min_agreement_fp32,
                     no_reference)
    gpu = any(is_gpu_row(r) for r in rows if r.get("status") == "ok")
    peaks = _machine_peak(cfg, say, gpu=gpu)
    traffic = variant_traffic({v: artifacts[v] for v in variants if v in artifacts})
    peaks = settle_roofs(rows, peaks, traffic, lambda: measure_peaks(cfg.benchmark.threads, gpu=gpu), say)
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


def _machine_peak(cfg: Config, say: Progress, gpu: bool = False) -> dict[str, Any]:
    """The machine's roofs at the benchmark's thread count, the GPU's too when a row ran on one ({} when
    switched off)."""
    if not cfg.benchmark.roofline:
        return {}
    say(f"measuring the machine's roofs: peak GMAC/s per precision and memory bandwidth ({cfg.benchmark.threads} "
        f"threads{'; and the GPU' if gpu else ''})")
    return measure_peaks(cfg.benchmark.threads, gpu=gpu)



