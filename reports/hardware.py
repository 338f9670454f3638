"""`bench report --compare-hardware`: the same variants measured on different machines, side by side.

Input is the store's typed rows (`all_results_typed()`: `common.records.SelectionRow`, each naming the machine
that measured it). A cell is (backend,
variant, model, threads, streams), the model keyed by the timed file's sha256 (`artifact_sha256`; rows stored
before it: the run's config hash, said in the notes): results of two models, or under different settings, are
different cells, never merged. For each
cell and machine the latest ok latency measurement at batch 1 is shown (p50 and p99; INVALID marked); only
cells measured on at least two machines are compared, the others are counted in a note.
"""

from __future__ import annotations

from pathlib import Path

from common.atomic import write_bytes_atomic
from common.records import SelectionRow
from common.text import finite_number
from reports.figures import Figure, _plain_log_axis, _png
from reports.html import render_html
from reports.markdown import render_markdown
from reports.select import identity_of
from reports.tables import Table, fnum

REPORT_MD = "compare_hardware.md"
REPORT_HTML = "compare_hardware.html"
FIGURE = "compare_hardware.png"
Cell = tuple[str, str, str, str]  # backend, variant, model (text and sha prefix), settings


def _settings(row: SelectionRow) -> str:
    desc = row.describe
    threads = desc.threads if desc is not None else None
    parts = [f"threads {'?' if threads is None else threads}"]
    if desc is not None and desc.streams is not None:
        parts.append(f"streams {desc.streams}")
    return ", ".join(parts)


def model_label(row: SelectionRow) -> str:
    """The model a row timed, as a cell shows it: "VGG16-FER x0.25 1a2b3c4d5e6f" (sha256 prefix of the file);
    rows stored before rows named it: "not recorded, config <hash>"."""
    how, value = identity_of(row)
    if how == "artifact_sha256":
        return f"{row.model or 'model not recorded'} {value[:12]}"
    return f"{row.model or 'not recorded'}, config {row.config_hash or '?'}"


def _ok_batch1_latency(r: SelectionRow) -> bool:
    return r.status == "ok" and r.scenario == "latency" and (r.batch_size or 1) == 1


def side_by_side(rows: list[SelectionRow]) -> tuple[list[str], dict[str, str], dict[Cell, dict[str, SelectionRow]]]:
    """(machine ids, machine id -> hardware, cell -> machine id -> latest ok batch-1 latency row)."""
    machines: dict[str, str] = {}
    cells: dict[Cell, dict[str, SelectionRow]] = {}
    for r in rows:
        if not _ok_batch1_latency(r):
            continue
        mid = r.machine_id or r.fingerprint_id or "?"
        label = (r.hardware or "unknown hardware") + (f", target {r.target}" if r.target else "")
        machines.setdefault(mid, label)
        key = (r.backend, r.variant, model_label(r), _settings(r))
        prev = cells.setdefault(key, {}).get(mid)
        if prev is None or (str(r.created), str(r.run_id)) >= (str(prev.created), str(prev.run_id)):
            cells[key][mid] = r
    return sorted(machines), machines, cells


def hardware_table(rows: list[SelectionRow]) -> Table:
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
            lat = r.latency_ms
            text = f"{fnum(lat.p50 if lat else None)} / {fnum(lat.p99 if lat else None)}"
            line.append(text + (" INVALID" if r.valid is False else ""))  # an ok row (side_by_side), so: is_invalid
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


def hardware_figure(rows: list[SelectionRow]) -> bytes | None:
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
            v = finite_number(r.latency_ms.p50) if r is not None and r.latency_ms is not None else None
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


def write_hardware_report(rows: list[SelectionRow], out_dir: Path) -> list[Path]:
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
    synthetic = any(r.synthetic for r in rows)
    write_bytes_atomic(out_dir / REPORT_HTML, render_html(title, [table], [(FIGURE, caption, png)], synthetic)
                       .encode("utf-8"))
    return [out_dir / REPORT_MD, out_dir / REPORT_HTML, *written]
