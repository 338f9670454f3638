"""train.device: auto falls back to the CPU with one info line, cuda without CUDA is a one-line exit 2, and the
setting stays out of every cache key (checkpoints and artifacts do not depend on it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import fer.device
from common.config import load_config
from common.errors import UserError
from fer.device import resolve_device
from harness.cli import main


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(fer.device, "_announced", False)


def test_auto_falls_back_to_cpu_with_one_line(no_cuda: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.device = auto" in err[0] and "CPU" in err[0]  # once per process
    assert resolve_device("cpu") == torch.device("cpu")


def test_cuda_without_cuda_is_a_user_error(no_cuda: None) -> None:
    with pytest.raises(UserError, match=r"train\.device = 'cuda'"):
        resolve_device("cuda")


def test_cli_cuda_without_cuda_exit_2_one_line(no_cuda: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--set", "train.device=cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "cuda" in err[0]
    assert not (tmp_path / ".bench-cache").exists()  # failed before reading or generating data


def test_bad_device_value_is_rejected() -> None:
    with pytest.raises(UserError, match="allowed values are auto, cpu, cuda"):
        load_config(None, ["train.device=tpu"])


def test_device_is_not_part_of_cache_keys() -> None:
    base = load_config(None)
    for dev in ("cpu", "cuda"):
        cfg = load_config(None, [f"train.device={dev}"])
        assert cfg.train.device == dev
        assert cfg.section_hash("model", "train", "compress") == base.section_hash("model", "train", "compress")
        assert cfg.to_dict()["train"]["device"] == dev  # still recorded with the results
    assert load_config(None, ["train.epochs=2"]).section_hash("train") != base.section_hash("train")


def test_recipe_config_parses() -> None:
    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "configs" / "fer2013.toml")
    assert cfg.data.dataset == "fer2013" and cfg.data.path
    assert cfg.train.epochs >= 100 and cfg.train.optimizer == "sgd"
