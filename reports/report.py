"""`write_report(run, out_dir)`: report.md, self-contained report.html and the PNG figures of one run.

The run is parsed into a `common.records.Run` once, here, and that one typed object goes to every table and figure
(`bench run`/`bench sweep` hand the dict they wrote, `bench report` the stored run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.atomic import write_bytes_atomic
from common.records import Run, as_run
from common.results import hardware_summary, is_reference
from reports.figures import render_all
from reports.frontier import frontier_tables
from reports.frontier_figures import render_sweep
from reports.html import render_html
from reports.markdown import render_markdown
from reports.modes_figure import ModeStrip, modes_figure
from reports.roofline_figure import roofline_figure
from reports.tables import all_tables, candidate_view, dataset_label

REPORT_MD = "report.md"
REPORT_HTML = "report.html"


def report_title(run: Run) -> str:
    """The report's title: which model(s), on which machine, which run: every number below is about these."""
    models = sorted({r.model for r in run.results if r.model}) or ["model not recorded"]
    fp = run.fingerprint.model_dump() if run.fingerprint is not None else None
    where = hardware_summary(fp)
    if run.machines:
        where = f"{len(run.machines)} machines (cluster run; each machine's hardware and int8 path in the Run table)"
    return f"Benchmark report — {', '.join(models)} on {where} — run {run.run_id}"


def mode_strips(run: Run) -> list[ModeStrip]:
    """One strip per batch-1 latency cell with processes (the reference arm's beside its candidate)."""
    out = []
    for r in run.results:
        if r.status != "ok" or r.scenario != "latency" or r.batch_size != 1 or not r.rounds:
            continue
        p50s = [float(x.p50_ms) for x in r.rounds if x.p50_ms]
        arm = " (reference)" if is_reference(r) else ""
        out.append(ModeStrip(f"{r.backend} {r.variant}{arm}", p50s, r.modes.fast_ms if r.modes else None,
                             r.modes.threshold_ms if r.modes else None, reference=is_reference(r)))
    return out


def write_report(run_in: Run | dict[str, Any], out_dir: Path) -> list[Path]:
    """Write report.md, report.html and the figures of `run` into `out_dir`; returns the written paths.

    Each file is written to a temp file and renamed, so a reader never sees half a report.
    """
    run = as_run(run_in)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = all_tables(run)
    tables[1:1] = frontier_tables(run)  # a sweep's frontier right after the run summary
    cand = candidate_view(run)
    figures = {**render_sweep(run), **render_all(cand), "roofline.png": (
        "Roofline per device: achieved GMAC/s vs arithmetic intensity, one point per row, under the compute peak "
        "of each precision and the memory bandwidth (DRAM solid, cache dashed)", roofline_figure(cand)),
        "modes.png": (
        "Per-process p50 of every batch-1 latency cell (one dot per process): at 2 threads on small VMs a cell's "
        "processes land in a few levels; black: the fast mode's level, dashed red: above it a process counts as "
        "slow (red dots). Grey: the reference arm. The gate judges the fast level and the slow share.",
        modes_figure(mode_strips(run)))}
    title = report_title(run)
    synthetic = dataset_label(run).endswith("(SYNTHETIC data)")
    written: list[Path] = []
    for name, (_caption, png) in figures.items():
        if png is not None:
            write_bytes_atomic(out_dir / name, png)
            written.append(out_dir / name)
    md = render_markdown(title, tables, [(n, c, png is not None) for n, (c, png) in figures.items()])
    page = render_html(title, tables, [(n, c, png) for n, (c, png) in figures.items()], synthetic)
    write_bytes_atomic(out_dir / REPORT_MD, md.encode("utf-8"))
    write_bytes_atomic(out_dir / REPORT_HTML, page.encode("utf-8"))
    return [out_dir / REPORT_MD, out_dir / REPORT_HTML, *written]
