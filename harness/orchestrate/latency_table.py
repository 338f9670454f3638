"""Build (or reuse) the per-layer latency table of a dense VGG16-FER on this machine and backend.

One single-conv probe (compression/latency_probe.py) per distinct (input size, input width, output width) of the
grid (compression/latency_table.grid_widths), timed by harness/measure/layer_latency.ProbeTimer; then the whole
dense model and the paper's point's architecture (random weights), whose measured latency minus their sum of
parts gives `rest_ms` (pools, classifier, per-call overhead; the least of the two: load only adds). Cached as
JSON under the key of everything the numbers depend on (compression/latency_table.table_path).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compression.latency_probe import arch_probe_onnx, conv_probe_onnx
from compression.latency_table import (
    LatencyTable,
    LayerCosts,
    conv_slots,
    grid_widths,
    load_table,
    save_table,
    table_path,
)
from fer.model import Arch
from harness.measure.layer_latency import ProbeTimer, machine_id, runtime_version

Progress = Callable[[str], None]


def table_key(arch: Arch, backend: str, precision: str, threads: int, group: int, levels: int,
              batch: int = 1) -> dict[str, Any]:
    return {"machine": machine_id(), "backend": backend, "runtime": runtime_version(backend), "precision": precision,
            "threads": threads, "batch": batch, "input_shape": [batch, int(arch["in_channels"]), 48, 48],
            "dense_features": list(arch["features"]), "group": group, "levels": levels}


def paper_arch(dense: Arch) -> Arch:
    """The paper's point's architecture (L1, per layer, sparsity 0.5): Torch-Pruning keeps int(c * 0.5) of every
    conv and of the hidden layer (prune.n_pruned's rounding); known without training."""
    feats = [f if f == "M" else int(int(f) * 0.5) for f in dense["features"]]
    return {**dense, "features": feats, "hidden": int(int(dense["hidden"]) * 0.5)}


def measure_table(arch: Arch, backend: str, precision: str, threads: int, group: int, levels: int,
                  progress: Progress | None = None) -> LatencyTable:
    say = progress or (lambda _m: None)
    timer = ProbeTimer(backend, threads)
    seen: dict[tuple[int, int, int], float] = {}
    layers: list[LayerCosts] = []
    t0 = time.perf_counter()
    for slot in conv_slots(arch):
        ins = [slot.dense_in] if slot.index == 0 else grid_widths(slot.dense_in, group, levels)
        outs = grid_widths(slot.dense_out, group, levels)
        ms = []
        for ci in ins:
            row = []
            for co in outs:
                k = (slot.size, ci, co)
                if k not in seen:
                    seen[k] = timer.layer_ms(conv_probe_onnx(ci, co, slot.size, precision),
                                             [1, ci, slot.size, slot.size])
                row.append(seen[k])
            ms.append(row)
        layers.append(LayerCosts(slot, ins, outs, ms))
        say(f"latency table: {slot.name} measured ({len(ins)}x{len(outs)} widths)")
    table = LatencyTable(table_key(arch, backend, precision, threads, group, levels), layers)
    rests = []
    for name, a in {"dense": arch, "paper-point": paper_arch(arch)}.items():
        measured = timer.whole_ms(arch_probe_onnx(a, precision), [1, int(a["in_channels"]), 48, 48])
        parts = table.parts_ms(a)
        table.probes[name] = {"arch": a, "measured_ms": measured, "parts_ms": parts}
        rests.append(measured - parts)
    table.rest_ms = max(0.0, min(rests))
    say(f"latency table: {len(seen)} layer probes + 2 whole-model probes in {time.perf_counter() - t0:.0f} s")
    return table


def load_or_measure(cache_dir: Path, arch: Arch, backend: str, precision: str, threads: int, group: int,
                    levels: int, progress: Progress | None = None) -> tuple[LatencyTable, Path, bool]:
    """(table, its cache file, whether it was measured now): the cached table of this key, or a fresh one."""
    say = progress or (lambda _m: None)
    key = table_key(arch, backend, precision, threads, group, levels)
    path = table_path(cache_dir, key)
    table = load_table(path, key)
    if table is not None:
        say(f"latency table: reusing {path}")
        return table, path, False
    table = measure_table(arch, backend, precision, threads, group, levels, say)
    save_table(path, table)
    say(f"latency table: written {path}")
    return table, path, True
