"""Tables and figures -> a Markdown report (GitHub pipe tables; figures as relative PNG links)."""

from __future__ import annotations

from reports.tables import Table


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def table_md(t: Table) -> str:
    """One table as a Markdown section."""
    out = [f"## {t.title}", ""]
    if t.rows and t.header:
        header = [h or " " for h in t.header]
        out.append("| " + " | ".join(_esc(h) for h in header) + " |")
        out.append("|" + "|".join("---" for _ in header) + "|")
        out.extend("| " + " | ".join(_esc(c) for c in row) + " |" for row in t.rows)
        out.append("")
    out.extend(f"*{_esc(n)}*  " for n in t.notes)
    return "\n".join(out).rstrip() + "\n"


def render_markdown(title: str, tables: list[Table], figures: list[tuple[str, str, bool]]) -> str:
    """The whole report; `figures` is [(file name, caption, drawn?)]."""
    parts = [f"# {title}", ""]
    parts.append(table_md(tables[0]))
    parts.append("## Figures\n")
    for name, caption, drawn in figures:
        parts.append(f"![{caption}]({name})\n" if drawn else f"*{caption}: nothing to plot in this run.*\n")
    parts.extend(table_md(t) for t in tables[1:])
    return "\n".join(parts)
