"""The reference arm: other files (or the same files under other settings) measured beside the candidate.

On a shared 2-vCPU machine a slow phase of the host lasts tens of seconds and hits consecutive processes, and the
per-process latency of one file lands in a few modes whose mix changes from run to run, so a candidate measured
today against a baseline stored yesterday compares two machine states as much as two builds. Measuring a reference
in the same rounds, each reference process back to back with its candidate process in a balanced order (ABBA:
candidate first in even rounds, reference first in odd rounds), lets both arms share each slow phase; that is what
asv's `continuous` (interleaved rounds), Chromium's Pinpoint (A and B on one bot) and its perf bots (a reference
build beside each build) do. `harness.orchestrate.runner.run_grid` runs the pairs; this module says what the
reference arm is: an artifact directory for every variant, a directory of them named by variant, the accepted
files of each cell (kept by `bench accept`, `kept_artifacts`), or the candidate's own files under other settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.artifact import MANIFEST, load_artifact
from common.config import parse_override
from common.errors import UserError
from harness.measure.settings import CellSettings
from harness.orchestrate.kept_artifacts import kept_dir, read_index

KINDS = ("dir", "accepted", "settings")
INTERLEAVE = ("blocks", "processes")
# Settings a reference arm may change: what one process does, never what makes the arms' rows pairs (rounds,
# batch sizes, durations, the variants and backends of the grid).
SETTABLE = ("benchmark.threads", "benchmark.cpus", "benchmark.warmup_s", "benchmark.cell_memory_mb", "backends.")
ACCEPT_HINT = ('accept a run first: `bench accept RUN --reason "..."` keeps the run\'s artifact files for '
               "later reference runs")


@dataclass(frozen=True)
class ReferenceArm:
    """What the reference processes of each cell measure, and how."""

    kind: str  # one of KINDS
    path: str | None  # the REF directory (dir), the kept-artifacts directory (accepted); None for settings
    settings: dict[str, Any] | None  # --reference-set overrides ({"benchmark.threads": 1}), None when none
    cell: CellSettings  # how one reference process measures (the candidate's settings plus the overrides)
    threads: int  # benchmark.threads of the reference arm (OMP/MKL threads of its processes)
    artifacts: dict[tuple[str, str], Path] = field(default_factory=dict)  # (backend, variant) -> directory
    # "blocks": both arms in one process, timed in alternating blocks (the default for other files: the arms then
    # share the process's latency mode); "processes": each arm in its own process, back to back in ABBA order
    # (needed when the arms' settings differ per process, --reference-set)
    interleave: str = "processes"

    def artifact(self, backend: str, variant: str, candidate: Path) -> Path:
        """The reference files of a cell (the candidate's own files for a settings-only reference)."""
        return self.artifacts.get((backend, variant), candidate)

    def record(self) -> dict[str, Any]:
        """`results["reference"]`: kind, path and settings, as `bench compare --paired` reads them."""
        return {"kind": self.kind, "path": self.path, "settings": self.settings, "interleave": self.interleave}


def parse_reference_sets(items: Iterable[str]) -> dict[str, Any]:
    """`--reference-set KEY=VALUE` items -> {key: value}; one error line for a key a reference may not change."""
    out: dict[str, Any] = {}
    for item in items:
        parts, value = parse_override(item)
        key = ".".join(parts)
        if not any(key == s or (s.endswith(".") and key.startswith(s)) for s in SETTABLE):
            allowed = ", ".join(s + "<name>.<setting>" if s.endswith(".") else s for s in SETTABLE)
            raise UserError(f"--reference-set {item!r}: a reference arm may change only {allowed} (the rounds, "
                            "durations and batch sizes stay the candidate's so every process has a partner)")
        out[key] = value
    return out


def dir_artifacts(ref: Path, backends: list[str], variants: list[str]) -> dict[tuple[str, str], Path]:
    """`--reference DIR`: one artifact directory for every variant, or a directory of them named by variant."""
    if not ref.is_dir():
        raise UserError(f"--reference {ref}: no such directory; give an artifact directory, a directory of "
                        "artifact directories named by variant (REF/<variant>), or 'accepted'")
    if (ref / MANIFEST).is_file():
        load_artifact(ref)  # verified before anything runs
        return {(b, v): ref.resolve() for b in backends for v in variants}
    out: dict[tuple[str, str], Path] = {}
    missing: list[str] = []
    for v in variants:
        d = next((ref / n for n in (v, v.split("@", 1)[0]) if (ref / n / MANIFEST).is_file()), None)
        if d is None:
            missing.append(v)
            continue
        load_artifact(d)
        out.update({(b, v): d.resolve() for b in backends})
    if missing:
        held = sorted(p.name for p in ref.iterdir() if (p / MANIFEST).is_file())
        raise UserError(f"--reference {ref}: no artifact for variant(s) {', '.join(missing)} (REF/<variant>/"
                        f"{MANIFEST}); it holds {', '.join(held) or 'no artifact directories'}")
    return out


def _covers(a: dict[str, Any], backend: str, variant: str) -> bool:
    return a.get("backend") in (None, backend) and a.get("variant") in (None, variant)


def accepted_artifacts(acceptances: list[dict[str, Any]], kept_root: Path, store_url: str, backends: list[str],
                       variants: list[str]) -> dict[tuple[str, str], Path]:
    """`--reference accepted`: for each cell, the files kept by the newest acceptance that covers it
    (`acceptances` oldest first, as the results store lists them)."""
    out: dict[tuple[str, str], Path] = {}
    for b in backends:
        for v in variants:
            a = next((x for x in reversed(acceptances) if _covers(x, b, v)), None)
            if a is None:
                raise UserError(f"--reference accepted: no accepted run covers {b}/{v} in {store_url}; {ACCEPT_HINT}")
            index = read_index(kept_root, str(a["run_id"]))
            digest = (index.get(v) or index.get(v.split("@", 1)[0]) or {}).get("sha256")
            where = f"the newest acceptance covering {b}/{v} (run {a['run_id']}, {a.get('created')})"
            if not digest:
                raise UserError(f"--reference accepted: {where} kept no files for variant {v} under {kept_root} "
                                f"(kept: {', '.join(sorted(index)) or 'none'}); {ACCEPT_HINT}")
            d = kept_dir(kept_root, str(digest))
            if not (d / MANIFEST).is_file():
                raise UserError(f"--reference accepted: {where} kept {v} as {d}, which is gone; {ACCEPT_HINT}")
            load_artifact(d)
            out[(b, v)] = d
    return out
