"""`bench backends [--json]`: availability, reason, versions and the fingerprint."""

from __future__ import annotations

import json

import pytest

from harness.cli import main


def test_backends_json_lists_every_backend_with_the_fingerprint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"fingerprint", "backends"}
    names = [b["name"] for b in doc["backends"]]
    assert names == ["torch-eager", "openvino", "onnxruntime", "tensorrt", "torch-compile"]
    for b in doc["backends"]:
        assert {"name", "available", "reason", "versions"} <= set(b)
        assert b["available"] or b["reason"].startswith(b["name"] + ":")
    assert doc["fingerprint"]["id"] and doc["fingerprint"]["config"]["benchmark"]["threads"] >= 1


def test_backends_table_and_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends", "--backend", "openvino"]) == 0
    out = capsys.readouterr().out
    assert "openvino" in out and "fingerprint" in out and "tensorrt" not in out
    assert main(["backends", "--backend", "tflite"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown backend 'tflite'") and err.count("\n") == 1
