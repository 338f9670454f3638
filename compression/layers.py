"""The layer-wise table (the paper's Table 4): dense-fp32 versus each pruned int8 variant, per layer.

For every conv / linear layer: output size, output channels and parameters before and after, the
per-layer compression ratio (storage before / after) and the storage at each precision.
Written as layers.csv and layers.md (atomically) next to the variant directories.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from common.atomic import write_text_atomic
from compression.storage import layer_infos, layer_storage_bytes
from fer.model import Arch

# Reading order: what the layer is, what pruning did to it, what it costs, the ratio; then which variant.
COLUMNS = ("layer", "type", "output_size", "channels_before", "channels_after", "params_before", "params_after",
           "storage_before_kb", "storage_after_kb", "compression_ratio", "precision_after", "variant")


def layer_rows(variant: str, dense: Arch, pruned: Arch, precision: str = "int8",
               symmetric: bool = True) -> list[dict[str, Any]]:
    """One row per layer comparing `dense` (fp32, with BN) to `pruned` at `precision`, plus a total row; a conv that
    `pruned` removed (its `removed` list) has a row saying so, with nothing stored after."""
    rows: list[dict[str, Any]] = []
    tot = {"pb": 0, "pa": 0, "sb": 0, "sa": 0}
    removed = set(pruned.get("removed") or [])
    remaining = iter(layer_infos(pruned))
    for k, before in enumerate(layer_infos(dense)):
        sb = layer_storage_bytes(before, "fp32")
        pb = before.params + (2 * before.out_channels if before.kind == "conv" else 0)  # + BN gamma/beta
        tot["pb"] += pb
        tot["sb"] += sb
        if before.kind == "conv" and k in removed:  # a hardware-aware plan replaced this conv by the identity
            rows.append({
                "variant": variant, "layer": before.name, "type": before.kind, "output_size": "removed (identity)",
                "channels_before": before.out_channels, "channels_after": 0, "params_before": pb, "params_after": 0,
                "storage_before_kb": round(sb / 1024, 2), "storage_after_kb": 0.0, "precision_after": precision,
                "compression_ratio": "removed",
            })
            continue
        after = next(remaining)
        sa = layer_storage_bytes(after, precision, symmetric)
        pa = after.params
        rows.append({
            "variant": variant, "layer": before.name, "type": before.kind, "output_size": after.out_size,
            "channels_before": before.out_channels, "channels_after": after.out_channels,
            "params_before": pb, "params_after": pa,
            "storage_before_kb": round(sb / 1024, 2), "storage_after_kb": round(sa / 1024, 2),
            "precision_after": precision, "compression_ratio": round(sb / sa, 2),
        })
        tot["pa"] += pa
        tot["sa"] += sa
    rows.append({
        "variant": variant, "layer": "total", "type": "", "output_size": "", "channels_before": "",
        "channels_after": "", "params_before": tot["pb"], "params_after": tot["pa"],
        "storage_before_kb": round(tot["sb"] / 1024, 2), "storage_after_kb": round(tot["sa"] / 1024, 2),
        "precision_after": precision, "compression_ratio": round(tot["sb"] / tot["sa"], 2),
    })
    return rows


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def to_markdown(rows: list[dict[str, Any]], title: str = "Layer-wise compression (dense-fp32 -> variant)") -> str:
    head = ["layer", "type", "output", "channels", "params", "storage KB", "ratio"]
    lines = [f"# {title}", ""]
    for variant in dict.fromkeys(r["variant"] for r in rows):
        lines += [f"## {variant}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in (r for r in rows if r["variant"] == variant):
            ch = f"{r['channels_before']} -> {r['channels_after']}" if r["channels_before"] != "" else ""
            cells = [r["layer"], r["type"], r["output_size"], ch,
                     f"{r['params_before']:,} -> {r['params_after']:,}",
                     f"{r['storage_before_kb']:,} (fp32) -> {r['storage_after_kb']:,} ({r['precision_after']})",
                     r["compression_ratio"] if r["compression_ratio"] == "removed" else f"{r['compression_ratio']}x"]
            if r["layer"] == "total":
                cells = [f"**{c}**" if c else c for c in cells]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_layer_table(out_dir: Path, rows: list[dict[str, Any]]) -> tuple[Path, Path]:
    """out_dir/layers.csv and out_dir/layers.md."""
    csv_path, md_path = out_dir / "layers.csv", out_dir / "layers.md"
    write_text_atomic(csv_path, to_csv(rows))
    write_text_atomic(md_path, to_markdown(rows))
    return csv_path, md_path
