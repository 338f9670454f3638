"""Other machines' hardware-aware choices, rebuilt and measured on this machine: the model an AMX Xeon chose
beside the one this AVX2 machine chose, both timed here, shows what choosing for the machine paid.

A hardware-aware point (`bench sweep --latency-target F`) is chosen from the per-layer latency table of the
machine that ran the sweep. The store keeps every sweep's chosen architecture (`sweep.latency.points[name]
.architecture`); this module reads those of OTHER machines and turns each back into a `compression.allocate.Plan`
so that `bench sweep` can cut this machine's dense model to it, fine-tune it with the same recipe and measure it
in the same grid as its own choice: the model chosen for AMX beside the one chosen for AVX2, both timed here.

What counts as comparable, and why:
* another machine: a different `machine_id` (the hardware), not a different fingerprint id, which also changes
  with a library upgrade on the same box; a plan chosen on this very machine is not a foreign choice.
* the same dense architecture (input channels, the conv widths and pool positions, hidden width): a plan names a
  width per dense conv slot, so it means the same thing only for the same dense model shape. The run's
  `sweep.dense_arch` is compared (older runs: the dense arch of their `model` config, when not an imported model).
  The weights need not match: the foreign architecture is applied to THIS dense model (its own channel ranking),
  which is exactly what is compared: the architecture each machine's table chose.
* the same point name and backend (so the same target fraction or ms, precision and runtime): a plan chosen for
  half the paper's point on OpenVINO is compared with this machine's plan for the same request, nothing else.
Identical architectures are built once (the newest machine's label kept), one per machine (its newest run), at
most `limit` of them, so a sweep's time stays bounded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from common.results import hardware_summary, machine_id
from compression.allocate import LayerChoice, Plan, removable_convs
from compression.latency_table import LatencyTable, conv_slots
from fer.model import Arch, default_arch
from harness.orchestrate.latency_sweep import LatencyBuild

DEFAULT_LIMIT = 3
# what a foreign build shares with this machine's point: the request and the table its prediction here comes from
# (not how this machine's plan was chosen: its objective's measurements are not the other machine's)
SHARED_FIELDS = ("backend", "target_ms", "target_fraction_of_paper", "paper_point_probe_ms", "table", "table_key")


@dataclass(frozen=True)
class ForeignPlan:
    """One other machine's choice, as a plan on this dense model."""

    run_id: str
    machine_id: str
    label: str  # short machine label for variant names: "<int8 path>-<machine id prefix>"
    hardware: str
    int8_path: str
    point: dict[str, Any]  # the stored latency point (target, predicted and measured there, architecture)
    plan: Plan


def dense_key(arch: Arch) -> tuple[Any, ...]:
    """What makes two dense models' conv slots the same: input channels, features (widths and pools), hidden."""
    return int(arch["in_channels"]), json.dumps(list(arch["features"])), int(arch["hidden"])


def run_dense_arch(header: dict[str, Any]) -> Arch | None:
    """The dense architecture a stored sweep ran on (None when it cannot be told)."""
    sweep: dict[str, Any] = header["sweep"] if isinstance(header.get("sweep"), dict) else {}
    if isinstance(sweep.get("dense_arch"), dict):
        return dict(sweep["dense_arch"])
    model = (header.get("config") or {}).get("model")
    if not isinstance(model, dict) or model.get("pretrained") or model.get("width") is None:
        return None  # an imported model's shape is not in its config
    try:
        return default_arch(in_channels=int(model.get("in_channels", 1)), width=float(model["width"]),
                            dropout=float(model.get("dropout", 0.5)))
    except (TypeError, ValueError):
        return None


def machine_label(header: dict[str, Any]) -> tuple[str, str]:
    """(label, int8 path) of a run's machine: "amx-3f9a1c" (the CPU's int8 path, then the machine id's first six
    letters or digits), what a variant name can carry."""
    fp: dict[str, Any] = header["fingerprint"] if isinstance(header.get("fingerprint"), dict) else {}
    isa: dict[str, Any] = fp["isa"] if isinstance(fp.get("isa"), dict) else {}
    path = str(isa.get("int8_path") or "unknown")
    mid = machine_id(header)
    short = re.sub(r"[^a-z0-9]", "", mid.lower().removeprefix("m-").removeprefix("fp-"))[:6] or "x"
    return (f"{path}-{short}" if path != "unknown" else short), path


def reconstruct(architecture: dict[str, Any], dense: Arch, table: LatencyTable | None = None) -> Plan | None:
    """The Plan of a stored architecture ({widths: {conv name: width, 0 = removed}, removed_layers, features}) on
    `dense`; None when it does not fit (a conv missing or wider than dense, a removal the dense model cannot take,
    or features that disagree). Costs and prediction from this machine's `table` when given (else 0.0); no
    importance (0.0): the plan was chosen by another machine's objective, not this one's."""
    widths = architecture.get("widths")
    if not isinstance(widths, dict):
        return None
    removed_names = set(architecture.get("removed_layers") or [])
    can_remove = removable_convs(dense)
    layers: list[LayerChoice] = []
    c_in = int(dense["in_channels"])
    for s in conv_slots(dense):
        w = widths.get(s.name)
        if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= s.dense_out:
            return None
        gone = w == 0 or s.name in removed_names
        if gone and (s.index not in can_remove or c_in > s.dense_out):
            return None
        if not gone and w == 0:
            return None
        layers.append(LayerChoice(s.index, s.name, s.dense_out, 0 if gone else w, gone, 0.0))
        c_in = c_in if gone else w
    plan = Plan(layers, 0.0, 0.0, 0.0, can_remove)
    arch = plan.arch(dense)
    feats = architecture.get("features")
    if feats is not None and list(feats) != list(arch["features"]):
        return None
    if table is not None:
        costs = table.layer_costs(arch)
        plan.layers = [LayerChoice(c.index, c.name, c.dense, c.width, c.removed, float(k or 0.0))
                       for c, k in zip(layers, costs, strict=True)]
        plan.predicted_ms = table.predict(arch)
    return plan


def foreign_plans(headers: list[dict[str, Any]], this_machine: str, dense: Arch, point_name: str, backend: str,
                  own: Arch | None = None, table: LatencyTable | None = None,
                  limit: int = DEFAULT_LIMIT) -> list[ForeignPlan]:
    """The comparable choices of other machines in `headers` (stored run headers, newest first): see the module
    docstring. `own` (this machine's planned arch) is left out: that model is measured already."""
    key = dense_key(dense)
    seen_machines: set[str] = set()
    seen_archs = {json.dumps(own, sort_keys=True)} if own is not None else set()
    out: list[ForeignPlan] = []
    for h in headers:
        mid = machine_id(h)
        if mid == this_machine or mid in seen_machines:
            continue
        lat = (h.get("sweep") or {}).get("latency") if isinstance(h.get("sweep"), dict) else None
        point = ((lat or {}).get("points") or {}).get(point_name) if isinstance(lat, dict) else None
        if not isinstance(point, dict) or point.get("backend") != backend:
            continue
        theirs = run_dense_arch(h)
        if theirs is None or dense_key(theirs) != key:
            continue
        plan = reconstruct(point.get("architecture") or {}, dense, table)
        if plan is None:
            continue
        seen_machines.add(mid)
        digest = json.dumps(plan.arch(dense), sort_keys=True)
        if digest in seen_archs:
            continue
        seen_archs.add(digest)
        label, path = machine_label(h)
        if any(f.label == label for f in out):  # two machines' ids alike in their first letters: names stay apart
            label = f"{label}{len(out)}"
        out.append(ForeignPlan(str(h.get("run_id")), mid, label, hardware_summary(h.get("fingerprint")), path,
                               point, plan))
        if len(out) >= limit:
            break
    return out


def variant_name(own_name: str, precision: str, label: str) -> str:
    """l1-t0.50-int8 chosen for amx-3f9a1c -> l1-t0.50-for-amx-3f9a1c-int8 (the precision stays the last part,
    as every variant name's, so the int8 build finds its fp32 sibling by the usual suffix)."""
    return f"{own_name.removesuffix(f'-{precision}')}-for-{label}-{precision}"


def foreign_build(own: LatencyBuild, fp: ForeignPlan, dense: Arch) -> LatencyBuild:
    """The build of `fp` beside this machine's point `own`: the same request (target, backend, precision, table
    for the prediction), the other machine's plan, a name that says whose choice it is."""
    chosen_for = {"machine_id": fp.machine_id, "label": fp.label, "hardware": fp.hardware, "int8_path": fp.int8_path,
                  "run_id": fp.run_id, "target_ms": fp.point.get("target_ms"),
                  "predicted_ms": fp.point.get("predicted_ms"), "measured_p50_ms": fp.point.get("measured_p50_ms")}
    fields = {**{k: own.fields[k] for k in SHARED_FIELDS if k in own.fields}, "chosen_for": chosen_for,
              "algorithm": f"chosen on machine {fp.machine_id} ({fp.hardware}) from its own latency table; "
                           "cut from this machine's dense model"}
    return LatencyBuild(variant_name(own.name, own.precision, fp.label), own.precision, fp.plan, fp.plan.arch(dense),
                        own.target_ms, own.table, own.table_path, fields)

