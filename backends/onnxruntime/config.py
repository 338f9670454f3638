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
    # intra-op workers spin-wait between calls (ONNX Runtime's default) instead of sleeping:
    # session.intra_op.allow_spinning
    spinning: bool = setting(True)
    # pin each intra-op worker to one CPU of the process's affinity (session.intra_op_thread_affinities); the
    # calling thread, ONNX Runtime's first intra-op thread, is left to the scheduler
    pinning: bool = setting(False)
