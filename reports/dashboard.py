"""The history dashboard (`bench report --history`): a static site of plain HTML files with inline SVG, CSS and
(on the index only) a few lines of inline JS for the filters. Nothing is loaded from anywhere: every page carries a
Content-Security-Policy that forbids any fetch, so it opens offline and publishes as a CI artifact as it is.

index.html: one row per cell with its latest p50 and interval, the gate's open verdict and a sparkline;
cells/<slug>.html: the cell's full series (never downsampled), the gate's marks, and a table of every run."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

from common.atomic import write_text_atomic
from reports.dashboard_figures import accuracy_svg, history_svg, ratio_svg, sparkline
from reports.dashboard_model import INCONCLUSIVE, REGRESSION, SAME, CellHistory, RunPoint

CELLS_DIR = "cells"
QUIET = (SAME, "reference")  # accuracy verdicts the runs table shows without their test's text (the page is
# 1,000 rows long; the text of every other verdict is shown)
_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'")
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto; max-width: 1400px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: middle; }
th { background: #f2f2f2; } tr:nth-child(even) td { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.v-regression { color: #a40000; font-weight: 600; } .v-improvement { color: #1a6b1a; font-weight: 600; }
.v-inconclusive { color: #7a5a00; } .v-no-change { color: #444; }
tr.invalid td { color: #a40000; } tr.noisy td { color: #666; font-style: italic; }
p.note, .legend { font-size: 0.85em; color: #555; }
.filters label { margin-right: 1em; } .filters select { margin-left: 0.3em; }
svg.spark { vertical-align: middle; } .spark-line { fill: none; stroke: #2b5c9e; stroke-width: 1.2; }
.spark-last { fill: #2b5c9e; }
svg.history, svg.ratio, svg.accuracy { width: 100%; max-width: 1100px; height: auto; display: block; }
.plot { fill: #fff; stroke: #bbb; } .grid { stroke: #eee; } .tick { font-size: 11px; fill: #555; }
.band { fill: #2b5c9e; fill-opacity: 0.18; stroke: none; }
.band-bar { stroke: #2b5c9e; stroke-opacity: 0.4; stroke-width: 3; }
.p50 { fill: none; stroke: #2b5c9e; stroke-width: 1.5; } .p99 { fill: none; stroke: #888; stroke-dasharray: 4 3; }
.dot { fill: #2b5c9e; } .noisy { fill: #fff; stroke: #777; stroke-width: 1.5; }
.invalid { stroke: #c00000; stroke-width: 2; fill: none; } .outlier { fill: none; stroke: #e08000; stroke-width: 2; }
.changepoint { stroke: #c00000; stroke-width: 1.5; stroke-dasharray: 6 3; }
.accepted { stroke: #1a8a1a; stroke-width: 2.5; } .refline { stroke: #999; stroke-dasharray: 2 2; }
.reference { fill: #2b5c9e; fill-opacity: 0.05; } .open-change { fill: #c00000; fill-opacity: 0.06; }
.verdict { padding: 0.5em 1em; border: 1px solid #ccc; background: #fafafa; }
"""
_FILTER_JS = """
(function () {
  const selects = Array.from(document.querySelectorAll("select[data-filter]"));
  const rows = Array.from(document.querySelectorAll("#cells tbody tr"));
  const count = document.getElementById("shown");
  function apply() {
    let shown = 0;
    for (const row of rows) {
      const ok = selects.every(s => s.value === "" || row.dataset[s.dataset.filter] === s.value);
      row.hidden = !ok;
      if (ok) shown += 1;
    }
    count.textContent = String(shown);
  }
  selects.forEach(s => s.addEventListener("change", apply));
  apply();
})();
"""


def _page(title: str, body: str, script: str = "") -> str:
    js = f"<script>{script}</script>" if script else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>{body}{js}</body></html>\n")


def _vclass(verdict: str) -> str:
    return "v-" + verdict.split(" (")[0].replace(" ", "-")


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.4g}"


def _p50_text(p: RunPoint | None) -> str:
    """'0.271 [0.265, 0.280] 75%' (the run's p50 with its interval over processes and the interval's level)."""
    if p is None or p.p50_ms is None:
        return "—" if p is None else p.status
    ci = f" [{p.p50_ci_ms[0]:.4g}, {p.p50_ci_ms[1]:.4g}]" if p.p50_ci_ms else ""
    level = f" {100 * p.p50_ci_level:.4g}%" if p.p50_ci_ms and p.p50_ci_level else ""
    return f"{p.p50_ms:.4g}{ci}{level}"


def _change_text(c: CellHistory) -> str:
    if c.rel_change is None:
        return "—"
    ci = f" [{100 * c.rel_ci[0]:+.1f}%, {100 * c.rel_ci[1]:+.1f}%]" if c.rel_ci else ""
    return f"{100 * c.rel_change:+.1f}%{ci}"


def index_html(cells: Sequence[CellHistory], title: str, note: str = "") -> str:
    """The index: one row per cell, filterable by machine, model, backend (and verdict) with inline JS."""
    def options(name: str, values: list[str]) -> str:
        opts = "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in sorted(set(values)))
        return (f'<label>{name}<select data-filter="{name}"><option value="">all</option>{opts}</select></label>')

    filters = "".join([options("machine", [c.machine for c in cells]), options("model", [c.model for c in cells]),
                       options("backend", [c.backend for c in cells]),
                       options("verdict", [c.verdict for c in cells])])
    several = len({(c.machine, c.config_hash, c.fingerprint_id) for c in cells}) > len({c.machine for c in cells})
    rows = []
    for c in cells:
        last = c.latest
        which = (f'<br><small>config {escape(c.config_hash)} · fingerprint {escape(c.fingerprint_id)}</small>'
                 if several else "")  # a machine with several configurations: the gate judges each on its own
        rows.append(
            f'<tr data-machine="{escape(c.machine)}" data-model="{escape(c.model)}" '
            f'data-backend="{escape(c.backend)}" data-verdict="{escape(c.verdict)}">'
            f"<td>{escape(c.machine)}</td><td>{escape(c.model)}</td>"
            f'<td><a href="{CELLS_DIR}/{escape(c.slug)}.html">{escape(c.label)}</a>{which}</td>'
            f'<td class="num">{len(c.points)}</td><td class="num">{escape(_p50_text(last))}</td>'
            f'<td class="{_vclass(c.verdict)}">{escape(c.verdict)}</td><td class="num">{escape(_change_text(c))}</td>'
            f"<td>{sparkline([p.p50_ms for p in c.points])}</td>"
            f'<td class="{_vclass(c.accuracy_verdict or "—")}">{escape(c.accuracy_verdict or "—")}</td></tr>')
    n_reg = sum(1 for c in cells if c.verdict == REGRESSION)
    n_unsure = sum(1 for c in cells if c.verdict == INCONCLUSIVE)
    body = (f"<h1>{escape(title)}</h1>"
            f'<p class="note">{len(cells)} cells; {n_reg} with an open regression, {n_unsure} inconclusive. '
            "Verdicts, change points and outliers are those of <code>bench compare --history</code> on each "
            "configuration's newest run. Sparklines are downsampled (min and max of each of "
            f"{60} buckets); each cell's page holds every run. {escape(note)}</p>"
            f'<p class="filters">{filters} <span id="shown">{len(cells)}</span> shown</p>'
            '<table id="cells"><thead><tr><th>machine</th><th>model</th><th>cell</th><th>runs</th>'
            "<th>latest p50 ms [interval] level</th><th>open verdict</th><th>change [95% CI]</th>"
            "<th>p50 over runs</th><th>accuracy (paired)</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")
    return _page(title, body, _FILTER_JS)


def _marks(c: CellHistory, p: RunPoint) -> str:
    out = []
    if p.run_id in c.change_points:
        out.append("change point")
    if c.since == p.run_id:
        out.append(f"open {c.verdict} since")
    if p.run_id in c.outliers:
        out.append("outlier")
    out += [f"accepted by {a.who}: {a.reason}" for a in c.accepted if a.run_id == p.run_id]
    if c.reference and p.run_id == c.reference[0]:
        out.append("reference level starts")
    return "; ".join(out)


def cell_html(c: CellHistory, title: str) -> str:
    """A cell's page: the gate's verdict, the figures, the accepted changes and a table of every run."""
    meta = (f"machine {c.machine} · {c.model} · fingerprint {c.fingerprint_id} · config {c.config_hash} · "
            f"{len(c.points)} runs")
    verdict = (f'<div class="verdict"><b class="{_vclass(c.verdict)}" id="verdict">{escape(c.verdict)}</b> '
               f"{escape(_change_text(c))}<br>{escape(c.verdict_text)}</div>")
    legend = ('<p class="legend">Blue line: p50 per run; band: its interval over processes; dashed grey: p99; '
              "red crosses: INVALID runs; hollow circles: runs with noisy processes; orange rings: outliers the gate "
              "set aside; dashed red lines: change points; green lines: accepted changes; light blue span: the "
              "reference level; light red span: the open change. Hover a mark for its run.</p>")
    parts = [f'<p><a href="../index.html">← all cells</a></p><h1>{escape(c.label)}</h1>'
             f'<p class="note">{escape(meta)}</p>', verdict, "<h2>p50 per run</h2>", history_svg(c), legend]
    if c.change_points or c.outliers:
        parts.append('<ul id="gate-marks">'
                     + "".join(f'<li class="changepoint-item" data-run="{escape(r)}">change point at run '
                               f"{escape(r)}</li>" for r in c.change_points)
                     + "".join(f'<li class="outlier-item" data-run="{escape(r)}">outlier run {escape(r)}</li>'
                               for r in c.outliers) + "</ul>")
    parts.append("<h2>Accepted changes</h2>")
    if c.accepted:
        parts.append('<ul id="accepted">' + "".join(
            f'<li class="acceptance" data-run="{escape(a.run_id)}">run {escape(a.run_id)}: accepted by '
            f"<b>{escape(a.who)}</b> at {escape(a.created)}{' (' + escape(a.scope) + ')' if a.scope else ''}: "
            f'<span class="reason">{escape(a.reason)}</span></li>' for a in c.accepted) + "</ul>")
    else:
        parts.append('<p class="note">none</p>')
    ratio = ratio_svg(c)
    if ratio:
        parts += ["<h2>Paired ratio to the reference arm</h2>",
                  '<p class="note">candidate p50 / reference-arm p50 measured in the same run.</p>', ratio]
    acc = accuracy_svg(c)
    if acc:
        parts += ["<h2>Accuracy per run</h2>", f'<p class="note">Newest run: {escape(c.accuracy_verdict or "—")} '
                  "(McNemar's paired test against the reference run, as the gate runs it).</p>", acc]
    rows = []
    for p in reversed(c.points):  # newest first, as `bench history`
        cls = "invalid" if not p.valid else ("noisy" if p.noisy else "")
        flags = "INVALID: " + "; ".join(p.invalid_reasons) if not p.valid else "valid"
        rows.append(
            f'<tr class="{cls}" data-run="{escape(p.run_id)}"><td>{escape(p.run_id)}</td>'
            f"<td>{escape(p.created[:19])}</td><td>{escape(p.commit[:12])}</td><td>{escape(p.status)}</td>"
            f'<td class="num">{escape(_p50_text(p))}</td><td class="num">{_ms(p.p99_ms)}</td><td>{escape(flags)}</td>'
            f'<td class="num">{f"{p.noisy}/{p.processes}" if p.processes else "—"}</td>'
            f'<td class="num">{"—" if p.ratio is None else f"{p.ratio:.3f}"}</td>'
            f'<td class="num">{"—" if p.accuracy is None else f"{100 * p.accuracy:.2f}%"}</td>'
            f'<td class="{_vclass(p.accuracy_verdict or "—")}">{escape(p.accuracy_verdict or "—")}'
            f'{" (" + escape(p.accuracy_text) + ")" if p.accuracy_text and p.accuracy_verdict not in QUIET else ""}'
            "</td>"
            f"<td>{escape(_marks(c, p))}</td></tr>")
    parts.append('<h2>Runs</h2><table id="runs"><thead><tr><th>run</th><th>created</th><th>commit</th><th>status</th>'
                 "<th>p50 ms [interval] level</th><th>p99 ms</th><th>validity</th><th>noisy processes</th>"
                 "<th>ratio to reference</th><th>accuracy</th><th>accuracy paired test</th><th>gate marks</th>"
                 "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    return _page(f"{c.label} — {title}", "".join(parts))


def write_site(cells: Sequence[CellHistory], out: Path, title: str = "Benchmark history",
               note: str = "") -> list[Path]:
    """index.html and one page per cell under `out` (each file written atomically); the paths written."""
    ordered = sorted(cells, key=lambda c: (c.machine, c.model, c.backend, c.variant, c.device, c.scenario,
                                           c.batch_size, c.config_hash))
    (out / CELLS_DIR).mkdir(parents=True, exist_ok=True)
    paths = []
    for c in ordered:
        p = out / CELLS_DIR / f"{c.slug}.html"
        write_text_atomic(p, cell_html(c, title))
        paths.append(p)
    index = out / "index.html"
    write_text_atomic(index, index_html(ordered, title, note))
    return [index, *paths]
