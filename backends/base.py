"""The Backend contract: every runtime is driven through these five methods and nothing else.

The harness never special-cases a backend name: timing code calls `infer` (synchronous, device sync
inside) for the latency scenario and `infer_async_batch` (several requests in flight where the runtime
supports it; the default just loops over `infer`) for the throughput scenario.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backends.artifact import Artifact


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here; if not, `reason` says what is missing and how to get it."""

    available: bool
    reason: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    device: str = ""


@dataclass(frozen=True)
class BackendOptions:
    """Settings the harness fixes and records for every cell."""

    threads: int = 2
    batch_sizes: tuple[int, ...] = (1,)
    scenario: str = "latency"  # "latency" (batch 1, sync) | "throughput" (batched, async where supported)
    extra: dict[str, Any] = field(default_factory=dict)  # the backend's own [backends.<name>] section


class Backend(abc.ABC):
    """One runtime. Lifecycle: probe() -> load(artifact, options) -> infer(...)* -> describe() -> close()."""

    name: str = ""

    @classmethod
    @abc.abstractmethod
    def probe(cls) -> Availability:
        """Is this runtime usable here (package importable, device present)? Never raises."""

    @abc.abstractmethod
    def load(self, artifact: Artifact, options: BackendOptions) -> None:
        """Compile/build the artifact's model for this runtime (timed by the harness as cold start)."""

    @abc.abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Synchronous inference: float32 [N, C, 48, 48] -> logits float32 [N, 7]; device sync inside."""

    def infer_many(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """Throughput: run several requests, in flight together where the runtime supports it."""
        return [self.infer(b) for b in batches]

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Effective settings (threads, streams, precision, providers) plus `int8_layers`/`total_layers`."""

    def loaded_bytes(self) -> int:
        """Bytes on disk of the file(s) this backend loaded."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release runtime resources."""
