"""Write a file so that readers see the old content or the new, never half of it: temp file + rename."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temp file next to `path` (mode 0644), then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None:  # a write into an fd names no file: name the target
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """UTF-8 text via `write_bytes_atomic`."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj: Any, indent: int | None = None) -> None:
    """JSON (non-JSON values as str) via `write_bytes_atomic`."""
    write_text_atomic(path, json.dumps(obj, indent=indent, default=str))
