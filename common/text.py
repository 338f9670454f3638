"""Small text and number helpers every layer uses (error lines for one-line messages, tolerant numbers)."""

from __future__ import annotations

import math
from typing import Any


def first_line(e: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type name if empty), cut to `limit` characters."""
    text = str(e).strip()
    return (text.splitlines() or [type(e).__name__])[0][:limit]


def finite_number(v: Any) -> float | None:
    """`v` as a finite float, or None (bools, None, NaN, inf and non-numbers are 'no number')."""
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
