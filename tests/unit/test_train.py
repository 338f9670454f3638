"""Training: a short run on a small SynthFER subset beats chance; resuming an interrupted run is exact."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from common.config import TrainConfig
from common.errors import UserError
from fer.data import FerData, Split
from fer.evaluate import evaluate
from fer.model import build_model, default_arch
from fer.synthfer import generate_synthfer
from fer.train import EpochLog, augment_batch, fit, l1_penalty


@pytest.fixture(scope="module")
def data() -> FerData:
    return generate_synthfer(2100, 140, 700, seed=0)


pytestmark = pytest.mark.usefixtures("two_threads")


def test_short_training_clearly_beats_chance(data: FerData) -> None:
    torch.manual_seed(0)
    model = build_model(default_arch(width=0.25))  # oneDNN is far slower at width 0.125 (8 channels)
    # fp32 (bf16 autocast only pays off for wide layers) and no augmentation: a short run must learn fast
    cfg = dataclasses.replace(TrainConfig(), epochs=6, batch_size=32, lr=2e-3, seed=0, bf16=False, augment=False)
    logs: list[EpochLog] = []
    history = fit(model, data.train, data.val, cfg, on_epoch=logs.append)
    assert len(history.epochs) == 6 and logs == history.epochs
    assert history.epochs[-1].loss < history.epochs[0].loss
    acc = evaluate(model, data.test.as_float(), data.test.labels).accuracy
    assert acc > 2 / 7, f"held-out accuracy {acc:.3f} is not clearly above chance (1/7)"
    assert not model.training


def _tiny(data: FerData, n: int = 224) -> tuple[Split, Split]:
    return Split(data.train.images[:n], data.train.labels[:n]), Split(data.val.images[:70], data.val.labels[:70])


def test_interrupted_training_resumes_exactly(data: FerData, tmp_path: Path) -> None:
    train, val = _tiny(data)
    cfg = dataclasses.replace(TrainConfig(), epochs=3, batch_size=32, bf16=False, seed=1)
    torch.manual_seed(0)
    reference = build_model(default_arch(width=0.0625))
    start_state = {k: v.clone() for k, v in reference.state_dict().items()}
    ref_hist = fit(reference, train, val, cfg)

    state = tmp_path / "train-state.pt"

    def stop_after_two(log: EpochLog) -> None:
        if log.epoch == 2:
            raise KeyboardInterrupt

    model = build_model(default_arch(width=0.0625))
    model.load_state_dict(start_state)
    with pytest.raises(KeyboardInterrupt):
        fit(model, train, val, cfg, state_path=state, on_epoch=stop_after_two)
    assert state.is_file()
    torch.manual_seed(123)  # a fresh process would have another global RNG state; the saved one wins
    resumed = build_model(default_arch(width=0.0625))
    epochs_run: list[int] = []
    hist = fit(resumed, train, val, cfg, state_path=state, on_epoch=lambda e: epochs_run.append(e.epoch))
    assert epochs_run == [3]
    assert [e.epoch for e in hist.epochs] == [1, 2, 3]
    assert hist.epochs[-1].loss == pytest.approx(ref_hist.epochs[-1].loss, rel=1e-5)
    for k, v in reference.state_dict().items():
        assert torch.allclose(resumed.state_dict()[k].float(), v.float(), atol=1e-5), k


def test_state_of_another_run_is_refused(data: FerData, tmp_path: Path) -> None:
    train, val = _tiny(data, 64)
    cfg = dataclasses.replace(TrainConfig(), epochs=1, batch_size=32, bf16=False)
    state = tmp_path / "state.pt"
    fit(build_model(default_arch(width=0.0625)), train, val, cfg, state_path=state)
    with pytest.raises(UserError, match="different training run"):
        fit(build_model(default_arch(width=0.0625)), train, val, cfg, state_path=state, epochs=2)
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(UserError, match=r"state\.pt"):
        fit(build_model(default_arch(width=0.0625)), train, val, cfg, state_path=state)


def test_augmentation_keeps_shape_and_range() -> None:
    x = torch.rand(16, 1, 48, 48)
    out = augment_batch(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert not torch.equal(out, x)
    again = augment_batch(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_l1_penalty_sums_absolute_weights() -> None:
    model = build_model(default_arch(width=0.0625))
    expected = sum(
        float(m.weight.detach().abs().sum())
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
    )
    assert float(l1_penalty(model).detach()) == pytest.approx(expected, rel=1e-4)
    assert np.isfinite(expected)
