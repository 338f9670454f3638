"""Training loop shared by dense training, post-pruning fine-tuning and QAT.

CPU-friendly by default: channels_last memory format and bfloat16 autocast where the CPU has native
bf16 (avx512_bf16/AMX), which the design measured at ~2.7x the fp32 throughput on these machines.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.config import TrainConfig
from common.errors import UserError
from fer.checkpoint import atomic_torch_save, load_state_strict, safe_torch_load
from fer.data import Split
from fer.evaluate import evaluate


@dataclass
class EpochLog:
    epoch: int
    loss: float
    train_accuracy: float
    val_accuracy: float | None
    seconds: float
    images_per_s: float


@dataclass
class History:
    epochs: list[EpochLog] = field(default_factory=list)

    @property
    def last_val_accuracy(self) -> float | None:
        return self.epochs[-1].val_accuracy if self.epochs else None


def bf16_supported() -> bool:
    """True where the CPU runs bf16 matmuls natively (otherwise autocast is slower, not faster)."""
    try:
        cap = torch.backends.cpu.get_cpu_capability()
    except Exception:
        return False
    if cap not in ("AVX512", "AMX"):
        return False
    try:
        import cpuinfo  # py-cpuinfo

        flags = set(cpuinfo.get_cpu_info().get("flags", []))
    except Exception:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def augment_batch(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Horizontal flip, small affine (±10°, ±8% scale, ±4 px shift) and random erasing, on a batch.

    Erasing is mild (a quarter of the images, one 4-10 px rectangle of noise): SynthFER already has
    occluders, and heavier erasing slowed the short default schedule by >20 points of accuracy.
    """
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(10)
    scale = 1 + (torch.rand(n, generator=gen) * 2 - 1) * 0.08
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (4 / 24)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    # random erasing: one rectangle (4-10 px a side) in a quarter of the images, filled with noise
    erase = torch.rand(n, generator=gen) < 0.25
    h = torch.randint(4, 11, (n,), generator=gen)
    w = torch.randint(4, 11, (n,), generator=gen)
    top = (torch.rand(n, generator=gen) * (48 - h)).long()
    left = (torch.rand(n, generator=gen) * (48 - w)).long()
    rows = torch.arange(48)[None, :]
    rmask = (rows >= top[:, None]) & (rows < (top + h)[:, None])
    cmask = (rows >= left[:, None]) & (rows < (left + w)[:, None])
    mask = (rmask[:, :, None] & cmask[:, None, :] & erase[:, None, None])[:, None]
    noise = torch.rand(x.shape, generator=gen)
    return torch.where(mask, noise, x)


def l1_penalty(model: nn.Module) -> torch.Tensor:
    """Paper Eq. 4: sum of |w| over conv and linear weights (pushes filters towards prunable)."""
    terms = [m.weight.abs().sum() for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    return torch.stack(terms).sum()


def fit(
    model: nn.Module,
    train: Split,
    val: Split | None,
    cfg: TrainConfig,
    *,
    epochs: int | None = None,
    lr: float | None = None,
    on_step: Callable[[int, float], None] | None = None,
    after_step: Callable[[nn.Module], None] | None = None,
    on_epoch: Callable[[EpochLog], None] | None = None,
    state_path: str | Path | None = None,
) -> History:
    """Train `model` in place on `train` (cross-entropy + optional L1), evaluating on `val` each epoch.

    `epochs`/`lr` override the config (fine-tuning and QAT use their own); `on_step(step, loss)` feeds
    progress bars; `after_step(model)` lets soft pruning re-apply masks after each optimizer step.
    `state_path`: after every epoch the training state (model, optimizer, scheduler, epoch, RNG, history)
    is saved there atomically, and a later call with the same path and the same run continues after the
    last finished epoch (an interrupted `bench train` resumes). The caller deletes the file when done.
    """
    epochs = cfg.epochs if epochs is None else epochs
    lr = cfg.lr if lr is None else lr
    history = History()
    if epochs <= 0:
        return history
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    images = train.as_float()
    labels = train.labels
    if cfg.subset:
        images, labels = images[: cfg.subset], labels[: cfg.subset]
    n = len(labels)
    bs = min(cfg.batch_size, n)
    steps_per_epoch = max(1, n // bs)
    total_steps = epochs * steps_per_epoch
    params = [p for p in model.parameters() if p.requires_grad]
    opt: torch.optim.Optimizer
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True)
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    sched: torch.optim.lr_scheduler.LRScheduler
    if cfg.schedule == "onecycle" and total_steps >= 8:  # one-cycle needs a few steps per phase
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps, pct_start=0.25)
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    use_bf16 = cfg.bf16 and bf16_supported()
    model.to(memory_format=torch.channels_last)
    x_all = torch.from_numpy(images)
    y_all = torch.from_numpy(labels.astype(np.int64))
    run_id = {"epochs": epochs, "lr": lr, "n": n, "batch_size": bs, "optimizer": cfg.optimizer,
              "schedule": cfg.schedule, "seed": cfg.seed, "params": [list(p.shape) for p in params]}
    start = 0
    if state_path is not None and Path(state_path).exists():
        start = _restore_state(Path(state_path), run_id, model, opt, sched, gen, history)
    step = start * steps_per_epoch
    for epoch in range(start, epochs):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        loss_sum, correct, seen = 0.0, 0, 0
        for b in range(steps_per_epoch):
            idx = perm[b * bs : (b + 1) * bs]
            x, y = x_all[idx], y_all[idx]
            if cfg.augment:
                x = augment_batch(x, gen)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y)
            if cfg.l1_lambda > 0:
                loss = loss + cfg.l1_lambda * l1_penalty(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if after_step is not None:
                after_step(model)
            step += 1
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if on_step is not None:
                on_step(step, float(loss.detach()))
        secs = time.perf_counter() - t0
        val_acc = evaluate(model, val.as_float(), val.labels).accuracy if val is not None and len(val) else None
        log = EpochLog(epoch + 1, loss_sum / seen, correct / seen, val_acc, secs, seen / secs)
        history.epochs.append(log)
        if state_path is not None:
            _save_state(Path(state_path), run_id, epoch + 1, model, opt, sched, gen, history)
        if on_epoch is not None:
            on_epoch(log)
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    return history


def _save_state(
    path: Path,
    run_id: dict[str, Any],
    epoch: int,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    gen: torch.Generator,
    history: History,
) -> None:
    """Everything needed to continue after `epoch` (tensors and plain values only: weights_only loads it)."""
    state = {
        "kind": "fer-train-state",
        "run": run_id,
        "epoch": epoch,
        "model": {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "gen_rng": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": [asdict(e) for e in history.epochs],
    }
    atomic_torch_save(state, path)


def _restore_state(
    path: Path,
    run_id: dict[str, Any],
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    gen: torch.Generator,
    history: History,
) -> int:
    """Load a state saved by `_save_state` into the live objects; returns the number of finished epochs."""
    state = safe_torch_load(path, "training state")
    if not isinstance(state, dict) or state.get("kind") != "fer-train-state":
        raise UserError(f"training state {path}: not a training state file; delete it to start over")
    if state.get("run") != run_id:
        raise UserError(f"training state {path}: saved by a different training run; delete it to start over")
    try:
        load_state_strict(model, state["model"], f"training state {path}")
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["gen_rng"])
        torch.set_rng_state(state["torch_rng"])
        history.epochs[:] = [EpochLog(**e) for e in state["history"]]
        return int(state["epoch"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise UserError(f"training state {path}: incomplete or damaged ({e}); delete it to start over") from None
