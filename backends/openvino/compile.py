"""Compile for OpenVINO's CPU plugin, with the one fusion known to compute the wrong answer turned off.

Why: OpenVINO 2026.4's CPU plugin can fuse an int8 FullyConnected chain (our classifier: FC, ReLU, FC, all
u8/i8) into one Snippets "Subgraph" node (the MLP-sequence tokenization). On a 2-core Xeon with AVX-512 VNNI and
AMX (2026-12-01) that node returned all-zero logits for a static batch-1 model on one thread, while the same file
compiled with a dynamic batch, or with two threads (no fusion), matched the fake-quant reference to 1e-6. The
agreement check caught it (agreement 0%), but a benchmark row of a model that outputs zeros is worth nothing.

So `compile_cpu` compiles as asked, and when the runtime model holds a Snippets Subgraph running u8/i8 it
compiles again with SNIPPETS_MODE=DISABLE. That switch is the narrowest the plugin offers: its values are ENABLE,
IGNORE_CALLBACK (tokenizes *more*: the plugin's callback that limits tokenization is skipped) and DISABLE, and no
public property selects one tokenization pass (MLP sequence, FC, eltwise). DISABLE turns Snippets off for the
whole compiled model: float Subgraphs (fused eltwise chains) go too, so that model may run somewhat slower than one
with only the int8 fusion removed; the note in the row says so. Before the recompiled model is timed, one fixed
input runs through it and through an independent compile of the same file (dynamic batch, Snippets as default),
when that one holds no int8 Subgraph; a disagreement fails the load. The check reads the compiled model, not the
CPU's flags: where the fusion does not happen nothing changes, and wherever it does (seen on the AMX Xeon; not
known on which other CPUs) it is turned off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

INT8_PRECISIONS = ("u8", "i8")
SNIPPETS_OFF = {"SNIPPETS_MODE": "DISABLE"}
SNIPPETS_NOTE = ("Snippets disabled (SNIPPETS_MODE=DISABLE, every Subgraph fusion, float ones too): OpenVINO's "
                 "fused int8 FC chain returned zeros on AMX CPUs")
SNIPPETS_LABEL = "Snippets off"  # appended to the row's label
CHECK_RTOL = 0.02  # max |diff| of the fixed input's logits, relative to their largest magnitude


def int8_snippet_nodes(compiled: Any) -> int:
    """Snippets Subgraph nodes of the compiled runtime model that run u8/i8."""
    n = 0
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" not in info or info["layerType"].astype(str) != "Subgraph":
            continue
        n += ("runtimePrecision" in info and info["runtimePrecision"].astype(str) in INT8_PRECISIONS)
    return n


def subgraph_nodes(compiled: Any) -> int:
    """Snippets Subgraph nodes of any precision in the compiled runtime model."""
    return sum(1 for op in compiled.get_runtime_model().get_ordered_ops()
               if "layerType" in op.get_rt_info() and op.get_rt_info()["layerType"].astype(str) == "Subgraph")


def fixed_input(compiled: Any) -> np.ndarray:
    """One seeded float32 batch in [0, 1] of the compiled model's input shape (a dynamic batch as 1)."""
    dims = [d.get_length() if d.is_static else 1 for d in compiled.input(0).get_partial_shape()]
    return np.random.default_rng(0).random(dims, dtype=np.float32)


def _run(compiled: Any, x: np.ndarray) -> np.ndarray:
    out = compiled.create_infer_request().infer({0: x})
    return np.asarray(out[compiled.output(0)], dtype=np.float32)


def check_against(compiled: Any, check: Any) -> str:
    """Run the fixed input through `compiled` and `check`; RuntimeError when they disagree (or `compiled` returns
    zeros or non-finite values), else the check's outcome in words."""
    x = fixed_input(compiled)
    got, want = _run(compiled, x), _run(check, np.ascontiguousarray(x))
    if not np.all(np.isfinite(got)) or (not np.any(got) and np.any(want)):
        raise RuntimeError("the model recompiled without Snippets returns zeros or non-finite logits")
    diff = float(np.max(np.abs(got - want)))
    scale = float(np.max(np.abs(want))) or 1.0
    if diff > CHECK_RTOL * scale:
        raise RuntimeError(f"the model recompiled without Snippets disagrees with an independent compile "
                           f"(max |diff| {diff:.3g} on a fixed input, logits up to {scale:.3g})")
    return f"checked on a fixed input against a dynamic-batch compile: max |diff| {diff:.2g}"


def compile_cpu(core: Any, model: Any, config: dict[str, Any], reread: Any = None,
                check_model: Callable[[], Any] | None = None,
                fused: Callable[[Any], int] = int8_snippet_nodes) -> tuple[Any, str]:
    """(compiled model, note): `model` compiled on CPU with `config`; compiled again without Snippets when the
    first compile fused int8 layers into a Snippets Subgraph (`fused` counts them; a test may force it), and the
    note says so, else "". `reread()` gives a fresh copy of the model for the second compile (compile_model may
    have changed `model`); `model` is reused if None. `check_model()` gives the model for the independent compile
    the recompiled one is checked against (with the caller's settings, Snippets as default); with none, or when
    that compile fuses int8 too, only zeros and non-finite logits are caught and the note says it was not checked.
    `config` is updated in place, so a later compile with the same dict (another batch size) gets the same
    setting."""
    compiled = core.compile_model(model, "CPU", config)
    if not fused(compiled):
        return compiled, ""
    before = dict(config)
    config.update(SNIPPETS_OFF)
    recompiled = core.compile_model(reread() if reread is not None else model, "CPU", config)
    checker = core.compile_model(check_model(), "CPU", before) if check_model is not None else None
    if checker is not None and not int8_snippet_nodes(checker):
        return recompiled, f"{SNIPPETS_NOTE}; {check_against(recompiled, checker)}"
    got = _run(recompiled, fixed_input(recompiled))
    if not np.all(np.isfinite(got)) or not np.any(got):
        raise RuntimeError("the model recompiled without Snippets returns zeros or non-finite logits")
    return recompiled, f"{SNIPPETS_NOTE}; not checked against an independent compile (none without the fusion)"
