"""Sweep points: one compressed model per (method, scope, sparsity, precision), named for what it is.

A point's name carries every coordinate, so a results row, a cache directory and a figure label all say
which model they are: `l1-s0.70-int8` is L1 filter pruning at sparsity 0.70 with per-layer (local) scope,
quantized to int8; `l1-g0.70-int8` is the same with one global ranking across layers. The default variants
(`l1-int8`, ...) keep their short names; they are the points of `compress.sparsity` / `compress.scope`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from common.config import Config

SCOPES: dict[str, str] = {"local": "s", "global": "g"}  # scope -> the letter before the sparsity in a name
PRECISIONS = ("fp32", "int8")
MAX_SPARSITY = 0.95  # compress.sparsity's own limit: beyond it a 48x48 VGG16 keeps too few filters to train


@dataclass(frozen=True, order=True)
class SweepPoint:
    method: str
    scope: str
    sparsity: float
    precision: str

    @property
    def name(self) -> str:
        return point_name(self.method, self.scope, self.sparsity, self.precision)

    def with_precision(self, precision: str) -> SweepPoint:
        return dataclasses.replace(self, precision=precision)

    def config(self, cfg: Config) -> Config:
        """`cfg` with compress.methods/scope/sparsity set to this point's (so its cache key covers them)."""
        c = dataclasses.replace(cfg.compress, methods=[self.method], scope=self.scope, sparsity=self.sparsity)
        return dataclasses.replace(cfg, compress=c)

    def fields(self) -> dict[str, object]:
        """The point's coordinates as stored in manifests and results (`variant` is its name)."""
        return {"variant": self.name, "method": self.method, "scope": self.scope, "sparsity": self.sparsity,
                "precision": self.precision}


def sparsity_text(s: float) -> str:
    """0.7 -> '0.70'; more digits only when two would merge distinct sparsities (0.725 -> '0.725')."""
    two = f"{s:.2f}"
    return two if abs(float(two) - s) < 1e-9 else f"{s:g}"


def point_name(method: str, scope: str, sparsity: float, precision: str) -> str:
    """'<method>-<s|g><sparsity>-<precision>', e.g. l1-s0.50-int8 (local) or l1-g0.50-int8 (global)."""
    return f"{method}-{SCOPES[scope]}{sparsity_text(sparsity)}-{precision}"

