"""Sweep points: one compressed model per (method, scope, sparsity, precision), named for what it is.

A point's name carries every coordinate, so a results row, a cache directory and a figure label all say
which model they are: `l1-s0.70-int8` is L1 filter pruning at sparsity 0.70 with per-layer (local) scope,
quantized to int8; `l1-g0.70-int8` is the same with one global ranking across layers; `l1-m16-int8` is pruned
with one global ranking (per-layer cap compress.max_layer_sparsity) until it has 16x fewer MACs than dense.
The default variants (`l1-int8`, ...) keep their short names; they are the points of `compress.sparsity` /
`compress.scope`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from common.config import PRUNING_METHODS, Config
from common.errors import UserError

SCOPES: dict[str, str] = {"local": "s", "global": "g"}  # scope -> the letter before the sparsity in a name
PRECISIONS = ("fp32", "int8")
MAX_SPARSITY = 0.95  # compress.sparsity's own limit: beyond it a 48x48 VGG16 keeps too few filters to train
MACS_SCOPE = "global"  # a MAC-target point ranks filters across layers (a per-layer target is just a sparsity)
MAX_MACS_REDUCTION = 1000.0  # compress.macs_reduction's limit
MAC_METHODS = frozenset({"l1"})  # criteria cheap enough to re-rank at each of the many small steps to a MAC target


@dataclass(frozen=True, order=True)
class SweepPoint:
    method: str
    scope: str
    sparsity: float
    precision: str
    macs_reduction: float = 0.0  # > 1: the point is named and pruned by this MAC target, not by sparsity

    @property
    def name(self) -> str:
        if self.macs_reduction > 0:
            return macs_point_name(self.method, self.macs_reduction, self.precision)
        return point_name(self.method, self.scope, self.sparsity, self.precision)

    def with_precision(self, precision: str) -> SweepPoint:
        return dataclasses.replace(self, precision=precision)

    def config(self, cfg: Config) -> Config:
        """`cfg` with compress.methods/scope/sparsity/macs_reduction set to this point's (so its cache key covers
        them)."""
        c = dataclasses.replace(cfg.compress, methods=[self.method], scope=self.scope, sparsity=self.sparsity,
                                macs_reduction=self.macs_reduction)
        return dataclasses.replace(cfg, compress=c)

    def fields(self) -> dict[str, object]:
        """The point's coordinates as stored in manifests and results (`variant` is its name); a MAC-target
        point has `macs_reduction` and no sparsity (its per-layer sparsities follow from the ranking)."""
        if self.macs_reduction > 0:
            return {"variant": self.name, "method": self.method, "scope": self.scope, "sparsity": None,
                    "precision": self.precision, "macs_reduction": self.macs_reduction}
        return {"variant": self.name, "method": self.method, "scope": self.scope, "sparsity": self.sparsity,
                "precision": self.precision}


def macs_point(method: str, reduction: float, precision: str) -> SweepPoint:
    """The point pruned (global scope) to `reduction` x fewer MACs than dense."""
    return SweepPoint(method, MACS_SCOPE, 0.0, precision, float(reduction))


def sparsity_text(s: float) -> str:
    """0.7 -> '0.70'; more digits only when two would merge distinct sparsities (0.725 -> '0.725')."""
    two = f"{s:.2f}"
    return two if abs(float(two) - s) < 1e-9 else f"{s:g}"


def point_name(method: str, scope: str, sparsity: float, precision: str) -> str:
    """'<method>-<s|g><sparsity>-<precision>', e.g. l1-s0.50-int8 (local) or l1-g0.50-int8 (global)."""
    return f"{method}-{SCOPES[scope]}{sparsity_text(sparsity)}-{precision}"



def reduction_text(r: float) -> str:
    """16.0 -> '16'; 12.5 -> '12.5'."""
    return f"{r:g}"


def macs_point_name(method: str, reduction: float, precision: str) -> str:
    """'<method>-m<R>-<precision>', e.g. l1-m16-int8: global ranking until 16x fewer MACs than dense."""
    return f"{method}-m{reduction_text(reduction)}-{precision}"


_NAME = re.compile(r"^(?P<method>[a-z0-9]+)-(?:(?P<scope>[sg])(?P<sparsity>\d*\.?\d+)|m(?P<macs>\d*\.?\d+))-"
                   r"(?P<precision>[a-z0-9]+)$")


def parse_point_name(name: str) -> SweepPoint:
    """The point a name like l1-s0.50-int8, l1-g0.70-fp32 or l1-m16-int8 stands for; UserError (one line)
    otherwise. parse_point_name(p.name) == p for every valid point."""
    m = _NAME.match(name)
    if m is None or m["method"] not in PRUNING_METHODS or m["precision"] not in PRECISIONS:
        raise UserError(f"{name!r} is not a sweep point name; expected <method>-s<sparsity>-<precision> (per-layer), "
                        f"<method>-g<sparsity>-<precision> (global) or <method>-m<MAC reduction>-<precision>, e.g. "
                        f"l1-s0.50-int8, l1-m16-int8 (methods: {', '.join(PRUNING_METHODS)}; precisions: "
                        f"{', '.join(PRECISIONS)})")
    if m["macs"] is not None:
        r = float(m["macs"])
        if not 1.0 < r <= MAX_MACS_REDUCTION:
            raise UserError(f"{name!r}: the MAC reduction must lie in (1, {MAX_MACS_REDUCTION:g}]")
        return macs_point(m["method"], r, m["precision"])
    s = float(m["sparsity"])
    if not 0.0 < s <= MAX_SPARSITY:
        raise UserError(f"{name!r}: the sparsity must lie in (0, {MAX_SPARSITY}]")
    scope = next(k for k, v in SCOPES.items() if v == m["scope"])
    return SweepPoint(m["method"], scope, s, m["precision"])
