"""Orchestration: dense model -> every requested variant directory, plus the layer-wise table.

    build_variants(cfg, data, dense, out_dir, variants=None, progress=None) -> {variant: path}

Variants are "<method>-<precision>": "dense-fp32" (the trained model), "dense-int8" (PTQ: calibrate on
compress.calibration_size training images, no retraining), "<m>-fp32" (pruned with criterion m and
fine-tuned), "<m>-int8" (FPTQ: the pruned model, BN folded, QAT for compress.qat_epochs). A variant
directory whose manifest config_hash equals the current one is reused, not rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from backends.artifact import MANIFEST, ONNX_FILE, TORCH_FILE, TRT_ONNX_FILE, load_artifact
from common.config import BenchmarkConfig, Config
from common.errors import UserError
from compression import export, verify
from compression.allocate import Plan
from compression.checks import verify_fp32, verify_int8
from compression.depth import apply_plan
from compression.fold import fold_model, folded_layers
from compression.importance import METHODS
from compression.layers import layer_rows, write_layer_table
from compression.manifest import base_manifest, int8_encoding, storage_fields
from compression.points import SweepPoint
from compression.prune import sparsity_level, structured_prune, unstructured_prune
from compression.quant import QuantizedLayer, QuantVGG, export_layers, quantize_folded
from compression.recipe import distillation, prune_kwargs, recipe_fields
from compression.storage import gmac, storage_bytes
from compression.writer import copy_variant, int8_payload, write_variant
from fer.checkpoint import load_model
from fer.data import FerData
from fer.device import resolve_device
from fer.evaluate import evaluate, predict_logits
from fer.metrics import classification_metrics
from fer.model import VGG16FER, arch_of, build_model, count_params
from fer.train import fit

DEFAULT_VARIANTS: tuple[str, ...] = tuple(BenchmarkConfig().variants)  # one list: the config's default
PRECISIONS = ("fp32", "int8")
FT_LR_FACTOR = 0.5  # fine-tuning lr = train.lr * this
QAT_LR_FACTOR = 0.1  # QAT lr = train.lr * this
MAX_VERIFY_IMAGES = 2000  # validation images used for ONNX / OpenVINO agreement checks

Progress = Callable[[str], None]


def all_variant_names(methods: tuple[str, ...] | list[str] = METHODS) -> list[str]:
    return [f"{m}-{p}" for m in ("dense", *methods) for p in PRECISIONS]


def requested_variants(cfg: Config, variants: list[str] | None) -> list[str]:
    """The variant names to build (default set + each configured method), validated."""
    if variants is None:
        names = list(DEFAULT_VARIANTS) + [f"{m}-{p}" for m in cfg.compress.methods for p in PRECISIONS]
    else:
        names = list(variants)
    valid = all_variant_names()
    for n in names:
        if n not in valid:
            method = n.rpartition("-")[0]
            if method and method not in ("dense", *METHODS):
                raise UserError(f"unknown compression method {method!r} in variant {n!r}; valid methods: "
                                f"{', '.join(METHODS)} (and dense)")
            raise UserError(f"unknown variant {n!r}; valid: {', '.join(valid)}")
    return list(dict.fromkeys(names))


def validate_inputs(cfg: Config, data: FerData, dense: nn.Module, names: list[str]) -> None:
    """Bad input -> one-line UserError (before anything is written)."""
    c = cfg.compress
    if not 0.0 <= c.sparsity <= 0.95:
        raise UserError(f"compress.sparsity = {c.sparsity}: must be between 0 and 0.95")
    for m in c.methods:
        if m not in METHODS:
            raise UserError(f"compress.methods: unknown method {m!r}; valid: {', '.join(METHODS)}")
    if c.scope not in ("local", "global"):
        raise UserError(f"compress.scope = {c.scope!r}: allowed values are local, global")
    if not isinstance(dense, VGG16FER):
        raise UserError(f"the dense checkpoint is a {type(dense).__name__}, not a VGG16-FER model")
    try:
        arch = arch_of(dense)
        build_model(arch)
    except (TypeError, ValueError, KeyError) as e:
        raise UserError(f"the dense checkpoint is not a VGG16-FER model: {e}") from None
    if arch["in_channels"] != cfg.model.in_channels:
        raise UserError(f"the dense model takes {arch['in_channels']} input channels, model.in_channels = "
                        f"{cfg.model.in_channels}")
    if any(n.endswith("-int8") for n in names) and c.calibration_size > len(data.train):
        raise UserError(f"compress.calibration_size = {c.calibration_size}: larger than the training set "
                        f"({len(data.train)} images); use at most {len(data.train)}")
    if c.unstructured:
        others = sorted({n.rpartition('-')[0] for n in names} - {"dense", "l1"})
        if others:
            raise UserError(f"compress.unstructured = true is magnitude pruning (method l1 only); "
                            f"remove {', '.join(others)} or set compress.unstructured = false")
    for s in ("train", "val", "test"):
        if len(data.split(s)) == 0:
            raise UserError(f"data split {s!r} is empty; compression needs train, val and test images")


def weights_digest(model: nn.Module) -> str:
    """sha256 over the state_dict (names, dtypes, shapes, bytes) in key order."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def config_hash(cfg: Config, dense: nn.Module) -> str:
    """Hash of the data/model/train/compress config sections + the dense weights."""
    blob = cfg.section_hash("data", "model", "train", "compress") + weights_digest(dense)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _reusable(path: Path, chash: str) -> bool:
    if not (path / MANIFEST).is_file():
        return False
    try:
        art = load_artifact(path, verify=True)
    except UserError:
        return False
    return art.manifest.get("config_hash") == chash


def stale_variants(cfg: Config, dense: nn.Module, out_dir: Path, names: list[str]) -> list[str]:
    """Those of `names` that out_dir does not hold up to date (what building them would build)."""
    chash = config_hash(cfg, dense)
    return [n for n in names if not _reusable(Path(out_dir) / n, chash)]


def load_torch_artifact(path: Path) -> tuple[VGG16FER, dict[str, Any]]:
    """The fp32 model of a variant directory (model.pt, weights_only) and its manifest."""
    art = load_artifact(path, verify=True)
    return load_model(art.file(TORCH_FILE), "model file"), art.manifest


@dataclass
class _Pruned:
    model: VGG16FER
    masks: dict[str, torch.Tensor] | None  # unstructured: {layer name: keep mask}
    manifest: dict[str, Any] | None = None


class _Builder:
    def __init__(self, cfg: Config, data: FerData, dense: VGG16FER, out_dir: Path, say: Progress,
                 fp32_name: Callable[[str], str] = lambda method: f"{method}-fp32") -> None:
        self.cfg, self.data, self.dense, self.out_dir, self.say = cfg, data, dense.eval(), out_dir, say
        self.fp32_name = fp32_name  # the directory whose pruned model an int8 variant of `method` reuses
        self.hash = config_hash(cfg, dense)
        self.dense_arch = arch_of(dense)
        self.dense_storage = storage_bytes(self.dense_arch, "fp32")
        self.pruned_cache: dict[str, _Pruned] = {}
        n_val = min(len(data.val), MAX_VERIFY_IMAGES)
        self.val_x = data.val.as_float()
        self.verify_x = self.val_x[:n_val]
        # val logits of the models this builder holds (the dense model, the pruned ones in pruned_cache), keyed by
        # id (stable while held): an int8 variant compares with its source's logits without a second pass
        self._val_logits: dict[int, np.ndarray] = {}
        self._teacher_key: str | None = None
        self.extra_manifest: dict[str, Any] = {}  # merged into every manifest this builder writes (a latency plan)

    # ------------------------------------------------------------ models
    def pruned(self, method: str) -> _Pruned:
        if method in self.pruned_cache:
            return self.pruned_cache[method]
        c = self.cfg.compress
        src = self.out_dir / self.fp32_name(method)
        if _reusable(src, self.hash):
            model, manifest = load_torch_artifact(src)
            masks = _zero_masks(model) if c.unstructured else None
            self.say(f"{method}: reusing the pruned model in {src}")
            p = _Pruned(model, masks, manifest)
        else:
            lr = self.cfg.train.lr * FT_LR_FACTOR
            t0 = time.perf_counter()
            recipe = prune_kwargs(self.cfg, self.teacher_key(), self.dense, self.data)
            if c.unstructured:
                model, wmasks = unstructured_prune(self.dense, c.sparsity, self.data, self.cfg.train, scope=c.scope,
                                                   lr=lr, progress=self.say, **recipe)
                masks = {k.removesuffix(".weight"): v for k, v in wmasks.items()}
            else:
                model = structured_prune(self.dense, method, c.sparsity, self.data, self.cfg.train, scope=c.scope,
                                         lr=lr, progress=self.say, **recipe)
                masks = None
            self.say(f"{method}: pruned and fine-tuned in {time.perf_counter() - t0:.0f} s")
            p = _Pruned(model, masks)
        self.pruned_cache[method] = p
        return p

    def val_logits(self, model: nn.Module) -> np.ndarray:
        """Logits of `model` on the val split, computed once for the models the builder holds."""
        held = model is self.dense or any(p.model is model for p in self.pruned_cache.values())
        if held and id(model) in self._val_logits:
            return self._val_logits[id(model)]
        logits = predict_logits(model, self.val_x)
        if held:
            self._val_logits[id(model)] = logits
        return logits

    def teacher_key(self) -> str:
        """Names the distillation teacher (the dense weights and the data) so that points share its cache."""
        if self._teacher_key is None:
            self._teacher_key = f"{weights_digest(self.dense)}|{self.data.digest()}"
        return self._teacher_key

    def calibration_images(self) -> torch.Tensor:
        n = self.cfg.compress.calibration_size
        g = torch.Generator().manual_seed(self.cfg.data.seed)
        idx = torch.randperm(len(self.data.train), generator=g)[:n].numpy()
        return torch.from_numpy(self.data.train.as_float()[idx])

    def quantize(self, method: str, source: VGG16FER, masks: dict[str, torch.Tensor] | None) -> QuantVGG:
        c = self.cfg.compress
        folded, layers = fold_model(source), folded_layers(source)
        q = quantize_folded(folded, layers, self.calibration_images(), c.calibration, symmetric=c.symmetric,
                            masks=masks, device=resolve_device(self.cfg.train.device), weight_bits=c.weight_bits)
        if method != "dense" and c.qat_epochs > 0:
            t0 = time.perf_counter()
            qat_cfg = replace(self.cfg.train, bf16=False, l1_lambda=0.0)
            fit(q, self.data.train, self.data.val, qat_cfg, epochs=c.qat_epochs, lr=self.cfg.train.lr * QAT_LR_FACTOR,
                extra_loss=distillation(self.cfg, self.teacher_key(), self.dense, self.data),
                on_epoch=lambda log: self.say(f"{method}-int8: QAT epoch {log.epoch} val {log.val_accuracy:.3f}"))
            self.say(f"{method}-int8: QAT in {time.perf_counter() - t0:.0f} s")
        return q.eval()

    # ------------------------------------------------------------ variants
    def build_fp32(self, variant: str, method: str) -> Path:
        if method == "dense":
            model, masks = self.dense, None
        else:
            p = self.pruned(method)
            model, masks = p.model, p.masks
        arch = arch_of(model)
        m = base_manifest(self.cfg, self.data, variant, method, "fp32", arch, self.hash)
        params, nonzero = count_params(model)
        m.update(params=params, nonzero_params=nonzero)
        storage_fields(m, self.dense_storage, storage_bytes(arch, "fp32"))
        m["recipe"] = recipe_fields(self.cfg, method, arch, self.dense_arch)
        m.update(self.extra_manifest)
        if masks is not None:
            m["pruning"]["sparsity_level_S"] = round(sparsity_level(model), 6)
        val_logits = self.val_logits(model)
        m["val_accuracy"] = classification_metrics(self.data.val.labels, val_logits.argmax(1)).accuracy
        m["test_accuracy"] = evaluate(model, self.data.test.as_float(), self.data.test.labels).accuracy
        layers = folded_layers(model)
        torch_logits = val_logits[: len(self.verify_x)]
        ckpt = {"format": "fer-bench/fp32-v1", "arch": arch, "state_dict": model.state_dict(), "folded": False,
                "quant": None}

        def finish(tmp: Path, man: dict[str, Any]) -> None:
            man["onnx_bytes"] = man["files"][ONNX_FILE]["bytes"]
            man["verification"] = verify_fp32(tmp, variant, self.verify_x, torch_logits)

        return write_variant(self.out_dir, variant, {
            TORCH_FILE: lambda path: torch.save(ckpt, path),
            ONNX_FILE: lambda path: onnx.save(export.fp32_onnx(layers, int(arch["in_channels"])), str(path)),
        }, m, finish)

    def build_int8(self, variant: str, method: str) -> Path:
        c = self.cfg.compress
        if method == "dense":
            source, masks = self.dense, None
        else:
            p = self.pruned(method)
            source, masks = p.model, p.masks
        q = self.quantize(method, source, masks)
        qlayers = export_layers(q)
        arch = arch_of(source)
        m = base_manifest(self.cfg, self.data, variant, method, "int8", arch, self.hash)
        params = sum(ql.w_int8.numel() + ql.bias.numel() for ql in qlayers)
        w_nonzero = sum(_nonzero_int8(ql) for ql in qlayers)
        nonzero = w_nonzero + sum(int(torch.count_nonzero(ql.bias)) for ql in qlayers)
        m.update(params=params, nonzero_params=nonzero, weight_bits=c.weight_bits,
                 int8_encoding=int8_encoding(c.weight_bits, c.symmetric)["encoding"])
        storage_fields(m, self.dense_storage, storage_bytes(arch, "int8", c.symmetric))
        m["recipe"] = recipe_fields(self.cfg, method, arch, self.dense_arch)
        m.update(self.extra_manifest)
        if masks is not None:
            total = sum(ql.w_int8.numel() for ql in qlayers)
            m["pruning"]["sparsity_level_S"] = round(1 - w_nonzero / total, 6)
        q_val = predict_logits(q, self.val_x)
        m["val_accuracy"] = classification_metrics(self.data.val.labels, q_val.argmax(1)).accuracy
        m["test_accuracy"] = evaluate(q, self.data.test.as_float(), self.data.test.labels).accuracy
        q_logits = q_val[: len(self.verify_x)]
        fp_logits = self.val_logits(source)[: len(self.verify_x)]
        m["quantization"] = {
            "mode": "PTQ" if method == "dense" else ("QAT" if c.qat_epochs > 0 else "PTQ"),
            "calibration": c.calibration, "calibration_images": c.calibration_size,
            "qat_epochs": 0 if method == "dense" else c.qat_epochs,
            "symmetric": c.symmetric,
            **int8_encoding(c.weight_bits, c.symmetric),
            "activations": "per tensor, uint8 grid (model.onnx), int8 alpha/127 (model.trt.onnx)",
            "bn_folded": True,
            "weight_error_eq9": {ql.name: ql.weight_error for ql in qlayers},
            "int8_vs_fp32_top1_agreement": verify.top1_agreement(q_logits, fp_logits),
            "tensorrt_encoding": c.symmetric,
        }
        if not c.symmetric:
            m["quantization"]["note"] = ("asymmetric zero-points are not legal for TensorRT: no model.trt.onnx; "
                                         "ONNX Runtime / OpenVINO run model.onnx")
        ckpt = int8_payload(arch, qlayers, c.symmetric, c.weight_bits)
        in_ch = int(arch["in_channels"])
        files = {
            TORCH_FILE: lambda path: torch.save(ckpt, path),
            ONNX_FILE: lambda path: onnx.save(export.cpu_qdq_onnx(qlayers, in_ch), str(path)),
        }
        if c.symmetric:
            files[TRT_ONNX_FILE] = lambda path: onnx.save(export.trt_qdq_onnx(qlayers, in_ch), str(path))

        def finish(tmp: Path, man: dict[str, Any]) -> None:
            n_conv = sum(1 for f in arch["features"] if f != "M")  # a latency plan may have removed convs
            man["verification"] = verify_int8(tmp, variant, self.verify_x, q_logits, c.symmetric, n_conv, self.say)
            man["onnx_bytes"] = man["files"][ONNX_FILE]["bytes"]

        return write_variant(self.out_dir, variant, files, m, finish)

def _nonzero_int8(ql: QuantizedLayer) -> int:
    """Weights that dequantize to a non-zero value (int8 value != its channel's zero-point)."""
    shape = (-1,) + (1,) * (ql.w_int8.dim() - 1)
    return int(torch.count_nonzero(ql.w_int8.int() - ql.w_zero_point.int().view(shape)))


def _zero_masks(model: VGG16FER) -> dict[str, torch.Tensor]:
    """Keep-masks of an unstructured-pruned model read back from its zeros, keyed by layer name."""
    return {name: (mod.weight != 0) for name, mod in model.named_modules() if isinstance(mod, nn.Conv2d | nn.Linear)}


def build_variants(
    cfg: Config,
    data: FerData,
    dense: VGG16FER,
    out_dir: Path,
    variants: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Write out_dir/<variant>/ for each requested variant (reusing those whose config hash matches) and
    out_dir/layers.csv + layers.md for the pruned int8 variants; returns {variant: directory}."""
    say = progress or (lambda _m: None)
    names = requested_variants(cfg, variants)
    validate_inputs(cfg, data, dense, names)
    out_dir = Path(out_dir)
    b = _Builder(cfg, data, dense, out_dir, say)
    paths: dict[str, Path] = {}
    for name in names:
        method, _, precision = name.rpartition("-")
        target = out_dir / name
        if _reusable(target, b.hash):
            say(f"{name}: up to date, reused ({target})")
            paths[name] = target
            continue
        t0 = time.perf_counter()
        say(f"{name}: building")
        paths[name] = b.build_fp32(name, method) if precision == "fp32" else b.build_int8(name, method)
        say(f"{name}: written in {time.perf_counter() - t0:.0f} s -> {paths[name]}")
    _write_layers(cfg, b.dense_arch, paths, out_dir)
    return paths


def _write_layers(cfg: Config, dense_arch: dict[str, Any], paths: dict[str, Path], out_dir: Path) -> None:
    """out_dir/layers.csv + layers.md for the pruned int8 variants among `paths` (nothing when there are none)."""
    rows: list[dict[str, Any]] = []
    for name, path in paths.items():
        method, _, precision = name.rpartition("-")
        if method != "dense" and precision == "int8":
            man = load_artifact(path, verify=False).manifest
            rows += layer_rows(name, dense_arch, man["arch"], "int8", bool(cfg.compress.symmetric))
    if rows:
        write_layer_table(out_dir, rows)


def publish_variants(
    cfg: Config,
    data: FerData,
    dense: VGG16FER,
    cache_dir: Path,
    out_dir: Path,
    variants: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """`bench compress --out DIR`: each requested variant in out_dir, built at most once per config. A variant
    already up to date in out_dir stays; the others are built (or reused) in the artifact cache `cache_dir`, keyed
    by the config like every cached artifact, and copied from there, so a second `--out` of the same config, or
    one after `bench run`, builds nothing. Returns {variant: directory in out_dir}."""
    say = progress or (lambda _m: None)
    names = requested_variants(cfg, variants)
    validate_inputs(cfg, data, dense, names)
    out_dir, chash = Path(out_dir), config_hash(cfg, dense)
    fresh = [n for n in names if _reusable(out_dir / n, chash)]
    for n in fresh:
        say(f"{n}: up to date in {out_dir / n}")
    todo = [n for n in names if n not in fresh]
    stale = [n for n in todo if not _reusable(Path(cache_dir) / n, chash)]
    cached = build_variants(cfg, data, dense, Path(cache_dir), variants=todo, progress=say) if todo else {}
    paths = {n: out_dir / n for n in fresh}
    for n, src in cached.items():
        paths[n] = copy_variant(src, out_dir, n)
        say(f"{n}: {'built' if n in stale else 'reused'} in the artifact cache, copied to {paths[n]}")
    paths = {n: paths[n] for n in names}
    _write_layers(cfg, arch_of(dense), paths, out_dir)
    say(f"{out_dir}: {len(names) - len(stale)} of {len(names)} variants reused (same config and dense model), "
        f"{len(stale)} built")
    return paths


def build_point(
    cfg: Config,
    data: FerData,
    dense: VGG16FER,
    out_dir: Path,
    point: SweepPoint,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write (or reuse) out_dir/<point.name>/: the variant `<method>-<precision>` built with compress.methods,
    scope and sparsity set to the point's, so its config hash (the cache key) covers them. An int8 point reuses
    the pruned model of its fp32 sibling in out_dir when that was built first; a pruned int8 point also writes
    out_dir/layers.csv + layers.md (out_dir is meant to be keyed by the point's config, see
    harness.orchestrate.pipeline.artifacts_dir)."""
    say = progress or (lambda _m: None)
    if point.method == "dense" or point.method not in METHODS:
        raise UserError(f"sweep method {point.method!r}: valid methods are {', '.join(METHODS)}")
    if point.precision not in PRECISIONS:
        raise UserError(f"sweep precision {point.precision!r}: valid precisions are {', '.join(PRECISIONS)}")
    pcfg = point.config(cfg)
    validate_inputs(pcfg, data, dense, [f"{point.method}-{point.precision}"])
    out_dir = Path(out_dir)
    fp32_sibling = point.with_precision("fp32").name
    b = _Builder(pcfg, data, dense, out_dir, say, fp32_name=lambda _m: fp32_sibling)
    target = out_dir / point.name
    if _reusable(target, b.hash):
        say(f"{point.name}: up to date, reused ({target})")
        return target
    say(f"{point.name}: building")
    if point.precision == "fp32":
        return b.build_fp32(point.name, point.method)
    path = b.build_int8(point.name, point.method)
    man = load_artifact(path, verify=False).manifest
    write_layer_table(out_dir, layer_rows(point.name, b.dense_arch, man["arch"], "int8", bool(pcfg.compress.symmetric)))
    return path


def build_planned_point(
    cfg: Config,
    data: FerData,
    dense: VGG16FER,
    out_dir: Path,
    name: str,
    precision: str,
    plan: Plan,
    plan_fields: dict[str, Any],
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write (or reuse) out_dir/<name>/: the dense model cut to a latency plan (compression/allocate.py: widths and
    removed convs, compression/depth.py), fine-tuned with the sweep's recipe (distillation, schedule, epochs from
    compress.*), then written like any pruned variant at `precision` (int8: folded, QAT). The plan and
    `plan_fields` (its target, predicted latency, table) go into the manifest's `latency_plan`, and into its config
    hash, so a different plan never reuses this directory's files; the int8 point reuses an fp32 sibling's model
    (name with -fp32) when that was built first."""
    say = progress or (lambda _m: None)
    if precision not in PRECISIONS:
        raise UserError(f"sweep precision {precision!r}: valid precisions are {', '.join(PRECISIONS)}")
    # The plan's MAC reduction stands as the point's target, so that the sweep's epoch rule (sparser points
    # fine-tune longer, compress.scale_epochs) and the manifest's recipe treat it as the MAC points of its size.
    dense_arch = arch_of(dense)
    reduction = round(gmac(dense_arch) / gmac(plan.arch(dense_arch)), 4)
    c = replace(cfg.compress, methods=["l1"], scope="global", sparsity=0.0, macs_reduction=reduction)
    pcfg = replace(cfg, compress=c)
    validate_inputs(pcfg, data, dense, [f"l1-{precision}"])
    out_dir = Path(out_dir)
    fp32_sibling = name.removesuffix(f"-{precision}") + "-fp32"
    b = _Builder(pcfg, data, dense, out_dir, say, fp32_name=lambda _m: fp32_sibling)
    blob = json.dumps({"plan": plan.fields(), "arch": plan.arch(b.dense_arch)}, sort_keys=True)
    b.hash = hashlib.sha256((b.hash + blob).encode()).hexdigest()[:16]
    b.extra_manifest = {"latency_plan": {**plan_fields, **plan.fields()}}
    target = out_dir / name
    if _reusable(target, b.hash):
        say(f"{name}: up to date, reused ({target})")
        return target
    if not _reusable(out_dir / fp32_sibling, b.hash):
        t0 = time.perf_counter()
        model = apply_plan(dense, plan)
        kw = prune_kwargs(pcfg, b.teacher_key(), dense, data)
        epochs, schedule = int(kw["finetune_epochs"]), kw["schedule"]
        say(f"{name}: widths {plan.widths}, removed convs {plan.removed or 'none'}; fine-tuning {epochs} epoch(s)")
        if epochs:
            fit(model, data.train, data.val, pcfg.train, epochs=epochs, lr=pcfg.train.lr * FT_LR_FACTOR,
                extra_loss=kw["extra_loss"], make_scheduler=schedule.segment(epochs) if schedule else None,
                on_epoch=lambda log: say(f"{name}: fine-tune epoch {log.epoch} val {log.val_accuracy:.3f}"))
        b.pruned_cache["l1"] = _Pruned(model.eval(), None)
        say(f"{name}: cut and fine-tuned in {time.perf_counter() - t0:.0f} s")
    say(f"{name}: building")
    if precision == "fp32":
        return b.build_fp32(name, "l1")
    path = b.build_int8(name, "l1")
    man = load_artifact(path, verify=False).manifest
    write_layer_table(out_dir, layer_rows(name, b.dense_arch, man["arch"], "int8", bool(pcfg.compress.symmetric)))
    return path
