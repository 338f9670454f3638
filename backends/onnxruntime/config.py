"""Settings of the ONNX Runtime backend: the `[backends.onnxruntime]` table of bench.toml."""

from __future__ import annotations

from dataclasses import dataclass

from common.config import setting

PROVIDERS = ("cpu", "cuda", "tensorrt")
OPT_LEVELS = ("disable", "basic", "extended", "all")


@dataclass(frozen=True)
class OnnxRuntimeConfig:
    provider: str = setting("cpu", choices=PROVIDERS)
    optimization: str = setting("all", choices=OPT_LEVELS)
