"""The CPU's int8 instruction path and the kernels OpenVINO really ran: one sentence per machine that ran rows.

The path comes from the machine's fingerprint (`isa`, or for runs recorded before it existed, the flags in
`fingerprint.cpu.flags`); the kernels from that machine's OpenVINO int8 rows' `describe.primitive_types`. A local
run has one machine, the run's own fingerprint. A cluster run's rows name the machine that measured them
(`machine_id`, `fingerprint_id`) and the run keeps each machine's fingerprint under `machines`: each machine gets
its own line, from its own fingerprint and its own rows, never the driver's (which timed nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.isa import int8_sentence, isa_features, kernel_isa, kernel_precision
from common.records import Fingerprint, Row, Run, as_run
from common.results import hardware_summary

# The features a reader needs to place a CPU's int8 path, as vendors name them (fma and amx_tile add nothing).
ISA_NAMES = {"avx2": "AVX2", "avx512f": "AVX-512", "avx_vnni": "AVX-VNNI", "avx512_vnni": "AVX-512 VNNI",
             "avx512_bf16": "AVX-512 BF16", "amx_int8": "AMX-INT8", "amx_bf16": "AMX-BF16"}


def cpu_features(fingerprint: Fingerprint | None) -> dict[str, bool]:
    """The ISA features of a run's fingerprint ({} where it recorded none)."""
    if fingerprint is None:
        return {}
    features = (fingerprint.isa or {}).get("features")
    if features:
        return dict(features)
    flags = fingerprint.cpu.get("flags") if isinstance(fingerprint.cpu, dict) else None  # free-form CPU block
    return isa_features(flags) if flags else {}


def isa_text(features: dict[str, bool]) -> str:
    """"AVX2, AVX-512, AVX-512 VNNI": the int8-relevant features present; says so when none were recorded."""
    if not features:
        return "not recorded"
    names = [name for key, name in ISA_NAMES.items() if features.get(key)]
    return ", ".join(names) or "none of AVX2/AVX-512/VNNI/AMX"


def openvino_int8_kernels(rows: list[Row]) -> dict[str, int]:
    """{primitiveType: layers} of the int8 convolutions OpenVINO ran, over the int8 rows (largest count first)."""
    seen: dict[str, int] = {}
    for r in rows:
        if r.backend != "openvino" or r.precision != "int8" or r.describe is None:
            continue
        for key, n in (r.describe.primitive_types or {}).items():
            layer, _, prim = str(key).partition(":")
            if layer == "Convolution" and kernel_precision(prim) in ("I8", "U8"):
                seen[prim] = max(seen.get(prim, 0), int(n))
    return dict(sorted(seen.items(), key=lambda kv: -kv[1]))


def path_sentence(fingerprint: Fingerprint | None, rows: list[Row]) -> str:
    """One machine's int8 path: what its CPU offers, and the OpenVINO kernels its int8 rows ran."""
    text = int8_sentence(cpu_features(fingerprint))
    kernels = openvino_int8_kernels(rows)
    if kernels:
        isas = sorted({kernel_isa(k) or "reference" for k in kernels})
        names = ", ".join(f"{k} ({n} layers)" for k, n in kernels.items())
        text += f" OpenVINO ran its int8 convolutions as {names}: {'/'.join(isas)} kernels."
    return text


@dataclass(frozen=True)
class MachinePath:
    """One machine of a cluster run: its hardware and ISA (from its fingerprint) and its int8 path."""

    machine_id: str
    target: str | None
    hardware: str
    isa: str
    path: str

    def hardware_line(self) -> str:
        """"Intel Xeon ... (8 cores); ISA AVX2, AVX-512, AVX-512 VNNI; target edge-a"."""
        return f"{self.hardware}; ISA {self.isa}" + (f"; target {self.target}" if self.target else "")

    def line(self) -> str:
        return f"{self.machine_id} ({self.hardware_line()}): {self.path}"


def _machine_fingerprint(run: Run, machine_id: str, rows: list[Row]) -> Fingerprint | None:
    """The fingerprint the run keeps for `machine_id`, if its rows name that fingerprint (or none at all)."""
    entry = (run.machines or {}).get(machine_id)
    raw = entry.get("fingerprint") if isinstance(entry, dict) else None  # `machines` is a free-form block
    if not isinstance(raw, dict):
        return None
    fp = Fingerprint.model_validate(raw, strict=False)
    named = {r.fingerprint_id for r in rows if r.fingerprint_id}
    return fp if not named or named == {fp.id} else None


def int8_paths_by_machine(run: Run | dict[str, Any]) -> list[MachinePath]:
    """One entry per machine that measured rows (a cluster run: rows name their `machine_id`), in the order the
    rows first name them; [] for a local run. A machine whose fingerprint the run lacks (or whose rows name a
    different one) reads as unknown hardware with an unknown path: nothing is borrowed from another machine."""
    r = as_run(run)
    by_machine: dict[str, list[Row]] = {}
    for row in r.results:
        if row.machine_id:
            by_machine.setdefault(row.machine_id, []).append(row)
    out = []
    for mid, rows in by_machine.items():
        fp = _machine_fingerprint(r, mid, rows)
        targets = sorted({row.target for row in rows if row.target})
        out.append(MachinePath(mid, ", ".join(targets) or None,
                               hardware_summary(fp.model_dump(exclude_unset=True) if fp is not None else None),
                               isa_text(cpu_features(fp)), path_sentence(fp, rows)))
    return out


def int8_path_text(run: Run | dict[str, Any]) -> str:
    """The CPU's int8 path: one sentence for a local run (the run's machine, its OpenVINO int8 kernels), one
    line per machine ("per machine:" then "  <id> (<hardware>; ISA ...): <sentence>") when the rows come from
    the machines of a cluster."""
    r = as_run(run)
    machines = int8_paths_by_machine(r)
    if machines:
        return "per machine:\n" + "\n".join(f"  {m.line()}" for m in machines)
    return path_sentence(r.fingerprint, r.results)
