"""One module per `bench` subcommand. Each exposes `NAME`, `HELP`, `add_arguments(parser)` and
`run(args) -> int` (exit code). `harness.cli` discovers them through `COMMANDS` below."""

from __future__ import annotations

COMMANDS: tuple[str, ...] = (
    "data",
    "train",
    "compress",
    "run",
    "sweep",
    "backends",
    "report",
    "compare",
    "select",
    "history",
    "store",
    "worker",
    "import",
)
# Commands whose module name differs from the command (`import` is a Python keyword).
MODULE_OF: dict[str, str] = {"import": "import_onnx"}
