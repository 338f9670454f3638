"""`bench run --cluster` on a real local Ray cluster: a head and three benchmark nodes (two of target edge-a, one
of edge-b, started with `bench worker start`), all on 127.0.0.1, dashboard off, small object stores; every
process is started here in its own session and killed here by process group."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from backends.registry import resolve_config
from common.config import Config, load_config
from fer.data import FerData
from harness.history.store import ResultsStore

ray = pytest.importorskip("ray", reason="the cluster extra (Ray) is not installed: pip install -e '.[cluster]'")

import harness.cli.entry as cli  # noqa: E402
from harness.fleet.cluster import content_hash, ray_cli, run_grid_cluster  # noqa: E402

pytestmark = pytest.mark.cluster
OBJECT_STORE_MB = 80
# (machine id, target): two nodes of target edge-a, one of edge-b
NODES = {"edge-a-box": "edge-a", "edge-a2-box": "edge-a", "edge-b-box": "edge-b"}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = dict(os.environ)
        self.env.update(BENCH_NODE_CACHE=str(root / "cache"), BENCH_HOST_LOCK=str(root / "host.lock"),
                        RAY_health_check_period_ms="1000", RAY_health_check_failure_threshold="3",
                        RAY_USAGE_STATS_ENABLED="0")

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = (self.root / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def start(self) -> None:
        self._spawn("head", [*ray_cli(), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
                             f"--port={self.port}", "--num-cpus=0", "--num-gpus=0", "--include-dashboard=false",
                             "--disable-usage-stats", f"--object-store-memory={OBJECT_STORE_MB * 2**20}",
                             f"--temp-dir={self.root / 'ray'}"])
        started: list[str] = []
        for machine, target in NODES.items():  # one at a time: two raylets starting at once on 2 busy cores
            started.append(target)
            for attempt in (1, 2, 3):  # Ray gives a raylet 30 s to register; on 2 cores shared by others it may not
                self._spawn(machine, [sys.executable, "-m", "harness.cli", "worker", "start", "--block",
                                      "--address", self.address, "--target", target, "--machine-id", machine,
                                      "--node-ip-address", "127.0.0.1", "--object-store-mb", str(OBJECT_STORE_MB)])
                if self._wait_for(started):
                    break
                if attempt == 3 or self.procs[machine].poll() is None:
                    raise RuntimeError("the local Ray cluster did not come up: " + self.logs())
                self.procs.pop(machine)

    def _wait_for(self, targets: list[str]) -> bool:
        """True once live nodes offer exactly `targets`; False if a node process exited first."""
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            time.sleep(4)  # each poll starts a Ray driver: asking too often slows the raylet being waited for
            if any(p.poll() is not None for p in self.procs.values()):
                return False  # a node exited: its log says why
            if sorted(self.targets()) == sorted(targets):
                return True
        return False

    def targets(self) -> list[str]:
        """The target of every live node, one entry per node (asked from a short-lived driver)."""
        code = (f"import ray, json; ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False); "
                "print(json.dumps([k for n in ray.nodes() if n['Alive'] for k in n['Resources'] "
                "if k.startswith('target:')])); ray.shutdown()")
        out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=60)
        try:
            return [k.split(":", 1)[1] for k in json.loads(out.stdout.strip().splitlines()[-1])]
        except (IndexError, json.JSONDecodeError):
            return []

    def logs(self) -> str:
        return " | ".join(f"{p.name}: {p.read_text(errors='replace')[-400:]}" for p in self.root.glob("*.log"))

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for name in list(self.procs):
            self.kill(name)
        for p in psutil.process_iter(["cmdline"]):  # cells run in their own session: end ours by pid
            if str(self.root / "cache") in " ".join(p.info["cmdline"] or []):
                p.kill()


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    root = Path(tempfile.mkdtemp(prefix="bc-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    c = LocalCluster(root)
    try:
        c.start()
        os.environ["BENCH_NODE_CACHE"] = c.env["BENCH_NODE_CACHE"]
        yield c
    finally:
        c.stop()
        os.environ.pop("BENCH_NODE_CACHE", None)


def _cfg(variants: list[str], min_duration_s: float, cache: Path, roofline: bool = False) -> Config:
    sets = {"benchmark.threads": "1", "benchmark.min_duration_s": str(min_duration_s),
            "benchmark.min_iterations": "20", "benchmark.warmup_s": "0.02", "benchmark.batch_sizes": "[2]",
            "benchmark.cell_timeout_s": "120", "benchmark.variants": json.dumps(variants),
            "benchmark.roofline": json.dumps(roofline), "store.cache_dir": json.dumps(str(cache))}
    return resolve_config(load_config(None, [f"{k}={v}" for k, v in sets.items()]))


@pytest.fixture(scope="module")
def fleet_run(cluster: LocalCluster, artifacts: dict[str, Path], tiny_data: FerData) -> dict[str, Any]:
    """Two targets, one of them with two nodes: ONNX Runtime and OpenVINO on dense-fp32 and l1-int8, 3 rounds,
    each node measuring its own roofline."""
    cfg = _cfg(["dense-fp32", "l1-int8"], 0.1, cluster.root / "refcache", roofline=True)
    log: list[str] = []
    run = run_grid_cluster(cfg, artifacts, tiny_data, cluster.address, ["edge-a", "edge-b"],
                           backends=["onnxruntime", "openvino"], progress=log.append)
    return {"run": run, "log": log}


def test_every_row_names_one_machine_and_every_node_gets_its_rows(fleet_run: dict[str, Any]) -> None:
    run = fleet_run["run"]
    rows = run["results"]
    assert all(r["status"] == "ok" for r in rows), [r["reason"] for r in rows]
    # one set of rows per node: the two edge-a nodes are not pooled into one row
    assert {(r["machine_id"], r["target"]) for r in rows} == set(NODES.items())
    cells = [(r["machine_id"], r["backend"], r["variant"], r["scenario"], r["batch_size"]) for r in rows]
    assert len(cells) == len(set(cells)) == 3 * 2 * 2 * 2  # nodes x backends x variants x scenarios
    n = int(run["config"]["benchmark"]["rounds"])  # the configured rounds (5 by default since the gate's intervals)
    for r in rows:  # every process of the row ran on the row's node, which the node itself reported
        assert r["process_machines"] == [r["machine_id"]] * n and len(r["rounds"]) == n
        assert r["node_id"] == run["machines"][r["machine_id"]]["node_id"]
        assert not any("other machines" in x for x in r["invalid_reasons"])
    assert len({m["node_id"] for m in run["machines"].values()}) == 3
    assert all(m["harness_overhead_us"] > 0 for m in run["machines"].values()) and run["harness_overhead_us"] > 0
    assert all(r["fingerprint_id"] == run["machines"][r["machine_id"]]["fingerprint"]["id"] for r in rows)


def test_each_node_runs_its_rounds_in_the_shuffled_order_one_at_a_time(fleet_run: dict[str, Any]) -> None:
    run = fleet_run["run"]
    orders = run["rounds"]["order_by_machine"]
    assert set(orders) == set(NODES) and run["rounds"]["count"] == int(run["config"]["benchmark"]["rounds"])
    for machine, rounds in orders.items():
        assert len(rounds) == run["rounds"]["count"]
        assert all(sorted(o) == sorted(rounds[0]) and len(o) == 4 for o in rounds)
        # the order run is the order recorded: each cell's process of round k started after round k-1 ended
        mine = [r for r in run["results"] if r["machine_id"] == machine and r["scenario"] == "latency"]
        starts = {f"{r['backend']}/{r['variant']}": [s["start"] for s in r["host_slots"]] for r in mine}
        for k, order in enumerate(rounds):
            times = [starts[c][k] for c in order]
            assert times == sorted(times), (machine, k, order)
        assert max(starts[c][0] for c in rounds[0]) < min(starts[c][1] for c in rounds[1])
    assert any(len({tuple(o) for o in rounds}) > 1 for rounds in orders.values())  # shuffled per round


def test_timed_processes_are_alike_and_accuracy_comes_from_an_untimed_process_on_the_rows_machine(
        fleet_run: dict[str, Any]) -> None:
    """Interchangeable processes on every node, as locally: no timed process of any round ran an accuracy pass (the
    only place a cell writes logits), every round did the same steps; each row's accuracy and logits come from one
    more, untimed process of that cell on the row's own machine, run after that machine's timed rounds."""
    run = fleet_run["run"]
    n = run["rounds"]["count"]
    for r in run["results"]:
        where = (r["machine_id"], r["backend"], r["variant"], r["scenario"])
        steps = [tuple(p["steps"]) for p in r["rounds"]]
        assert len(steps) == n and len(set(steps)) == 1, (where, steps)  # round 0 included
        assert steps[0][:3] == ("load", "first_infer", "describe"), where
        assert not any("accuracy" in s for s in steps[0]), (where, steps[0])
        acc = r["accuracy_process"]
        assert acc["machine_id"] == r["machine_id"] and acc["status"] == "ok", (where, acc)
        assert "accuracy" in acc["steps"], (where, acc["steps"])
        assert not any(s.startswith(("latency:", "throughput:")) for s in acc["steps"]), acc["steps"]  # untimed
        assert acc["host_slot"]["start"] >= max(s["end"] for s in r["host_slots"]), where
        assert r["accuracy"] is not None
    log = fleet_run["log"]
    accuracy_lines = [line for line in log if "] accuracy " in line]
    assert len(accuracy_lines) == len(NODES) * 2 * 2  # one per cell per node
    assert all(" (fixed " in line for line in log if "] round " in line and ": ok" in line)  # fixed cost per process


def test_every_row_on_every_machine_carries_its_agreement(fleet_run: dict[str, Any]) -> None:
    run = fleet_run["run"]
    for r in run["results"]:
        assert r["agrees"] is True and r["agreement"] >= 0.99, (r["machine_id"], r["backend"], r["variant"])
        assert r["reference"].startswith("pytorch-reference")
    entries = {(a["machine_id"], a["backend"], a["variant"]) for a in run["agreement"]}
    assert entries == {(m, b, v) for m in NODES for b in ("onnxruntime", "openvino") for v in ("dense-fp32", "l1-int8")}
    assert any("reference dense-fp32" in line for line in fleet_run["log"])


def test_every_fleet_row_stores_its_per_image_correctness_for_the_paired_accuracy_test(
        fleet_run: dict[str, Any]) -> None:
    """`bench compare` tests accuracy with McNemar on per-image correctness: fleet rows carry it as local rows do,
    from the logits the node's accuracy process sent back (and it scores exactly the row's accuracy)."""
    from common.stats.accuracy import unpack_correct

    for r in fleet_run["run"]["results"]:
        where = (r["machine_id"], r["backend"], r["variant"], r["scenario"])
        if r["scenario"] == "latency":
            assert r.get("correct_bits"), where
        if r.get("correct_bits"):
            bits = unpack_correct(r["correct_bits"])
            assert bits is not None and bits.size > 0 and float(bits.mean()) == pytest.approx(r["accuracy"]), where


def test_each_node_measures_its_own_roofline(fleet_run: dict[str, Any]) -> None:
    run = fleet_run["run"]
    peaks = {m: info["machine_peak_gmac_per_s"] for m, info in run["machines"].items()}
    assert all(p.get("fp32", 0) > 0 for p in peaks.values()), peaks
    for r in run["results"]:
        p = peaks[r["machine_id"]]
        key = "int8" if r["precision"] == "int8" else "fp32"
        assert r["fraction_of_peak"] == pytest.approx(r["gmac_per_s"] / p[key])
        # the roofline with the variant's intensity, as locally: below the attainable roof of the row's own machine
        assert r["arithmetic_intensity"] > 0 and r["attainable_gmac_per_s"] <= p[key]
        assert r["fraction_of_attainable"] == pytest.approx(r["gmac_per_s"] / r["attainable_gmac_per_s"])
        assert r["fraction_of_attainable"] <= 1.0, (r["machine_id"], r["backend"], r["variant"], r["scenario"])


def test_select_on_the_stored_fleet_run_refuses_an_unverified_row(fleet_run: dict[str, Any], tmp_path: Path,
                                                                  capsys: Any) -> None:
    db = tmp_path / "fleet.sqlite"
    url = f"sqlite:///{db}"
    with ResultsStore(url) as store:  # the driver alone writes
        store.save_run(fleet_run["run"])
        stored = store.all_results()
    assert {(r["machine_id"], r["target"]) for r in stored} == set(NODES.items())
    assert all(r["agrees"] is True for r in stored)
    capsys.readouterr()

    def select(*flags: str) -> dict[str, Any]:
        # exit 1 when nothing is feasible: under load the short timings here may all be INVALID
        assert cli.main(["select", "--store", url, "--json", *flags]) in (0, 1)
        return dict(json.loads(capsys.readouterr().out))

    def unverified(sel: dict[str, Any]) -> list[tuple[str, str, str]]:
        return [(r["machine_id"], r["backend"], r["variant"]) for r in sel["rejected"]
                if r["why"].startswith("unverified")]

    assert unverified(select()) == []
    planted = ("edge-a2-box", "openvino", "l1-int8")  # clear `agrees` of one stored row on one machine
    with sqlite3.connect(db) as conn:
        pk, row = next((pk, row) for pk, text in conn.execute("SELECT id, row FROM results")
                       for row in [json.loads(text)]
                       if (row["machine_id"], row["backend"], row["variant"], row["scenario"]) == (*planted, "latency"))
        row.update(agrees=None, agreement=None, reference=None)
        conn.execute("UPDATE results SET row = ? WHERE id = ?", (json.dumps(row), pk))
    sel = select()
    assert unverified(sel) == [planted]
    refused_text = sel["message"].split("Refused 1 unverified choice(s)", 1)[1]  # and says which
    assert "openvino" in refused_text and "/l1-int8" in refused_text and "machine edge-a2-box" in refused_text
    assert all((r["machine_id"], r["backend"], r["variant"]) != planted for r in sel["ranked"])
    # the same cell on the other edge-a node was checked: not refused for that
    assert ("edge-a-box", "openvino", "l1-int8") not in unverified(sel)
    allowed = select("--allow-unverified")
    assert unverified(allowed) == [] and "Refused" not in allowed["message"]
    choice = next(r for r in [*allowed["ranked"], *allowed["rejected"]]
                  if (r["machine_id"], r["backend"], r["variant"]) == planted)
    assert choice["agrees"] is None  # admitted, and marked as such


def test_nodes_on_one_host_take_turns_and_cache_artifacts(cluster: LocalCluster, artifacts: dict[str, Path],
                                                          tiny_data: FerData) -> None:
    variants = [v for v in ("dense-fp32", "l1-fp32") if v in artifacts]
    cache = Path(cluster.env["BENCH_NODE_CACHE"])
    before = {p.name: p.stat().st_mtime for p in cache.iterdir()}
    run = run_grid_cluster(_cfg(variants, 0.3, cluster.root / "refcache"), artifacts, tiny_data, cluster.address,
                           ["edge-a", "edge-b"], backends=["onnxruntime"])
    # every variant's bundle unpacked once on this host; the dense one was cached by an earlier test
    after = {p.name: p.stat().st_mtime for p in cache.iterdir() if not p.name.startswith(".")}
    assert {content_hash(artifacts[v]) for v in variants} <= set(after)
    assert all(after[k] == v for k, v in before.items() if k in after)  # none unpacked twice
    # three nodes on one host: the processes (every round of every cell, and the accuracy processes) never overlap
    slots = sorted({(s["start"], s["end"]) for r in run["results"]
                    for s in [*r["host_slots"], r["accuracy_process"]["host_slot"]]})
    assert len(slots) == 3 * len(variants) * (run["rounds"]["count"] + 1)
    assert all(r["status"] == "ok" for r in run["results"])
    assert all(end <= nxt for (_, end), (nxt, _) in itertools.pairwise(slots))


def test_a_killed_node_costs_only_its_cells(cluster: LocalCluster, artifacts: dict[str, Path],
                                            tiny_data: FerData) -> None:
    variants = [v for v in ("dense-fp32", "l1-fp32") if v in artifacts]
    cfg = _cfg(variants, 2.0, cluster.root / "refcache")
    out: dict[str, Any] = {}

    def drive() -> None:
        out["run"] = run_grid_cluster(cfg, artifacts, tiny_data, cluster.address, ["edge-a", "edge-b"],
                                      backends=["onnxruntime"])

    t = threading.Thread(target=drive)
    t.start()
    deadline = time.monotonic() + 90
    victim = None
    while victim is None and time.monotonic() < deadline:  # wait until edge-b times a cell, then kill the node
        for p in psutil.process_iter(["cmdline"]):
            if "harness.measure.cell" in " ".join(p.info["cmdline"] or []):
                try:
                    if p.environ().get("BENCH_TARGET") == "edge-b":
                        victim = p
                except psutil.Error:
                    continue
        time.sleep(0.2)
    assert victim is not None, "edge-b never ran a cell"
    cluster.kill("edge-b-box")
    victim.kill()  # the cell runs in its own session; a real dead machine takes it along
    t.join(timeout=150)
    assert not t.is_alive()
    rows = out["run"]["results"]
    a = [r for r in rows if r["target"] == "edge-a"]
    b = [r for r in rows if r["target"] == "edge-b"]
    assert {r["machine_id"] for r in a} == {"edge-a-box", "edge-a2-box"} and all(r["status"] == "ok" for r in a)
    assert all(r["agrees"] is True for r in a)
    lost = [r for r in b if r["status"] == "error"]
    assert lost and all(r["reason"] for r in lost)  # the killed cell (and any after it) with the reason
    assert all(r["machine_id"] == "edge-b-box" for r in b)
