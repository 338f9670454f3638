"""`bench data`: JSON shape, table output, config file pickup, and one-line errors with exit code 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fer.classes import EMOTIONS
from harness.cli import main


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty folder: no ./bench.toml, and the cache lands in tmp_path/.bench-cache."""
    monkeypatch.chdir(tmp_path)


def write_csv(path: Path, bad_line: int | None = None) -> Path:
    """2 Training / 1 PublicTest / 1 PrivateTest row per class; `bad_line` gets 2000 pixels."""
    rng = np.random.default_rng(0)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        line = 1
        for usage, n in (("Training", 2), ("PublicTest", 1), ("PrivateTest", 1)):
            for label in range(7):
                for _ in range(n):
                    line += 1
                    px = rng.integers(0, 256, 2000 if line == bad_line else 2304)
                    w.writerow([label, " ".join(map(str, px.tolist())), usage])
    return path


def cache_files(tmp_path: Path) -> list[Path]:
    root = tmp_path / ".bench-cache"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_json_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_csv(tmp_path / "fer2013.csv")
    assert main(["data", "--dataset", "fer2013", "--path", str(f), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {
        "dataset": "fer2013",
        "synthetic": False,
        "splits": {
            "train": dict.fromkeys(EMOTIONS, 2),
            "val": dict.fromkeys(EMOTIONS, 1),
            "test": dict.fromkeys(EMOTIONS, 1),
        },
    }
    assert list(out["splits"]["train"]) == list(EMOTIONS)
    assert [p.suffix for p in cache_files(tmp_path)] == [".npz"]
    # second run answers from the cache with the same counts
    assert main(["data", "--dataset", "fer2013", "--path", str(f), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == out


def test_table_output_and_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_csv(tmp_path / "data.csv")
    (tmp_path / "bench.toml").write_text(f'[data]\ndataset = "fer2013"\npath = "{f.name}"\n')
    assert main(["data", "--no-cache"]) == 0  # ./bench.toml picked up
    out = capsys.readouterr().out
    assert "fer2013" in out and "angry" in out and "neutral" in out
    assert "28" in out  # total images: 14 + 7 + 7
    assert cache_files(tmp_path) == []  # --no-cache writes nothing


def test_synthfer_json(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("fer.synthfer")
    sets = [a for k in ("train", "val", "test") for a in ("--set", f"data.synthfer_{k}=70")]
    assert main(["data", "--json", *sets]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dataset"] == "synthfer" and out["synthetic"] is True
    assert sum(out["splits"]["test"].values()) == 70


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    assert captured.out == ""
    return lines[0]


def test_malformed_row_exit_2_one_line_no_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_csv(tmp_path / "fer2013.csv", bad_line=9)
    assert main(["data", "--dataset", "fer2013", "--path", str(f), "--json"]) == 2
    line = _one_error_line(capsys)
    assert str(f) in line and "line 9" in line and "2000 pixel values" in line
    assert cache_files(tmp_path) == []


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["--dataset", "jaffe", "--path", "missing/dir"], ["missing/dir", "does not exist"]),
        (["--dataset", "ferr2013", "--path", "x"], ["data.dataset", "fer2013"]),
        (["--dataset", "ckplus"], ["data.path is empty"]),
        (["--set", "data.fold=12"], ["data.fold = 12", "data.folds"]),
        (["--config", "nope.toml"], ["nope.toml", "does not exist"]),
    ],
)
def test_bad_input_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                          needles: list[str]) -> None:
    assert main(["data", *argv]) == 2
    line = _one_error_line(capsys)
    for n in needles:
        assert n in line, line
    assert cache_files(tmp_path) == []
