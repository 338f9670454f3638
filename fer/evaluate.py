"""Evaluation: logits for a split, accuracy, macro-F1 and the confusion matrix."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fer.classes import NUM_CLASSES
from fer.metrics import Metrics, classification_metrics

__all__ = ["Metrics", "classification_metrics", "evaluate", "predict_logits"]


@torch.no_grad()
def predict_logits(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits [N, 7] for float32 images [N, C, 48, 48] (already scaled to [0, 1]), model in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device  # a model still on its training device
    outs = []
    for i in range(0, len(images), batch_size):
        outs.append(model(torch.from_numpy(images[i : i + batch_size]).to(device)).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(outs) if outs else np.zeros((0, NUM_CLASSES), dtype=np.float32)


def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray, batch_size: int = 256) -> Metrics:
    """Metrics of `model` on float images and labels."""
    return classification_metrics(labels, predict_logits(model, images, batch_size).argmax(axis=1))
