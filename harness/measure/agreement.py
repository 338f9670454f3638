"""Agreement of every backend's logits with a reference computation of the same variant (top-1, max |delta|).

Which reference: an artifact with a PyTorch model (`model.pt`) is checked against PyTorch on the CPU (fp32, or
fake-quant int8); an imported ONNX model (no model.pt) against its own graph on ONNX Runtime's CPU provider with
every graph optimization off, so the operators run as written (fp32 kernels; Q/DQ rounding simulated in float
for a Q/DQ graph) and OpenVINO, ONNX Runtime's optimized session and TensorRT are all checked against it. Each
agreement entry and each row names its reference (`reference`).

Where a backend compiles a second model for the throughput scenario (OpenVINO's THROUGHPUT hint), the accuracy
process also saves that model's logits (`throughput_logits_path`) and they get their own entry
(`"scenario": "throughput"`; the others hold `"scenario": None`): the throughput rows are checked on the answers
of the model they time. An imported graph with integer operators (QLinearConv, ConvInteger, ...) runs integer
kernels on ONNX Runtime even unoptimized: its reference is its float twin where one can be made exactly
(QLinearConv/QLinearMatMul between Q/DQ in float: harness.measure.float_reference), else the integer graph, named
so ("int8, ONNX Runtime unoptimized"), never "fp32".

Locally, torch-eager's own cell is the reference where it ran that computation (CPU, fp32 or fake-quant int8);
otherwise a reference cell is run once per variant without timing, and its logits are cached under
`<store.cache_dir>/reference-logits/` keyed by the artifact's file hashes (manifest sha256s), the test images'
hash, the reference backend, its settings and its runtime's version: a later run of the same files skips that
process (several seconds), and a runtime upgrade computes it afresh. A cluster driver uses the same function
(`reference_logits`) for every variant and compares each node's logits with it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from backends.artifact import TORCH_FILE
from common.atomic import write_bytes_atomic, write_json_atomic
from common.results import REFERENCE_BACKEND
from harness.measure.cell import throughput_logits_path
from harness.measure.launcher import cell_spec, run_cell_subprocess
from harness.measure.scenarios import THROUGHPUT
from harness.measure.settings import CellSettings

Progress = Callable[[str], None]
ORT_BACKEND = "onnxruntime"
ORT_REFERENCE_OPTIONS = {"provider": "cpu", "optimization": "disable"}
ORT_REFERENCE = "onnxruntime-reference"
TORCH_REFERENCE = "pytorch-reference"


@dataclass(frozen=True)
class Reference:
    """Reference logits of one variant: `name` (what computed them, written into each row) and the .npy file."""

    name: str
    path: Path
    cell: str = ""  # the backend whose own timed cell computed them ("" for a separate reference process)


def reference_backend(artifact: Path) -> str:
    """torch-eager when the artifact holds a PyTorch model, else ONNX Runtime (an imported ONNX file)."""
    return REFERENCE_BACKEND if (Path(artifact) / TORCH_FILE).is_file() else ORT_BACKEND


def reference_options(s: CellSettings, backend: str) -> dict[str, Any]:
    """The reference computation's backend settings: PyTorch on the CPU (fake-quant for int8), or ONNX Runtime's
    CPU provider with graph optimizations off."""
    if backend == REFERENCE_BACKEND:
        return {**s.options(REFERENCE_BACKEND), "device": "cpu", "int8_mode": "fake-quant"}
    return dict(ORT_REFERENCE_OPTIONS)


def reference_key(s: CellSettings, backend: str) -> dict[str, Any]:
    """What the cached reference logits depend on besides the files: backend, its settings, its version."""
    return {**reference_options(s, backend), "reference_backend": backend, "runtime_version": _runtime_version(backend)}


def _runtime_version(backend: str) -> str:
    dist = "torch" if backend == REFERENCE_BACKEND else "onnxruntime"
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def graph_arithmetic(artifact: Path) -> str:
    """What ONNX Runtime computes when it runs an imported graph as written: "int8" where it holds integer
    operators (QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger: integer kernels even with every
    optimization off), "qdq" for a Q/DQ graph (float kernels, the rounding simulated), else "fp32"."""
    try:
        manifest = json.loads((Path(artifact) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return "fp32"
    q = manifest.get("quantization") if isinstance(manifest, dict) else None
    q = q if isinstance(q, dict) else {}
    if q.get("int8_nodes"):
        return "int8"
    return "qdq" if q.get("qdq_nodes") else "fp32"


ORT_REFERENCE_WORDS = {
    "fp32": "fp32 graph on the CPU provider, graph optimizations off",
    "qdq": "Q/DQ graph in float on the CPU provider, graph optimizations off",
    # not a float reference: the rows of ONNX Runtime itself are then checked against its own integer kernels
    "int8": "int8, ONNX Runtime unoptimized: the graph's integer operators on the CPU provider, graph "
            "optimizations off; not a float reference",
    "twin": "float twin of the integer graph: each QLinearConv/QLinearMatMul as DequantizeLinear -> float op -> "
            "QuantizeLinear, on the CPU provider, graph optimizations off",
}
TWIN_DIR = "float-twin"


def float_twin_artifact(artifact: Path) -> Path | None:
    """An artifact directory beside `artifact` (in its cache/) holding the float twin of its integer graph
    (harness.measure.float_reference) under a manifest of its own; None where no exact twin can be made."""
    import onnx

    from backends.artifact import MANIFEST, ONNX_FILE, load_artifact, sha256_file
    from harness.measure.float_reference import float_twin

    src = load_artifact(artifact, verify=False)
    try:
        twin = float_twin(onnx.load(str(src.file(ONNX_FILE))))
    except Exception:  # a graph the rewrite does not understand keeps its integer reference, named so
        return None
    if twin is None:
        return None
    out = src.cache_dir() / TWIN_DIR
    out.mkdir(exist_ok=True)
    write_bytes_atomic(out / ONNX_FILE, twin.SerializeToString())
    manifest = {**src.manifest, "files": {ONNX_FILE: {"bytes": (out / ONNX_FILE).stat().st_size,
                                                      "sha256": sha256_file(out / ONNX_FILE)}},
                "float_twin_of": str(Path(artifact))}
    write_json_atomic(out / MANIFEST, manifest)
    return out


def _reference_name(backend: str, label: str, arithmetic: str = "fp32") -> str:
    if backend == REFERENCE_BACKEND:
        return f"{TORCH_REFERENCE} ({label or 'fp32'})"
    return f"{ORT_REFERENCE} ({ORT_REFERENCE_WORDS.get(arithmetic, ORT_REFERENCE_WORDS['fp32'])})"


def reference_logits(s: CellSettings, variant: str, artifact: Path, images: Path, labels: Path, work: Path,
                     log_dir: Path, say: Progress) -> Reference | str:
    """The variant's reference logits (from the cache, else computed in an untimed cell process and cached),
    or the reason they could not be computed."""
    backend = reference_backend(artifact)
    extra = reference_options(s, backend)
    arithmetic = graph_arithmetic(artifact) if backend == ORT_BACKEND else "fp32"
    twin = float_twin_artifact(artifact) if arithmetic == "int8" else None  # a float reference where one exists
    if twin is not None:
        arithmetic = "twin"
    cached = reference_cache_path(Path(s.cache_dir), artifact, images,
                                  {**reference_key(s, backend), "arithmetic": arithmetic})
    meta_path = cached.with_suffix(".json") if cached else None
    if cached is not None and meta_path is not None and cached.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        name = str(meta.get("name") or _reference_name(backend, str(meta.get("label", "fp32")), arithmetic))
        say(f"reference {variant}: cached {name} logits ({cached.name})")
        return Reference(name, cached)
    say(f"reference {variant}: computing the {'PyTorch' if backend == REFERENCE_BACKEND else 'ONNX Runtime'} "
        "reference logits")
    out = Path(work) / f"reference__{variant}.logits.npy"
    spec = cell_spec(s, backend, twin or artifact, images, labels, out, timing=False, extra=extra)
    result = run_cell_subprocess(spec, Path(work) / f"reference__{variant}", s.timeout_s,
                                 Path(log_dir) / f"reference__{variant}.log", s.threads)
    if result.get("status") != "ok" or not out.is_file():
        why = f"the {backend} reference cell failed: {result.get('status')}: {result.get('reason', '')}".rstrip(": ")
        say(f"reference {variant}: {why}")
        return why
    name = _reference_name(backend, str(result.get("describe", {}).get("label", "fp32")), arithmetic)
    if cached is not None and meta_path is not None:
        _store_reference(out, cached, meta_path, name)
    return Reference(name, out)


def agreement_rows(s: CellSettings, variants: list[str], names: list[str], artifacts: dict[str, Path],
                   logits: dict[tuple[str, str], Path], labels_of: dict[tuple[str, str], str], images: Path,
                   labels: Path, work: Path, log_dir: Path, say: Progress,
                   missing: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One entry per (backend, variant) with logits: top-1 agreement and max |delta logit| vs the variant's
    reference; `missing` (if given) collects variant -> why no reference could be had."""
    rows: list[dict[str, Any]] = []
    for variant in variants:
        others = [b for b in names if (b, variant) in logits]
        if not others:
            continue
        if reference_is_cell(s, variant, logits, labels_of):
            label = labels_of.get((REFERENCE_BACKEND, variant)) or "fp32"
            ref = Reference(f"{_reference_name(REFERENCE_BACKEND, label)[:-1]}; torch-eager's own cell)",
                            logits[(REFERENCE_BACKEND, variant)], cell=REFERENCE_BACKEND)
        else:
            got = reference_logits(s, variant, artifacts[variant], images, labels, work, log_dir, say)
            if isinstance(got, str):
                if missing is not None:
                    missing[variant] = got
                continue
            ref = got
        ref_logits = np.load(ref.path)
        for backend in others:
            if backend == ref.cell:
                continue
            rows.append({"variant": variant, "backend": backend, "reference": ref.name, "scenario": None,
                         **compare_logits(np.load(logits[(backend, variant)]), ref_logits)})
            tp = throughput_logits_path(logits[(backend, variant)])
            if tp.is_file():  # the separately compiled throughput model, checked on its own answers
                rows.append({"variant": variant, "backend": backend, "reference": ref.name, "scenario": THROUGHPUT,
                             **compare_logits(np.load(tp), ref_logits)})
    return rows


def reference_cache_path(cache_dir: Path, artifact: Path, images: Path, extra: dict[str, Any],
                         torch_version: str | None = None) -> Path | None:
    """Where the reference logits of (artifact file hashes, test images, reference settings, torch version)
    are cached; None when the artifact's manifest lists no file hashes (nothing safe to key on). The torch
    version is the installed one unless given: an upgrade computes the reference afresh."""
    try:
        manifest = json.loads((Path(artifact) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return None
    if torch_version is None:
        import torch  # the reference cell runs this interpreter's torch (its build tag, e.g. +cu130, included)

        torch_version = str(torch.__version__)
    h = hashlib.sha256()
    h.update(json.dumps({n: (f or {}).get("sha256") for n, f in sorted(files.items())}, sort_keys=True).encode())
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    h.update(f"torch {torch_version}".encode())
    with Path(images).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return Path(cache_dir) / "reference-logits" / f"{h.hexdigest()[:24]}.npy"


def _store_reference(src: Path, dest: Path, meta_path: Path, name: str) -> None:
    """Copy the logits and their name into the cache atomically (temp file + rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(dest, src.read_bytes())
    write_json_atomic(meta_path, {"name": name})


def reference_is_cell(s: CellSettings, variant: str, logits: dict[tuple[str, str], Path],
                      labels_of: dict[tuple[str, str], str]) -> bool:
    """True when torch-eager's own cell of `variant` ran the reference computation (CPU, fp32 or fake-quant)."""
    from backends.torch_model import FAKE_QUANT_LABEL

    te = (REFERENCE_BACKEND, variant)
    on_cpu = s.options(REFERENCE_BACKEND).get("device", "cpu") == "cpu"
    return te in logits and on_cpu and labels_of.get(te, "") in ("fp32", FAKE_QUANT_LABEL)


def compare_logits(logits: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Top-1 agreement (fraction of images with the same argmax) and max |delta logit| vs the reference."""
    if logits.shape != reference.shape:
        raise ValueError(f"logits {logits.shape} and reference {reference.shape} differ in shape")
    if len(logits) == 0:
        return {"top1_agreement": float("nan"), "max_abs_logit_diff": float("nan")}
    agree = float(np.mean(logits.argmax(axis=1) == reference.argmax(axis=1)))
    diff = float(np.max(np.abs(logits.astype(np.float64) - reference.astype(np.float64))))
    return {"top1_agreement": agree, "max_abs_logit_diff": diff}
