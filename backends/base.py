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
from common.errors import UserError

RUNTIME_TIMING_CALLS = 200


class Unavailable(UserError):
    """This backend cannot run here (package missing, no device, provider absent): the cell is `unavailable`."""


def check_batch(batch: np.ndarray, input_shape: tuple[int, ...] | list[int] | None) -> None:
    """UserError (one line) unless `batch` is float32 [N>=1, *input_shape]."""
    if batch.ndim != 4 or batch.shape[0] < 1:
        raise UserError(f"input batch must be [N>=1, C, H, W], got shape {list(batch.shape)}")
    if input_shape is not None and tuple(batch.shape[1:]) != tuple(input_shape):
        raise UserError(
            f"input shape {list(batch.shape[1:])} does not match the model input {list(input_shape)}"
        )
    if batch.dtype != np.float32:
        raise UserError(f"input batch must be float32, got {batch.dtype}")


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
    # True when the throughput scenario needs a differently compiled model (e.g. OpenVINO's THROUGHPUT hint):
    # the harness then loads a second instance with options.scenario="throughput".
    reload_per_scenario: bool = False

    @classmethod
    def interleaved_extra(cls, extra: dict[str, Any]) -> dict[str, Any]:
        """The backend's settings when two of its models share one process, timed in alternating blocks
        (`bench run --reference`): unchanged unless the runtime's idle model would disturb the running one."""
        return extra

    @classmethod
    @abc.abstractmethod
    def probe(cls) -> Availability:
        """Is this runtime usable here (package importable, device present)? Never raises."""

    @abc.abstractmethod
    def load(self, artifact: Artifact, options: BackendOptions) -> None:
        """Compile/build the artifact's model for this runtime (timed by the harness as cold start)."""

    @abc.abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Synchronous inference: float32 [N, C, 48, 48] -> logits float32 [N, 7]; device sync inside.

        The logits may live in a buffer the backend reuses (no allocation per call): they are valid until the
        next `infer` of the same batch size. Copy them to keep them."""

    def infer_many(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """Throughput: run several requests, in flight together where the runtime supports it (each output is
        the caller's own array)."""
        return [np.array(self.infer(b), dtype=np.float32, copy=True) for b in batches]

    def static_batch(self) -> int | None:
        """The one batch size the loaded model is compiled for (None: any). The accuracy pass then runs in
        chunks of it, so its logits come from the very model that is timed."""
        return None

    def preferred_requests(self) -> int:
        """How many requests `infer_many` can keep in flight at once (1: the runtime runs them one by one)."""
        return 1

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Effective settings (threads, streams, precision, providers) plus `int8_layers`/`total_layers`."""

    def runtime_timing(self, batch: np.ndarray) -> dict[str, Any] | None:
        """The runtime's own time per request where it exposes one (OpenVINO: InferRequest.latency), read after
        the timed loop on `RUNTIME_TIMING_CALLS` calls, beside the end-to-end time of those same calls:
        {"runtime_p50_ms", "end_to_end_p50_ms", "calls", "source"}; None where the runtime has no such figure."""
        return None

    def timing_split(self, batch: np.ndarray) -> dict[str, Any] | None:
        """GPU backends: end-to-end vs H2D / device compute / D2H (see backends.cuda_timing); None elsewhere."""
        return None

    def loaded_bytes(self) -> int:
        """Bytes on disk of the file(s) this backend loaded."""
        return 0

    @abc.abstractmethod
    def source_file(self, artifact: Artifact) -> str:
        """The name of the artifact file this backend builds its model from (model.onnx, model.pt, ...): its
        sha256 in the manifest names what was timed, so two models under one variant name never mix."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release runtime resources."""
