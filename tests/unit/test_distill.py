"""Distillation: the loss on known logits, and the teacher's cache (same batch -> one teacher pass)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from common.config import load_config
from compression.distill import Teacher, distillation_loss, kd_divergence, kd_term
from fer.data import FerData, Split
from fer.model import build_model, default_arch
from fer.train import fit


def _softmax(z: list[float]) -> list[float]:
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def test_distillation_loss_on_known_logits_equals_the_hand_computed_value() -> None:
    student = [[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]]
    teacher = [[1.0, 1.0, -2.0], [3.0, 0.0, 0.0]]
    labels = [0, 2]
    t, w = 4.0, 0.7
    # by hand: KL(p_t || p_s) = sum p_t * (log p_t - log p_s) per row, mean over rows, times T^2
    kl = 0.0
    for s_row, t_row in zip(student, teacher, strict=True):
        ps, pt = _softmax([v / t for v in s_row]), _softmax([v / t for v in t_row])
        kl += sum(a * (math.log(a) - math.log(b)) for a, b in zip(pt, ps, strict=True))
    kl = kl / 2 * t * t
    ce = -sum(math.log(_softmax(row)[y]) for row, y in zip(student, labels, strict=True)) / 2
    s_t, t_t, y_t = torch.tensor(student), torch.tensor(teacher), torch.tensor(labels)
    assert float(kd_divergence(s_t, t_t, t)) == pytest.approx(kl, rel=1e-6)
    assert float(distillation_loss(s_t, t_t, y_t, w, t)) == pytest.approx(ce + w * kl, rel=1e-6)
    assert float(kd_divergence(t_t, t_t, t)) == pytest.approx(0.0, abs=1e-7)  # same answers: nothing to learn


def test_weight_zero_is_plain_cross_entropy() -> None:
    s, t = torch.randn(5, 7), torch.randn(5, 7)
    y = torch.randint(0, 7, (5,))
    assert float(distillation_loss(s, t, y, 0.0, 4.0)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(s, y)), rel=1e-6)


def _data(n: int = 48) -> FerData:
    rng = np.random.default_rng(0)

    def split(k: int) -> Split:
        return Split(rng.integers(0, 256, (k, 48, 48), dtype=np.uint8), rng.integers(0, 7, k).astype(np.int64))

    return FerData("tiny", split(n), split(16), split(16), synthetic=True)


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(default_arch(width=0.125)).eval()


@pytest.mark.parametrize("augment", [True, False])
def test_teacher_runs_once_per_batch_across_fit_calls_with_the_same_seed(augment: bool) -> None:
    data = _data()
    cfg = load_config(None, ["train.batch_size=16", "train.bf16=false", f"train.augment={str(augment).lower()}"])
    teacher = Teacher(_model(1), data.train, augment=augment)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    term = kd_term(teacher, 1.0, 4.0)

    def spy(logits: torch.Tensor, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        seen.append((x.detach().clone(), idx.clone()))
        return term(logits, x, idx)

    fit(_model(2), data.train, None, cfg.train, epochs=2, lr=1e-3, extra_loss=spy)
    steps = 2 * (48 // 16)
    assert len(seen) == steps
    first = (teacher.stats.hits, teacher.stats.misses)
    if augment:
        assert first == (0, steps)  # every batch of the first call is new
    else:
        assert first == (steps - 1, 1)  # all training images once, then lookups
    fit(_model(3), data.train, None, cfg.train, epochs=2, lr=1e-3, extra_loss=spy)  # a second student, same seed
    assert teacher.stats.misses == first[1]  # the teacher did not run again
    assert teacher.stats.hits == first[0] + steps
    # the cached logits are the teacher's answers on exactly what the student saw
    x, idx = seen[-1]
    with torch.no_grad():
        direct = teacher.model(x)
    assert torch.allclose(teacher.logits(x, idx), direct, atol=1e-5)


def test_distillation_pulls_the_student_towards_the_teacher() -> None:
    data = _data(64)
    cfg = load_config(None, ["train.batch_size=16", "train.bf16=false", "train.augment=false", "train.schedule=cosine"])
    teacher = Teacher(_model(1), data.train, augment=False)
    x = torch.from_numpy(data.train.as_float())
    t_logits = teacher.model(x).detach()

    def gap(m: torch.nn.Module) -> float:
        with torch.no_grad():
            return float(kd_divergence(m.eval()(x), t_logits, 4.0))

    plain, kd = _model(2), _model(2)
    fit(plain, data.train, None, cfg.train, epochs=3, lr=1e-3)
    fit(kd, data.train, None, cfg.train, epochs=3, lr=1e-3, extra_loss=kd_term(teacher, 5.0, 4.0))
    assert gap(kd) < gap(plain)
