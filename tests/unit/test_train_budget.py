"""train.images_per_epoch: a training budget in images seen (epochs x images_per_epoch), the same on every machine;
every image is seen once before any is seen twice, across epochs; an interrupted budgeted run resumes exactly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from common.config import TrainConfig, load_config
from common.errors import UserError
from fer.data import Split
from fer.model import build_model, default_arch
from fer.train import BatchStream, EpochLog, epoch_steps, fit

pytestmark = pytest.mark.usefixtures("two_threads")


def _split(n: int, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    return Split(rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), np.arange(n, dtype=np.int64) % 7)


def test_epoch_steps_follow_the_budget() -> None:
    cfg = dataclasses.replace(TrainConfig(), batch_size=32)
    assert epoch_steps(7000, cfg) == 7000 // 32  # 0: one pass over the data
    assert epoch_steps(7000, dataclasses.replace(cfg, images_per_epoch=2000)) == 2000 // 32
    assert epoch_steps(7000, dataclasses.replace(cfg, images_per_epoch=20_000)) == 20_000 // 32  # more than a pass
    assert epoch_steps(7000, dataclasses.replace(cfg, subset=100)) == 100 // 32
    assert epoch_steps(10, dataclasses.replace(cfg, images_per_epoch=5)) == 1  # at least one step


def test_images_per_epoch_is_validated_and_part_of_the_cache_key() -> None:
    with pytest.raises(UserError, match=r"train\.images_per_epoch"):
        load_config(None, ["train.images_per_epoch=-1"])
    assert load_config(None, ["train.images_per_epoch=3000"]).section_hash("train") != \
        load_config(None).section_hash("train")


def test_the_stream_shows_every_image_once_before_any_twice() -> None:
    stream = BatchStream(70, torch.Generator().manual_seed(0))
    seen = torch.cat([stream.take(32) for _ in range(5)])  # 160 images: two passes and a bit, across batches
    assert sorted(seen[:70].tolist()) == list(range(70))
    assert sorted(seen[70:140].tolist()) == list(range(70))
    state = stream.state()
    again = BatchStream(70, torch.Generator())
    again.load(state)
    assert torch.equal(again.perm, stream.perm) and again.pos == stream.pos


def test_a_budgeted_run_takes_exactly_its_steps() -> None:
    train, val = _split(224), _split(70, seed=1)
    cfg = dataclasses.replace(TrainConfig(), epochs=3, batch_size=32, images_per_epoch=64, bf16=False, augment=False)
    steps: list[int] = []
    hist = fit(build_model(default_arch(width=0.0625)), train, val, cfg, on_step=lambda s, _l: steps.append(s))
    assert steps == list(range(1, 3 * 2 + 1))  # 3 epochs of 64 images = 6 steps of 32, not 3 passes of 224
    assert len(hist.epochs) == 3 and all(e.val_accuracy is not None for e in hist.epochs)


def test_an_interrupted_budgeted_run_resumes_exactly(tmp_path: Path) -> None:
    train, val = _split(160), _split(70, seed=1)
    cfg = dataclasses.replace(TrainConfig(), epochs=3, batch_size=32, images_per_epoch=96, bf16=False, seed=1)
    torch.manual_seed(0)
    reference = build_model(default_arch(width=0.0625))
    start = {k: v.clone() for k, v in reference.state_dict().items()}
    ref_hist = fit(reference, train, val, cfg)

    def stop_after_two(log: EpochLog) -> None:
        if log.epoch == 2:
            raise KeyboardInterrupt

    state = tmp_path / "state.pt"
    model = build_model(default_arch(width=0.0625))
    model.load_state_dict(start)
    with pytest.raises(KeyboardInterrupt):
        fit(model, train, val, cfg, state_path=state, on_epoch=stop_after_two)
    resumed = build_model(default_arch(width=0.0625))
    hist = fit(resumed, train, val, cfg, state_path=state)  # epoch 3 draws the rest of the second pass
    assert hist.epochs[-1].loss == pytest.approx(ref_hist.epochs[-1].loss, rel=1e-5)
    for k, v in reference.state_dict().items():
        assert torch.allclose(resumed.state_dict()[k].float(), v.float(), atol=1e-5), k
