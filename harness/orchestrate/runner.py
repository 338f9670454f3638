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
import time
from collections.abc import Callable
from dataclasses import dataclass
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
from harness.measure.launcher import cell_spec, check_cpus, run_cell_subprocess
from harness.measure.loop import harness_overhead_us
from harness.measure.roofline import ROOF_PROCESSES, attach_roofline, measure_peaks, variant_traffic
from harness.measure.rows import (
    attach_correctness,
    failed_rows,
    load_logits,
    process_line,
    row_summary,
    rows_from_cell,
    timed_spec,
)
from harness.measure.settings import CellSettings, cell_settings
from harness.orchestrate.reference import ReferenceArm

Progress = Callable[[str], None]
CANDIDATE, REFERENCE = "candidate", "reference"  # row["arm"] when a run has a reference arm


@dataclass(frozen=True)
class MoreRounds:
    """Rounds added while a cell is inconclusive, the way Pinpoint adds repeats to an unclear comparison.

    `needs_more` is called per cell with that cell's rows (candidate rows, then reference rows when there is a
    reference arm) after the configured rounds and after each added round; the cells it answers True for get one
    more round (in the same shuffled, ABBA order), up to `max_extra_rounds` added rounds and while the added
    rounds' time plus the next one's estimate (the last process of each arm of each such cell) stays within
    `time_cap_s` (None: no cap). The judge itself lives in the gate; the runner only asks.
    """

    needs_more: Callable[[list[dict[str, Any]]], bool]
    max_extra_rounds: int
    time_cap_s: float | None = None


def arm_order(arms: list[str], rnd: int) -> list[str]:
    """ABBA: the arms of a pair in round `rnd`: as given in even rounds, reversed in odd ones, so over two rounds
    each arm runs first once and a drift of the machine across a pair weighs on both alike."""
    return list(arms) if rnd % 2 == 0 else list(reversed(arms))


def run_grid(cfg: Config, artifacts: dict[str, Path], data: FerData, backends: list[str] | None = None,
             run_dir: Path | None = None, progress: Progress | None = None, reference: ReferenceArm | None = None,
             more: MoreRounds | None = None) -> dict[str, Any]:
    """Run every backend x variant cell of `cfg.benchmark` on `data.test`; return the results dict.

    With `reference`, every timed process of a cell has a reference partner run back to back with it (ABBA: the
    candidate first in even rounds, the reference first in odd ones); the reference rows follow the candidate
    rows in `results` with `arm` = "reference" (the candidate's get "candidate"), and `results["reference"]` says
    what the reference was. With `more`, cells that `more.needs_more` calls inconclusive get further rounds.
    """
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
    peaks = _machine_peak(cfg, say)  # before any cell, the same processes every run (harness.measure.roofline)
    rows: list[dict[str, Any]] = []
    reference_rows: list[dict[str, Any]] = []
    extra_log: dict[str, Any] = {}
    logits: dict[tuple[str, str], Path] = {}
    labels_of: dict[tuple[str, str], str] = {}
    avail = {n: probe(n) for n in names}
    cells = [(b, v) for b in names for v in variants]
    b = cfg.benchmark
    n_rounds = int(b.rounds)
    per_process = cell_settings(cfg)
    for arm_settings in (per_process, *([reference.cell] if reference is not None else [])):
        check_cpus(arm_settings.cpus)
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
                reference_rows += _failed_reference(reference, backend, variant, artifacts, "unavailable", a.reason)
                say(f"{backend} {variant}: unavailable ({a.reason})")
            elif variant not in artifacts:
                reason = f"no artifact for variant {variant!r}; available: {', '.join(sorted(artifacts)) or 'none'}"
                rows += failed_rows(per_process, backend, variant, artifacts, "error", reason)
                reference_rows += _failed_reference(reference, backend, variant, artifacts, "error", reason)
                say(f"{backend} {variant}: error ({reason})")
            else:
                runnable.append((backend, variant))
        arms = [CANDIDATE] + ([REFERENCE] if reference is not None else [])
        procs: dict[str, dict[tuple[str, str], list[dict[str, Any]]]] = {a: {c: [] for c in runnable} for a in arms}
        accuracy: dict[tuple[str, str], dict[str, Any]] = {}

        def arm_ok(arm: str, cell: tuple[str, str]) -> bool:  # a cell whose first process failed is not retried
            return not procs[arm][cell] or procs[arm][cell][0]["result"].get("status") == "ok"

        def one_round(rnd: int, cells_now: list[tuple[str, str]], label: str) -> None:
            order = [c for c in cells_now if any(arm_ok(a, c) for a in arms)]
            rng.shuffle(order)
            orders.append([f"{bk}/{v}" for bk, v in order])
            for i, (backend, variant) in enumerate(order, 1):
                if reference is not None and reference.interleave == "blocks":
                    pair_in_one_process(reference, rnd, backend, variant, f"[{label}, {i}/{len(order)}]")
                    continue
                for position, arm in enumerate(arm_order(arms, rnd)):
                    if not arm_ok(arm, (backend, variant)):
                        continue
                    ref = reference if arm == REFERENCE else None
                    s_arm = ref.cell if ref is not None else per_process
                    art = ref.artifact(backend, variant, artifacts[variant]) if ref is not None else artifacts[variant]
                    stem = f"{backend}__{variant}" + ("__ref" if ref is not None else "") + (f"__r{rnd}" if rnd else "")
                    spec = timed_spec(cell_spec(s_arm, backend, art, images_path, labels_path, work / "-"))
                    started = datetime.now(UTC).isoformat(timespec="seconds")
                    result = run_cell_subprocess(spec, work / stem, b.cell_timeout_s, log_dir / f"{stem}.log",
                                                 ref.threads if ref is not None else b.threads, s_arm.cpus)
                    procs[arm][(backend, variant)].append({"round": rnd, "started": started, "result": result,
                                                           "pair": rnd, "position": position, "arm": arm})
                    who = f" [{arm}]" if reference is not None else ""
                    say(f"[{label}, {i}/{len(order)}] {backend} {variant}{who}: {process_line(result)}")

        def pair_in_one_process(reference: ReferenceArm, rnd: int, backend: str, variant: str, where: str) -> None:
            """Both arms of a cell in one process, the reference's blocks first in odd rounds (ABBA)."""
            lead = arm_order(arms, rnd)[0]
            art = artifacts[variant]
            stem = f"{backend}__{variant}__pair" + (f"__r{rnd}" if rnd else "")
            spec = timed_spec(cell_spec(per_process, backend, art, images_path, labels_path, work / "-"))
            spec.reference_artifact, spec.lead = str(reference.artifact(backend, variant, art)), lead
            started = datetime.now(UTC).isoformat(timespec="seconds")
            result = run_cell_subprocess(spec, work / stem, b.cell_timeout_s, log_dir / f"{stem}.log", b.threads,
                                         per_process.cpus)
            for arm, res in split_pair(result).items():
                procs[arm][(backend, variant)].append({"round": rnd, "started": started, "result": res, "pair": rnd,
                                                       "position": int(arm != lead), "arm": arm,
                                                       "interleave": "blocks"})
                say(f"{where} {backend} {variant} [{arm}, same process]: {process_line(res)}")

        for rnd in range(n_rounds):
            one_round(rnd, runnable, f"round {rnd + 1}/{n_rounds}")
        if more is not None:
            extra_log = _extra_rounds(more, n_rounds, runnable, arms, procs, one_round,
                                      lambda cell: _cell_rows(per_process, reference, cell, artifacts, procs), say)
        if per_process.accuracy:  # one untimed process per cell: accuracy, and the logits of the agreement check
            for backend, variant in [c for c in runnable if procs[CANDIDATE][c]
                                     and procs[CANDIDATE][c][0]["result"].get("status") == "ok"]:
                stem = f"{backend}__{variant}__accuracy"
                out_logits = work / f"{backend}__{variant}.logits.npy"
                spec = cell_spec(per_process, backend, artifacts[variant], images_path, labels_path, out_logits,
                                 timing=False)
                result = run_cell_subprocess(spec, work / stem, b.cell_timeout_s, log_dir / f"{stem}.log", b.threads,
                                             per_process.cpus)
                accuracy[(backend, variant)] = result
                if result.get("status") == "ok" and out_logits.is_file():
                    logits[(backend, variant)] = out_logits
                    labels_of[(backend, variant)] = str(result.get("describe", {}).get("label", ""))
                say(f"[accuracy] {backend} {variant}: {process_line(result)}")
        for backend, variant in runnable:
            cand = procs[CANDIDATE][(backend, variant)]
            new_rows = rows_from_cell(per_process, backend, variant, artifacts, cand, accuracy.get((backend, variant)))
            _mark_arm(new_rows, cand, CANDIDATE if reference is not None else None, None)
            first = cand[0]["result"] if cand else {}
            attach_correctness(new_rows, load_logits(logits.get((backend, variant))), np.load(labels_path),
                               throughput_scored_apart="throughput_metrics" in first)
            rows += new_rows
            say(f"{backend} {variant}: {row_summary(new_rows)}")
            if reference is not None:
                ref_rows = _reference_rows(reference, (backend, variant), artifacts, procs)
                reference_rows += ref_rows
                say(f"{backend} {variant} [reference]: {row_summary(ref_rows)}")
        no_reference: dict[str, str] = {}
        agreement = agreement_rows(per_process, variants, names, artifacts, logits, labels_of, images_path, labels_path,
                                   work, log_dir, say, no_reference)
    references = {v: "torch-eager" for v in variants if reference_is_cell(per_process, v, logits, labels_of)}
    attach_agreement(rows, agreement, references, cfg.benchmark.min_agreement_int8, cfg.benchmark.min_agreement_fp32,
                     no_reference)
    traffic = variant_traffic({v: artifacts[v] for v in variants if v in artifacts})
    attach_roofline(rows, peaks, traffic)  # a row above its roof is marked roof_measured_low; the roofs stand
    rows += reference_rows  # after the agreement and the roofs, which are the candidate's (see _cell_rows)
    rounds: dict[str, Any] = {"count": n_rounds, "seed": int(b.round_seed), "order": orders}
    if more is not None:
        rounds["extra"] = extra_log
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
        "rounds": rounds,
        "results": rows,
        "agreement": agreement,
        "machine_peak_gmac_per_s": peaks,
    }
    if reference is not None:
        results["reference"] = reference.record()
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / "results.json", results)
    return results


# what a process result holds for the process as a whole, not for one model: both arms of a shared process get it
_PROCESS_KEYS = ("pid", "peak_rss_bytes", "versions", "cell_wall_s", "exit_code", "cpus_allowed", "log")


def split_pair(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A shared process's result as two process results, one per arm, shaped as if each arm had had its own
    process; each arm's wall time leaves out the other arm's warm-up and timed seconds, so the fixed cost it
    reports (wall minus its own timing) is the process's. A process that failed before the reference was loaded
    fails both arms alike."""
    ref = result.get("reference")
    cand = {k: v for k, v in result.items() if k != "reference"}
    if not isinstance(ref, dict):
        return {CANDIDATE: cand, REFERENCE: dict(cand)}
    ref = {**{k: result[k] for k in _PROCESS_KEYS if k in result}, **ref}
    if result.get("status") != "ok":
        ref.update(status=result.get("status"), reason=result.get("reason"))

    def timed(r: dict[str, Any]) -> float:
        return sum(float(e.get("duration_s", 0.0)) + float(e.get("warmup_s", 0.0)) for e in r.get("scenarios", []))

    wall = result.get("cell_wall_s")
    if isinstance(wall, int | float):
        cand["cell_wall_s"], ref["cell_wall_s"] = wall - timed(ref), wall - timed(cand)
    return {CANDIDATE: cand, REFERENCE: ref}


def _machine_peak(cfg: Config, say: Progress) -> dict[str, Any]:
    """The machine's roofs at the benchmark's thread count, the GPU's too on a machine with one ({} when
    switched off)."""
    if not cfg.benchmark.roofline:
        return {}
    say(f"measuring the machine's roofs: peak GMAC/s per precision and memory bandwidth ({cfg.benchmark.threads} "
        f"threads; the median of {ROOF_PROCESSES} processes, the GPU's too where there is one)")
    return measure_peaks(cfg.benchmark.threads)


def _mark_arm(rows: list[dict[str, Any]], procs: list[dict[str, Any]], arm: str | None,
              settings: dict[str, Any] | None) -> None:
    """Tag a cell's rows with their arm and each process entry (`rows[i].rounds`) with its pair (the round) and
    its position in the pair (0: ran first), from the processes the rows were made of; nothing without an arm."""
    if arm is None:
        return
    by_round = {int(p["round"]): p for p in procs}
    for row in rows:
        row["arm"] = arm
        if arm == REFERENCE:
            row["reference_settings"] = settings
        for entry in row.get("rounds") or []:
            p = by_round.get(int(entry.get("round", -1)))
            if p is not None:
                entry.setdefault("pair", int(p.get("pair", p["round"])))
                entry.setdefault("position", int(p.get("position", 0)))


def _reference_rows(reference: ReferenceArm, cell: tuple[str, str], artifacts: dict[str, Path],
                    procs: dict[str, dict[tuple[str, str], list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """A cell's reference rows: timed only (no accuracy process, no agreement check, no roof: those describe the
    candidate; the reference arm is there to share the machine's state with it)."""
    backend, variant = cell
    ref_arts = {variant: reference.artifact(backend, variant, artifacts[variant])}
    got = procs[REFERENCE][cell]
    rows = rows_from_cell(reference.cell, backend, variant, ref_arts, got)
    _mark_arm(rows, got, REFERENCE, reference.settings)
    return rows


def _cell_rows(per_process: CellSettings, reference: ReferenceArm | None, cell: tuple[str, str],
               artifacts: dict[str, Path], procs: dict[str, dict[tuple[str, str], list[dict[str, Any]]]]
               ) -> list[dict[str, Any]]:
    """A cell's rows so far, both arms (what `MoreRounds.needs_more` judges)."""
    backend, variant = cell
    cand = procs[CANDIDATE][cell]
    rows = rows_from_cell(per_process, backend, variant, artifacts, cand)
    _mark_arm(rows, cand, CANDIDATE if reference is not None else None, None)
    if reference is not None:
        rows += _reference_rows(reference, cell, artifacts, procs)
    return rows


def _failed_reference(reference: ReferenceArm | None, backend: str, variant: str, artifacts: dict[str, Path],
                      status: str, reason: str) -> list[dict[str, Any]]:
    """The reference rows of a cell that could not run at all: the same status, so the arms stay symmetric."""
    if reference is None:
        return []
    rows = failed_rows(reference.cell, backend, variant, artifacts, status, reason)
    _mark_arm(rows, [], REFERENCE, reference.settings)
    return rows


def _extra_rounds(more: MoreRounds, n_rounds: int, runnable: list[tuple[str, str]], arms: list[str],
                  procs: dict[str, dict[tuple[str, str], list[dict[str, Any]]]],
                  one_round: Callable[[int, list[tuple[str, str]], str], None],
                  rows_of: Callable[[tuple[str, str]], list[dict[str, Any]]], say: Progress) -> dict[str, Any]:
    """Add rounds for the cells `more.needs_more` calls inconclusive (MoreRounds); what happened, for results."""
    t0 = time.monotonic()
    added: list[list[str]] = []
    stopped = "max_extra_rounds"
    for k in range(max(0, int(more.max_extra_rounds))):
        alive = [c for c in runnable if procs[CANDIDATE][c] and procs[CANDIDATE][c][0]["result"].get("status") == "ok"]
        need = [c for c in alive if more.needs_more(rows_of(c))]
        if not need:
            stopped = "conclusive"
            break
        walls = [p["result"].get("cell_wall_s") for a in arms for c in need for p in procs[a][c][-1:]]
        estimate = sum(float(w) for w in walls if isinstance(w, int | float))
        spent = time.monotonic() - t0
        if more.time_cap_s is not None and spent + estimate > more.time_cap_s:
            stopped = "time_cap"
            say(f"inconclusive: {', '.join(f'{bk}/{v}' for bk, v in need)}; not adding a round: {spent:.0f} s spent "
                f"+ about {estimate:.0f} s for the next > the cap of {more.time_cap_s:g} s")
            break
        say(f"inconclusive after {n_rounds + k} rounds: {', '.join(f'{bk}/{v}' for bk, v in need)}; adding a round")
        one_round(n_rounds + k, need, f"extra round {k + 1}/{more.max_extra_rounds}")
        added.append([f"{bk}/{v}" for bk, v in need])
    return {"added": len(added), "cells": added, "stopped": stopped, "max_extra_rounds": int(more.max_extra_rounds),
            "time_cap_s": more.time_cap_s, "seconds": round(time.monotonic() - t0, 1)}
