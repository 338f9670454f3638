"""Training loop shared by dense training, post-pruning fine-tuning and QAT.

Runs where `train.device` says (fer.device). CPU: channels_last and bfloat16 autocast where the CPU has native
bf16 (avx512_bf16/AMX), which the design measured at ~2.7x the fp32 throughput on these machines. CUDA:
channels_last, bf16 autocast (fp16 + GradScaler on GPUs without bf16), pinned host batches, deterministic
cuDNN. Batches and augmentation are drawn on the CPU from one seeded generator on every device, and the model
goes back to the CPU at the end, so checkpoints never depend on where it trained.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from collections.abc import Callable, Iterator
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
from fer.device import resolve_device
from fer.evaluate import evaluate

# extra_loss(logits [B, K] float32, images [B, C, H, W] as fed to the model, indices of the images in the split)
ExtraLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
SchedulerFactory = Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler]


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


def autocast_dtype(device: torch.device, mixed: bool) -> torch.dtype | None:
    """The autocast dtype for training on `device` (None: fp32). CUDA: bf16 where the GPU has it, else fp16."""
    if not mixed:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if bf16_supported() else None


def training_precision(cfg: TrainConfig) -> str:
    """The precision `fit` trains in with `cfg` on this machine ("bf16", "fp16" or "fp32"): `train.bf16` asks
    for mixed precision, the CPU or GPU decides whether it happens. It is part of the dense model's identity."""
    amp = autocast_dtype(resolve_device(cfg.device), cfg.bf16)
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(amp, "fp32") if amp is not None else "fp32"


@contextlib.contextmanager
def _deterministic_cuda(device: torch.device) -> Iterator[None]:
    """Same seeds -> same model on the same GPU: deterministic cuDNN/cuBLAS while training, restored after."""
    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS determinism needs it before first use
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[0], saved[1]
        torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


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


def epoch_steps(n: int, cfg: TrainConfig) -> int:
    """Optimizer steps in one epoch of `fit` over `n` training images: `train.images_per_epoch` images when set
    (0: one pass over the `n` images), in batches of `train.batch_size`."""
    n = min(n, cfg.subset) if cfg.subset else n
    bs = max(1, min(cfg.batch_size, n))
    return max(1, (cfg.images_per_epoch or n) // bs)


class BatchStream:
    """Batch indices drawn from a stream of seeded shuffles of `n` images: each image is seen once before any is
    seen twice, across epoch boundaries, so an epoch of `train.images_per_epoch` images smaller than the data
    still covers all of it over the run. The (shuffle, position) is saved with the training state."""

    def __init__(self, n: int, gen: torch.Generator) -> None:
        self.n, self.gen = n, gen
        self.perm = torch.empty(0, dtype=torch.int64)
        self.pos = 0

    def take(self, k: int) -> torch.Tensor:
        parts, need = [], k
        while need:
            if self.pos >= len(self.perm):
                self.perm, self.pos = torch.randperm(self.n, generator=self.gen), 0
            part = self.perm[self.pos : self.pos + need]
            self.pos += len(part)
            need -= len(part)
            parts.append(part)
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def state(self) -> dict[str, Any]:
        return {"perm": self.perm.clone(), "pos": self.pos}

    def load(self, state: dict[str, Any]) -> None:
        self.perm, self.pos = state["perm"], int(state["pos"])


def probe_images_per_s(model: nn.Module, cfg: TrainConfig, seconds: float = 3.0, max_steps: int = 6) -> float:
    """Training images/s of `model` on this machine, as `fit` would train it (device, channels_last, autocast,
    augmentation, optimizer step): one warm-up step, then at least two timed steps on random data, on a copy, so
    `model` and every random stream of the real run are untouched. ~3 steps: a few seconds on 2 CPU cores."""
    device = resolve_device(cfg.device)
    m = copy.deepcopy(model).to(device).to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-6)
    amp = autocast_dtype(device, cfg.bf16)
    gen = torch.Generator().manual_seed(0)
    channels = next(mod for mod in m.modules() if isinstance(mod, nn.Conv2d)).in_channels
    x0 = torch.rand(cfg.batch_size, channels, 48, 48, generator=gen)
    y = torch.randint(0, 7, (cfg.batch_size,), generator=gen).to(device)

    def step() -> None:
        x = augment_batch(x0, gen) if cfg.augment else x0
        x = x.to(device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            loss = F.cross_entropy(m(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()  # warm-up: first-call allocations and kernel choices
    t0, n = time.perf_counter(), 0
    while n < 2 or (time.perf_counter() - t0 < seconds and n < max_steps):
        step()
        n += 1
    return n * cfg.batch_size / (time.perf_counter() - t0)


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
    extra_loss: ExtraLoss | None = None,
    make_scheduler: SchedulerFactory | None = None,
) -> History:
    """Train `model` in place on `train` (cross-entropy + optional L1), evaluating on `val` each epoch.

    `epochs`/`lr` override the config (fine-tuning and QAT use their own); an epoch is
    `train.images_per_epoch` images (0: one pass over `train`), drawn by `BatchStream`; `on_step(step, loss)` feeds
    progress bars; `after_step(model)` lets soft pruning re-apply masks after each optimizer step.
    `state_path`: after every epoch the training state (model, optimizer, scheduler, epoch, RNG, history)
    is saved there atomically, and a later call with the same path and the same run continues after the
    last finished epoch (an interrupted `bench train` resumes). The caller deletes the file when done.
    `extra_loss(logits, x, idx)` is added to the loss of each batch (x: the augmented images on the training
    device, idx: their indices in `train`), e.g. distillation; `make_scheduler(optimizer, total_steps)`
    replaces train.schedule (a fine-tuning schedule that spans several calls).
    """
    epochs = cfg.epochs if epochs is None else epochs
    lr = cfg.lr if lr is None else lr
    history = History()
    if epochs <= 0:
        return history
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)  # seeds CUDA too
    gen = torch.Generator().manual_seed(cfg.seed)
    images = train.as_float()
    labels = train.labels
    if cfg.subset:
        images, labels = images[: cfg.subset], labels[: cfg.subset]
    n = len(labels)
    bs = min(cfg.batch_size, n)
    steps_per_epoch = epoch_steps(n, cfg)
    total_steps = epochs * steps_per_epoch
    model.to(device)  # before the optimizer sees the parameters
    model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    opt: torch.optim.Optimizer
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True)
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    sched: torch.optim.lr_scheduler.LRScheduler
    if make_scheduler is not None:
        sched = make_scheduler(opt, total_steps)
    elif cfg.schedule == "onecycle" and total_steps >= 8:  # one-cycle needs a few steps per phase
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps, pct_start=0.25)
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    amp = autocast_dtype(device, cfg.bf16)
    # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    cuda = device.type == "cuda"
    x_all = torch.from_numpy(images)
    y_all = torch.from_numpy(labels.astype(np.int64))
    run_id = {"epochs": epochs, "lr": lr, "n": n, "batch_size": bs, "optimizer": cfg.optimizer,
              "schedule": cfg.schedule, "seed": cfg.seed, "params": [list(p.shape) for p in params],
              "steps_per_epoch": steps_per_epoch}
    stream = BatchStream(n, gen)
    start = 0
    if state_path is not None and Path(state_path).exists():
        start = _restore_state(Path(state_path), run_id, model, opt, sched, gen, history, stream)
    step = start * steps_per_epoch
    with _deterministic_cuda(device):
        for epoch in range(start, epochs):
            model.train()
            t0 = time.perf_counter()
            loss_sum, correct, seen = 0.0, 0, 0
            for _ in range(steps_per_epoch):
                idx = stream.take(bs)
                x, y = x_all[idx], y_all[idx]
                if cfg.augment:
                    x = augment_batch(x, gen)  # on the CPU from `gen`: the same batches on every device
                if cuda:  # pinned host memory lets the copy overlap the previous step's kernels
                    x, y = x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
                x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                    logits = model(x)
                    loss = F.cross_entropy(logits.float(), y)
                if extra_loss is not None:
                    loss = loss + extra_loss(logits.float(), x, idx)
                if cfg.l1_lambda > 0:
                    loss = loss + cfg.l1_lambda * l1_penalty(model)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
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
                _save_state(Path(state_path), run_id, epoch + 1, model, opt, sched, gen, history, stream)
            if on_epoch is not None:
                on_epoch(log)
    model.to("cpu")  # callers save and export CPU tensors
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
    stream: BatchStream,
) -> None:
    """Everything needed to continue after `epoch` (tensors and plain values only: weights_only loads it)."""
    state = {
        "kind": "fer-train-state",
        "run": run_id,
        "epoch": epoch,
        "model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "optimizer": _to_cpu(opt.state_dict()),
        "scheduler": sched.state_dict(),
        "gen_rng": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state() if _on_cuda(model) else None,
        "history": [asdict(e) for e in history.epochs],
        "stream": stream.state(),
    }
    atomic_torch_save(state, path)


def _on_cuda(model: nn.Module) -> bool:
    return any(p.is_cuda for p in model.parameters())


def _to_cpu(obj: Any) -> Any:
    """Optimizer state with every tensor on the CPU (the state file must not depend on the device)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _restore_state(
    path: Path,
    run_id: dict[str, Any],
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    gen: torch.Generator,
    history: History,
    stream: BatchStream,
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
        if state.get("cuda_rng") is not None and _on_cuda(model):
            torch.cuda.set_rng_state(state["cuda_rng"])
        history.epochs[:] = [EpochLog(**e) for e in state["history"]]
        stream.load(state["stream"])
        return int(state["epoch"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise UserError(f"training state {path}: incomplete or damaged ({e}); delete it to start over") from None
