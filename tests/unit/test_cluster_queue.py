"""A cluster node's queue (rounds in the shuffled order of a local run, one cell at a time, then one untimed
accuracy process per cell) and the logits a node sends back; pure Python, no Ray (the real cluster is
tests/integration/test_cluster.py)."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest

from harness.fleet.cluster import ACCURACY, NodeQueue, pack_logits, unpack_logits

CELLS = [("onnxruntime", "dense-fp32"), ("onnxruntime", "l1-int8"), ("openvino", "dense-fp32"),
         ("openvino", "l1-int8")]


def _queue(seed: int = 7, rounds: int = 3, accuracy: bool = True) -> NodeQueue:
    return NodeQueue("node-1", "edge-a", "box-a", list(CELLS), rounds, random.Random(seed), accuracy)


def _drain(q: NodeQueue, fail: set[tuple[str, str]] = frozenset()) -> list[tuple[tuple[str, str], int]]:
    seen = []
    while (nxt := q.next_cell()) is not None:
        cell, rnd = nxt
        seen.append(nxt)
        q.record(cell, rnd, {"status": "error" if cell in fail else "ok", "scenarios": []})
    return seen


def test_rounds_run_one_after_another_in_the_order_a_local_run_would_use() -> None:
    q = _queue()
    seen = _drain(q)
    assert [r for _, r in seen] == [0] * 4 + [1] * 4 + [2] * 4 + [ACCURACY] * 4
    rng, expected = random.Random(7), []
    for _ in range(3):  # harness.orchestrate.runner: the same list shuffled by the same seeded generator per round
        order = list(CELLS)
        rng.shuffle(order)
        expected.append([f"{b}/{v}" for b, v in order])
    assert q.orders == expected == [[f"{b}/{v}" for (b, v), r in seen if r == k] for k in range(3)]
    assert len({tuple(o) for o in q.orders}) > 1
    assert all([p["round"] for p in q.procs[c]] == [0, 1, 2] for c in CELLS)  # the timed processes only


def test_after_the_timed_rounds_one_untimed_accuracy_process_per_cell_on_the_same_node() -> None:
    q = _queue()
    seen = _drain(q)
    assert [c for c, r in seen if r == ACCURACY] == CELLS and seen[-4:] == [(c, ACCURACY) for c in CELLS]
    assert set(q.accuracy_results) == set(CELLS)
    assert len(q.orders) == 3  # the accuracy processes are no round: not in the recorded order
    quiet = _queue(accuracy=False)  # benchmark.accuracy off: no accuracy process, as locally
    assert ACCURACY not in [r for _, r in _drain(quiet)] and not quiet.accuracy_results


def test_a_cell_whose_first_process_failed_is_not_run_again() -> None:
    q = _queue()
    seen = _drain(q, fail={("openvino", "l1-int8")})
    assert [r for c, r in seen if c == ("openvino", "l1-int8")] == [0]  # nor given an accuracy process
    assert len(seen) == 4 + 3 + 3 + 3


def test_a_lost_node_records_every_process_it_did_not_run() -> None:
    q = _queue()
    for _ in range(5):  # round 0 and the first cell of round 1
        cell, rnd = q.next_cell()
        q.record(cell, rnd, {"status": "ok", "scenarios": []})
    assert q.lose_the_rest("node box-a (target edge-a) left the cluster") == 12 - 5 + 4
    assert q.next_cell() is None
    lost = [p for ps in q.procs.values() for p in ps if p["result"]["status"] == "error"]
    assert len(lost) == 7 and all("left the cluster" in p["result"]["reason"] for p in lost)
    assert all(len(ps) == 3 for ps in q.procs.values())
    assert all("left the cluster" in r["reason"] for r in q.accuracy_results.values()) and len(q.accuracy_results) == 4


def test_logits_travel_compressed_and_come_back_exact(tmp_path: Path) -> None:
    logits = np.random.default_rng(0).normal(size=(2100, 7)).astype(np.float32)  # the FER2013 test set's shape
    np.save(tmp_path / "l.npy", logits)
    blob = pack_logits(tmp_path / "l.npy")
    back = unpack_logits(blob)
    assert back.dtype == np.float32 and np.array_equal(back, logits)
    assert len(blob) < (tmp_path / "l.npy").stat().st_size


def test_logits_that_hold_pickled_objects_are_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([{"not": "numbers"}], dtype=object), allow_pickle=True)
    (tmp_path / "evil.npy").write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="allow_pickle"):
        unpack_logits(pack_logits(tmp_path / "evil.npy"))
