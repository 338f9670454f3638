"""Short cells for the measured labels of a row: precision (with its partial-int8 flag), agreement, file MB,
fraction of the attainable roof (roofline). Shared by the run summary and the report tables so both say the same
thing. Each takes a typed row (`common.records.Row`); the run summary still hands dict rows, taken through
`as_row` at the entry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from common.records import MachinePeaks, Row, as_row

RowLike = Row | dict[str, Any]


def precision_cell(row: RowLike) -> str:
    """`int8`, `int8 (13/15 int8)` when partial, `fp32 (declared int8)` when the evidence overrode the manifest."""
    r = as_row(row)
    p = str(r.precision or "—")
    flag = str(r.precision_flag or "")
    if not flag:
        return p
    if flag.startswith("partial"):
        return f"{p} ({r.int8_layers}/{r.total_layers} int8)"
    return f"{p} (declared int8)"


def encoding_notes(rows: list[Row]) -> list[str]:
    """One note per int8 encoding the rows ran ("int8 weights 7-bit (dense-int8, l1-int8): cpu: u8 act x s7 ..."),
    so a reader knows what the files assume; rows of older runs carry no encoding and give no note."""
    variants: dict[tuple[Any, str], list[str]] = {}
    for r in rows:
        if r.int8_encoding:
            names = variants.setdefault((r.weight_bits, r.int8_encoding), [])
            if r.variant not in names:
                names.append(r.variant)
    return [f"int8 weights {bits}-bit ({', '.join(names)}): {enc}" for (bits, enc), names in variants.items()]


def agreement_cell(row: RowLike) -> str:
    """Top-1 agreement in percent, with ✗ when it is below the row's threshold; "ref" for the row whose own
    logits are the reference (nothing was measured against it); "not checked" for a throughput row whose
    separately compiled model was not compared; — when not compared."""
    r = as_row(row)
    reason = r.agreement_reason or ""
    if reason == "reference":
        return "ref"
    if r.agreement is None:
        return "not checked" if reason.startswith("not checked") else "—"
    return f"{100 * r.agreement:.1f}%" + (" ✗" if r.agrees is False else "")


def mb(n: Any) -> str:
    return f"{n / 1e6:.2f}" if isinstance(n, int | float) and n else "—"


def _pct(x: Any) -> str:
    return f"{100 * x:.0f}%" if isinstance(x, int | float) else "—"


def roof_fraction(row: Row | None) -> float | None:
    """The row's fraction of its attainable roof (older results: of the compute peak)."""
    if row is None:
        return None
    return row.fraction_of_attainable if row.fraction_of_attainable is not None else row.fraction_of_peak


def peak_cell(group: Sequence[RowLike]) -> str:
    """Fraction of the attainable roof at batch 1 and at the largest batch of one cell's ok rows (throughput
    scenario), "(roof measured low)" after it when any ok row of the cell ran above its roof; results written
    before rooflines existed show their fraction of the compute peak."""
    rows = [as_row(r) for r in group]
    ok = [r for r in rows if r.status == "ok" and r.scenario == "throughput"] or [r for r in rows if r.status == "ok"]
    if not ok:
        return "—"
    b1 = next((r for r in ok if r.batch_size == 1), None) or \
        next((r for r in rows if r.status == "ok" and r.batch_size == 1), None)
    big = max(ok, key=lambda r: r.batch_size or 1)
    return f"{_pct(roof_fraction(b1))}/{_pct(roof_fraction(big))}{' (roof measured low)' if roof_low(rows) else ''}"


def roof_low(rows: Sequence[Row]) -> bool:
    """Did any ok row of the cell (any scenario, any batch, shown or not) run above its attainable roof? Marked
    `roof_measured_low` by the harness; rows written before the mark: their fraction above 1 says the same."""
    return any(r.roof_measured_low or ((f := r.fraction_of_attainable) is not None and f > 1.0)
               for r in rows if r.status == "ok")


PEAK_PRECISIONS = ("fp32", "bf16", "int8")


def peak_text(peaks: MachinePeaks | dict[str, Any] | None) -> str:
    """"fp32 80.1, bf16 150.2, int8 300.0 GMAC/s at 2 threads" (+ how busy the machine was); "" if not measured."""
    p = peaks if isinstance(peaks, MachinePeaks) else MachinePeaks.model_validate(peaks or {}, strict=False)
    nums = [f"{k} {v:.1f}" for k in PEAK_PRECISIONS if isinstance(v := getattr(p, k), int | float)]
    if not nums:
        return ""
    text = f"{', '.join(nums)} GMAC/s at {p.threads if p.threads is not None else '?'} threads"
    procs = p.processes  # runs measured before roofs were a median of processes lack it
    if procs:
        n = len(procs)
        text += f" (median of {n} processes, as rows are)"
    bw = p.bandwidth_gb_per_s or {}
    if isinstance(bw.get("dram"), int | float):
        text += f"; memory {bw['dram']:.1f} GB/s (DRAM)"
        if isinstance(bw.get("cache"), int | float):
            text += f", {bw['cache']:.1f} GB/s (cache)"
    busy = p.other_cpu_fraction
    if busy is not None and busy > 0.1:
        text += f" (measured while other processes used {busy:.0%} of the CPUs: the roofs may read low)"
    gpu = p.gpu
    if gpu and not gpu.get("error"):  # the GPU block is the roof probe's own dict (keys in common.records)
        g = [f"{k} {gpu[k]:.0f}" for k in ("fp32", "tf32", "fp16", "bf16", "int8")
             if isinstance(gpu.get(k), int | float)]
        gbw = (gpu.get("bandwidth_gb_per_s") or {}).get("dram")
        text += f"; GPU {gpu.get('device', '?')}: {', '.join(g)} GMAC/s" + (
            f", {gbw:.0f} GB/s" if isinstance(gbw, int | float) else "")
    return text


def runtime_cell(row: Row) -> str:
    """"0.231 / 0.236": the runtime's own p50 per request beside the end-to-end p50 of the same calls (ms)."""
    t = row.runtime_timing
    if t is None or t.runtime_p50_ms is None:
        return "—"
    e2e = t.end_to_end_p50_ms
    return f"{t.runtime_p50_ms:.3f} / " + (f"{e2e:.3f}" if e2e is not None else "—")
