"""Cluster runs on Ray: the same cells as `harness.orchestrate.runner`, on benchmark nodes of each hardware target.

Why Ray and not a home-made dispatcher: a node started by `bench worker start --target NAME` offers the custom
resources {"bench_slot": 1, "target:NAME": 1} and no CPUs, so a task asking for both lands on a node of that
target and at most one benchmark runs on a node at a time, while `max_retries=0` keeps a crashed cell a failed
cell (a retried benchmark would be timed twice under different conditions).

* The driver prepares artifacts and the test split, packs each directory as a tar keyed by a content hash
  (sha256 over the relative paths and file hashes) and puts it in Ray's object store once; the reference
  travels *inside a list*, so Ray does not fetch it before the task runs, and a node that already holds that
  hash in its cache (`BENCH_NODE_CACHE`, default ~/.cache/fer-bench/cluster) never downloads it again.
* On the node every cell runs exactly as locally: `harness.measure.launcher.run_cell_subprocess`, a fresh interpreter
  per cell with the process-group kill on timeout. Two nodes on one host (as in the tests) take turns through a
  host-wide `flock` (`BENCH_HOST_LOCK`), so no two cells are timed at once on one host.
* Each result comes back with the node's fingerprint and machine id; only the driver writes to the store.
* A node that dies or leaves costs its cells: a lost task is a row with status error and Ray's reason, and cells
  still waiting for a target with no live node left are cancelled with that reason. The run goes on.

This module imports Ray, and is imported only by `bench run --cluster` and `bench worker`.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import io
import json
import os
import random
import shutil
import socket
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from common.config import Config
from common.errors import UserError
from common.results import SCHEMA_VERSION
from fer.data import FerData

SLOT = "bench_slot"
TARGET_PREFIX = "target:"
TARGET_ENV = "BENCH_TARGET"
CACHE_ENV = "BENCH_NODE_CACHE"
LOCK_ENV = "BENCH_HOST_LOCK"
EXTRA = "pip install -e '.[cluster]' (the `cluster` extra installs Ray)"
POLL_S = 2.0
Progress = Callable[[str], None]


def import_ray() -> Any:
    """Ray, or one line naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise UserError(f"--cluster and `bench worker` need Ray, which is not installed: {EXTRA}") from None
    return ray


def target_resource(name: str) -> str:
    return TARGET_PREFIX + name


def check_target_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise UserError(f"--target {name!r}: use letters, digits, '-', '_' or '.' (e.g. edge-a, gpu-h100)")
    return name


# ---- content-addressed bundles ---------------------------------------------------------------------------
def content_hash(root: Path) -> str:
    """sha256 over (relative path, sha256 of the file) of every file under `root`, in sorted order."""
    h = hashlib.sha256()
    for p in sorted(x for x in root.rglob("*") if x.is_file()):
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        with p.open("rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()[:32]


def pack(root: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in sorted(x for x in root.rglob("*") if x.is_file()):
            tar.add(p, arcname=p.relative_to(root).as_posix(), recursive=False)
    return buf.getvalue()


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "fer-bench" / "cluster")


def materialize(digest: str, holder: list[Any]) -> Path:
    """The bundle's directory in this node's cache; fetched from the object store only on a cache miss."""
    ray = import_ray()
    root = cache_root()
    final = root / digest
    if (final / ".complete").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{digest}-"))
    with tarfile.open(fileobj=io.BytesIO(ray.get(holder[0])), mode="r") as tar:
        tar.extractall(tmp, filter="data")
    (tmp / ".complete").write_text(digest, encoding="utf-8")
    try:
        os.rename(tmp, final)
    except OSError:  # another node on this host unpacked it first
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# ---- on the node -----------------------------------------------------------------------------------------
@contextlib.contextmanager
def host_lock() -> Iterator[None]:
    """One timed cell per host: an exclusive flock on a host-wide file (stdlib; released if the process dies)."""
    path = Path(os.environ.get(LOCK_ENV) or Path(tempfile.gettempdir()) / "fer-bench-host.lock")
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@functools.lru_cache(maxsize=1)
def node_info() -> dict[str, Any]:
    """This node's machine id, target, fingerprint and host name (the machine id comes from the
    `bench worker start --machine-id` environment, else from the fingerprint)."""
    from harness.measure.fingerprint import fingerprint

    fp = fingerprint(None)
    return {"machine_id": fp["machine_id"], "target": os.environ.get(TARGET_ENV), "fingerprint": fp,
            "hostname": socket.gethostname()}


def node_cell(spec: dict[str, Any], artifact: tuple[str, list[Any]], data: tuple[str, list[Any]],
              timeout_s: float, threads: int) -> dict[str, Any]:
    """Run one cell on this node exactly as `bench run` does locally; the result carries the node's identity."""
    from backends.registry import probe
    from harness.measure.cell import CellSpec
    from harness.measure.launcher import run_cell_subprocess

    art_dir, data_dir = materialize(*artifact), materialize(*data)
    avail = probe(spec["backend"])
    if not avail.available:
        result: dict[str, Any] = {"status": "unavailable", "reason": avail.reason, "scenarios": []}
    else:
        with tempfile.TemporaryDirectory(prefix="bench-node-cell-") as tmp:
            work = Path(tmp)
            cell = replace(CellSpec(**spec), artifact=str(art_dir), images=str(data_dir / "test_images.npy"),
                           labels=str(data_dir / "test_labels.npy"), logits_out=str(work / "logits.npy"))
            with host_lock():
                start = time.time()  # wall clock: comparable across the nodes of one host
                result = run_cell_subprocess(cell, work / "cell", timeout_s, work / "cell.log", threads)
                result["host_slot"] = {"start": start, "end": time.time()}
    return {**result, "node": node_info()}


def node_identity() -> dict[str, Any]:
    """The node's identity and the harness's own overhead per iteration measured there."""
    from harness.measure.loop import harness_overhead_us

    return {**node_info(), "harness_overhead_us": harness_overhead_us()}


# ---- on the driver ---------------------------------------------------------------------------------------
def _alive_targets(ray: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in ray.nodes():
        if n.get("Alive"):
            for key in n.get("Resources", {}):
                if key.startswith(TARGET_PREFIX):
                    out[key[len(TARGET_PREFIX):]] = out.get(key[len(TARGET_PREFIX):], 0) + 1
    return out


def _bundle(ray: Any, root: Path) -> tuple[str, list[Any]]:
    return content_hash(root), [ray.put(pack(root))]


def run_grid_cluster(cfg: Config, artifacts: dict[str, Path], data: FerData, address: str, targets: list[str],
                     backends: list[str] | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Run every target x backend x variant cell on the cluster at `address`; the results dict of `run_grid`,
    with each row's `machine_id`, `fingerprint_id` and `target`, and `machines` (id -> fingerprint, target)."""
    from backends.registry import check_name, resolve_config
    from harness.measure.fingerprint import fingerprint
    from harness.measure.launcher import cell_spec
    from harness.orchestrate.runner import _failed_rows, _rows_from_cell, _summary, cell_settings, new_run_id

    say = progress or (lambda _msg: None)
    ray = import_ray()
    cfg = resolve_config(cfg)
    names = [check_name(b) for b in (backends or cfg.benchmark.backends)]
    targets = list(dict.fromkeys(check_target_name(t) for t in targets))
    if not targets:
        raise UserError("--cluster needs at least one --target NAME (a node started with `bench worker start`)")
    variants = [v for v in cfg.benchmark.variants if v in artifacts]
    config = cfg.to_dict()
    sections = [s for s in config if s not in ("store", "machine")]
    try:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False, configure_logging=False)
    except Exception as e:  # Ray raises ConnectionError, RuntimeError, ValueError... for a bad address
        raise UserError(f"--cluster {address}: cannot connect to a Ray cluster there ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''})") from None
    try:
        alive = _alive_targets(ray)
        missing = [t for t in targets if t not in alive]
        if missing:
            raise UserError(f"--target {', '.join(missing)}: no live benchmark node offers it; nodes of the cluster "
                            f"at {address} offer: {', '.join(sorted(alive)) or 'none'} "
                            "(start one with `bench worker start --target NAME`)")
        remote_cell = ray.remote(max_retries=0, num_cpus=0)(node_cell)
        remote_info = ray.remote(max_retries=0, num_cpus=0)(node_identity)
        with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
            data_dir = Path(tmp) / "data"
            data_dir.mkdir()
            np.save(data_dir / "test_images.npy", data.test.as_float())
            np.save(data_dir / "test_labels.npy", np.asarray(data.test.labels, dtype=np.int64))
            data_bundle = _bundle(ray, data_dir)
            art_bundles = {v: _bundle(ray, Path(artifacts[v])) for v in variants}
        say(f"shipping {len(art_bundles)} artifacts + test split by content hash to targets {', '.join(targets)}")
        machines: dict[str, dict[str, Any]] = {}
        target_machine: dict[str, str] = {}
        infos = {t: remote_info.options(resources={SLOT: 1, target_resource(t): 1}).remote() for t in targets}
        for t, ref in infos.items():
            info = ray.get(ref, timeout=120)
            machines[info["machine_id"]] = {"fingerprint": info["fingerprint"], "target": t,
                                            "hostname": info["hostname"],
                                            "harness_overhead_us": info["harness_overhead_us"]}
            target_machine[t] = info["machine_id"]
            say(f"target {t}: machine {info['machine_id']} ({info['hostname']})")
        pending: dict[Any, tuple[tuple[str, str, str], int]] = {}
        rows_by_cell: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        per_process = cell_settings(cfg)
        rng = random.Random(cfg.benchmark.round_seed)
        cells = [(t, bk, v) for t in targets for bk in names for v in cfg.benchmark.variants]
        for key in cells:
            if key[2] not in artifacts:
                reason = f"no artifact for variant {key[2]!r}"
                rows_by_cell[key] = _failed_rows(per_process, key[1], key[2], artifacts, "error", reason)
        runnable = [k for k in cells if k not in rows_by_cell]
        # Rounds as on one machine: every cell once per round in a fresh process, the order shuffled per round
        # (a node's one benchmark slot runs its tasks one at a time, roughly in submission order).
        for rnd in range(int(cfg.benchmark.rounds)):
            order = list(runnable)
            rng.shuffle(order)
            for key in order:
                t, backend, variant = key
                spec = cell_spec(per_process, backend, Path(artifacts[variant]), Path("-"), Path("-"), Path("-"))
                if rnd > 0:  # accuracy comes from the first round's process only
                    spec = replace(spec, accuracy=False)
                ref = remote_cell.options(resources={SLOT: 1, target_resource(t): 1}).remote(
                    asdict(spec), art_bundles[variant], data_bundle, cfg.benchmark.cell_timeout_s,
                    cfg.benchmark.threads)
                pending[ref] = (key, rnd)
        results_of: dict[tuple[str, str, str], list[dict[str, Any]]] = {k: [] for k in runnable}
        total, done = len(pending), 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for ref in ready:
                key, rnd = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as e:  # the node died, the worker crashed, the task was cancelled
                    first = (str(e).strip().splitlines() or [""])[0][:300]
                    result = {"status": "error", "scenarios": [],
                              "reason": f"lost on the cluster ({type(e).__name__}): {first}"}
                results_of[key].append({"round": rnd, "started": result.get("started", ""), "result": result})
                done += 1
                t, backend, variant = key
                say(f"[{done}/{total}] round {rnd + 1} {t} {backend} {variant}: "
                    f"{result.get('status')} {result.get('reason', '') or ''}".rstrip())
            if not ready:
                alive = _alive_targets(ray)
                for ref, (key, rnd) in list(pending.items()):
                    if key[0] not in alive:  # nothing left that can run it: it would wait forever
                        ray.cancel(ref, force=True)
                        pending.pop(ref)
                        results_of[key].append({"round": rnd, "started": "", "result": {
                            "status": "error", "scenarios": [],
                            "reason": f"no live node of target {key[0]} is left in the cluster"}})
                        done += 1
                        say(f"[{done}/{total}] {' '.join(key)}: error (target {key[0]} has no live node)")
    finally:
        ray.shutdown()
    for key, procs in results_of.items():
        t, backend, variant = key
        procs.sort(key=lambda p: int(p["round"]))
        first = procs[0]["result"] if procs else {}
        node = first.get("node") or {}
        if node.get("machine_id"):
            machines.setdefault(node["machine_id"], {"fingerprint": node.get("fingerprint"), "target": t,
                                                     "hostname": node.get("hostname")})
        rows = _rows_from_cell(per_process, backend, variant, artifacts, procs)
        rows_by_cell[key] = rows
        say(f"{t} {backend} {variant}: {_summary(rows)}")
    rows_out: list[dict[str, Any]] = []
    for t in targets:
        for backend in names:
            for variant in cfg.benchmark.variants:
                key = (t, backend, variant)
                res0: dict[str, Any] = (results_of.get(key) or [{}])[0].get("result") or {}
                node = res0.get("node") or {}
                mid = node.get("machine_id") or target_machine[t]
                fp = machines[mid]["fingerprint"] or {}
                slot = res0.get("host_slot")
                for r in rows_by_cell.get(key, []):
                    r.update(machine_id=mid, fingerprint_id=fp.get("id"), target=t, host_slot=slot)
                    rows_out.append(r)
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": new_run_id(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "fingerprint": fingerprint(config),  # the driver's; each row names the machine that measured it
        "config": config,
        "config_hash": cfg.section_hash(*sections),
        "dataset": data.name,
        "synthetic": bool(data.synthetic),
        # the worst machine's (each machine's own is in `machines`)
        "harness_overhead_us": max((float(m.get("harness_overhead_us") or 0.0) for m in machines.values()),
                                   default=0.0),
        "results": rows_out,
        "agreement": [],
        "cluster": {"address": address, "targets": targets},
        "machines": machines,
    }


# ---- worker nodes ----------------------------------------------------------------------------------------
def ray_cli() -> list[str]:
    """The `ray` command of this interpreter (works where only a --target install put Ray on the path)."""
    import sys

    import_ray()
    return [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]


def worker_start_command(address: str, target: str, node_ip: str | None, block: bool,
                         object_store_mb: int | None) -> list[str]:
    resources = {SLOT: 1, target_resource(check_target_name(target)): 1}
    cmd = [*ray_cli(), "start", f"--address={address}", f"--resources={json.dumps(resources)}", "--num-cpus=0",
           "--num-gpus=0", "--disable-usage-stats"]
    if node_ip:
        cmd.append(f"--node-ip-address={node_ip}")
    if object_store_mb:
        cmd.append(f"--object-store-memory={int(object_store_mb) * 1024 * 1024}")
    if block:
        cmd.append("--block")
    return cmd


def worker_env(target: str, machine_id: str | None) -> dict[str, str]:
    """The environment of the node's processes: its target and machine id travel to every task this way."""
    from harness.measure.fingerprint import MACHINE_ENV

    env = dict(os.environ)
    env[TARGET_ENV] = target
    # the cell subprocess must see the node's GPUs as the machine has them, not Ray's zero-GPU mask
    env["RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"] = "1"
    if machine_id:
        env[MACHINE_ENV] = machine_id
    else:
        env.pop(MACHINE_ENV, None)
    return env


def wait_for(pred: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.5)
    return False
