"""bench.toml -> typed, validated configuration objects, with `--set section.key=value` overrides.

Each section is a frozen dataclass; a field's `metadata` says what is allowed (`choices`, `min`, `max`,
`items` for list elements). Any problem raises `UserError` with one line naming the key, the value and
what is allowed. Hand-written rather than pydantic: one TOML file does not need a schema framework, and
the messages must be exactly one line.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import UserError

DATASETS = ("synthfer", "fer2013", "ckplus", "jaffe")
PRUNING_METHODS = ("l1", "cdcp", "sfpga", "drcp", "tgpp")


def setting(default: Any, **rules: Any) -> Any:
    """A dataclass field with validation rules (choices, min, max, items; hash=False keeps it out of
    `Config.section_hash`; hash="unless_default" keeps it out while it holds its default, for a knob added later
    whose default reproduces the old behaviour, so artifacts built before it stay reusable) in its metadata;
    backends declare their own settings tables with it (backends/<name>/config.py)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=rules)
    return field(default=default, metadata=rules)


def _default(f: dataclasses.Field[Any]) -> Any:
    """A field's default value (lists come from a default_factory)."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


@dataclass(frozen=True)
class DataConfig:
    dataset: str = setting("synthfer", choices=DATASETS)
    path: str = setting("")  # root of a real data set (file or folder); unused for synthfer
    seed: int = setting(0, min=0)
    synthfer_train: int = setting(7000, min=70, max=200_000)  # SynthFER images per split
    synthfer_val: int = setting(700, min=70, max=100_000)
    synthfer_test: int = setting(2100, min=70, max=100_000)
    val_fraction: float = setting(0.1, min=0.01, max=0.5)  # image-folder layouts: val carved from train
    folds: int = setting(10, min=2, max=20)  # CK+ / JAFFE subject-independent k-fold
    fold: int = setting(0, min=0, max=19)
    contempt: str = setting("drop", choices=("drop", "disgust", "angry", "neutral"))  # CK+ contempt mapping


@dataclass(frozen=True)
class ModelConfig:
    in_channels: int = setting(1, choices=(1, 3))
    width: float = setting(0.25, min=0.03125, max=1.0)  # channel multiplier: 0.25 the quickstart, 1.0 the paper's
    # VGG16 (`--profile full`): a quarter of the channels trains ~15x faster on a CPU and still learns SynthFER
    dropout: float = setting(0.5, min=0.0, max=0.9)
    pretrained: str = setting("")  # local torchvision VGG16-BN state_dict file (never downloaded)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = setting(5, min=1, max=1000)
    batch_size: int = setting(64, min=1, max=4096)
    optimizer: str = setting("adamw", choices=("adamw", "sgd"))
    schedule: str = setting("onecycle", choices=("onecycle", "cosine"))
    lr: float = setting(3e-3, min=1e-7, max=10.0)
    weight_decay: float = setting(5e-4, min=0.0, max=1.0)
    l1_lambda: float = setting(0.0, min=0.0, max=1.0)  # paper Eq. 4: L1 weight penalty
    augment: bool = setting(True)
    bf16: bool = setting(True)  # mixed precision: bf16 autocast on CPUs with native bf16; bf16 (fp16+scaler) on CUDA
    seed: int = setting(0, min=0)
    subset: int = setting(0, min=0)  # train on the first N images only (0 = all); for smoke runs
    # Images per epoch (0 = one pass over the training set). The budget of a run is epochs x images_per_epoch
    # images seen, for dense training, fine-tuning and QAT alike; the one-cycle schedule spans exactly that budget.
    # A budget in images, not minutes: the same config trains the same model on every machine (a cache key).
    images_per_epoch: int = setting(0, min=0, max=10_000_000)
    # where training, fine-tuning, calibration and QAT run (auto: CUDA when available). hash=False: left out of
    # every cache key, because checkpoints and artifacts are saved as CPU tensors and do not depend on it; a
    # model trained on a GPU is numerically a different model, but the same recipe, so it may be reused.
    device: str = setting("auto", choices=("auto", "cpu", "cuda"), hash=False)


@dataclass(frozen=True)
class CompressConfig:
    methods: list[str] = setting(["l1"], items=PRUNING_METHODS)
    sparsity: float = setting(0.5, min=0.0, max=0.95)
    scope: str = setting("local", choices=("local", "global"))
    prune_steps: int = setting(1, min=1, max=50)
    finetune_epochs: int = setting(5, min=0, max=1000)  # 5: l1-int8 within 1 point at width 0.25
    qat_epochs: int = setting(2, min=0, max=1000)
    calibration_size: int = setting(512, min=1, max=100_000)
    calibration: str = setting("percentile", choices=("minmax", "percentile", "entropy"))
    symmetric: bool = setting(True)  # False: the paper's asymmetric Eqs. 10-11 (not legal for TensorRT)
    # int8 weight range: 7 ([-63, 63]; asymmetric [-64, 63]) cannot saturate the int16 pair-sums of u8 x s8
    # kernels on x86 CPUs without VNNI (AVX2 vpmaddubsw); 8 uses the full int8 grid, right only with VNNI/GPUs.
    weight_bits: int = setting(7, choices=(7, 8))
    unstructured: bool = setting(False)  # paper Eq. 5 magnitude threshold (no speedup on dense kernels)
    # Distillation from the dense model during fine-tuning and QAT (compression/distill.py): loss = CE +
    # kd_weight * T^2 * KL(softmax(teacher/T) || softmax(student/T)); 0 disables it.
    kd_weight: float = setting(0.0, min=0.0, max=100.0)
    kd_temperature: float = setting(4.0, min=0.5, max=50.0)
    # Prune to a MAC target instead of a sparsity: remove channels until dense MACs / MACs >= this (0: use
    # compress.sparsity). Global scope: one ranking, no layer beyond max_layer_sparsity (Torch-Pruning's
    # max_pruning_ratio); every layer keeps a multiple of round_to channels (1: no rounding).
    macs_reduction: float = setting(0.0, min=0.0, max=1000.0)
    max_layer_sparsity: float = setting(0.9, min=0.0, max=0.99)
    round_to: int = setting(1, min=1, max=256)
    # Fine-tuning schedule (compression/schedule.py): cosine from the fine-tuning lr down to lr * finetune_lr_floor
    # over all fine-tuning epochs of a point (across its pruning steps), or "train": train.schedule per step.
    finetune_schedule: str = setting("cosine", choices=("cosine", "train"))
    finetune_lr_floor: float = setting(0.01, min=0.0, max=1.0)
    # Sparser points fine-tune longer: finetune_epochs x max(1, log2(MAC reduction) / 2) (x1 at the paper's point).
    scale_epochs: bool = setting(True)
    # Share of a point's fine-tuning epochs spent after its LAST pruning step (prune_steps > 1), the earlier steps
    # splitting the rest (some may get 0: pruned again at once, as Torch-Pruning's iterative steps). 0: the epochs
    # split evenly over the steps, later ones getting the remainder (3 epochs in 3 steps: 1 each).
    last_step_share: float = setting(0.0, min=0.0, max=1.0, hash="unless_default")
    # Wall-clock budget of a `bench sweep`'s point builds in minutes; 0 = none. Over budget, the fine-tuning
    # epochs are cut (never below 1) and the plan is printed with its ETA. Not part of any cache key: the epochs it
    # chooses are. (`bench compress` does not plan: it builds what the config says.)
    budget_minutes: float = setting(0.0, min=0.0, max=100_000.0, hash=False)
    # What a hardware-aware point's plan (--latency-target) keeps: "sensitivity", each layer's measured
    # validation-loss increase when narrowed or removed (compression/sensitivity.py), or "l1", HALP's summed
    # normalised filter norms (cut early layers to 8 channels: 20 points lost at make sweep's width). Measured on
    # sensitivity_images validation images (a seeded sample). Not in the cache keys: the plan they produce is in
    # its point's key.
    latency_objective: str = setting("sensitivity", choices=("sensitivity", "l1"), hash=False)
    sensitivity_images: int = setting(512, min=1, max=100_000, hash=False)
    # Training images each variant's later BNs are re-estimated on before its loss is taken (adaptive BN,
    # EagleEye); 0: the raw loss with the dense model's BN statistics.
    sensitivity_calibration: int = setting(256, min=0, max=100_000, hash=False)


@dataclass(frozen=True)
class BenchmarkConfig:
    # backend names are checked (and "all" expanded) by backends.registry, the one place that lists them
    backends: list[str] = setting(["all"])
    variants: list[str] = setting(["dense-fp32", "l1-fp32", "dense-int8", "l1-int8"])
    batch_sizes: list[int] = setting([1, 32], min=1, max=4096)
    # timed seconds per cell IN TOTAL: each of the `rounds` processes times min_duration_s / rounds
    # Defaults: 5 rounds, so the median's order-statistic interval is [min, max] at 93.75% (3 gave 75%);
    # 1.5 s over 5 processes and a 0.2 s warm-up per scenario keep a cell's time at 3 rounds x (2 s, 0.5 s):
    # 5 x (1.6 s fixed + 3 x 0.2 s) + 3 x 1.5 s = 15.5 s against 3 x (1.6 + 3 x 0.5) + 3 x 2 = 15.3 s.
    min_duration_s: float = setting(1.5, min=0.01, max=3600.0)
    min_iterations: int = setting(200, min=1, max=10_000_000)
    warmup_s: float = setting(0.2, min=0.0, max=600.0)
    threads: int = setting(2, min=1, max=1024)
    # Robust CoV (MAD/median) of one process's samples above this: INVALID. Based on measured spreads on the
    # 2-core CI-class VM: in a quiet `make bench` (2026-11-27, other processes < 3% CPU, 108 processes of 0.67 s)
    # median 0.04, p90 0.09, p95 0.11, and one disturbed process at 0.27; in the previous gate's validation runs (432
    # processes) those with <= 25% foreign load had median 0.054 (0.025-0.20), those under heavier load median
    # 0.32. The old 0.25 let most busy processes through; 0.10 flagged 1 in 14 quiet ones (a quiet run came out
    # half INVALID); 0.15 sits above the quiet p95 and below the disturbed.
    max_cov: float = setting(0.15, min=0.0, max=10.0)
    cell_timeout_s: float = setting(600.0, min=1.0, max=86_400.0)
    cell_memory_mb: int = setting(0, min=0, max=16_777_216)  # address-space limit per cell process; 0 = none
    # CPUs each cell process is confined to (os.sched_setaffinity before it starts); [] = wherever the scheduler
    # puts it. Try it against the default with `bench run --reference-set benchmark.cpus=[1]`.
    cpus: list[int] = setting([], min=0, max=65_535, hash="unless_default")
    accuracy: bool = setting(True)
    # Randomized interleaved trials (Abedi & Brecht, ICPE 2017): every cell runs once per round in a fresh
    # process, the cell order shuffled per round with `round_seed`; estimates use processes as the unit.
    rounds: int = setting(5, min=1, max=1000)
    round_seed: int = setting(0, min=0)
    # top-1 agreement with the variant's PyTorch reference below which a row `agrees: false` (select rejects it)
    min_agreement_int8: float = setting(0.99, min=0.0, max=1.0)
    min_agreement_fp32: float = setting(0.999, min=0.0, max=1.0)
    roofline: bool = setting(True)  # measure the machine's peak GMAC/s per precision once per run


@dataclass(frozen=True)
class StoreConfig:
    url: str = setting("sqlite:///runs/history.sqlite")
    runs_dir: str = setting("runs")
    cache_dir: str = setting(".bench-cache")
    # where `bench accept` keeps accepted artifact files by content ("": artifacts/ beside a SQLite file, else
    # <runs_dir>/artifacts), for `bench run --reference accepted`
    artifacts_dir: str = setting("")


@dataclass(frozen=True)
class MachineConfig:
    # Names this machine in the history ("" = derived from the hardware fingerprint, never the hostname).
    id: str = setting("")


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    compress: CompressConfig = field(default_factory=CompressConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    # [backends.<name>] tables, validated against each backend's own settings class by backends.registry
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)
    store: StoreConfig = field(default_factory=StoreConfig)
    machine: MachineConfig = field(default_factory=MachineConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict in TOML spelling."""
        return dataclasses.asdict(self)

    def section_hash(self, *sections: str) -> str:
        """Stable short hash of the named sections (keys caches: change a section, get a new artifact)."""
        blob = json.dumps(self.hashed_fields(*sections), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def hashed_fields(self, *sections: str) -> dict[str, Any]:
        """What `section_hash` hashes: the named sections, less the fields declared with
        `setting(..., hash=False)` (where a job runs, not what it makes) and those with `hash="unless_default"`
        while they hold their default."""
        d = self.to_dict()
        for s in sections:
            obj = getattr(self, s)
            if dataclasses.is_dataclass(obj):
                for f in dataclasses.fields(obj):
                    rule = f.metadata.get("hash")
                    if rule is False or (rule == "unless_default" and getattr(obj, f.name) == _default(f)):
                        d[s].pop(f.name, None)
        return {s: d[s] for s in sections}


# Named override sets for `--profile NAME` (applied before --set).
# `full`: the paper's scale (full-width VGG16, batch 32 at lr 1e-3): ~1 h on 2 AVX2 cores, 12-20 min on AVX-512.
# `nightly`: the paper's model (the same settings as `full`, so both share one cached dense model and artifacts:
# trained on the first night, reused after), because at quarter width every cell runs in 0.1-0.5 ms, where the
# gate cannot resolve a 10% change; plus 20 processes per cell (per arm when a reference is measured beside it):
# at 2 threads a process lands in the fast mode with probability ~0.3, and 20 see at least two fast-mode processes
# 99.2% of the time against 85% for 10 (common/stats/modes.py); in simulated paired nights 10 pairs called 2.5% of
# A/A cells and 20 none. Loops of 3 s: thousands of samples per process even at the full width's ~1.5 ms.
PAPER_MODEL = ["model.width=1.0", "train.batch_size=32", "train.lr=0.001", "compress.finetune_epochs=3"]
PROFILES: dict[str, list[str]] = {
    "nightly": [*PAPER_MODEL, "benchmark.rounds=20", "benchmark.min_duration_s=3.0"],
    "full": list(PAPER_MODEL),
}


def profile_overrides(name: str | None) -> list[str]:
    """The `--set` overrides of profile `name` (none for None); UserError naming the valid profiles."""
    if not name:
        return []
    if name not in PROFILES:
        raise UserError(f"--profile {name!r}: unknown profile (valid: {', '.join(sorted(PROFILES))})")
    return list(PROFILES[name])


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read `path` (None: built-in defaults), apply `--set` overrides, validate; UserError on any problem."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"config file {p} does not exist")
        try:
            text = p.read_text(encoding="utf-8")
            raw = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"config file {p} is not valid TOML: {' '.join(str(e).split())}") from None
        except OSError as e:
            raise UserError(f"config file {p}: cannot read ({e.strerror or e})") from None
        if not text.strip():  # a zero-byte bench.toml is a failed write far more often than a wish for defaults
            raise UserError(f"config file {p} is empty; give at least one [section], or omit --config for defaults")
    for item in overrides or []:
        _apply_override(raw, item)
    return _build(Config, raw, "")


def parse_override(item: str) -> tuple[list[str], Any]:
    """'section.key=value' -> (['section', 'key'], value); the value is a TOML literal or a bare string."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"--set {item!r}: expected section.key=value, e.g. --set train.epochs=3")
    parts = key.split(".")
    if len(parts) < 2 or any(not p for p in parts):
        raise UserError(f"--set {item!r}: the key must be section.key (e.g. train.epochs), got {key!r}")
    text = text.strip()
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text  # a bare word that is not a TOML literal is a string
    return parts, value


def _apply_override(raw: dict[str, Any], item: str) -> None:
    parts, value = parse_override(item)
    node = raw
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise UserError(f"--set {item!r}: {part!r} is a value, not a section")
        node = nxt
    node[parts[-1]] = value


def _build(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "the config"
    if not isinstance(raw, dict):
        raise UserError(f"{where} must be a table (section), got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.5)
            hint = f"; did you mean {prefix}{close[0]!r}?" if close else ""
            hint = hint.replace(f"{prefix}'", f"'{prefix}")
            raise UserError(
                f"unknown key {prefix}{key!r}{hint} (valid in {where}: {', '.join(sorted(fields))})".replace(
                    f"{prefix}'", f"'{prefix}"
                )
            )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        if name not in raw:
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _build(tp, raw[name], f"{prefix}{name}.")  # type: ignore[arg-type]
        elif typing.get_origin(tp) is dict:
            kwargs[f.name] = _tables(f"{prefix}{name}", raw[name])
        else:
            kwargs[f.name] = _check_value(f"{prefix}{name}", raw[name], tp, f.metadata)
    obj = cls(**kwargs)
    _check_cross_field(obj, prefix)
    return obj


def build_section(cls: type, raw: Any, prefix: str) -> Any:
    """Validate one TOML table against the settings dataclass `cls` (prefix: 'section.' for messages)."""
    return _build(cls, raw, prefix)


def _tables(key: str, raw: Any) -> dict[str, dict[str, Any]]:
    """A table of tables (e.g. [backends.openvino]); each inner table is validated by its owner later."""
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise UserError(f"{key} must be a table of tables, e.g. [{key}.openvino], got {raw!r}")
    return {str(k): dict(v) for k, v in raw.items()}


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string"}.get(tp, str(tp))


def _check_value(key: str, value: Any, tp: Any, rules: Any) -> Any:
    if typing.get_origin(tp) is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise UserError(f"{key} = {value!r}: expected {_type_name(tp)}, e.g. [{_example(item_tp)}]")
        if not value:
            raise UserError(f"{key} = []: must not be empty")
        item_rules = dict(rules)
        if "items" in item_rules:
            item_rules["choices"] = item_rules.pop("items")
        return [_check_value(f"{key}[{i}]", v, item_tp, item_rules) for i, v in enumerate(value)]
    ok = (
        (tp is bool and isinstance(value, bool))
        or (tp is int and isinstance(value, int) and not isinstance(value, bool))
        or (tp is float and isinstance(value, int | float) and not isinstance(value, bool))
        or (tp is str and isinstance(value, str))
    )
    if not ok:
        raise UserError(f"{key} = {value!r}: expected {_type_name(tp)}")
    if tp is float:
        value = float(value)
        if not math.isfinite(value):  # nan passes every min/max comparison
            raise UserError(f"{key} = {value!r}: must be a finite number")
    choices = rules.get("choices")
    if choices is not None and value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"{key} = {value!r}: allowed values are {', '.join(map(str, choices))}{hint}")
    lo, hi = rules.get("min"), rules.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise UserError(f"{key} = {value!r}: must be between {lo} and {hi}")
    return value


def _example(tp: Any) -> str:
    return {int: "1, 32", float: "0.5", str: '"a", "b"', bool: "true"}.get(tp, "...")


def _check_cross_field(obj: Any, prefix: str) -> None:
    if isinstance(obj, DataConfig):
        if obj.fold >= obj.folds:
            raise UserError(f"data.fold = {obj.fold}: must be below data.folds = {obj.folds}")
        if obj.dataset != "synthfer" and not obj.path:
            raise UserError(f"data.path is empty: data set {obj.dataset!r} is read from a local path")
    if isinstance(obj, CompressConfig) and 0.0 < obj.macs_reduction <= 1.0:
        raise UserError(f"compress.macs_reduction = {obj.macs_reduction:g}: must be 0 (prune by compress.sparsity) "
                        f"or above 1 (dense MACs / pruned MACs)")
    if isinstance(obj, BenchmarkConfig):
        for i, v in enumerate(obj.variants):
            check_variant_name(f"benchmark.variants[{i}]", v)


def check_variant_name(key: str, name: str) -> None:
    """UserError unless `name` is <dense|method>-<fp32|int8>; the message lists every valid variant."""
    method, _, precision = name.rpartition("-")
    methods = ("dense", *PRUNING_METHODS)
    if method not in methods or precision not in ("fp32", "int8"):
        valid = ", ".join(f"{m}-{p}" for m in methods for p in ("fp32", "int8"))
        raise UserError(f"{key} = {name!r}: not a variant; valid: {valid}")
