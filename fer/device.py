"""The `train.device` setting -> a torch device: "auto" (CUDA when available), "cpu" or "cuda".

Resolved at the point of use (training, fine-tuning, calibration, QAT) so the CLI commands need no device
plumbing; the auto fallback is announced once per process, not once per fine-tuning call.
"""

from __future__ import annotations

import torch

from common.console import info
from common.errors import UserError

_announced = False


def resolve_device(setting: str) -> torch.device:
    """torch device for `setting`; UserError (one line) when "cuda" is asked for and CUDA is absent."""
    global _announced
    if setting == "cpu":
        return torch.device("cpu")
    cuda = torch.cuda.is_available()
    if setting == "cuda":
        if not cuda:
            raise UserError(
                "train.device = 'cuda' but torch.cuda.is_available() is False (no NVIDIA GPU/driver, or a CPU-only "
                "torch build); use --set train.device=cpu or auto"
            )
        return torch.device("cuda")
    if setting != "auto":
        raise UserError(f"train.device = {setting!r}: allowed values are auto, cpu, cuda")
    if cuda:
        return torch.device("cuda")
    if not _announced:
        info("train.device = auto: no CUDA device here, training on the CPU")  # short: rich wraps at 80
        _announced = True
    return torch.device("cpu")
