"""The prepare steps behind `bench train`, `bench compress` and `bench run`: data -> dense model ->
compressed artifacts, each cached on disk under `store.cache_dir` keyed by what produced it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from common.config import Config
from fer.data import FerData
from fer.model import VGG16FER

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DenseModel:
    model: VGG16FER
    meta: dict[str, Any]
    path: Path
    reused: bool


def cache_root(cfg: Config) -> Path:
    return Path(cfg.store.cache_dir)


def load_data(cfg: Config) -> FerData:
    """The configured data set (generated or read from data.path), cached as arrays."""
    from fer.datasets import load_dataset

    return load_dataset(cfg.data, cache_root(cfg) / "data")


def dense_key(cfg: Config, data: FerData) -> str:
    """Cache key of the dense model: the data's content, the model and training config, and the precision the
    training actually runs in here (`train.bf16` trains in bf16 on one CPU and in fp32 on another: two models)."""
    from fer.train import training_precision

    h = hashlib.sha256(data.digest().encode())
    h.update(cfg.section_hash("model", "train").encode())
    h.update(f"train_precision={training_precision(cfg.train)}".encode())
    return h.hexdigest()[:16]


_rates: dict[str, float] = {}  # dense training img/s probed in this process, by model/train config


def _probe_rate(cfg: Config, model: VGG16FER) -> float:
    """This machine's dense training images/s (fer.train.probe_images_per_s), probed once per process."""
    from fer.train import probe_images_per_s

    key = cfg.section_hash("model", "train") + str(cfg.train.device)
    if key not in _rates:
        _rates[key] = probe_images_per_s(model, cfg.train)
    return _rates[key]


def prepare_dense(cfg: Config, data: FerData, force: bool = False, progress: Progress | None = None,
                  then_compress: list[str] | None = None) -> DenseModel:
    """Train the dense VGG16-FER (or reuse the cached checkpoint) and evaluate it on val and test. Before
    training, one line estimates the training time on this machine from a short probe (and the compression of
    `then_compress`, the variants the caller builds next)."""
    from common.console import progress_task
    from fer.checkpoint import load_checkpoint, save_checkpoint
    from fer.evaluate import evaluate
    from fer.model import build_model, default_arch
    from fer.train import epoch_steps, fit, training_precision
    from harness.orchestrate.estimate import estimate

    path = cache_root(cfg) / "models" / f"dense-{dense_key(cfg, data)}.pt"
    if path.is_file() and not force:
        model, meta = load_checkpoint(path)
        return DenseModel(model, meta, path, reused=True)
    torch.manual_seed(cfg.train.seed)
    arch = default_arch(in_channels=cfg.model.in_channels, width=cfg.model.width, dropout=cfg.model.dropout)
    model = build_model(arch)
    if cfg.model.pretrained:
        from fer.pretrained import load_torchvision_vgg16_bn

        load_torchvision_vgg16_bn(model, Path(cfg.model.pretrained))
    steps = cfg.train.epochs * epoch_steps(len(data.train), cfg.train)
    state = path.with_name(path.name + ".state")  # resumable: an interrupted `bench train` continues here
    path.parent.mkdir(parents=True, exist_ok=True)
    if progress is not None:
        todo = then_compress or []
        progress(estimate(cfg, data, _probe_rate(cfg, model), todo).line(True, todo))
    t0 = time.perf_counter()
    bs = max(1, min(cfg.train.batch_size, len(data.train)))
    label = f"train dense VGG16-FER x{cfg.model.width:g} ({training_precision(cfg.train)})"
    with progress_task(label, steps, scale=bs, unit="img") as bar:
        hist = fit(
            model, data.train, data.val, cfg.train, state_path=state,
            on_step=lambda _s, loss: bar.advance(1, loss=f"{loss:.3f}"),
            on_epoch=lambda log: progress and progress(
                f"epoch {log.epoch}: loss {log.loss:.3f}, val acc {100 * (log.val_accuracy or 0):.2f}%, "
                f"{log.images_per_s:.0f} img/s"
            ),
        )
    seconds = time.perf_counter() - t0
    test = evaluate(model, data.test.as_float(), data.test.labels)
    val_accuracy = hist.last_val_accuracy  # fit scored the final model on val after its last epoch
    if val_accuracy is None:
        val_accuracy = evaluate(model, data.val.as_float(), data.val.labels).accuracy
    meta = {
        "dataset": data.name,
        "synthetic": data.synthetic,
        "data_digest": data.digest(),
        "config_hash": dense_key(cfg, data),
        "train_precision": training_precision(cfg.train),
        "val_accuracy": val_accuracy,
        "test_accuracy": test.accuracy,
        "test_macro_f1": test.macro_f1,
        "train_seconds": seconds,
        "epochs": len(hist.epochs),
    }
    save_checkpoint(path, model, meta)
    state.unlink(missing_ok=True)
    return DenseModel(model, meta, path, reused=False)


def artifacts_dir(cfg: Config, data: FerData) -> Path:
    """Default artifact directory: keyed by data content and every config section that shapes a variant."""
    h = hashlib.sha256(dense_key(cfg, data).encode())  # the dense model's identity, training precision included
    h.update(cfg.section_hash("compress").encode())
    return cache_root(cfg) / "artifacts" / h.hexdigest()[:16]


def prepare_artifacts(
    cfg: Config,
    data: FerData,
    dense: DenseModel,
    variants: list[str] | None = None,
    out_dir: Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Build (or reuse) the compressed variants in the artifact cache; returns {variant: artifact directory}.
    With `out_dir` (`bench compress --out`), the variants are copied there from the cache (built there first
    when missing), so the same config is compressed once whatever directories it is written to."""
    from compression.variants import build_variants, publish_variants, requested_variants, stale_variants
    from harness.orchestrate.estimate import estimate

    cache = artifacts_dir(cfg, data)
    names = requested_variants(cfg, variants)
    todo = stale_variants(cfg, dense.model, cache, names)
    if out_dir is not None and todo:
        todo = [n for n in todo if n in stale_variants(cfg, dense.model, Path(out_dir), names)]
    if todo and progress is not None and dense.reused:  # after training, prepare_dense said it already
        progress(estimate(cfg, data, _probe_rate(cfg, dense.model), todo).line(False, todo))
    if out_dir is None or Path(out_dir).resolve() == cache.resolve():
        return build_variants(cfg, data, dense.model, cache, variants=variants, progress=progress)
    return publish_variants(cfg, data, dense.model, cache, Path(out_dir), variants=variants, progress=progress)
