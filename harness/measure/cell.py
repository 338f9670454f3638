"""One benchmark cell (one backend x one variant) in its own fresh process: `python -m harness.measure.cell SPEC OUT`.

SPEC is a JSON file (see `CellSpec`); the test images come as .npy files (never JSON). The cell loads the
artifact (cold start = load + first inference, timed apart), then either runs the accuracy pass (an untimed
process, `timing: false`: logits of the latency model and, where the backend compiles a second model for
throughput, that model's accuracy too) or each timed scenario: latency (batch 1, synchronous `infer`) and
throughput (each batch size, `infer_many` with as many requests in flight as the backend keeps). `steps` lists
the work done in order, so the runner can check that the processes of a cell did the same. No thread of ours
runs while a loop is timed: memory is read before and after each phase (peak RSS from the kernel's high-water
mark, reset at the phase's start). It writes OUT (JSON, atomically) and, when asked, the logits as .npy. Any
failure becomes `status: error|unavailable` with a one-line reason; a crash or hang is caught by the runner
(no OUT file / timeout).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.atomic import write_json_atomic
from common.text import first_line
from harness.measure.memory import RssWindow, load_record, process_peak_bytes
from harness.measure.scenarios import (
    LATENCY,
    THROUGHPUT,
    batch_from,
    latency_call,
    python_threads,
    throughput_call,
    throughput_rounds,
    time_latency,
    time_pair,
    time_throughput,
)
from harness.measure.trackers import peak_rss_bytes


@dataclass
class CellSpec:
    backend: str
    artifact: str
    images: str  # .npy float32 [N, C, 48, 48]
    labels: str  # .npy int64 [N]
    threads: int = 2
    batch_sizes: list[int] = field(default_factory=lambda: [1])
    extra: dict[str, Any] = field(default_factory=dict)  # the backend's [backends.<name>] section
    scenarios: list[list[Any]] = field(default_factory=lambda: [[LATENCY, 1]])  # [[scenario, batch], ...]
    warmup_s: float = 0.5
    min_duration_s: float = 2.0
    min_iterations: int = 200
    max_cov: float = 0.25
    max_duration_s: float | None = None
    accuracy: bool = True
    timing: bool = True
    logits_out: str = ""  # where to save the accuracy pass's logits (.npy); "" = don't
    memory_mb: int = 0  # RLIMIT_AS of the cell process, set by the launcher (benchmark.cell_memory_mb); 0 = none
    # a second artifact timed in the same process, in alternating blocks (`bench run --reference`, interleave
    # "blocks"); "" = none. Its results go to result["reference"]; `lead` says which arm's block comes first.
    reference_artifact: str = ""
    lead: str = "candidate"

    @classmethod
    def from_json(cls, text: str) -> CellSpec:
        return cls(**json.loads(text))

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def run_cell(spec: CellSpec) -> dict[str, Any]:
    """Everything the cell measures, as a JSON-able dict; never raises for backend/artifact problems."""
    from backends.base import Unavailable
    from common.errors import UserError

    result: dict[str, Any] = {"status": "ok", "reason": "", "scenarios": [], "pid": os.getpid(), "steps": []}
    try:
        _run(spec, result)
    except Unavailable as e:
        result.update(status="unavailable", reason=str(e))
    except UserError as e:
        result.update(status="error", reason=str(e))
    except Exception as e:  # a backend bug or runtime failure costs this cell only
        result.update(status="error", reason=f"{type(e).__name__}: {first_line(e)}",
                      traceback=traceback.format_exc()[-4000:])
    result["peak_rss_bytes"] = max(peak_rss_bytes(), process_peak_bytes())
    return result


def _run(spec: CellSpec, result: dict[str, Any]) -> None:
    from backends.artifact import load_artifact
    from backends.base import BackendOptions
    from backends.registry import get_backend_class
    from common.errors import UserError
    from harness.measure.faults import inject_fault

    inject_fault(spec.backend)  # test hook: does nothing unless FER_BENCH_FAULT names this backend
    bad = [b for b in spec.batch_sizes if int(b) <= 0]
    if bad:
        raise UserError(f"benchmark.batch_sizes: {bad} must be >= 1")
    cls = get_backend_class(spec.backend)
    avail = cls.probe()
    result["versions"] = avail.versions
    if not avail.available:
        from backends.base import Unavailable

        raise Unavailable(avail.reason)
    artifact = load_artifact(spec.artifact)
    images = np.load(spec.images, allow_pickle=False)
    labels = np.load(spec.labels, allow_pickle=False)
    want = artifact.manifest.get("input_shape")
    if want is not None and list(images.shape[1:]) != list(want):
        raise UserError(f"test images are {list(images.shape[1:])} but the model input is {list(want)} "
                        f"(model.in_channels must match the data)")

    extra = cls.interleaved_extra(dict(spec.extra)) if spec.reference_artifact else dict(spec.extra)
    options = BackendOptions(threads=spec.threads, batch_sizes=tuple(int(b) for b in spec.batch_sizes),
                             scenario=LATENCY, extra=extra)
    backend = cls()
    result.update(artifact_identity(artifact, backend.source_file(artifact)))
    steps: list[str] = result["steps"]
    with RssWindow() as load_rss:
        t0 = time.perf_counter()
        backend.load(artifact, options)
        t1 = time.perf_counter()
    result["load_memory"] = load_record(load_rss)
    first = np.ascontiguousarray(images[:1])
    backend.infer(first)
    t2 = time.perf_counter()
    steps += ["load", "first_infer"]
    result["threads_after_load"] = python_threads()
    result.update(load_ms=(t1 - t0) * 1e3, first_infer_ms=(t2 - t1) * 1e3, cold_start_ms=(t2 - t0) * 1e3,
                  loaded_bytes=int(backend.loaded_bytes()))
    chunk = max(int(b) for b in spec.batch_sizes)
    if spec.accuracy:  # in chunks the timed model runs (OpenVINO's latency model: batch 1, static)
        logits = _predict(backend, images, backend.static_batch() or chunk, many=False)
        result["metrics"] = _metrics(labels, logits)
        steps.append("accuracy")
        if spec.logits_out:
            _save_npy(Path(spec.logits_out), logits)
    result["describe"] = _jsonable(backend.describe())
    # how the runtime had to compile the model to get right answers (OpenVINO without Snippets), for the row
    result["compile_note"] = result["describe"].get("compile_note") or None
    steps.append("describe")
    result["pre_timing_s"] = time.perf_counter() - t0
    if not spec.timing:
        try:
            if spec.accuracy and cls.reload_per_scenario and any(sc == THROUGHPUT for sc, _ in spec.scenarios):
                _throughput_accuracy(spec, cls, artifact, options, images, labels, chunk, result)
        finally:
            backend.close()
        return

    if spec.reference_artifact:
        _run_pair(spec, cls, backend, artifact, options, images, result)
        return
    tp_backend: Any = None  # a second instance compiled for throughput where the backend needs one
    try:
        for scenario, batch_size in spec.scenarios:
            entry: dict[str, Any] = {"scenario": scenario, "batch_size": int(batch_size), "status": "ok", "reason": ""}
            result["scenarios"].append(entry)
            try:
                if scenario == LATENCY:
                    time_latency(spec, backend, images, entry)
                    steps.append(f"{LATENCY}:{int(batch_size)}")
                    entry["describe"] = result["describe"]
                    entry["gpu_timing"] = backend.timing_split(first)
                    entry["runtime_timing"] = backend.runtime_timing(first)
                else:
                    if cls.reload_per_scenario and tp_backend is None:
                        tp_backend = cls()
                        with RssWindow() as tp_rss:
                            tp_backend.load(artifact, BackendOptions(
                                threads=spec.threads, batch_sizes=options.batch_sizes, scenario=THROUGHPUT,
                                extra=dict(spec.extra)))
                        result["throughput_load_memory"] = load_record(tp_rss)
                        steps.append("throughput_load")
                        if spec.accuracy:  # accuracy of the model that is actually timed
                            tp_logits = _predict(tp_backend, images, chunk, many=True)
                            result["throughput_metrics"] = _metrics(labels, tp_logits)
                            if spec.logits_out:
                                _save_npy(throughput_logits_path(Path(spec.logits_out)), tp_logits)
                            steps.append("throughput_accuracy")
                        result["throughput_describe"] = _jsonable(tp_backend.describe())
                        result["throughput_compile_note"] = result["throughput_describe"].get("compile_note") or None
                    runner = tp_backend or backend
                    time_throughput(spec, runner, images, int(batch_size), entry)
                    steps.append(f"{THROUGHPUT}:{int(batch_size)}")
                    entry["gpu_timing"] = runner.timing_split(batch_from(images, int(batch_size)))
                    entry["describe"] = result.get("throughput_describe", result["describe"])
            except UserError as e:
                entry.update(status="error", reason=str(e))
            except Exception as e:
                entry.update(status="error", reason=f"{type(e).__name__}: {first_line(e)}")
    finally:
        if tp_backend is not None:
            tp_backend.close()
        backend.close()


def _run_pair(spec: CellSpec, cls: Any, backend: Any, artifact: Any, options: Any, images: np.ndarray,
              result: dict[str, Any]) -> None:
    """The timed scenarios of both arms in this one process: the reference artifact is loaded beside the
    candidate's and each scenario times the two in alternating blocks (`scenarios.time_pair`). The reference's
    load, describe and scenario entries go to result["reference"], shaped as a process result of its own."""
    from backends.artifact import load_artifact
    from backends.base import BackendOptions
    from common.errors import UserError

    ref_artifact = load_artifact(spec.reference_artifact)
    ref_backend = cls()
    ref: dict[str, Any] = {"status": "ok", "reason": "", "scenarios": [], "steps": [],
                           **artifact_identity(ref_artifact, ref_backend.source_file(ref_artifact))}
    result["reference"] = ref
    backends: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        ref_backend.load(ref_artifact, options)
        t1 = time.perf_counter()
        ref_backend.infer(np.ascontiguousarray(images[:1]))
        t2 = time.perf_counter()
        ref.update(load_ms=(t1 - t0) * 1e3, first_infer_ms=(t2 - t1) * 1e3, cold_start_ms=(t2 - t0) * 1e3,
                   loaded_bytes=int(ref_backend.loaded_bytes()), describe=_jsonable(ref_backend.describe()))
        ref["compile_note"] = ref["describe"].get("compile_note") or None
        ref["steps"] += ["load", "first_infer", "describe"]
        arms = {"candidate": (backend, artifact, result), "reference": (ref_backend, ref_artifact, ref)}
        order = ["candidate", "reference"] if spec.lead != "reference" else ["reference", "candidate"]
        for scenario, batch_size in spec.scenarios:
            entries = {a: {"scenario": scenario, "batch_size": int(batch_size), "status": "ok", "reason": ""}
                       for a in order}
            for a in order:
                arms[a][2]["scenarios"].append(entries[a])
            try:
                if scenario == LATENCY:
                    calls = tuple(latency_call(arms[a][0], images) for a in order)
                    time_pair(spec, calls, (entries[order[0]], entries[order[1]]), (1, 1), (1, 1), spec.min_iterations)
                    for a in order:
                        entries[a]["describe"] = arms[a][2]["describe"]
                else:
                    runners = {}
                    for a in order:
                        runners[a] = arms[a][0]
                        if cls.reload_per_scenario:
                            if a not in backends:
                                backends[a] = cls()
                                backends[a].load(arms[a][1], BackendOptions(
                                    threads=spec.threads, batch_sizes=options.batch_sizes, scenario=THROUGHPUT,
                                    extra=dict(options.extra)))
                                arms[a][2]["throughput_describe"] = _jsonable(backends[a].describe())
                                arms[a][2]["steps"].append("throughput_load")
                            runners[a] = backends[a]
                    made = [throughput_call(runners[a], images, int(batch_size)) for a in order]
                    rounds = max(throughput_rounds(spec, m[2]) for m in made)
                    time_pair(spec, (made[0][0], made[1][0]), (entries[order[0]], entries[order[1]]),
                              (made[0][2], made[1][2]), (made[0][1], made[1][1]), rounds)
                    for a in order:
                        entries[a]["describe"] = arms[a][2].get("throughput_describe", arms[a][2]["describe"])
                for a in order:
                    arms[a][2]["steps"].append(f"{scenario}:{int(batch_size)}")
            except UserError as e:
                for a in order:
                    entries[a].update(status="error", reason=str(e))
            except Exception as e:
                for a in order:
                    entries[a].update(status="error", reason=f"{type(e).__name__}: {first_line(e)}")
    finally:
        for b in backends.values():
            b.close()
        ref_backend.close()
        backend.close()


def throughput_logits_path(logits_out: Path) -> Path:
    """Where the accuracy process saves the logits of the model compiled for throughput, beside the latency
    model's (`x.logits.npy` -> `x.throughput.logits.npy`)."""
    name = logits_out.name.removesuffix(".npy").removesuffix(".logits")
    return logits_out.with_name(f"{name}.throughput.logits.npy")


def artifact_identity(artifact: Any, name: str) -> dict[str, Any]:
    """What this cell times: the model in words and the sha256 of the file the backend builds it from (the
    manifest's, checked against the file by `load_artifact`); the variant name alone does not say which model."""
    from common.model_id import model_text

    meta = artifact.manifest.get("files", {}).get(name) or {}
    return {"model": model_text(artifact.manifest), "artifact_file": name, "artifact_sha256": meta.get("sha256")}


def _throughput_accuracy(spec: CellSpec, cls: Any, artifact: Any, options: Any, images: np.ndarray,
                         labels: np.ndarray, chunk: int, result: dict[str, Any]) -> None:
    """The accuracy process's second model: the one a backend compiles for throughput (its accuracy is that of
    the model the throughput rows time)."""
    from backends.base import BackendOptions

    tp = cls()
    try:
        tp.load(artifact, BackendOptions(threads=spec.threads, batch_sizes=options.batch_sizes, scenario=THROUGHPUT,
                                         extra=dict(spec.extra)))
        tp_logits = _predict(tp, images, chunk, many=True)
        result["throughput_metrics"] = _metrics(labels, tp_logits)
        if spec.logits_out:  # the agreement check compares this model's answers with the reference too
            _save_npy(throughput_logits_path(Path(spec.logits_out)), tp_logits)
        result["throughput_describe"] = _jsonable(tp.describe())
        result["throughput_compile_note"] = result["throughput_describe"].get("compile_note") or None
        result["steps"] += ["throughput_load", "throughput_accuracy"]
    finally:
        tp.close()


def _predict(backend: Any, images: np.ndarray, chunk: int, many: bool) -> np.ndarray:
    parts = [np.ascontiguousarray(images[i : i + chunk]) for i in range(0, len(images), chunk)]
    # infer may return a view of a buffer it reuses on the next call: copy each output before the next one
    outs = backend.infer_many(parts) if many else [np.array(backend.infer(p), dtype=np.float32) for p in parts]
    logits = np.concatenate([np.asarray(o, dtype=np.float32) for o in outs]) if outs else np.zeros((0, 7), np.float32)
    if logits.shape[0] != len(images):
        raise RuntimeError(f"backend returned {logits.shape[0]} rows of logits for {len(images)} images")
    return logits


def _metrics(labels: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
    from fer.metrics import classification_metrics  # numpy only: no torch in a non-torch cell

    return classification_metrics(labels, logits.argmax(axis=1)).to_dict()


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def _save_npy(path: Path, arr: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".npy")
    with os.fdopen(fd, "wb") as f:
        np.save(f, arr)
    os.replace(tmp, path)



def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write("usage: python -m harness.measure.cell SPEC.json OUT.json\n")
        return 2
    spec = CellSpec.from_json(Path(args[0]).read_text(encoding="utf-8"))
    result = run_cell(spec)
    write_json_atomic(Path(args[1]), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
