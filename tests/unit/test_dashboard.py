"""`bench report --history`: the static history site shows the gate's own truth (the change points and verdicts
`bench compare --history` gives, the acceptances `bench accept` stored), opens in a real headless Chromium without
console errors or network, marks INVALID and noisy runs, and refuses bad input with one line."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import harness.cli.entry as cli
from harness.cli._dashboard_data import Selection, build_cells, model_of
from harness.history.store import ResultsStore
from reports.dashboard import write_site
from reports.dashboard_figures import SPARK_POINTS, downsample, sparkline
from reports.dashboard_model import CellHistory, RunPoint

CHROMIUM = Path("/usr/bin/chromium")
SLOW = {("openvino", "l1-int8"): 1.25}  # a planted +25% step from run s0 on
SMALL = {"backends": ("openvino", "onnxruntime"), "variants": ("l1-int8", "dense-fp32"), "batch_sizes": (1,),
         "n": 120}


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", ("compare", "accept", "history", "report"))
    return cli.main


def _history(url: str, make_run, **extra: Any) -> str:
    """4 runs at one level, then 6 with openvino/l1-int8 25% slower; run b2 INVALID for onnxruntime/l1-int8."""
    with ResultsStore(url) as store:
        for i in range(4):
            store.save_run(make_run(f"b{i}", seed=i, created=f"2026-01-0{i + 1}T02:00:00Z", **SMALL,
                                    invalid=(("onnxruntime", "l1-int8"),) if i == 2 else (), **extra))
        for i in range(6):
            store.save_run(make_run(f"s{i}", seed=10 + i, created=f"2026-01-1{i}T02:00:00Z", factors=SLOW, **SMALL,
                                    **extra))
    return url


def _site(bench, url: str, out: Path, *more: str) -> Path:
    assert bench(["report", "--history", "--store", url, "--out", str(out), *more]) == 0
    return out


def _links(index: Path) -> list[str]:
    return re.findall(r'href="(cells/[^"]+\.html)"', index.read_text(encoding="utf-8"))


def _page_of(site: Path, label_part: str) -> str:
    """The cell page whose title holds `label_part` (exactly one)."""
    pages = [p for p in (site / "cells").glob("*.html") if f"<h1>{label_part}</h1>" in p.read_text(encoding="utf-8")]
    assert len(pages) == 1, (label_part, pages)
    return pages[0].read_text(encoding="utf-8")


def _compare_json(bench, url: str, capsys) -> dict[str, Any]:
    capsys.readouterr()
    bench(["compare", "--store", url, "--history", "--json"])
    return json.loads(capsys.readouterr().out)


def test_the_site_draws_the_change_points_and_verdicts_compare_history_gives(tmp_path, make_run, bench, capsys):
    url = _history(f"sqlite:///{tmp_path / 'h.sqlite'}", make_run)
    site = _site(bench, url, tmp_path / "site")
    doc = _compare_json(bench, url, capsys)
    measured = [c for c in doc["cells"] if c["latency"] != "not measured"]
    assert len(_links(site / "index.html")) == len(measured) == 8
    for c in measured:  # every cell: the page's marks are the gate's, at the same runs
        label = f"{c['backend']}/{c['variant']} {c['scenario']} b{c['batch_size']}"
        page = _page_of(site, label)
        hist, runs = c["history"], c["series_runs"]
        drawn = set(re.findall(r'class="changepoint" data-run="([^"]+)"', page))
        assert drawn == {runs[i] for i in hist["change_points"]}, label
        assert set(re.findall(r'class="outlier" data-run="([^"]+)"', page)) == {runs[i] for i in hist["outliers"]}
        assert f'id="verdict">{c["latency"]}<' in page, label
    with ResultsStore(url) as store:
        cells = {c.label: c for c in build_cells(store, Selection())}
    for c in measured:  # the line drawn is the series the gate judged, value for value
        cell = cells[f"{c['backend']}/{c['variant']} {c['scenario']} b{c['batch_size']}"]
        assert [(p.run_id, p.p50_ms) for p in cell.points if p.in_series] == \
            list(zip(c["series_runs"], c["series_ms"], strict=True))
    step = _page_of(site, "openvino/l1-int8 latency b1")
    assert 'class="changepoint" data-run="s0"' in step and 'class="open-change" data-run="s0"' in step
    assert "regressed since run 5 (s0)" in step
    index = (site / "index.html").read_text(encoding="utf-8")
    assert index.count('class="v-regression">regression<') == doc["regressions"] == 2


def test_an_acceptance_shows_its_mark_and_reason_and_ends_the_regression(tmp_path, make_run, bench, capsys):
    url = _history(f"sqlite:///{tmp_path / 'h.sqlite'}", make_run)
    assert bench(["accept", "--store", url, "s0", "--reason", "OpenVINO 2026.5 is slower here; expected",
                  "--who", "ana", "--backend", "openvino"]) == 0
    site = _site(bench, url, tmp_path / "site")
    step = _page_of(site, "openvino/l1-int8 latency b1")
    assert 'class="accepted" data-run="s0"' in step
    (item,) = re.findall(r'<li class="acceptance" data-run="s0">(.*?)</li>', step)
    assert "<b>ana</b>" in item and "OpenVINO 2026.5 is slower here; expected" in item and "openvino" in item
    assert 'id="verdict">regression<' not in step
    rows = dict(re.findall(r'<tr class="[^"]*" data-run="([^"]+)">(.*?)</tr>', step))
    assert 'class="v-reference">reference<' in rows["s0"] and 'class="v-reference"' in rows["b0"]  # paired
    assert 'class="v-no-change">no change<' in rows["s1"] and 'class="v-no-change">no change<' in rows["b3"]
    other = _page_of(site, "onnxruntime/l1-int8 latency b1")  # the acceptance named openvino only
    assert 'class="accepted"' not in other and '<p class="note">none</p>' in other
    doc = _compare_json(bench, url, capsys)
    assert doc["regressions"] == 0


def test_invalid_and_noisy_runs_are_drawn_differently_and_nothing_is_downsampled(tmp_path, make_run):
    url = _history(f"sqlite:///{tmp_path / 'h.sqlite'}", make_run)
    with ResultsStore(url) as store:
        noisy = make_run("n0", seed=99, created="2026-01-20T02:00:00Z", factors=SLOW, **SMALL)
        for row in noisy["results"]:
            if row.get("rounds"):
                row["rounds"][0]["noisy"] = "steal 12%"
        store.save_run(noisy)
        cells = build_cells(store, Selection())
    write_site(cells, tmp_path / "site")
    page = _page_of(tmp_path / "site", "onnxruntime/l1-int8 latency b1")
    assert re.findall(r'<path d="[^"]+" class="invalid" data-run="([^"]+)"', page) == ["b2"]
    assert re.findall(r'<circle [^>]*class="noisy" data-run="([^"]+)"', page) == ["n0"]
    assert '<tr class="invalid" data-run="b2">' in page and '<tr class="noisy" data-run="n0">' in page
    assert "INVALID: CoV 0.31 above max_cov 0.25" in page and ">1/3<" in page
    cell = next(c for c in cells if c.label == "onnxruntime/l1-int8 latency b1")
    assert [p.run_id for p in cell.points] == [*(f"b{i}" for i in range(4)), *(f"s{i}" for i in range(6)), "n0"]
    assert page.count("<tr class=") == 11  # every run in the table


def test_a_long_series_is_downsampled_in_the_sparkline_only(tmp_path):
    values: list[float | None] = [1.0] * 1000
    values[517] = 9.0  # a one-run spike must survive the sparkline's downsampling
    pts = downsample(values)
    assert len(pts) <= 2 * SPARK_POINTS and max(v for _, v in pts) == 9.0 and (517.0, 9.0) in pts
    assert sparkline(values).count(",") == len(pts)
    cell = CellHistory("m", "VGG16-FER x0.25", "openvino", "l1-int8", "cpu", "latency", 1,
                       points=[RunPoint(f"r{i}", f"2026-01-01T{i % 24:02d}:00:00Z", p50_ms=v) for i, v in
                               enumerate(values)])
    write_site([cell], tmp_path / "site")
    page = (tmp_path / "site" / "cells" / f"{cell.slug}.html").read_text(encoding="utf-8")
    p50_path = re.search(r'<path d="([^"]*)" class="p50"/>', page)
    assert p50_path is not None and p50_path.group(1).count("L") == 999  # every run drawn on the cell's page
    assert page.count('<tr class=""') == 1000


def test_paired_ratio_model_names_and_accuracy_verdicts(tmp_path, make_run):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    with ResultsStore(url) as store:
        for i in range(4):
            run = make_run(f"p{i}", seed=i, created=f"2026-02-0{i + 1}T02:00:00Z", backends=("openvino",),
                           variants=("l1-int8",), batch_sizes=(), n=120,
                           accuracies={("openvino", "l1-int8"): 0.70} if i == 3 else None)
            run["config"]["model"] = {"width": 0.25, "in_channels": 1}
            (row,) = run["results"]
            ref = {**row, "arm": "reference", "rounds": [{**r, "p50_ms": r["p50_ms"] / 2} for r in row["rounds"]]}
            run["results"].append(ref)  # the paired reference arm ran twice as fast in the same run
            store.save_run(run)
        cells = build_cells(store, Selection())
    (cell,) = cells
    assert cell.model == "VGG16-FER x0.25"
    assert [round(p.ratio or 0, 6) for p in cell.points] == [2.0] * 4
    assert [p.accuracy_verdict for p in cell.points] == ["reference", "no change", "no change", "regression"]
    assert "McNemar" in cell.points[-1].accuracy_text and cell.accuracy_verdict == "regression"
    assert model_of({"model": "VGG16-FER x1"}, {"config": {"model": {"width": 0.25}}}) == "VGG16-FER x1"
    assert model_of({}, {"config": {}}) == "unknown model"
    write_site(cells, tmp_path / "site")
    page = (tmp_path / "site" / "cells" / f"{cell.slug}.html").read_text(encoding="utf-8")
    assert 'class="ratio"' in page and "Paired ratio to the reference arm" in page and ">2.000<" in page


def test_filters_select_cells_and_bad_input_is_one_error_line(tmp_path, make_run, bench, capsys):
    empty = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    assert bench(["report", "--history", "--store", empty, "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the results store") and "holds no runs" in err and err.count("\n") == 1
    assert not (tmp_path / "e" / "index.html").exists()
    url = _history(f"sqlite:///{tmp_path / 'h.sqlite'}", make_run)
    for flags, what in ((["--machine", "nope"], "error: --machine nope: no stored run measured it; machines in "
                                                "the store: fp-fp-a"),
                        (["--backend", "tensorrt-x"], "error: --backend tensorrt-x"),
                        (["--model", "x9"], "error: --model 'x9' matches no stored cell's model"),
                        (["s0"], "error: --history shows every stored run")):
        capsys.readouterr()
        assert bench(["report", "--history", "--store", url, "--out", str(tmp_path / "bad"), *flags]) == 2, flags
        err = capsys.readouterr().err
        assert err.startswith(what) and err.count("\n") == 1, err
    assert not (tmp_path / "bad").exists()
    site = _site(bench, url, tmp_path / "ov", "--backend", "openvino", "--machine", "fp-fp-a", "--model", "unknown")
    assert len(_links(site / "index.html")) == 4 and "onnxruntime" not in (site / "index.html").read_text()


def _cluster_night(make_run, run_id: str, seed: int, created: str, slow: bool) -> dict[str, Any]:
    """One night of a two-node cluster run: nodes m1 and m2 measured the same cells (m1 the planted step when
    `slow`), each row naming its node, each node's fingerprint with its own commit (m2's uncommitted)."""
    nodes = {"m1": make_run(run_id, seed=seed, created=created, factors=SLOW if slow else None, **SMALL),
             "m2": make_run(run_id, seed=seed + 100, created=created, **SMALL)}
    run = nodes["m1"]
    run["machines"] = {m: {"target": f"t-{m}", "fingerprint": {"id": f"fp-{m}", "machine_id": m,
                                                               "cpu": {"brand": "Node CPU"},
                                                               "git": {"commit": f"c-{m}", "dirty": m == "m2"}}}
                       for m in nodes}
    run["results"] = [{**r, "machine_id": m, "fingerprint_id": f"fp-{m}", "target": f"t-{m}"}
                      for m, night in nodes.items() for r in night["results"]]
    return run


def test_a_cluster_run_is_drawn_machine_by_machine_as_compare_history_splits_it(tmp_path, make_run, bench, capsys):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    with ResultsStore(url) as store:
        for i in range(4):
            store.save_run(_cluster_night(make_run, f"b{i}", i, f"2026-01-0{i + 1}T02:00:00Z", slow=False))
        for i in range(6):
            store.save_run(_cluster_night(make_run, f"s{i}", 10 + i, f"2026-01-1{i}T02:00:00Z", slow=True))
        cells = build_cells(store, Selection())
        only_m2 = build_cells(store, Selection(machines=["m2"]))
    gate = _compare_json(bench, url, capsys)["machines"]
    assert sorted(gate) == ["m1", "m2"] and {c.machine for c in cells} == {"m1", "m2"}
    assert {c.machine for c in only_m2} == {"m2"} and len(only_m2) == len(cells) // 2 == 8
    for cell in cells:  # each machine's line is the gate's series of that machine, value for value
        (c,) = [c for c in gate[cell.machine]["cells"] if f"{c['backend']}/{c['variant']} {c['scenario']} "
                f"b{c['batch_size']}" == cell.label]
        assert [(p.run_id, p.p50_ms) for p in cell.points if p.in_series] == \
            list(zip(c["series_runs"], c["series_ms"], strict=True)), (cell.machine, cell.label)
        assert cell.verdict == c["latency"], (cell.machine, cell.label)
        assert {p.commit for p in cell.points} == {"c-m1" if cell.machine == "m1" else "c-m2+dirty"}
    verdicts = {(c.machine, c.label): c.verdict for c in cells}
    assert verdicts[("m1", "openvino/l1-int8 latency b1")] == "regression"
    assert verdicts[("m2", "openvino/l1-int8 latency b1")] != "regression"
    with ResultsStore(f"sqlite:///{tmp_path / 'one.sqlite'}") as store:  # no history: one series of both nodes' rows
        store.save_run(_cluster_night(make_run, "c0", 0, "2026-01-01T02:00:00Z", slow=False))
        first = build_cells(store, Selection())[0]
    assert [p.commit for p in first.points] == ["c-m1", "c-m2+dirty"]  # each row's node's commit, not the driver's


def _chromium(page: Path, profile: Path) -> subprocess.CompletedProcess[str]:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=5000", "--dump-dom", page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    shutil.rmtree(profile, ignore_errors=True)
    return proc


@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")
def test_every_page_opens_in_headless_chromium_offline(tmp_path, make_run, bench):
    url = _history(f"sqlite:///{tmp_path / 'h.sqlite'}", make_run)
    site = _site(bench, url, tmp_path / "site", "--backend", "openvino")
    index = site / "index.html"
    pages = [index, *sorted((site / "cells").glob("*.html"))]
    assert sorted(_links(index)) == sorted(f"cells/{p.name}" for p in pages[1:]) and len(pages) == 5
    for p in pages:  # nothing to fetch: no src attribute anywhere, every link a page of the site
        text = p.read_text(encoding="utf-8")
        assert " src=" not in text and "http://" not in text and "https://" not in text, p
        assert set(re.findall(r'href="([^"]+)"', text)) <= {"../index.html", *_links(index)}, p
    for p in pages:
        proc = _chromium(p, tmp_path / "profile")
        assert proc.returncode == 0, proc.stderr[-2000:]
        console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
        assert console == [], (p.name, console)  # no console errors (nor any other console message)
        assert "<svg" in proc.stdout, p.name
    # the index's filter runs in the browser: choose a backend value the page offers and count the rows left
    probe = """<script>
window.addEventListener("load", () => {
  const s = document.querySelector('select[data-filter="verdict"]');
  s.value = "regression"; s.dispatchEvent(new Event("change"));
  const shown = Array.from(document.querySelectorAll("#cells tbody tr")).filter(r => !r.hidden).length;
  const p = document.createElement("pre"); p.id = "probe"; p.textContent = "SHOWN " + shown;
  document.body.appendChild(p);
});
</script>"""
    probed = site / "probed.html"
    probed.write_text(index.read_text(encoding="utf-8").replace("</body>", probe + "</body>"), encoding="utf-8")
    proc = _chromium(probed, tmp_path / "profile")
    assert "SHOWN 2" in proc.stdout, proc.stdout[-2000:]  # openvino/l1-int8 latency b1 and throughput b1


@pytest.mark.postgres
def test_postgres_and_sqlite_give_the_same_site(tmp_path, make_run, pg_url):
    lite = _history(f"sqlite:///{tmp_path / 'h.sqlite'}", make_run)
    pg = _history(pg_url(), make_run)
    sites = []
    for url, name in ((lite, "lite"), (pg, "pg")):
        with ResultsStore(url) as store:
            write_site(build_cells(store, Selection()), tmp_path / name)
        sites.append({p.relative_to(tmp_path / name): p.read_text(encoding="utf-8")
                      for p in (tmp_path / name).rglob("*.html")})
    assert sites[0] == sites[1] and len(sites[0]) == 9


def test_two_configurations_of_one_machine_are_two_rows_that_say_which(tmp_path):
    cells = [CellHistory("m", "VGG16-FER x0.25", "openvino", "l1-int8", "cpu", "latency", 1, config_hash=cfg,
                         fingerprint_id="fp", points=[RunPoint("r1", "2026-01-01T00:00:00Z", p50_ms=1.0)])
             for cfg in ("cfg-1", "cfg-2")]
    write_site(cells, tmp_path / "site")
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert len(set(_links(tmp_path / "site" / "index.html"))) == 2
    assert "config cfg-1 · fingerprint fp" in index and "config cfg-2 · fingerprint fp" in index
