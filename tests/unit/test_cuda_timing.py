"""The trtexec-style split summary (pure) and the backends' opt-out on CPU."""

from __future__ import annotations

import numpy as np
import pytest

from backends.cuda_timing import SplitSample, split_summary


def test_split_summary_medians_and_host_overhead() -> None:
    samples = [SplitSample(1.0, 0.1, 0.5, 0.1), SplitSample(1.2, 0.2, 0.6, 0.1), SplitSample(3.0, 0.1, 0.5, 0.2)]
    s = split_summary(samples)
    assert s["n"] == 3 and s["end_to_end_ms"] == 1.2 and s["h2d_ms"] == 0.1 and s["compute_ms"] == 0.5
    assert s["d2h_ms"] == 0.1
    assert s["host_overhead_ms"] == pytest.approx(1.2 - 0.7)
    assert s["compute_share"] == pytest.approx(0.5 / 1.2)
    assert split_summary([]) == {"n": 0}


def test_cpu_backends_report_no_gpu_split(tmp_path) -> None:
    from backends.registry import get_backend_class

    for name in ("openvino", "onnxruntime"):
        assert get_backend_class(name)().timing_split(np.zeros((1, 1, 48, 48), np.float32)) is None
