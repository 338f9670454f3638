"""Hardware / backend / variant selection over every stored result (the store's typed rows,
`ResultsStore.all_results_typed`: `common.records.SelectionRow`).

A *choice* is (backend, device, variant, machine, settings): the machine is the row's machine id (a fleet
history holds many; its hardware summary is shown beside it) and the settings are the threads and streams
the runtime really used (`describe`), so one choice never mixes results measured under different settings.
For each choice the latest run that measured it at the requested batch size is used. Latency numbers come
from the latency scenario at batch 1, or from the throughput scenario's timed rounds when --batch N > 1;
throughput from the throughput scenario at that batch size.
Only ok, VALID and verified measurements are eligible: a row that disagrees with its reference (`agrees` False)
is refused, and so is an unverified one (`agrees` None: no reference logits were compared with it, e.g. a row
stored before agreement existed) unless `allow_unverified` is set; then it may be chosen but is marked
UNVERIFIED wherever it is named. With several requests in flight the throughput scenario's
latency is the time of one round (every request of the round overlaps), recorded in `latency_source`.
`--max-latency-ms` bounds the p99 latency (a deployment's maximum is a tail, not a median).

What was timed is part of a choice: rows carry `artifact_sha256` (the model file the backend loaded) and `model`
("VGG16-FER x0.25"); two models under one variant name are two choices, each labelled by its model. Rows stored
before those fields are grouped by variant and the run's config hash instead (`identity` says which).
Without --min-accuracy the frontier's floor applies: validation accuracy within `tolerance` of the dense model
(dense-fp32) of the same model; the floor and what it excluded are printed. Ranking never rests on a point
estimate alone: choices whose p50 interval over processes (`p50_ci_ms`) overlaps the best one's are
indistinguishable from it and are ordered among themselves by TIE_RULE.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common.errors import UserError
from common.records import SelectionRow
from common.results import REFERENCE_VARIANT
from common.text import finite_number

OBJECTIVES = ("latency", "throughput", "storage")
DEFAULT_TOLERANCE = 0.01  # one accuracy point below the dense model's validation accuracy, as the frontier
TIE_RULE = "the smaller p99 upper bound (p99_ci_ms, else p99), then p50"
_EPS = 1e-9


@dataclass(frozen=True)
class Constraints:
    """What the deployment needs. Accuracy is a fraction in [0, 1]."""

    max_latency_ms: float | None = None
    min_accuracy: float | None = None
    max_storage_mb: float | None = None
    batch: int = 1
    objective: str = "latency"
    allow_unverified: bool = False  # consider rows whose answers were never checked against a reference
    tolerance: float = DEFAULT_TOLERANCE  # the default floor (no min_accuracy): dense val accuracy - tolerance

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise UserError(f"--objective {self.objective!r}: allowed values are {', '.join(OBJECTIVES)}")
        if self.batch < 1:
            raise UserError(f"--batch {self.batch}: must be a positive batch size")
        for flag, v in (("--max-latency-ms", self.max_latency_ms), ("--max-storage-mb", self.max_storage_mb)):
            if v is not None and not (math.isfinite(v) and v > 0):
                raise UserError(f"{flag} {v}: must be a positive number")
        if not (math.isfinite(self.tolerance) and 0.0 <= self.tolerance <= 1.0):
            raise UserError(f"--tolerance {100 * self.tolerance:g}: must be between 0 and 100 accuracy points")
        if self.min_accuracy is not None and not 0.0 <= self.min_accuracy <= 1.0:
            raise UserError(f"--min-accuracy {self.min_accuracy}: must be a fraction in [0, 1] or a percentage")


def parse_min_accuracy(v: float | None) -> float | None:
    """--min-accuracy as a fraction: 0.85 stays 0.85; 85 (a percentage, > 1) becomes 0.85."""
    if v is None:
        return None
    if not math.isfinite(v) or v < 0 or v > 100:
        raise UserError(f"--min-accuracy {v}: give a fraction in [0, 1] (0.85) or a percentage (85)")
    return v / 100.0 if v > 1.0 else v


@dataclass
class Choice:
    """One candidate deployment with the numbers used to judge it."""

    backend: str
    device: str
    variant: str
    hardware: str
    batch_size: int
    run_id: str
    created: str
    machine_id: str = ""
    target: str | None = None
    threads: int | None = None
    streams: str | None = None  # one value, or per scenario: "1 (latency), 2 (throughput)"
    p50_ms: float | None = None
    p99_ms: float | None = None
    throughput_fps: float | None = None
    accuracy: float | None = None
    storage_mb: float | None = None
    latency_source: str = ""
    agrees: bool | None = None  # every row the choice uses agrees with its reference (None: not checked)
    reference: str | None = None  # what the agreement was measured against
    storage_source: str = "file"  # "file": bytes of the files the backend loaded; "parameters": no file size stored
    problem: str = ""  # why it is not eligible at all (status, invalid, not measured)
    model: str | None = None  # "VGG16-FER x0.25": which model (rows before the field: None)
    artifact_sha256: str | None = None  # the file that was timed (None: a row stored before the field)
    identity: str = "artifact_sha256"  # what keyed the choice: "artifact_sha256" or "config_hash (...)"
    val_accuracy: float | None = None  # the variant's validation accuracy (its manifest's): the floor's measure
    val_floor: float | None = None  # the default floor that applies to it (None: none known)
    floor_from: str = ""  # where the floor came from, in words
    p50_ci_ms: list[float] | None = None  # the objective row's p50 interval over processes
    p99_ci_ms: list[float] | None = None
    dataset: str = ""
    config_hash: str = ""
    compile_note: str | None = None  # how the runtime had to compile it (OpenVINO without Snippets), from its rows

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "device": self.device, "variant": self.variant, "model": self.model,
                "artifact_sha256": self.artifact_sha256, "identity": self.identity,
                "val_accuracy": self.val_accuracy, "p50_ci_ms": self.p50_ci_ms, "p99_ci_ms": self.p99_ci_ms,
                "compile_note": self.compile_note,
                "hardware": self.hardware, "machine_id": self.machine_id, "target": self.target,
                "threads": self.threads, "streams": self.streams, "batch_size": self.batch_size, "p50_ms": self.p50_ms,
                "p99_ms": self.p99_ms, "throughput_fps": self.throughput_fps, "accuracy": self.accuracy,
                "storage_mb": self.storage_mb, "storage_source": self.storage_source, "run_id": self.run_id,
                "created": self.created,
                "latency_source": self.latency_source, "agrees": self.agrees, "reference": self.reference}

    @property
    def name(self) -> str:
        flag = " [UNVERIFIED: no agreement with a reference measured]" if self.agrees is None else ""
        return self.plain_name + flag

    @property
    def plain_name(self) -> str:
        dev = f"[{self.device}]" if self.device and self.device != "cpu" else ""
        machine = f"machine {self.machine_id} ({self.hardware})" if self.machine_id else self.hardware
        note = " [compiled without Snippets]" if self.compile_note else ""
        return f"{self.backend}{dev}/{self.variant}{self.model_tag} ({self.settings}){note} on {machine}"

    @property
    def model_tag(self) -> str:
        """" (VGG16-FER x0.25, sha 1a2b3c4d5e6f)": the model and the timed file; "" for rows without either."""
        parts = [p for p in (self.model, f"sha {self.artifact_sha256[:12]}" if self.artifact_sha256 else "") if p]
        return f" ({', '.join(parts)})" if parts else ""

    @property
    def settings(self) -> str:
        parts = [f"threads {self.threads}" if self.threads is not None else "threads ?"]
        if self.streams is not None:
            parts.append(f"streams {self.streams}")
        return ", ".join(parts)


@dataclass
class Selection:
    """The outcome: recommended choice (None if nothing is feasible), ranked feasible ones, rejected ones."""

    constraints: Constraints
    ranked: list[Choice]
    rejected: list[tuple[Choice, str]]
    lost: dict[int, str]  # index in ranked -> why it ranked below the recommended one
    message: str
    indistinguishable: list[int] = field(default_factory=list)  # indices in ranked tied with the best (p50 CI)
    floor: str = ""  # the accuracy floor applied, in words

    @property
    def recommended(self) -> Choice | None:
        return self.ranked[0] if self.ranked else None

    def to_dict(self) -> dict[str, Any]:
        c = self.constraints
        return {
            "constraints": {"max_latency_ms": c.max_latency_ms, "min_accuracy": c.min_accuracy,
                            "max_storage_mb": c.max_storage_mb, "batch": c.batch, "objective": c.objective,
                            "allow_unverified": c.allow_unverified, "tolerance": c.tolerance},
            "floor": self.floor,
            "recommended": self.recommended.to_dict() if self.recommended else None,
            "indistinguishable_from_best": [self.ranked[i].to_dict() for i in self.indistinguishable],
            "tie_rule": TIE_RULE,
            "ranked": [{**ch.to_dict(), "rank": i + 1, "why": self.lost.get(i, "recommended")}
                       for i, ch in enumerate(self.ranked)],
            "rejected": [{**ch.to_dict(), "why": why} for ch, why in self.rejected],
            "message": self.message,
        }



UNVERIFIED = "unverified"


def _reference_words(row: SelectionRow) -> str:
    ref = row.reference or ""
    if not ref.startswith("onnxruntime"):
        return "the PyTorch reference"
    return "the ONNX Runtime int8 (unoptimized) reference" if "(int8" in ref else "the ONNX Runtime fp32 reference"


def _ineligible(row: SelectionRow, allow_unverified: bool = False) -> str:
    """Why `row` cannot be chosen ("" when it can), the gravest first: failed, wrong answers, answers never
    checked (unless allowed), invalid timing."""
    if row.status != "ok":
        reason = (row.reason or "").strip()
        return f"status {row.status}" + (f": {reason}" if reason else "")
    if row.agrees is False:  # wrong answers outrank noisy timings: say this first
        why = (row.agreement_reason or "").strip()
        return f"disagrees with {_reference_words(row)}: " + (why or f"top-1 agreement {row.agreement}")
    if row.agrees is None and not allow_unverified:  # unknown answers, like wrong ones, before timing
        why = (row.agreement_reason or "").strip().removeprefix("unverified: ")
        return (f"{UNVERIFIED}: its outputs were never compared with a reference "
                f"({why or 'no agreement recorded'}); --allow-unverified to consider it")
    if row.valid is False:
        return "invalid measurement: " + ("; ".join(row.invalid_reasons or []) or "no reason recorded")
    return ""


def settings_of(row: SelectionRow) -> tuple[int | None, int | None]:
    """(threads, streams) the runtime really used for `row` (its `describe`); None where not recorded."""
    return (row.describe.threads, row.describe.streams) if row.describe is not None else (None, None)


def identity_of(row: SelectionRow) -> tuple[str, str]:
    """(what keys the model of `row`, its value): the timed file's sha256, or for a row stored before rows
    carried it, the variant's run config hash and model text (two models under one name still never merge)."""
    if row.artifact_sha256:
        return "artifact_sha256", row.artifact_sha256
    return "config_hash (row has no artifact_sha256)", f"{row.config_hash}|{row.model or ''}"


def filter_rows(rows: list[SelectionRow], machines: list[str] | None, targets: list[str] | None,
                models: list[str] | None = None, artifact_shas: list[str] | None = None) -> list[SelectionRow]:
    """Rows of the given machine ids / targets / models / artifact sha256 prefixes (--machine, --target,
    --model, --artifact-sha); a name that matches nothing is a UserError naming what is stored."""
    if models:
        have = sorted({r.model for r in rows if r.model})
        unknown = [m for m in models if m.lower() not in {h.lower() for h in have}]
        if unknown:
            raise UserError(f"--model {', '.join(unknown)}: not in the store; stored models: "
                            f"{', '.join(have) or 'none (rows stored before rows named their model)'}")
        want = {m.lower() for m in models}
        rows = [r for r in rows if (r.model or "").lower() in want]
    if artifact_shas:
        bad = [a for a in artifact_shas if len(a) < 6 or any(ch not in "0123456789abcdef" for ch in a.lower())]
        if bad:
            raise UserError(f"--artifact-sha {', '.join(bad)}: give at least 6 hex digits of an artifact_sha256")
        shas = sorted({r.artifact_sha256 for r in rows if r.artifact_sha256})
        unknown = [a for a in artifact_shas if not any(h.startswith(a.lower()) for h in shas)]
        if unknown:
            raise UserError(f"--artifact-sha {', '.join(unknown)}: matches no stored artifact_sha256; stored: "
                            f"{', '.join(h[:12] for h in shas) or 'none'}")
        rows = [r for r in rows if any((r.artifact_sha256 or "").startswith(a.lower()) for a in artifact_shas)]
    rows = _only(rows, "--machine", machines, lambda r: r.machine_id)
    return _only(rows, "--target", targets, lambda r: r.target)


def _only(rows: list[SelectionRow], flag: str, names: list[str] | None,
          key: Callable[[SelectionRow], str | None]) -> list[SelectionRow]:
    """The rows whose `key` is one of `names` (all rows without names); a name no row has is a UserError."""
    if not names:
        return rows
    have = sorted({v for r in rows if (v := key(r))})
    unknown = [n for n in names if n not in have]
    if unknown:
        raise UserError(f"{flag} {', '.join(unknown)}: not in the store; stored: {', '.join(have) or 'none'}")
    return [r for r in rows if key(r) in names]


def _interval(v: list[float] | None) -> list[float] | None:
    """[low, high] of a stored interval; None unless both ends are finite numbers."""
    if v is not None and len(v) == 2:
        lo, hi = finite_number(v[0]), finite_number(v[1])
        if lo is not None and hi is not None:
            return [lo, hi]
    return None


def build_choices(rows: list[SelectionRow], batch: int, allow_unverified: bool = False,
                  objective: str = "latency") -> list[Choice]:
    """Group stored result rows into choices (what was timed, where, how), keeping the latest run that measured
    each at `batch`."""
    def cell_of(r: SelectionRow) -> tuple[str, ...]:
        return (r.backend, r.device or "cpu", r.variant, r.machine_id or r.hardware or "unknown hardware",
                r.target or "", *identity_of(r))

    # one run's cell has one setting, which may differ by scenario (OpenVINO: 1 stream for latency, more for
    # throughput): the setting of a cell is what all its rows of that run report
    per_cell: dict[tuple[str, ...], list[SelectionRow]] = {}
    for r in rows:
        per_cell.setdefault((str(r.run_id), *cell_of(r)), []).append(r)
    setting: dict[tuple[str, ...], tuple[int | None, str | None]] = {}
    for ckey, rs in per_cell.items():
        threads = next((t for t, _ in map(settings_of, rs) if t is not None), None)
        per_scenario = {r.scenario: s for r in rs for s in [settings_of(r)[1]] if s is not None}
        distinct = sorted(set(map(str, per_scenario.values())))
        text = None if not distinct else distinct[0] if len(distinct) == 1 else ", ".join(
            f"{v} ({k})" for k, v in sorted(per_scenario.items()))
        setting[ckey] = (threads, text)
    groups: dict[tuple[str, ...], dict[str, list[SelectionRow]]] = {}
    hardware: dict[tuple[str, ...], str] = {}
    for r in rows:
        threads, streams = setting[(str(r.run_id), *cell_of(r))]
        key = (*cell_of(r), str(threads), str(streams))
        hardware.setdefault(key, r.hardware or "unknown hardware")
        groups.setdefault(key, {}).setdefault(str(r.run_id), []).append(r)
    choices: list[Choice] = []
    for gkey, runs in groups.items():
        backend, device, variant, _machine, target, identity = gkey[:6]
        hw = hardware[gkey]
        def at_batch(rs: list[SelectionRow]) -> list[SelectionRow]:
            return [r for r in rs if (r.batch_size or 1) == batch]

        measured = [rs for rs in runs.values() if at_batch(rs)]
        pool = measured or list(runs.values())
        latest = max(pool, key=lambda rs: (str(rs[0].created), str(rs[0].run_id)))
        first = latest[0]
        threads, streams = setting[(str(first.run_id), *cell_of(first))]
        ch = Choice(backend, device, variant, hw, batch, str(first.run_id), str(first.created),
                    machine_id=first.machine_id or "", target=target or None, threads=threads, streams=streams,
                    model=first.model or None, artifact_sha256=first.artifact_sha256 or None,
                    identity=identity, val_accuracy=finite_number(first.val_accuracy),
                    dataset=first.dataset or "", config_hash=first.config_hash or "")
        choices.append(ch)
        here = at_batch(latest)
        if not here:
            sizes = sorted({r.batch_size or 1 for rs in runs.values() for r in rs})
            ch.problem = f"not measured at batch {batch} (measured: {', '.join(map(str, sizes))})"
            continue
        lat = next((r for r in here if r.scenario == "latency"), None)
        thr = next((r for r in here if r.scenario == "throughput"), None)
        lat_row = lat or thr or here[0]
        if lat is not None:
            ch.latency_source = "latency scenario"
        else:
            k = _in_flight(lat_row)
            ch.latency_source = (f"throughput scenario: time per round of {k} request(s) x batch {batch} in flight"
                                 if k != 1 else f"throughput scenario: time per batch of {batch}")
        used = [c for c in (lat_row, thr) if c is not None]
        for cell in used:
            if _ineligible(cell, allow_unverified):
                ch.problem = _ineligible(cell, allow_unverified)
                break
        verdicts = [c.agrees for c in used]
        ch.agrees = False if False in verdicts else None if None in verdicts else True
        ch.reference = next((c.reference for c in used if c.reference), None)
        ch.compile_note = next((c.compile_note for c in used if c.compile_note), None)
        lat_ms = lat_row.latency_ms
        if lat_ms is not None:
            ch.p50_ms, ch.p99_ms = finite_number(lat_ms.p50), finite_number(lat_ms.p99)
        ci_row = thr if (objective == "throughput" and thr is not None) else lat_row
        ch.p50_ci_ms, ch.p99_ci_ms = _interval(ci_row.p50_ci_ms), _interval(ci_row.p99_ci_ms)
        ch.throughput_fps = finite_number((thr or lat_row).throughput_fps)
        ch.accuracy = next((a for a in (finite_number(r.accuracy) for r in here) if a is not None), None)
        files = next((b for b in (finite_number(r.file_bytes) for r in here) if b), None)
        if files is not None:  # what the runtime really loads from disk, not a parameter-count formula
            ch.storage_mb, ch.storage_source = files / 1e6, "file"
        else:
            ch.storage_source = "parameters"
            ch.storage_mb = next((s for s in (finite_number(r.storage_mb) for r in here) if s is not None), None)
    return choices


def _in_flight(row: SelectionRow) -> int:
    """Requests the harness kept in flight for `row` (its `describe.harness`; 1 where not recorded)."""
    harness = row.describe.harness if row.describe is not None else None
    return (harness.requests_in_flight if harness is not None else None) or 1


def _violations(ch: Choice, c: Constraints) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if c.max_latency_ms is not None:
        if ch.p99_ms is None:
            out.append(("max-latency-ms", "no p99 latency measured"))
        elif ch.p99_ms > c.max_latency_ms:
            out.append(("max-latency-ms", f"p99 {ch.p99_ms:.3g} ms > max {c.max_latency_ms:g} ms"))
    if c.min_accuracy is not None:
        if ch.accuracy is None:
            out.append(("min-accuracy", "no accuracy measured"))
        elif ch.accuracy < c.min_accuracy:
            out.append(("min-accuracy", f"accuracy {100 * ch.accuracy:.2f}% < min {100 * c.min_accuracy:.2f}%"))
    if c.min_accuracy is None and ch.val_floor is not None:
        if ch.val_accuracy is None:
            out.append(("tolerance", f"no validation accuracy to hold against the floor {100 * ch.val_floor:.2f}% "
                                     f"({ch.floor_from}); pass --min-accuracy to judge it on test accuracy"))
        elif ch.val_accuracy < ch.val_floor - _EPS:
            out.append(("tolerance", f"val accuracy {100 * ch.val_accuracy:.2f}% < floor {100 * ch.val_floor:.2f}% "
                                     f"({ch.floor_from} - {100 * c.tolerance:g} point(s))"))
    if c.max_storage_mb is not None:
        if ch.storage_mb is None:
            out.append(("max-storage-mb", "no storage measured"))
        elif ch.storage_mb > c.max_storage_mb:
            what = "file size" if ch.storage_source == "file" else "parameter storage (no file size recorded)"
            out.append(("max-storage-mb", f"{what} {ch.storage_mb:.3g} MB > max {c.max_storage_mb:g} MB"))
    return out


def _objective_value(ch: Choice, objective: str) -> float | None:
    if objective == "latency":
        return ch.p50_ms
    if objective == "throughput":
        return -ch.throughput_fps if ch.throughput_fps is not None else None
    return ch.storage_mb


def _sort_key(ch: Choice, objective: str) -> tuple[float, float, float]:
    v = _objective_value(ch, objective)
    return (math.inf if v is None else v, ch.p50_ms if ch.p50_ms is not None else math.inf,
            -(ch.accuracy or 0.0))


def _describe(ch: Choice, objective: str) -> str:
    if objective == "latency":
        return f"p50 {ch.p50_ms:.3g} ms" if ch.p50_ms is not None else "no p50"
    if objective == "throughput":
        return f"{ch.throughput_fps:.4g} img/s" if ch.throughput_fps is not None else "no throughput"
    return f"{ch.storage_mb:.3g} MB" if ch.storage_mb is not None else "no storage"


def _same_model(dense: SelectionRow, ch: Choice) -> bool:
    if ch.model:
        return dense.model == ch.model and (dense.dataset or "") == ch.dataset
    return not dense.model and (dense.config_hash or "") == ch.config_hash


def set_dense_floors(rows: list[SelectionRow], choices: list[Choice], tolerance: float) -> list[str]:
    """The frontier's floor for each choice: the validation accuracy of the dense model (dense-fp32) of the
    same model (and data set; rows without a model text: the same run config), less `tolerance`. The dense row
    of the same run is preferred, then of the same machine, then the latest. Returns the models (in words)
    without a stored dense validation accuracy, which no floor covers."""
    dense: list[tuple[SelectionRow, float]] = [
        (r, v) for r in rows if r.variant == REFERENCE_VARIANT and (v := finite_number(r.val_accuracy)) is not None]
    uncovered: list[str] = []
    for ch in choices:
        pool = [(r, v) for r, v in dense if _same_model(r, ch)]
        if not pool:
            name = ch.model or f"config {ch.config_hash or '?'}"
            if name not in uncovered:
                uncovered.append(name)
            continue
        _pick, dv = max(pool, key=lambda rv: (rv[0].run_id == ch.run_id, rv[0].machine_id == ch.machine_id,
                                              str(rv[0].created), str(rv[0].run_id)))
        ch.val_floor = dv - tolerance
        ch.floor_from = f"dense {ch.model or REFERENCE_VARIANT} val {100 * dv:.2f}%"
    return uncovered


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _tie_key(ch: Choice) -> tuple[float, float]:
    hi = ch.p99_ci_ms[1] if ch.p99_ci_ms else ch.p99_ms
    return (math.inf if hi is None else hi, math.inf if ch.p50_ms is None else ch.p50_ms)


def rank_ties(feasible: list[Choice], objective: str) -> list[Choice]:
    """Reorder `feasible` (sorted by the objective's point value) so that the choices whose p50 interval
    overlaps the point-best one's come first, ordered among themselves by TIE_RULE; returns those tied with the
    new first (its interval overlaps theirs). Nothing is tied without intervals, or by storage (exact)."""
    if objective == "storage" or not feasible or feasible[0].p50_ci_ms is None:
        return []
    lead = feasible[0].p50_ci_ms
    group = [ch for ch in feasible if ch.p50_ci_ms is not None and _overlap(ch.p50_ci_ms, lead)]
    if len(group) < 2:
        return []
    group.sort(key=_tie_key)
    ids = {id(ch) for ch in group}
    feasible[:] = group + [ch for ch in feasible if id(ch) not in ids]
    best = feasible[0].p50_ci_ms
    return [ch for ch in group[1:] if ch.p50_ci_ms is not None and best is not None and _overlap(ch.p50_ci_ms, best)]


def _ci(v: list[float] | None) -> str:
    return f"[{v[0]:.3g}, {v[1]:.3g}]" if v else "[?]"


def _floor_text(c: Constraints, choices: list[Choice], uncovered: list[str]) -> str:
    if c.min_accuracy is not None:
        return f"test accuracy >= {100 * c.min_accuracy:.2f}% as asked; the dense-model floor is not applied"
    floors = sorted({f"{ch.floor_from} - {100 * c.tolerance:g} point(s) = {100 * ch.val_floor:.2f}%"
                     for ch in choices if ch.val_floor is not None})
    parts = [f"validation accuracy >= {f}" for f in floors]
    if uncovered:
        parts.append(f"no floor for {', '.join(uncovered)} (no dense-fp32 validation accuracy stored)")
    return "; ".join(parts) or "none (no choices)"


def select(rows: list[SelectionRow], c: Constraints) -> Selection:
    """Rank the feasible choices by the objective; explain every rejection and every lower rank."""
    choices = build_choices(rows, c.batch, c.allow_unverified, c.objective)
    uncovered = set_dense_floors(rows, choices, c.tolerance) if c.min_accuracy is None else []
    floor = _floor_text(c, choices, uncovered)
    eligible: list[Choice] = []
    rejected: list[tuple[Choice, str]] = []
    for ch in choices:
        if ch.problem:
            rejected.append((ch, ch.problem))
        elif _objective_value(ch, c.objective) is None:
            rejected.append((ch, f"no {c.objective} number measured"))
        else:
            eligible.append(ch)
    feasible: list[Choice] = []
    by_constraint: dict[str, list[Choice]] = {}
    for ch in eligible:
        v = _violations(ch, c)
        if v:
            rejected.append((ch, "; ".join(msg for _, msg in v)))
            for name, _ in v:
                by_constraint.setdefault(name, []).append(ch)
        else:
            feasible.append(ch)
    feasible.sort(key=lambda ch: _sort_key(ch, c.objective))
    tied = rank_ties(feasible, c.objective)
    rejected.sort(key=lambda x: (x[1].startswith(("status", "not measured", "invalid", UNVERIFIED)), x[0].name))
    lost: dict[int, str] = {}
    tie_ids = {id(ch) for ch in tied}
    if feasible:
        best = feasible[0]
        for i, ch in enumerate(feasible[1:], start=1):
            if id(ch) in tie_ids:
                lost[i] = (f"indistinguishable from the recommended choice: p50 intervals overlap "
                           f"({_ci(ch.p50_ci_ms)} vs {_ci(best.p50_ci_ms)} ms); ranked by {TIE_RULE}")
            else:
                lost[i] = (f"ranked #{i + 1} by {c.objective}: {_describe(ch, c.objective)} vs "
                           f"{_describe(best, c.objective)} of the recommended choice")
        message = (f"recommended: {best.name} at batch {c.batch} ({_describe(best, c.objective)}, "
                   f"run {best.run_id}); {len(feasible)} feasible, {len(rejected)} rejected")
        if tied:
            message += (f". Indistinguishable from it (p50 intervals overlap): "
                        f"{'; '.join(ch.plain_name for ch in tied)}; among these the order is by {TIE_RULE}")
    else:
        message = _nothing_feasible(choices, eligible, by_constraint, c)
    floored = [ch.plain_name for ch in by_constraint.get("tolerance", [])]
    message += f". Accuracy floor: {floor}"
    if floored:
        message += (f"; it excluded {len(floored)}: " + "; ".join(floored[:5])
                    + (f"; and {len(floored) - 5} more" if len(floored) > 5 else ""))
    return Selection(c, feasible, rejected, lost, message + _unverified_note(rejected),
                     [i for i, ch in enumerate(feasible) if id(ch) in tie_ids], floor)


def _unverified_note(rejected: list[tuple[Choice, str]]) -> str:
    """Which choices were refused as unverified, named (the first five) so nobody has to dig for them."""
    names = [ch.plain_name for ch, why in rejected if why.startswith(UNVERIFIED)]
    if not names:
        return ""
    shown = "; ".join(names[:5]) + (f"; and {len(names) - 5} more" if len(names) > 5 else "")
    return (f". Refused {len(names)} unverified choice(s), whose outputs were never compared with a reference "
            f"(pass --allow-unverified to consider them): {shown}")


def _nothing_feasible(choices: list[Choice], eligible: list[Choice], by_constraint: dict[str, list[Choice]],
                      c: Constraints) -> str:
    if not choices:
        return "nothing feasible: the store holds no results"
    if not eligible:
        return (f"nothing feasible: none of the {len(choices)} stored choices has an ok, valid, verified "
                f"measurement at batch {c.batch} (see the rejected list)")
    # a constraint binds if dropping it alone would leave something feasible
    fmt = {"max-latency-ms": ("the lowest p99 is", lambda ch: ch.p99_ms, min, lambda v: f"{v:.3g} ms"),
           "min-accuracy": ("the best accuracy is", lambda ch: ch.accuracy, max, lambda v: f"{100 * v:.2f}%"),
           "max-storage-mb": ("the smallest storage is", lambda ch: ch.storage_mb, min, lambda v: f"{v:.3g} MB"),
           "tolerance": ("the best validation accuracy is", lambda ch: ch.val_accuracy, max,
                         lambda v: f"{100 * v:.2f}%")}

    def best_of(name: str, pool: list[Choice], where: str) -> str:
        text, get, pick, show = fmt[name]
        have = [ch for ch in pool if get(ch) is not None]
        if not have:
            return f"--{name} (not measured)"
        top = pick(have, key=lambda ch: get(ch))
        return f"--{name} ({text} {show(get(top))}{where}: {top.name})"

    binding = {n: [ch for ch in eligible if all(m == n for m, _ in _violations(ch, c))] for n in by_constraint}
    binding = {n: pool for n, pool in binding.items() if pool}
    if len(binding) == 1:
        (name, pool), = binding.items()
        return (f"nothing feasible among {len(eligible)} eligible choices: "
                f"{best_of(name, pool, ' among those meeting the other limits')} binds")
    if binding:
        parts = [best_of(n, pool, " among those meeting the other limits") for n, pool in binding.items()]
        return f"nothing feasible among {len(eligible)} eligible choices: relaxing any one of {'; '.join(parts)} helps"
    parts = [best_of(n, eligible, "") for n in sorted(by_constraint, key=lambda n: -len(by_constraint[n]))]
    return (f"nothing feasible among {len(eligible)} eligible choices: {'; '.join(parts)} together exclude "
            "everything (relax more than one)")
