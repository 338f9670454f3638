"""Tables and figures -> one self-contained HTML file: inline CSS, figures as base64 PNG data URIs,
no scripts, fonts or external resources of any kind (opens offline)."""

from __future__ import annotations

import base64
import html

from reports.tables import Table

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } tr:nth-child(even) td { background: #fafafa; }
td.invalid { color: #a40000; font-weight: 600; } td.failed { color: #7a5a00; }
p.note { font-size: 0.85em; color: #555; margin: 0.2em 0; }
figure { margin: 1em 0; } figcaption { font-size: 0.9em; color: #444; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.synthetic { background: #fff3cd; border: 1px solid #e0c060; padding: 0.5em 1em; }
"""


def _cls(cell: str) -> str:
    if cell.startswith("INVALID") or "(INVALID)" in cell:
        return ' class="invalid"'
    if cell.startswith(("error", "timeout", "unavailable")):
        return ' class="failed"'
    return ""


def table_html(t: Table) -> str:
    """One table as an HTML section."""
    e = html.escape
    out = [f'<section id="{e(t.anchor)}"><h2>{e(t.title)}</h2>']
    if t.rows and t.header:
        head = "<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in t.header) + "</tr></thead>" if any(t.header) else ""
        out.append(f"<table>{head}<tbody>")
        for row in t.rows:
            out.append("<tr>" + "".join(f"<td{_cls(c)}>{e(c)}</td>" for c in row) + "</tr>")
        out.append("</tbody></table>")
    out.extend(f'<p class="note">{e(n)}</p>' for n in t.notes)
    out.append("</section>")
    return "\n".join(out)


def render_html(title: str, tables: list[Table], figures: list[tuple[str, str, bytes | None]],
                synthetic: bool) -> str:
    """The whole report; `figures` is [(file name, caption, PNG bytes or None)]."""
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{e(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{e(title)}</h1>"]
    if synthetic:
        parts.append('<p class="synthetic">Data set: SynthFER, generated SYNTHETIC faces. '
                     "Accuracies measure the pipeline, not real-world emotion recognition.</p>")
    parts.append(table_html(tables[0]))
    parts.append('<section id="figures"><h2>Figures</h2>')
    for name, caption, png in figures:
        if png is None:
            parts.append(f'<p class="note">{e(caption)}: nothing to plot in this run.</p>')
            continue
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{e(caption)}" '
                     f'data-file="{e(name)}"><figcaption>{e(caption)}</figcaption></figure>')
    parts.append("</section>")
    parts.extend(table_html(t) for t in tables[1:])
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
