"""Cluster runs on Ray: the same cells as a local `bench run`, on benchmark nodes of each hardware target.

Why Ray and not a home-made dispatcher: a node started by `bench worker start --target NAME` offers the custom
resources {"bench_slot": 1, "target:NAME": 1} and no CPUs, so at most one benchmark runs on a node at a time,
while `max_retries=0` keeps a crashed cell a failed cell (a retried benchmark would be timed twice under
different conditions).

* One machine per row: every task is pinned to one node (`NodeAffinitySchedulingStrategy`, hard), all rounds of
  a cell run on the same node, and a target with several nodes gives one set of rows per node. Each row names its
  node's machine id, and a row whose processes report any other node is marked INVALID (never pooled).
* Rounds as on one machine: each node runs its cells one at a time, round by round, in an order shuffled per
  round with `benchmark.round_seed` (the driver submits a node's next cell when its last one ends, so the order
  is kept exactly; it is stored per machine under `rounds.order_by_machine`).
* Interchangeable processes, as locally: every timed process of every round gets the same spec
  (`harness.measure.rows.timed_spec`: no accuracy pass, no logits); after its timed rounds each node runs one more,
  untimed process per cell whose first process was ok, for the accuracy and the logits (rows: `accuracy_process`).
* The driver prepares artifacts and the test split, packs each directory as a tar keyed by a content hash
  (sha256 over the relative paths and file hashes) and puts it in Ray's object store once; the reference
  travels *inside a list*, so Ray does not fetch it before the task runs, and a node that already holds that
  hash in its cache (`BENCH_NODE_CACHE`, default ~/.cache/fer-bench/cluster) never downloads it again.
* Agreement everywhere: before any cell is timed the driver computes each variant's reference logits (PyTorch,
  or ONNX Runtime fp32 for an imported ONNX file; cached by content hashes, `harness.measure.agreement`); each
  node's accuracy process returns its test-split logits (compressed, ~60 KB), and every row on every node
  gets `agreement`/`agrees`/`reference`, exactly as a local run.
* On the node every cell runs exactly as locally: `harness.measure.launcher.run_cell_subprocess`, a fresh interpreter
  per cell with the process-group kill on timeout. Two nodes on one host (as in the tests) take turns through a
  host-wide `flock` (`BENCH_HOST_LOCK`), so no two cells are timed at once on one host.
* Each node measures its own identity (fingerprint, machine id), the harness's overhead and, with
  `benchmark.roofline`, its own roofs, before any cell and the same way as locally (`measure_peaks`: the median
  of a fixed number of processes, the GPU's too on a node with one); the rows of that node get
  `fraction_of_peak` and, with each variant's intensity, `fraction_of_attainable` from them, and a row above its
  node's roof is marked `roof_measured_low` (the roofs are never measured again to fit the rows). Only the
  driver writes to the store.
* A node that dies or leaves costs its cells: a lost task is a row with status error and Ray's reason, and the
  node's cells not yet run are recorded as lost with that reason. The run goes on.

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
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from common.config import Config
from common.errors import UserError
from common.records import as_row
from common.results import SCHEMA_VERSION, new_run_id
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
    """This node's machine id, target, fingerprint, host name and Ray node id (the machine id comes from the
    `bench worker start --machine-id` environment, else from the fingerprint)."""
    from harness.measure.fingerprint import fingerprint

    fp = fingerprint(None)
    return {"machine_id": fp["machine_id"], "target": os.environ.get(TARGET_ENV), "fingerprint": fp,
            "hostname": socket.gethostname(), "node_id": _ray_node_id()}


def _ray_node_id() -> str | None:
    try:
        return str(import_ray().get_runtime_context().get_node_id())
    except Exception:  # not inside a Ray worker (a unit test calling this directly)
        return None


def pack_logits(path: Path) -> bytes:
    """A .npy file's bytes, zlib-compressed, for the trip back to the driver."""
    return zlib.compress(path.read_bytes(), 6)


def unpack_logits(blob: bytes) -> np.ndarray:
    """The logits array from `pack_logits` (np.load without pickles: the bytes are data, never code)."""
    return np.asarray(np.load(io.BytesIO(zlib.decompress(blob)), allow_pickle=False))


def node_cell(spec: dict[str, Any], artifact: tuple[str, list[Any]], data: tuple[str, list[Any]],
              timeout_s: float, threads: int) -> dict[str, Any]:
    """Run one cell process on this node exactly as `bench run` does locally; the result carries the node's identity
    and, for the accuracy process (the only spec with `logits_out`), its test-split logits (`logits_npy_z`)."""
    from backends.registry import probe
    from harness.measure.cell import CellSpec, throughput_logits_path
    from harness.measure.launcher import run_cell_subprocess

    art_dir, data_dir = materialize(*artifact), materialize(*data)
    avail = probe(spec["backend"])
    if not avail.available:
        result: dict[str, Any] = {"status": "unavailable", "reason": avail.reason, "scenarios": []}
    else:
        with tempfile.TemporaryDirectory(prefix="bench-node-cell-") as tmp:
            work = Path(tmp)
            logits = work / "logits.npy"
            cell = replace(CellSpec(**spec), artifact=str(art_dir), images=str(data_dir / "test_images.npy"),
                           labels=str(data_dir / "test_labels.npy"),
                           logits_out=str(logits) if spec.get("logits_out") else "")  # timed processes: none
            with host_lock():
                start = time.time()  # wall clock: comparable across the nodes of one host
                result = run_cell_subprocess(cell, work / "cell", timeout_s, work / "cell.log", threads)
                result["host_slot"] = {"start": start, "end": time.time()}
            if result.get("status") == "ok" and logits.is_file():
                result["logits_npy_z"] = pack_logits(logits)
                tp = throughput_logits_path(logits)  # a throughput model compiled apart: its own answers too
                if tp.is_file():
                    result["throughput_logits_npy_z"] = pack_logits(tp)
    return {**result, "node": node_info()}


def node_identity(threads: int, roofline: bool) -> dict[str, Any]:
    """The node's identity, the harness's own overhead per iteration and (with `roofline`) its roofs, measured
    there before any cell while holding the host's benchmark lock (both are timings)."""
    from harness.measure.loop import harness_overhead_us

    with host_lock():
        overhead = harness_overhead_us()
    peaks = node_peaks(threads) if roofline else {}
    return {**node_info(), "harness_overhead_us": overhead, "machine_peak_gmac_per_s": peaks}


def node_peaks(threads: int) -> dict[str, Any]:
    """This machine's roofs through the measure room's public entry (`measure_peaks(threads)`: the CPU's, and the
    GPU's under "gpu" where the node has one); the one place a cluster node measures the roofline, so a change of
    that module is a change here only."""
    try:
        from harness.measure.roofline import measure_peaks
    except ImportError as e:
        return {"error": f"no roofline here: {e}"}
    with host_lock():  # a timing: nodes of one host take turns
        return dict(measure_peaks(threads))


# ---- on the driver ---------------------------------------------------------------------------------------
def alive_nodes(ray: Any) -> dict[str, str]:
    """{Ray node id: target} of every live benchmark node."""
    out: dict[str, str] = {}
    for n in ray.nodes():
        if n.get("Alive"):
            for key in n.get("Resources", {}):
                if key.startswith(TARGET_PREFIX):
                    out[str(n["NodeID"])] = key[len(TARGET_PREFIX):]
    return out


def _bundle(ray: Any, root: Path) -> tuple[str, list[Any]]:
    return content_hash(root), [ray.put(pack(root))]


def _pinned(remote_fn: Any, node_id: str, target: str) -> Any:
    """The Ray remote function `remote_fn` as a task that runs on node `node_id` only (hard affinity: never
    elsewhere, and it fails if that node is gone) in that node's one benchmark slot."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return remote_fn.options(resources={SLOT: 1, target_resource(target): 1},
                             scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False))


def _remote(ray: Any, fn: Any) -> Any:
    return ray.remote(max_retries=0, num_cpus=0)(fn)


Cell = tuple[str, str]  # (backend, variant)
ACCURACY = -1  # the "round" of a cell's untimed accuracy process


@dataclass
class NodeQueue:
    """One node's processes: its cells in an order shuffled per round, one at a time (the order is the order run),
    then one untimed accuracy process per cell whose first process was ok (with `accuracy`), as locally."""

    node_id: str
    target: str
    machine_id: str
    cells: list[Cell]
    rounds: int
    rng: random.Random
    accuracy: bool = True
    round: int = -1
    order: list[Cell] = field(default_factory=list)
    pos: int = 0
    orders: list[list[str]] = field(default_factory=list)
    procs: dict[Cell, list[dict[str, Any]]] = field(default_factory=dict)
    accuracy_results: dict[Cell, dict[str, Any]] = field(default_factory=dict)

    def next_cell(self) -> tuple[Cell, int] | None:
        """The next (cell, round) to run, round ACCURACY for the accuracy processes after every timed round, or
        None when all is done. A cell whose first process failed is not run again (as locally)."""
        while self.pos >= len(self.order):
            if self.round >= self.rounds:
                return None
            self.round += 1
            self.pos = 0
            if self.round == self.rounds:  # the timed rounds are over: the accuracy processes, untimed
                self.order = [c for c in self.cells if self._first_ok(c)] if self.accuracy else []
                continue
            self.order = [c for c in self.cells if self.round == 0 or self._first_ok(c)]
            self.rng.shuffle(self.order)
            self.orders.append([f"{b}/{v}" for b, v in self.order])
        self.pos += 1
        return self.order[self.pos - 1], ACCURACY if self.round == self.rounds else self.round

    def _first_ok(self, cell: Cell) -> bool:
        procs = self.procs.get(cell) or []
        return bool(procs) and procs[0]["result"].get("status") == "ok"

    def record(self, cell: Cell, rnd: int, result: dict[str, Any]) -> None:
        if rnd == ACCURACY:
            self.accuracy_results[cell] = result
            return
        self.procs.setdefault(cell, []).append({"round": rnd, "started": result.get("started", ""),
                                                "result": result})

    def lose_the_rest(self, reason: str) -> int:
        """Record every cell this node has not run yet as lost (status error, `reason`); how many."""
        n = 0
        while (nxt := self.next_cell()) is not None:
            self.record(nxt[0], nxt[1], {"status": "error", "scenarios": [], "reason": reason})
            n += 1
        return n


def run_grid_cluster(cfg: Config, artifacts: dict[str, Path], data: FerData, address: str, targets: list[str],
                     backends: list[str] | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Run every backend x variant cell on every node of each target at `address`; the results dict of
    `run_grid`, with each row's `machine_id`, `fingerprint_id`, `target` and `node_id`, the agreement of every row
    with its variant's reference, and `machines` (id -> fingerprint, target, peaks)."""
    from backends.registry import check_name, resolve_config
    from harness.measure.agreement import reference_logits
    from harness.measure.fingerprint import fingerprint
    from harness.measure.launcher import cell_spec
    from harness.measure.roofline import variant_traffic
    from harness.measure.rows import failed_rows, row_summary
    from harness.measure.settings import cell_settings

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
    per_process = cell_settings(cfg)
    b = cfg.benchmark
    try:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False, configure_logging=False)
    except Exception as e:  # Ray raises ConnectionError, RuntimeError, ValueError... for a bad address
        raise UserError(f"--cluster {address}: cannot connect to a Ray cluster there ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''})") from None
    try:
        nodes = {nid: t for nid, t in alive_nodes(ray).items() if t in targets}
        missing = [t for t in targets if t not in nodes.values()]
        if missing:
            offered = sorted(set(alive_nodes(ray).values()))
            raise UserError(f"--target {', '.join(missing)}: no live benchmark node offers it; nodes of the cluster "
                            f"at {address} offer: {', '.join(offered) or 'none'} "
                            "(start one with `bench worker start --target NAME`)")
        with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
            work = Path(tmp)
            data_dir = work / "data"
            data_dir.mkdir()
            images, labels = data_dir / "test_images.npy", data_dir / "test_labels.npy"
            np.save(images, data.test.as_float())
            np.save(labels, np.asarray(data.test.labels, dtype=np.int64))
            # references first, on the driver, before any node times anything (a driver may share a host)
            (work / "logs").mkdir()
            refs = {v: reference_logits(per_process, v, Path(artifacts[v]), images, labels, work, work / "logs", say)
                    for v in variants}
            data_bundle = _bundle(ray, data_dir)
            art_bundles = {v: _bundle(ray, Path(artifacts[v])) for v in variants}
            say(f"shipping {len(art_bundles)} artifacts + test split by content hash to {len(nodes)} node(s) of "
                f"targets {', '.join(targets)}")
            machines = _identify(ray, nodes, b.threads, bool(b.roofline), say)
            cells = [(bk, v) for bk in names for v in b.variants]
            runnable = [c for c in cells if c[1] in artifacts]
            queues = {nid: NodeQueue(nid, t, machines[nid]["machine_id"], runnable, int(b.rounds),
                                     random.Random(b.round_seed), per_process.accuracy) for nid, t in nodes.items()}
            _dispatch(ray, queues, per_process, cell_spec, art_bundles, data_bundle, artifacts, b.cell_timeout_s,
                      b.threads, say)
            rows_out, agreement, unchecked = [], [], {}
            test_labels = np.load(labels)  # once: every cell's correctness is scored against them
            for nid, q in queues.items():
                for backend, variant in cells:
                    if (backend, variant) not in q.procs:
                        reason = f"no artifact for variant {variant!r}"
                        rows = failed_rows(per_process, backend, variant, artifacts, "error", reason)
                    else:
                        rows, entry = _cell_rows(per_process, q, (backend, variant), artifacts, refs.get(variant),
                                                 test_labels)
                        if isinstance(entry, list):
                            agreement += entry
                        else:
                            unchecked[(q.machine_id, backend, variant)] = entry
                        say(f"{q.target} {q.machine_id} {backend} {variant}: {row_summary(rows)}")
                    m = machines[nid]
                    for r in rows:
                        r.update(machine_id=q.machine_id, fingerprint_id=(m["fingerprint"] or {}).get("id"),
                                 target=q.target, node_id=nid)
                    rows_out += rows
        _attach(rows_out, agreement, unchecked, cfg)
        traffic = variant_traffic({v: Path(artifacts[v]) for v in variants})  # each variant's intensity, once
        for m in machines.values():  # each node's own roofline, as locally
            _node_roofline(m, rows_out, traffic)
    finally:
        ray.shutdown()
    by_machine = {m.pop("machine_id"): m for m in machines.values()}
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
        "harness_overhead_us": max((float(m.get("harness_overhead_us") or 0.0) for m in by_machine.values()),
                                   default=0.0),
        "rounds": {"count": int(b.rounds), "seed": int(b.round_seed),
                   "order_by_machine": {q.machine_id: q.orders for q in queues.values()}},
        "results": rows_out,
        "agreement": agreement,
        "cluster": {"address": address, "targets": targets},
        "machines": by_machine,
    }


def _identify(ray: Any, nodes: dict[str, str], threads: int, roofline: bool, say: Progress) -> dict[str, Any]:
    """{node id: identity} measured on each node (machine id, fingerprint, overhead, peaks); one line per node."""
    from harness.measure.roofline import ROOF_PROCESSES

    remote_info = _remote(ray, node_identity)
    refs = {nid: _pinned(remote_info, nid, t).remote(threads, roofline) for nid, t in nodes.items()}
    out: dict[str, Any] = {}
    wait_s = 120 + 120 * ROOF_PROCESSES * len(nodes) * roofline  # nodes of one host take turns
    for nid, ref in refs.items():
        try:
            info = ray.get(ref, timeout=wait_s)
        except Exception as e:
            raise UserError(f"node {nid[:12]} of target {nodes[nid]} did not answer ({type(e).__name__}): "
                            "check `ray status` and its log") from None
        if info.get("node_id") not in (None, nid):
            raise UserError(f"internal: a task pinned to node {nid[:12]} ran on {info.get('node_id')}")
        out[nid] = {"machine_id": info["machine_id"], "fingerprint": info["fingerprint"], "target": nodes[nid],
                    "hostname": info["hostname"], "node_id": nid, "harness_overhead_us": info["harness_overhead_us"],
                    "machine_peak_gmac_per_s": info.get("machine_peak_gmac_per_s") or {}}
        say(f"target {nodes[nid]}: machine {info['machine_id']} ({info['hostname']}, node {nid[:12]})")
    ids = [m["machine_id"] for m in out.values()]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise UserError(f"machine id {', '.join(dup)} is reported by several nodes: give each node its own "
                        "`bench worker start --machine-id` so every row names one machine")
    return out


def _dispatch(ray: Any, queues: dict[str, NodeQueue], per_process: Any, cell_spec: Any,
              art_bundles: dict[str, Any], data_bundle: Any, artifacts: dict[str, Path], timeout_s: float,
              threads: int, say: Progress) -> None:
    """Run every node's queue to the end: one process in flight per node, the next submitted when it returns.
    Every timed process gets the same spec (`timed_spec`: no accuracy pass, no logits); the accuracy process of a
    cell (untimed, its logits sent back) runs on the same node after that node's timed rounds."""
    from harness.measure.rows import process_line, timed_spec

    pending: dict[Any, tuple[str, Cell, int]] = {}
    remote_cell = _remote(ray, node_cell)
    total = sum(len(q.cells) * (q.rounds + q.accuracy) for q in queues.values())
    done = 0

    def submit(nid: str) -> None:
        q = queues[nid]
        nxt = q.next_cell()
        if nxt is None:
            return
        (backend, variant), rnd = nxt
        spec = cell_spec(per_process, backend, Path(artifacts[variant]), Path("-"), Path("-"), Path("-"),
                         timing=rnd != ACCURACY)  # the node puts the files in place of "-"
        if rnd != ACCURACY:  # every timed process alike: no accuracy pass, no logits
            spec = timed_spec(spec)
        ref = _pinned(remote_cell, nid, q.target).remote(asdict(spec), art_bundles[variant], data_bundle, timeout_s,
                                                         threads)
        pending[ref] = (nid, (backend, variant), rnd)

    for nid in queues:
        submit(nid)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
        for ref in ready:
            nid, cell, rnd = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as e:  # the node died, the worker crashed, the task was cancelled
                first = (str(e).strip().splitlines() or [""])[0][:300]
                result = {"status": "error", "scenarios": [],
                          "reason": f"lost on the cluster ({type(e).__name__}): {first}"}
            q = queues[nid]
            q.record(cell, rnd, result)
            done += 1
            what = "accuracy" if rnd == ACCURACY else f"round {rnd + 1}"
            say(f"[{done}/~{total}] {what} {q.target} {q.machine_id} {cell[0]} {cell[1]}: {process_line(result)}")
            if nid in alive_nodes(ray):
                submit(nid)
            else:
                lost = q.lose_the_rest(f"node {q.machine_id} (target {q.target}) left the cluster")
                say(f"{q.target} {q.machine_id}: node gone; {lost} process(es) not run")
        if not ready:
            alive = alive_nodes(ray)
            for ref, (nid, cell, rnd) in list(pending.items()):
                if nid not in alive:  # the node is gone: its task would wait forever
                    ray.cancel(ref, force=True)
                    pending.pop(ref)
                    q = queues[nid]
                    q.record(cell, rnd, {"status": "error", "scenarios": [],
                                         "reason": f"node {q.machine_id} (target {q.target}) left the cluster"})
                    lost = q.lose_the_rest(f"node {q.machine_id} (target {q.target}) left the cluster")
                    say(f"{q.target} {q.machine_id}: node gone; {lost + 1} process(es) lost")


def _cell_rows(per_process: Any, q: NodeQueue, cell: Cell, artifacts: dict[str, Path], ref: Any,
               labels: np.ndarray) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | str]:
    """The rows of one cell on one node and its agreement entries (the throughput model's too, where it was
    compiled apart; or why there are none): timing from the cell's
    timed processes, accuracy, logits and per-image correctness (`correct_bits`, for the paired accuracy test)
    from its untimed accuracy process (`accuracy_process` on each row says where and what it ran). A process that
    reports another node than the one the cell was pinned to makes the row INVALID (never pooled)."""
    from harness.measure.agreement import Reference, compare_logits
    from harness.measure.rows import attach_correctness, fixed_cost_s, rows_from_cell
    from harness.measure.scenarios import THROUGHPUT

    backend, variant = cell
    procs = sorted(q.procs[cell], key=lambda p: int(p["round"]))
    for p in procs:  # a timed process sends no logits (timed_spec); never let bytes into the results
        p["result"].pop("logits_npy_z", None)
        p["result"].pop("throughput_logits_npy_z", None)
    accuracy = q.accuracy_results.get(cell)
    blob = accuracy.pop("logits_npy_z", None) if accuracy is not None else None
    tp_blob = accuracy.pop("throughput_logits_npy_z", None) if accuracy is not None else None
    node_of = [(p["result"].get("node") or {}) for p in procs] + [(accuracy or {}).get("node") or {}]
    elsewhere = sorted({str(n.get("machine_id")) for n in node_of if n.get("node_id") not in (None, q.node_id)})
    rows = rows_from_cell(per_process, backend, variant, artifacts, procs, accuracy)
    slots = [p["result"].get("host_slot") for p in procs]
    ran_on = [(p["result"].get("node") or {}).get("machine_id") for p in procs]  # None: lost before it reported
    acc_process = None if accuracy is None else {
        "machine_id": ((accuracy.get("node") or {}).get("machine_id")), "status": accuracy.get("status"),
        "reason": accuracy.get("reason"), "steps": accuracy.get("steps"), "fixed_s": fixed_cost_s(accuracy),
        "host_slot": accuracy.get("host_slot")}
    for r in rows:
        r["host_slot"], r["host_slots"], r["process_machines"] = slots[0] if slots else None, slots, ran_on
        r["accuracy_process"] = acc_process
        if elsewhere:
            r["valid"] = False
            r["invalid_reasons"] = [*(as_row(r).invalid_reasons or []),
                                    f"processes ran on other machines too ({', '.join(elsewhere)})"]
    entry: dict[str, Any] | str = "no test-split logits came back from the node"
    logits: np.ndarray | None = None
    if blob is not None:
        try:
            logits = unpack_logits(blob)
        except (ValueError, OSError, zlib.error) as e:  # unreadable: neither correctness nor agreement
            entry = f"the node's logits cannot be read: {e}"
    attach_correctness(rows, logits, labels,
                       throughput_scored_apart="throughput_metrics" in (procs[0]["result"] if procs else {}))
    if not isinstance(ref, Reference):
        entry = str(ref)  # why the driver has no reference for this variant
    elif logits is not None:
        try:
            entry = {"variant": variant, "backend": backend, "reference": ref.name, "machine_id": q.machine_id,
                     "target": q.target, "scenario": None, **compare_logits(logits, np.load(ref.path))}
        except (ValueError, OSError) as e:  # of another shape: not comparable
            entry = f"the node's logits cannot be compared with the reference: {e}"
    if not isinstance(entry, dict):
        return rows, entry
    entries = [entry]
    if isinstance(ref, Reference) and tp_blob is not None:
        # the throughput model compiled apart, checked on its own answers as locally; unreadable: its rows stay
        # "not checked", which select treats as unverified
        with contextlib.suppress(ValueError, OSError, zlib.error):
            entries.append({**entry, "scenario": THROUGHPUT,
                            **compare_logits(unpack_logits(tp_blob), np.load(ref.path))})
    return rows, entries


def _attach(rows: list[dict[str, Any]], agreement: list[dict[str, Any]], unchecked: dict[tuple[str, str, str], str],
            cfg: Config) -> None:
    """Agreement onto the rows, matched by backend, variant and machine (`unchecked` says why a cell has none)."""
    from harness.measure.evidence import attach_agreement

    b = cfg.benchmark
    attach_agreement(rows, agreement, {}, b.min_agreement_int8, b.min_agreement_fp32)
    for r in rows:
        t = as_row(r)
        why = unchecked.get((str(t.machine_id), t.backend, t.variant))
        if why and t.agrees is None and t.status == "ok":
            r["agreement_reason"] = f"unverified: {why}"


def _node_roofline(m: dict[str, Any], rows: list[dict[str, Any]], traffic: dict[str, Any]) -> None:
    """As locally (`attach_roofline`): the node's own rows held to the roofs the node measured before its cells
    (a CUDA row to its GPU's, never the CPU's); a row above them is marked `roof_measured_low`, and the roofs
    stay as measured."""
    from harness.measure.roofline import attach_roofline

    peaks = m.get("machine_peak_gmac_per_s") or {}
    if not peaks:  # benchmark.roofline off
        return
    attach_roofline([r for r in rows if as_row(r).machine_id == m["machine_id"]], peaks, traffic)


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
