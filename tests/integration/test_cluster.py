"""`bench run --cluster` on a real local Ray cluster: a head and two benchmark nodes (targets edge-a and edge-b,
started with `bench worker start`), all on 127.0.0.1, dashboard off, small object stores; every process is
started here in its own session and killed here by process group."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
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

from harness.fleet.cluster import ray_cli, run_grid_cluster  # noqa: E402

pytestmark = pytest.mark.cluster
OBJECT_STORE_MB = 80
MACHINES = {"edge-a": "edge-a-box", "edge-b": "edge-b-box"}


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
        for target, machine in MACHINES.items():  # one at a time: two raylets starting at once on 2 busy cores
            self._spawn(target, [sys.executable, "-m", "harness.cli", "worker", "start", "--block",
                                 "--address", self.address, "--target", target, "--machine-id", machine,
                                 "--node-ip-address", "127.0.0.1", "--object-store-mb", str(OBJECT_STORE_MB)])
            self._wait_for(target)

    def _wait_for(self, target: str) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs.values()):
                break  # a node exited: its log says why
            if target in self.targets():
                return
            time.sleep(1)
        raise RuntimeError("the local Ray cluster did not come up: " + self.logs())

    def targets(self) -> set[str]:
        """Targets offered by live nodes (asked from a short-lived driver)."""
        code = (f"import ray, json; ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False); "
                "print(json.dumps([k for n in ray.nodes() if n['Alive'] for k in n['Resources'] "
                "if k.startswith('target:')])); ray.shutdown()")
        out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=60)
        try:
            return {k.split(":", 1)[1] for k in json.loads(out.stdout.strip().splitlines()[-1])}
        except (IndexError, json.JSONDecodeError):
            return set()

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


def _cfg(variants: list[str], min_duration_s: float) -> Config:
    sets = {"benchmark.threads": "1", "benchmark.min_duration_s": str(min_duration_s),
            "benchmark.min_iterations": "20", "benchmark.warmup_s": "0.02", "benchmark.batch_sizes": "[2]",
            "benchmark.cell_timeout_s": "120", "benchmark.variants": json.dumps(variants)}
    return resolve_config(load_config(None, [f"{k}={v}" for k, v in sets.items()]))


def test_two_targets_store_rows_for_both_machines(cluster: LocalCluster, artifacts: dict[str, Path],
                                                  tiny_data: FerData, tmp_path: Path) -> None:
    cfg = _cfg(["dense-fp32"], 0.1)
    log: list[str] = []
    run = run_grid_cluster(cfg, artifacts, tiny_data, cluster.address, ["edge-a", "edge-b"],
                           backends=["onnxruntime"], progress=log.append)
    rows = run["results"]
    assert {(r["target"], r["machine_id"]) for r in rows} == set(MACHINES.items())
    assert all(r["status"] == "ok" for r in rows), [r["reason"] for r in rows]
    assert set(run["machines"]) == set(MACHINES.values())
    assert all(m["harness_overhead_us"] > 0 for m in run["machines"].values()) and run["harness_overhead_us"] > 0
    assert all(r["fingerprint_id"] == run["machines"][r["machine_id"]]["fingerprint"]["id"] for r in rows)
    with ResultsStore(f"sqlite:///{tmp_path / 'fleet.sqlite'}") as store:  # the driver alone writes
        store.save_run(run)
        stored = store.all_results()
    assert {(r["target"], r["machine_id"]) for r in stored} == set(MACHINES.items())
    assert len(stored) == len(rows) == 4


def test_nodes_on_one_host_take_turns_and_cache_artifacts(cluster: LocalCluster, artifacts: dict[str, Path],
                                                          tiny_data: FerData) -> None:
    variants = [v for v in ("dense-fp32", "l1-fp32") if v in artifacts]
    cache = Path(cluster.env["BENCH_NODE_CACHE"])
    before = {p.name: p.stat().st_mtime for p in cache.iterdir()}
    run = run_grid_cluster(_cfg(variants, 0.3), artifacts, tiny_data, cluster.address, ["edge-a", "edge-b"],
                           backends=["onnxruntime"])
    # every variant's bundle unpacked once on this host; the dense one was cached by the first test
    after = {p.name: p.stat().st_mtime for p in cache.iterdir() if not p.name.startswith(".")}
    assert len(after) == len(variants) + 1  # + the test split
    assert all(after[k] == v for k, v in before.items() if k in after)
    # two nodes on one host: the timed cells never overlap
    slots = sorted({(r["host_slot"]["start"], r["host_slot"]["end"]) for r in run["results"]})
    assert len(slots) == 2 * len(variants) and all(r["status"] == "ok" for r in run["results"])
    assert all(end <= nxt for (_, end), (nxt, _) in itertools.pairwise(slots))


def test_a_killed_node_costs_only_its_cells(cluster: LocalCluster, artifacts: dict[str, Path],
                                            tiny_data: FerData) -> None:
    variants = [v for v in ("dense-fp32", "l1-fp32") if v in artifacts]
    cfg = _cfg(variants, 2.0)
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
    cluster.kill("edge-b")
    victim.kill()  # the cell runs in its own session; a real dead machine takes it along
    t.join(timeout=150)
    assert not t.is_alive()
    rows = out["run"]["results"]
    a = [r for r in rows if r["target"] == "edge-a"]
    b = [r for r in rows if r["target"] == "edge-b"]
    assert a and all(r["status"] == "ok" for r in a)
    lost = [r for r in b if r["status"] == "error"]
    assert lost and all(r["reason"] for r in lost)  # the killed cell (and any after it) with the reason
    assert all(r["machine_id"] == "edge-b-box" for r in b)
