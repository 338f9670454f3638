"""Accuracy, macro-F1 and the confusion matrix from labels and predictions: numpy only, so a benchmark cell of a
non-torch runtime can score its logits without importing torch (whose libraries would inflate the cell's RSS)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fer.classes import NUM_CLASSES


@dataclass(frozen=True)
class Metrics:
    accuracy: float
    macro_f1: float
    confusion: list[list[int]]  # rows: true class, columns: predicted class (FER2013 order)

    def to_dict(self) -> dict[str, object]:
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1, "confusion": self.confusion}


def classification_metrics(labels: np.ndarray, preds: np.ndarray, num_classes: int = NUM_CLASSES) -> Metrics:
    """Top-1 accuracy, macro-F1 over the classes present in `labels`, and the confusion matrix."""
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (labels, preds), 1)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    macro_f1 = float(f1[present].mean()) if present.any() else 0.0
    acc = float(tp.sum() / max(1, len(labels)))
    return Metrics(accuracy=acc, macro_f1=macro_f1, confusion=cm.tolist())
