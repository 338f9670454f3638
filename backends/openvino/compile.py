"""Compile for OpenVINO's CPU plugin, with the one fusion known to compute the wrong answer turned off.

Why: OpenVINO 2026.4's CPU plugin can fuse an int8 FullyConnected chain (our classifier: FC, ReLU, FC, all
u8/i8) into one Snippets "Subgraph" node (the MLP-sequence tokenization). On a 2-core Xeon with AVX-512 VNNI and
AMX (2026-12-01) that node returned all-zero logits for a static batch-1 model on one thread, while the same file
compiled with a dynamic batch, or with two threads (no fusion), matched the fake-quant reference to 1e-6. The
agreement check caught it (agreement 0%), but a benchmark row of a model that outputs zeros is worth nothing.

So `compile_cpu` compiles as asked, and when the runtime model holds a Snippets Subgraph running u8/i8 it
compiles again with SNIPPETS_MODE=DISABLE (the CPU plugin's switch for Snippets tokenization; float Subgraphs
are left alone: they matched on every CPU measured) and returns a note that goes into the row. The check reads
the compiled model, not the CPU's flags: where the fusion does not happen nothing changes, and wherever it does
(seen on the AMX Xeon; not known on which other CPUs) it is turned off.
"""

from __future__ import annotations

from typing import Any

INT8_PRECISIONS = ("u8", "i8")
SNIPPETS_OFF = {"SNIPPETS_MODE": "DISABLE"}
SNIPPETS_NOTE = ("int8 Snippets subgraph disabled (SNIPPETS_MODE=DISABLE): OpenVINO's fused int8 FC chain "
                 "returned zeros on AMX CPUs")


def int8_snippet_nodes(compiled: Any) -> int:
    """Snippets Subgraph nodes of the compiled runtime model that run u8/i8."""
    n = 0
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" not in info or info["layerType"].astype(str) != "Subgraph":
            continue
        n += ("runtimePrecision" in info and info["runtimePrecision"].astype(str) in INT8_PRECISIONS)
    return n


def compile_cpu(core: Any, model: Any, config: dict[str, Any], reread: Any = None) -> tuple[Any, str]:
    """(compiled model, note): `model` compiled on CPU with `config`; compiled again without Snippets when the
    first compile fused int8 layers into a Snippets Subgraph (note says so, else ""). `reread()` gives a fresh
    copy of the model for the second compile (compile_model may have changed `model`); `model` is reused if None.
    `config` is updated in place, so a later compile with the same dict (another batch size) gets the same setting."""
    compiled = core.compile_model(model, "CPU", config)
    if not int8_snippet_nodes(compiled):
        return compiled, ""
    config.update(SNIPPETS_OFF)
    return core.compile_model(reread() if reread is not None else model, "CPU", config), SNIPPETS_NOTE
