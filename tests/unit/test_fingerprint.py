"""Fingerprint: what makes two runs comparable, hashed into a stable id."""

from __future__ import annotations

import copy

from harness.measure.fingerprint import FLAGS_THAT_MATTER, fingerprint, fingerprint_id


def test_fingerprint_has_the_fields_and_a_stable_id() -> None:
    a = fingerprint({"benchmark": {"threads": 2}})
    b = fingerprint({"benchmark": {"threads": 1}})
    for key in ("cpu", "ram_bytes", "os", "python", "versions", "gpus", "git", "config", "id"):
        assert key in a
    assert a["cpu"]["brand"] and a["cpu"]["logical_cores"] >= 1 and a["cpu"]["affinity"]
    assert set(a["cpu"]["flags"]) <= set(FLAGS_THAT_MATTER)
    assert "openvino" in a["versions"] and "onnxruntime" in a["versions"] and "tensorrt" in a["versions"]
    assert set(a["git"]) == {"commit", "dirty"}
    # the config and the git state are recorded, but they do not change the id
    assert a["config"] == {"benchmark": {"threads": 2}}
    assert a["id"] == b["id"] and len(a["id"]) == 12


def test_id_changes_with_hardware_or_library_versions() -> None:
    fp = fingerprint(None)
    other_cpu = copy.deepcopy(fp)
    other_cpu["cpu"]["brand"] = "Some Other CPU"
    other_lib = copy.deepcopy(fp)
    other_lib["versions"]["openvino"] = "0.0.1"
    other_gpu = copy.deepcopy(fp)
    other_gpu["gpus"] = [{"name": "NVIDIA H100", "driver": "580", "memory_total_bytes": 1, "sm_clock_mhz": 1}]
    ids = {fingerprint_id(fp), fingerprint_id(other_cpu), fingerprint_id(other_lib), fingerprint_id(other_gpu)}
    assert len(ids) == 4
    moving_clock = copy.deepcopy(other_gpu)
    moving_clock["gpus"][0]["sm_clock_mhz"] = 1980  # clocks move at run time: not part of the id
    assert fingerprint_id(moving_clock) == fingerprint_id(other_gpu)
