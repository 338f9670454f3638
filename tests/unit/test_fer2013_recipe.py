"""The FER2013 recipe end to end on a tiny CSV in the original format: `bench data` validates it and
`bench train --config configs/fer2013.toml` trains on it (1 epoch, a narrow model: the pipeline, not accuracy)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "fer2013.toml"


def _fer2013_csv(path: Path) -> Path:
    rng = np.random.default_rng(0)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for usage, n in (("Training", 3), ("PublicTest", 1), ("PrivateTest", 1)):
            for label in range(7):
                for _ in range(n):
                    w.writerow([label, " ".join(map(str, rng.integers(0, 256, 2304).tolist())), usage])
    return path


def test_data_then_train_with_the_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    f = _fer2013_csv(tmp_path / "fer2013.csv")
    assert main(["data", "--dataset", "fer2013", "--path", str(f), "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert "train" in json.dumps(counts)
    sets = ["--set", f"data.path={f}", "--set", "train.epochs=1", "--set", "model.width=0.0625",
            "--set", "train.batch_size=7", "--set", "train.device=cpu", "--set", "train.bf16=false"]
    assert main(["train", "--config", str(RECIPE), *sets, "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["dataset"].startswith("fer2013") and meta["synthetic"] is False and meta["epochs"] == 1
    assert Path(meta["checkpoint"]).is_file()
