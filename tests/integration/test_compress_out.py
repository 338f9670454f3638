"""`bench compress --out DIR` compresses a config once: a second directory of the same config is copied from the
artifact cache (nothing is pruned, fine-tuned or quantized again), and the command says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import compression.variants as variants
from harness.cli import main

pytestmark = pytest.mark.slow  # trains a tiny dense model and builds the four variants once (~1 min)

VARIANTS = ("dense-fp32", "l1-fp32", "dense-int8", "l1-int8")


def _argv(tmp: Path, out: Path) -> list[str]:
    sets = {
        "model.width": "0.125", "data.synthfer_train": "140", "data.synthfer_val": "70", "data.synthfer_test": "70",
        "train.epochs": "1", "train.bf16": "false", "compress.finetune_epochs": "0", "compress.qat_epochs": "0",
        "compress.calibration_size": "16", "store.cache_dir": str(tmp / "cache"),
    }
    argv = ["compress", "--out", str(out)]
    for k, v in sets.items():
        argv += ["--set", f"{k}={v}"]
    return argv


def _files(out: Path) -> dict[str, dict[str, Any]]:
    return {v: json.loads((out / v / "manifest.json").read_text())["files"] for v in VARIANTS}


def test_second_out_dir_is_copied_from_the_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(_argv(tmp_path, first)) == 0
    err = capsys.readouterr().err
    assert f"{first}: 0 of 4 variants reused (same config and dense model), 4 built" in err, err
    assert (first / "layers.csv").is_file()

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("a variant was built again")

    monkeypatch.setattr(variants._Builder, "build_fp32", refuse)
    monkeypatch.setattr(variants._Builder, "build_int8", refuse)
    assert main(_argv(tmp_path, second)) == 0
    err = capsys.readouterr().err
    assert f"{second}: 4 of 4 variants reused (same config and dense model), 0 built" in err, err
    for v in VARIANTS:
        assert f"{v}: reused in the artifact cache, copied to {second / v}" in err, err
    assert _files(second) == _files(first)  # the same bytes (sha256 of every file)
    assert (second / "layers.csv").read_text() == (first / "layers.csv").read_text()

    assert main(_argv(tmp_path, second)) == 0  # already there: left as it is
    err = capsys.readouterr().err
    for v in VARIANTS:
        assert f"{v}: up to date in {second / v}" in err, err
