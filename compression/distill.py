"""Knowledge distillation from the dense model into a pruned or quantized one (Hinton et al. 2015).

    loss = CE(student, y) + kd_weight * T^2 * KL(softmax(teacher / T) || softmax(student / T))

as NNI's and NNCF's distillation fine-tuning compute it (T about 4; T^2 keeps the soft term's gradients on the
scale of the hard term's as T grows). The teacher is the dense model in eval mode, and it must see the same
image as the student: a teacher answer for the un-augmented image, given to a student that sees a flipped,
shifted, partly erased copy, teaches the wrong thing ("consistent teaching", Beyer et al. 2022). So:

  * augmentation off: the teacher's logits for every training image are computed once, looked up by index;
  * augmentation on: they are computed on the augmented batch itself, once per distinct batch, and cached by the
    batch's bytes. `fer.train.fit` draws its batches from a generator seeded with train.seed, so every fit call
    (each pruning step's fine-tuning, QAT, every sweep point) replays the same batches in its first epochs and
    the teacher runs once per (augmentation seed, epoch, batch), not once per student step. A teacher forward
    costs a dense forward pass, several times a 16x-pruned student's whole step: without the cache, distillation
    would dominate the fine-tuning time.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.config import CompressConfig, TrainConfig
from fer.data import Split
from fer.train import ExtraLoss

EVAL_BATCH = 256


def kd_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch."""
    t = float(temperature)
    log_p_student = F.log_softmax(student_logits.float() / t, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / t, dim=1)
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * (t * t)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      weight: float, temperature: float) -> torch.Tensor:
    """CE(student, labels) + weight * T^2 * KL(teacher_T || student_T): the whole fine-tuning loss."""
    ce = F.cross_entropy(student_logits.float(), labels)
    return ce + weight * kd_divergence(student_logits, teacher_logits, temperature)


@dataclass
class TeacherStats:
    hits: int = 0  # batches answered from the cache
    misses: int = 0  # batches the teacher ran on


class Teacher:
    """The dense model's logits on training batches (see the module docstring for when they are computed)."""

    def __init__(self, dense: nn.Module, train: Split, augment: bool, max_batches: int = 50_000) -> None:
        self.model = copy.deepcopy(dense).float().eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.train = train
        self.augment = augment
        self.max_batches = max_batches  # bound on cached batches (~2 KB each): 50k = ~100 MB at most
        self.by_index: torch.Tensor | None = None
        self.by_batch: dict[bytes, torch.Tensor] = {}
        self.stats = TeacherStats()

    @torch.no_grad()
    def _run(self, x: torch.Tensor) -> torch.Tensor:
        self.model.to(x.device)
        outs = [self.model(x[i : i + EVAL_BATCH].float()).float() for i in range(0, len(x), EVAL_BATCH)]
        return torch.cat(outs)

    def _all_images(self, device: torch.device) -> torch.Tensor:
        """Logits of every (un-augmented) training image, computed once."""
        if self.by_index is None:
            x = torch.from_numpy(self.train.as_float())
            self.by_index = torch.cat([self._run(x[i : i + EVAL_BATCH].to(device)).cpu()
                                       for i in range(0, len(x), EVAL_BATCH)])
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return self.by_index

    def logits(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """The teacher's logits for the batch `x` (images `idx` of the training split), on x's device."""
        if not self.augment:
            return self._all_images(x.device)[idx.cpu()].to(x.device)
        key = batch_key(x)
        hit = self.by_batch.get(key)
        if hit is not None:
            self.stats.hits += 1
            return hit.to(x.device)
        out = self._run(x)
        if len(self.by_batch) < self.max_batches:
            self.by_batch[key] = out.detach().cpu()
        self.stats.misses += 1
        return out


def batch_key(x: torch.Tensor) -> bytes:
    """A digest of a batch's shape and values (the cache key of its teacher logits)."""
    a = np.ascontiguousarray(x.detach().float().cpu().numpy())
    h = hashlib.blake2b(digest_size=20)
    h.update(str(a.shape).encode())
    h.update(a.tobytes())
    return h.digest()


def kd_term(teacher: Teacher, weight: float, temperature: float) -> ExtraLoss:
    """`fit(extra_loss=...)`: weight * T^2 * KL(teacher_T || student_T) on each batch (CE is fit's own)."""

    def term(logits: torch.Tensor, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return weight * kd_divergence(logits, teacher.logits(x, idx), temperature)

    return term


_SHARED: dict[str, Teacher] = {}


def shared_teacher(key: str, dense: nn.Module, train: Split, train_cfg: TrainConfig) -> Teacher:
    """One Teacher per (dense weights, data, augmentation, seed) `key` in this process: the points of a sweep
    share its cache. Only the latest key is kept (a sweep has one dense model)."""
    k = f"{key}|augment={train_cfg.augment}|seed={train_cfg.seed}|subset={train_cfg.subset}"
    if k not in _SHARED:
        _SHARED.clear()
        _SHARED[k] = Teacher(dense, train, train_cfg.augment)
    return _SHARED[k]


def kd_for(c: CompressConfig, key: str, dense: nn.Module, train: Split, train_cfg: TrainConfig) -> ExtraLoss | None:
    """The distillation term of compress config `c` (None when compress.kd_weight is 0)."""
    if c.kd_weight <= 0:
        return None
    return kd_term(shared_teacher(key, dense, train, train_cfg), c.kd_weight, c.kd_temperature)
