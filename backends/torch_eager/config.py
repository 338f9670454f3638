"""Settings of the torch-eager backend: the `[backends.torch-eager]` table of bench.toml."""

from __future__ import annotations

from dataclasses import dataclass

from common.config import setting


@dataclass(frozen=True)
class TorchEagerConfig:
    device: str = setting("cpu", choices=("cpu", "cuda"))
    channels_last: bool = setting(True)
