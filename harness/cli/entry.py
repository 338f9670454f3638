"""`bench` entry point: argparse subcommands, one module each under harness.cli.

User errors (`UserError`) print one line `error: ...` on stderr and exit 2; a failed check
(`CheckFailed`, e.g. a regression) exits 1; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import signal
import sys
import threading
from types import ModuleType

from common.errors import CheckFailed, UserError

# One module per `bench` subcommand; each exposes `HELP`, `add_arguments(parser)` and `run(args) -> int`.
COMMANDS: tuple[str, ...] = (
    "data",
    "train",
    "compress",
    "run",
    "sweep",
    "backends",
    "report",
    "compare",
    "accept",
    "gate",
    "select",
    "history",
    "store",
    "worker",
    "import",
)
# Commands whose module name differs from the command (`import` is a Python keyword).
MODULE_OF: dict[str, str] = {"import": "import_onnx"}


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so the same cleanup runs (temp files removed, cell processes killed)."""


def _on_sigterm(_signum: int, _frame: object) -> None:
    raise _Terminated()


# A full or read-only disk is the machine's state, not a bug: one line naming the file, like bad input.
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as one `error: ...` line and exit code 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def _command_module(name: str) -> ModuleType:
    return importlib.import_module(f"harness.cli.{MODULE_OF.get(name, name)}")


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("fer-bench")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bench", description="Compress FER models (FPTQ) and benchmark them across runtimes.")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        mod = _command_module(name)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from common import console

    console.set_quiet(bool(getattr(args, "quiet", False)))
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        return _run(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    try:
        code = int(args._module.run(args))
    except UserError as e:
        sys.stderr.write(f"error: {e}\n")
        return UserError.exit_code
    except CheckFailed as e:
        sys.stderr.write(f"check failed: {e}\n")
        return CheckFailed.exit_code
    except KeyboardInterrupt as e:
        terminated = isinstance(e, _Terminated)
        sys.stderr.write("terminated\n" if terminated else "interrupted\n")
        return 143 if terminated else 130
    except OSError as e:
        if e.errno not in _DISK_ERRNOS:
            raise
        sys.stderr.write(f"error: cannot write {e.filename or 'a file'}: {e.strerror} (free space and retry)\n")
        return UserError.exit_code
    return code


if __name__ == "__main__":
    raise SystemExit(main())
