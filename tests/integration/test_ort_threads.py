"""ONNX Runtime's worker settings reach the session and the row: spin-wait and pinning of the intra-op workers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backends.artifact import load_artifact
from backends.base import BackendOptions
from backends.onnxruntime.backend import OnnxRuntimeBackend, worker_affinities

pytest.importorskip("onnxruntime")


def test_workers_take_cpus_from_the_end_of_the_affinity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {2, 5, 7})
    assert worker_affinities(2) == "8"  # 1-based: CPU 7; the calling thread keeps the others
    assert worker_affinities(3) == "6;8"
    assert worker_affinities(1) == ""  # no worker to pin
    assert worker_affinities(4) == ""  # too few CPUs to give each thread its own: nothing pinned


def test_settings_reach_the_session_and_describe(make_fp32_artifact: Any, tmp_path: Path) -> None:
    fp32_artifact = make_fp32_artifact(tmp_path / "art", width=0.0625)
    threads = 2 if len(os.sched_getaffinity(0)) >= 2 else 1
    b = OnnxRuntimeBackend()
    b.load(load_artifact(fp32_artifact), BackendOptions(threads=threads, extra={"spinning": False, "pinning": True}))
    try:
        y = b.infer(np.zeros((1, 1, 48, 48), dtype=np.float32))
        assert y.shape == (1, 7)
        d = b.describe()
        assert d["spinning"] is False and d["pinning"] == worker_affinities(threads)
        entries = b._session.get_session_options().get_session_config_entry  # what the session was built with
        assert entries("session.intra_op.allow_spinning") == "0"
        if d["pinning"]:
            assert entries("session.intra_op_thread_affinities") == d["pinning"]
    finally:
        b.close()
    default = OnnxRuntimeBackend()
    default.load(load_artifact(fp32_artifact), BackendOptions(threads=1))
    try:
        assert default.describe()["spinning"] is True and default.describe()["pinning"] == ""
    finally:
        default.close()
