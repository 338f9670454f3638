"""`bench report --compare-hardware`: the same variants measured on different machines, side by side.

Input is the store's `all_results()` rows (each names the machine that measured it). A cell is (backend,
variant, model, threads, streams), the model keyed by the timed file's sha256 (`artifact_sha256`; rows stored
before it: the run's config hash, said in the notes): results of two models, or under different settings, are
different cells, never merged. For each
cell and machine the latest ok latency measurement at batch 1 is shown (p50 and p99; INVALID marked); only
cells measured on at least two machines are compared, the others are counted in a note.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.atomic import write_bytes_atomic
from common.text import finite_number
from reports.figures import Figure, _plain_log_axis, _png
from reports.html import render_html
from reports.markdown import render_markdown
from reports.select import identity_of
from reports.tables import Table, fnum, is_invalid

REPORT_MD = "compare_hardware.md"
REPORT_HTML = "compare_hardware.html"
FIGURE = "compare_hardware.png"
Cell = tuple[str, str, str, str]  # backend, variant, model (text and sha prefix), settings


def _settings(row: dict[str, Any]) -> str:
    raw = row.get("describe")
    desc: dict[str, Any] = raw if isinstance(raw, dict) else {}
    parts = [f"threads {desc.get('threads', '?')}"]
    if desc.get("streams") is not None:
        parts.append(f"streams {desc['streams']}")
    return ", ".join(parts)


def model_label(row: dict[str, Any]) -> str:
    """The model a row timed, as a cell shows it: "VGG16-FER x0.25 1a2b3c4d5e6f" (sha256 prefix of the file);
    rows stored before rows named it: "not recorded, config <hash>"."""
    how, value = identity_of(row)
    if how == "artifact_sha256":
        return f"{row.get('model') or 'model not recorded'} {value[:12]}"
    return f"{row.get('model') or 'not recorded'}, config {row.get('config_hash') or '?'}"


def side_by_side(rows: list[dict[str, Any]]) -> tuple[list[str], dict[str, str], dict[Cell, dict[str, dict[str, Any]]]]:
    """(machine ids, machine id -> hardware, cell -> machine id -> latest ok batch-1 latency row)."""
    machines: dict[str, str] = {}
    cells: dict[Cell, dict[str, dict[str, Any]]] = {}
    for r in rows:
        if r.get("status") != "ok" or r.get("scenario") != "latency" or int(r.get("batch_size") or 1) != 1:
            continue
        mid = str(r.get("machine_id") or r.get("fingerprint_id") or "?")
        label = str(r.get("hardware") or "unknown hardware") + (f", target {r['target']}" if r.get("target") else "")
        machines.setdefault(mid, label)
        key = (str(r.get("backend")), str(r.get("variant")), model_label(r), _settings(r))
        prev = cells.setdefault(key, {}).get(mid)
        if prev is None or (str(r.get("created")), str(r.get("run_id"))) >= (str(prev.get("created")),
                                                                               str(prev.get("run_id"))):
            cells[key][mid] = r
    return sorted(machines), machines, cells


def hardware_table(rows: list[dict[str, Any]]) -> Table:
    ids, hw, cells = side_by_side(rows)
    shared = {k: v for k, v in cells.items() if len(v) >= 2}
    header = ["backend", "variant", "model, artifact sha", "settings"] + [f"{m} p50 / p99 ms" for m in ids]
    out: list[list[str]] = []
    for (backend, variant, model, settings), per in sorted(shared.items()):
        line = [backend, variant, model, settings]
        for m in ids:
            r = per.get(m)
            if r is None:
                line.append("not measured")
                continue
            raw = r.get("latency_ms")
            lat: dict[str, Any] = raw if isinstance(raw, dict) else {}
            text = f"{fnum(lat.get('p50'))} / {fnum(lat.get('p99'))}"
            line.append(text + (" INVALID" if is_invalid(r) else ""))
        out.append(line)
    notes = [f"{m}: {hw[m]}" for m in ids]
    notes.append("latest ok latency measurement at batch 1 per machine; a cell is backend x variant x model (the "
                 "sha256 of the file timed) x settings: two models under one variant name are two cells")
    if any(identity_of(r)[0] != "artifact_sha256" for per in cells.values() for r in per.values()):
        notes.append("rows stored without artifact_sha256 are keyed by their run's config hash instead")
    if len(shared) < len(cells):
        notes.append(f"{len(cells) - len(shared)} cell(s) measured on one machine only are not shown")
    if len(ids) < 2:
        notes.append("the store holds results of fewer than two machines: nothing to compare")
    return Table("Same variants on different hardware (p50 / p99 latency, batch 1)", header, out, notes,
                 anchor="compare-hardware")


def hardware_figure(rows: list[dict[str, Any]]) -> bytes | None:
    """Grouped horizontal bars: p50 latency of each shared cell, one bar per machine (log scale)."""
    ids, _hw, cells = side_by_side(rows)
    shared = sorted((k, v) for k, v in cells.items() if len(v) >= 2)
    if not shared:
        return None
    fig = Figure(figsize=(8.0, 1.0 + 0.45 * len(shared) * len(ids) / 2 + 0.5))
    ax = fig.add_subplot()
    height = 0.8 / len(ids)
    for j, m in enumerate(ids):
        ys, xs = [], []
        for i, (_key, per) in enumerate(shared):
            r = per.get(m)
            raw = (r or {}).get("latency_ms")
            v = finite_number(raw.get("p50")) if isinstance(raw, dict) else None
            if v is not None and v > 0:
                ys.append(i + j * height)
                xs.append(v)
        ax.barh(ys, xs, height=height, label=m)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(shared))],
                  [f"{b}/{v} {m} ({s})" for (b, v, m, s), _ in shared], fontsize=8)
    ax.set_xscale("log")
    _plain_log_axis(ax.xaxis)
    ax.set_xlabel("p50 latency, batch 1 (ms, log scale)")
    ax.set_title("Same variants on different machines")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


def write_hardware_report(rows: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """compare_hardware.md, .html and .png (when there is something to plot) in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table = hardware_table(rows)
    png = hardware_figure(rows)
    caption = "p50 latency per machine"
    title = "Hardware comparison"
    written = []
    if png is not None:
        write_bytes_atomic(out_dir / FIGURE, png)
        written.append(out_dir / FIGURE)
    write_bytes_atomic(out_dir / REPORT_MD, render_markdown(title, [table], [(FIGURE, caption, png is not None)])
                       .encode("utf-8"))
    synthetic = any(r.get("synthetic") for r in rows)
    write_bytes_atomic(out_dir / REPORT_HTML, render_html(title, [table], [(FIGURE, caption, png)], synthetic)
                       .encode("utf-8"))
    return [out_dir / REPORT_MD, out_dir / REPORT_HTML, *written]
