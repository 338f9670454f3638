"""Fixtures of the reliability suite; the tools behind them are in relkit.py (a unique module name, so the
test modules can import it next to the other suites' conftest.py files)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from relkit import REFUSED, check_refused, run_cli, write_tiny_artifact


@pytest.fixture
def refuse(capsys: pytest.CaptureFixture[str], tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """refuse(argv, contains=...) runs `bench argv` from an empty folder and checks it is refused."""
    monkeypatch.chdir(tmp_path)  # no ./bench.toml picked up; runs/ and caches land in tmp_path

    def _refuse(argv: list[str], contains: str | tuple[str, ...] = ()) -> str:
        code, _out, err = run_cli(argv, capsys)
        return check_refused(code, err, contains=contains, what=" ".join(argv))

    return _refuse


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REFUSED:
        api = sum(r.startswith("api: ") for r in REFUSED)
        terminalreporter.write_line(
            f"reliability: {len(REFUSED)} bad inputs refused ({len(REFUSED) - api} through the CLI with one `error:` "
            f"line and exit 2, {api} as a one-line UserError from the loader), no traceback")


@pytest.fixture(scope="session")
def tiny_artifact_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_artifact(tmp_path_factory.mktemp("artifact") / "dense-fp32")


@pytest.fixture
def tiny_artifact(tiny_artifact_template: Path, tmp_path: Path) -> Path:
    """A fresh copy per test, free to corrupt."""
    dst = tmp_path / "art" / "dense-fp32"
    shutil.copytree(tiny_artifact_template, dst)
    return dst
