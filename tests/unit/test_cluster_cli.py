"""Without Ray, `bench run --cluster` / `bench worker` say in one line which extra installs it (exit 2); flag
combinations that cannot work are refused before any work."""

from __future__ import annotations

import subprocess
import sys

import pytest

import harness.cli.entry as cli

NO_RAY = "import sys; sys.modules['ray'] = None; from harness.cli import main; raise SystemExit(main({argv!r}))"


@pytest.mark.parametrize("argv", [
    ["run", "--cluster", "127.0.0.1:6379", "--target", "edge-a"],
    ["worker", "start", "--address", "127.0.0.1:6379", "--target", "edge-a"],
])
def test_without_ray_one_line_names_the_extra(argv: list[str]) -> None:
    p = subprocess.run([sys.executable, "-c", NO_RAY.format(argv=argv)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "[cluster]" in lines[0] and "Ray" in lines[0], p.stderr


def test_target_without_cluster_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--target", "edge-a"]) == 2
    assert "--target needs --cluster" in capsys.readouterr().err
