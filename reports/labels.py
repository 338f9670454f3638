"""Short cells for the measured labels of a row: precision (with its partial-int8 flag), agreement, file MB,
fraction of the attainable roof (roofline). Shared by the run summary and the report tables so both say the same
thing."""

from __future__ import annotations

from typing import Any


def precision_cell(row: dict[str, Any]) -> str:
    """`int8`, `int8 (13/15 int8)` when partial, `fp32 (declared int8)` when the evidence overrode the manifest."""
    p = str(row.get("precision") or "—")
    flag = str(row.get("precision_flag") or "")
    if not flag:
        return p
    if flag.startswith("partial"):
        return f"{p} ({row.get('int8_layers')}/{row.get('total_layers')} int8)"
    return f"{p} (declared int8)"


def encoding_notes(rows: list[dict[str, Any]]) -> list[str]:
    """One note per int8 encoding the rows ran ("int8 weights 7-bit (dense-int8, l1-int8): cpu: u8 act x s7 ..."),
    so a reader knows what the files assume; rows of older runs carry no encoding and give no note."""
    variants: dict[tuple[Any, str], list[str]] = {}
    for r in rows:
        if r.get("int8_encoding"):
            names = variants.setdefault((r.get("weight_bits"), str(r["int8_encoding"])), [])
            if r.get("variant") not in names:
                names.append(str(r.get("variant")))
    return [f"int8 weights {bits}-bit ({', '.join(names)}): {enc}" for (bits, enc), names in variants.items()]


def agreement_cell(row: dict[str, Any]) -> str:
    """Top-1 agreement in percent, with ✗ when it is below the row's threshold; "ref" for the row whose own
    logits are the reference (nothing was measured against it); "not checked" for a throughput row whose
    separately compiled model was not compared; — when not compared."""
    a = row.get("agreement")
    reason = str(row.get("agreement_reason") or "")
    if reason == "reference":
        return "ref"
    if not isinstance(a, int | float):
        return "not checked" if reason.startswith("not checked") else "—"
    return f"{100 * a:.1f}%" + (" ✗" if row.get("agrees") is False else "")


def mb(n: Any) -> str:
    return f"{n / 1e6:.2f}" if isinstance(n, int | float) and n else "—"


def _pct(x: Any) -> str:
    return f"{100 * x:.0f}%" if isinstance(x, int | float) else "—"


def roof_fraction(row: dict[str, Any]) -> Any:
    """The row's fraction of its attainable roof (older results: of the compute peak)."""
    f = row.get("fraction_of_attainable")
    return f if isinstance(f, int | float) else row.get("fraction_of_peak")


def peak_cell(group: list[dict[str, Any]]) -> str:
    """Fraction of the attainable roof at batch 1 and at the largest batch of one cell's ok rows (throughput
    scenario); results written before rooflines existed show their fraction of the compute peak."""
    ok = [r for r in group if r.get("status") == "ok" and r.get("scenario") == "throughput"] or \
        [r for r in group if r.get("status") == "ok"]
    if not ok:
        return "—"
    b1 = next((r for r in ok if r.get("batch_size") == 1), None) or \
        next((r for r in group if r.get("status") == "ok" and r.get("batch_size") == 1), None)
    big = max(ok, key=lambda r: int(r.get("batch_size") or 1))
    return f"{_pct(roof_fraction(b1 or {}))}/{_pct(roof_fraction(big))}"


PEAK_PRECISIONS = ("fp32", "bf16", "int8")


def peak_text(peaks: dict[str, Any]) -> str:
    """"fp32 80.1, bf16 150.2, int8 300.0 GMAC/s at 2 threads" (+ how busy the machine was); "" if not measured."""
    nums = [f"{k} {peaks[k]:.1f}" for k in PEAK_PRECISIONS if isinstance(peaks.get(k), int | float)]
    if not nums:
        return ""
    text = f"{', '.join(nums)} GMAC/s at {peaks.get('threads', '?')} threads"
    bw = peaks.get("bandwidth_gb_per_s")
    if isinstance(bw, dict) and isinstance(bw.get("dram"), int | float):
        text += f"; memory {bw['dram']:.1f} GB/s (DRAM)"
        if isinstance(bw.get("cache"), int | float):
            text += f", {bw['cache']:.1f} GB/s (cache)"
    busy = peaks.get("other_cpu_fraction")
    if isinstance(busy, int | float) and busy > 0.1:
        text += f" (measured while other processes used {busy:.0%} of the CPUs: the roofs may read low)"
    gpu = peaks.get("gpu")
    if isinstance(gpu, dict) and not gpu.get("error"):
        g = [f"{k} {gpu[k]:.0f}" for k in ("fp32", "tf32", "fp16", "bf16", "int8")
             if isinstance(gpu.get(k), int | float)]
        gbw = (gpu.get("bandwidth_gb_per_s") or {}).get("dram")
        text += f"; GPU {gpu.get('device', '?')}: {', '.join(g)} GMAC/s" + (
            f", {gbw:.0f} GB/s" if isinstance(gbw, int | float) else "")
    return text


def runtime_cell(row: dict[str, Any]) -> str:
    """"0.231 / 0.236": the runtime's own p50 per request beside the end-to-end p50 of the same calls (ms)."""
    t = row.get("runtime_timing")
    if not isinstance(t, dict) or not isinstance(t.get("runtime_p50_ms"), int | float):
        return "—"
    e2e = t.get("end_to_end_p50_ms")
    return f"{t['runtime_p50_ms']:.3f} / " + (f"{e2e:.3f}" if isinstance(e2e, int | float) else "—")
