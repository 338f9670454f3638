"""Per-layer latency tables: what each prunable conv of a VGG16-FER costs at each (input, output) width on one
machine, runtime, precision, thread count and batch, and what removing it saves.

A table holds, per conv layer of the dense `arch` (in order, named by its dense module name), the latency in ms
measured on a grid of input x output widths (multiples of the channel group, the smallest and the dense width
included); costs between grid points are interpolated bilinearly, because a conv's latency on these CPUs is close
to linear in each width between the kernel's blocking steps and the grid already sits on those steps. Removing a
layer costs 0 (the layer is gone): what it saves is its latency at the widths it would have run at, at least its
`floor_ms` (the smallest grid point, the per-layer floor that dominates on AMX Xeons). `rest_ms` is what the whole
model costs beyond its convs (pools, the classifier, the runtime's per-call overhead): a whole-model probe's
measured latency minus the sum of its convs' table costs, so `predict(arch)` is the sum of parts plus that.

Tables are cached as JSON (atomic write) under a file name derived from `key` (machine fingerprint, backend,
runtime version, precision, input shape, threads, batch, dense arch, group), so a table is measured once per
machine and setting. Measuring needs a runtime and lives in harness/measure/layer_latency.py.
"""

from __future__ import annotations

import hashlib
import json
import math
from bisect import bisect_right
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.atomic import write_json_atomic
from compression.storage import layer_infos
from fer.model import Arch

TABLE_FORMAT = "fer-bench/latency-table-v1"


@dataclass(frozen=True)
class ConvSlot:
    """One conv of the dense model: its position among the convs, dense module name, input size and widths."""

    index: int
    name: str
    size: int
    dense_in: int
    dense_out: int


def conv_slots(arch: Arch) -> list[ConvSlot]:
    """The convs of a dense (13-conv) `arch` in order (from the layer walk of `compression.storage`, which names,
    sizes and counts every layer; a conv keeps its input's size, so its output size is its input size)."""
    convs = [li for li in layer_infos(arch) if li.kind == "conv"]
    return [ConvSlot(i, li.name, int(li.out_size.split("x")[0]), li.in_channels, li.out_channels)
            for i, li in enumerate(convs)]


def candidate_widths(dense: int, group: int) -> list[int]:
    """Widths a layer may keep: multiples of `group` up to `dense`, and `dense` itself."""
    if group < 1:
        raise ValueError(f"group must be >= 1, got {group}")
    return sorted({*range(group, dense + 1, group), dense})


def grid_widths(dense: int, group: int, levels: int) -> list[int]:
    """Up to `levels` of the candidate widths, evenly spread, the smallest and the dense width included."""
    cands = candidate_widths(dense, group)
    if len(cands) <= levels:
        return cands
    picks = {cands[round(i * (len(cands) - 1) / (levels - 1))] for i in range(levels)}
    return sorted(picks)


@dataclass
class LayerCosts:
    """Measured latency of one conv slot over its grid: ms[i][j] at in_grid[i] inputs, out_grid[j] outputs."""

    slot: ConvSlot
    in_grid: list[int]
    out_grid: list[int]
    ms: list[list[float]]

    @property
    def floor_ms(self) -> float:
        """The layer's least measured latency over its grid: the least that removing it saves."""
        return min(min(row) for row in self.ms)

    def cost(self, c_in: int, c_out: int) -> float:
        """Bilinear interpolation on the grid (held at the edges: no extrapolation beyond measured widths)."""
        i0, i1, ti = _bracket(self.in_grid, c_in)
        j0, j1, tj = _bracket(self.out_grid, c_out)
        a = self.ms[i0][j0] * (1 - tj) + self.ms[i0][j1] * tj
        b = self.ms[i1][j0] * (1 - tj) + self.ms[i1][j1] * tj
        return a * (1 - ti) + b * ti


def _bracket(grid: list[int], x: float) -> tuple[int, int, float]:
    if x <= grid[0]:
        return 0, 0, 0.0
    if x >= grid[-1]:
        return len(grid) - 1, len(grid) - 1, 0.0
    k = bisect_right(grid, x) - 1
    return k, k + 1, (x - grid[k]) / (grid[k + 1] - grid[k])


@dataclass
class LatencyTable:
    key: dict[str, Any]
    layers: list[LayerCosts]
    rest_ms: float = 0.0
    probes: dict[str, Any] = field(default_factory=dict)  # whole-model probes: {name: {arch, measured, parts}}

    def layer_costs(self, arch: Arch) -> list[float | None]:
        """Per dense conv slot, its table cost in `arch` (None where `arch` removed it)."""
        removed = set(int(r) for r in arch.get("removed") or [])
        widths = [int(f) for f in arch["features"] if f != "M"]
        it = iter(widths)
        out: list[float | None] = []
        c_in = int(arch["in_channels"])
        for lc in self.layers:
            if lc.slot.index in removed:
                out.append(None)
                continue
            c_out = next(it)
            out.append(lc.cost(c_in, c_out))
            c_in = c_out
        return out

    def parts_ms(self, arch: Arch) -> float:
        return sum(c for c in self.layer_costs(arch) if c is not None)

    def predict(self, arch: Arch) -> float:
        """Predicted whole-model latency of `arch`: its convs' table costs plus `rest_ms`."""
        return self.parts_ms(arch) + self.rest_ms

    def to_json(self) -> dict[str, Any]:
        return {"format": TABLE_FORMAT, "key": self.key, "rest_ms": self.rest_ms, "probes": self.probes,
                "layers": [{"slot": asdict(lc.slot), "in_grid": lc.in_grid, "out_grid": lc.out_grid, "ms": lc.ms}
                           for lc in self.layers]}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> LatencyTable:
        if obj.get("format") != TABLE_FORMAT:
            raise ValueError(f"not a latency table (format {obj.get('format')!r}, expected {TABLE_FORMAT})")
        layers = [LayerCosts(ConvSlot(**d["slot"]), [int(x) for x in d["in_grid"]], [int(x) for x in d["out_grid"]],
                             [[float(v) for v in row] for row in d["ms"]]) for d in obj["layers"]]
        return cls(dict(obj["key"]), layers, float(obj["rest_ms"]), dict(obj.get("probes") or {}))


def key_digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def table_path(cache_dir: Path, key: dict[str, Any]) -> Path:
    """Where the table of `key` is cached: <cache>/latency/<backend>-<precision>-<digest of key>.json."""
    return Path(cache_dir) / "latency" / f"{key.get('backend')}-{key.get('precision')}-{key_digest(key)}.json"


def save_table(path: Path, table: LatencyTable) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, table.to_json(), indent=1)


def load_table(path: Path, key: dict[str, Any]) -> LatencyTable | None:
    """The cached table at `path` when it is readable and measured under exactly `key`, else None."""
    try:
        table = LatencyTable.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return table if table.key == key else None


def median_abs_pct_error(pairs: list[tuple[float, float]]) -> float | None:
    """Median of |predicted - measured| / measured over (predicted, measured) pairs, in percent."""
    errs = sorted(abs(p - m) / m * 100.0 for p, m in pairs if m > 0 and math.isfinite(p))
    if not errs:
        return None
    n = len(errs)
    return errs[n // 2] if n % 2 else (errs[n // 2 - 1] + errs[n // 2]) / 2


def render(table: LatencyTable) -> str:
    """The table as text: per layer, its grid of ms (rows: input widths, columns: output widths) and its floor."""
    k = table.key
    lines = [f"latency table: {k.get('backend')} {k.get('runtime')} on {k.get('machine')}, {k.get('precision')}, "
             f"batch {k.get('batch')}, {k.get('threads')} thread(s), input {k.get('input_shape')}; "
             f"rest (pools, classifier, per-call overhead) {table.rest_ms:.3f} ms"]
    for lc in table.layers:
        s = lc.slot
        lines.append(f"{s.name} (conv {s.index}, {s.size}x{s.size}, dense {s.dense_in}->{s.dense_out}): "
                     f"floor {lc.floor_ms * 1000:.1f} us = what removing it saves at least")
        lines.append("    in\\out " + " ".join(f"{w:>8d}" for w in lc.out_grid))
        for ci, row in zip(lc.in_grid, lc.ms, strict=True):
            lines.append(f"    {ci:>6d} " + " ".join(f"{v * 1000:>6.1f}us" for v in row))
    for name, p in table.probes.items():
        lines.append(f"probe {name}: measured {p['measured_ms']:.3f} ms, sum of parts {p['parts_ms']:.3f} ms")
    return "\n".join(lines)
