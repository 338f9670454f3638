"""The Makefile's documented sweeps are valid commands: their flags parse, their --set keys and values are accepted
and their points are reachable, so `make sweep` / `make sweep-full` cannot fail on a typo after an hour of training
(nothing is trained here: the checks `bench sweep` runs before any work)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from harness.cli._common import load_config_from_args
from harness.cli.entry import build_parser
from harness.orchestrate.sweep import check_reachable, parse_grid

MAKEFILE = Path(__file__).resolve().parents[2] / "Makefile"


def _recipe(target: str) -> list[str]:
    """The `bench ...` arguments of a Makefile target (its recipe lines joined at the backslashes)."""
    lines = MAKEFILE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    body = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        body.append(line.strip().rstrip("\\"))
    words = shlex.split(" ".join(body))
    return words[words.index("$(BIN)/bench") + 1:]


@pytest.mark.parametrize("target", ["sweep", "sweep-full"])
def test_documented_sweeps_pass_the_checks_made_before_any_work(target: str) -> None:
    argv = _recipe(target)
    assert argv[0] == "sweep" and "--set" in argv
    args = build_parser().parse_args(argv)
    points = parse_grid(args.sparsity, args.method, args.precision, args.scope, args.macs_reduction)
    cfg = load_config_from_args(args)
    check_reachable(cfg, points)
    assert points and all(p.precision == "int8" for p in points)
    assert cfg.compress.last_step_share == 0.5 and cfg.compress.kd_weight == 1.0 and cfg.compress.budget_minutes == 0
    # the default sweep is the full recipe at three-quarter width (the width its measured figures are for)
    assert cfg.model.width == {"sweep": 0.75, "sweep-full": 1.0}[target]
    assert any(p.name == "l1-s0.50-int8" for p in points)  # the paper's point, the speedups' reference
    if target == "sweep":  # the hardware-aware point, planned on a backend that has latency tables
        from harness.orchestrate.latency_sweep import parse_latency

        req = parse_latency(args.latency_target, args.latency_ms, list(args.backend or cfg.benchmark.backends),
                            args.latency_group)
        assert req is not None and req.fraction == 0.5 and req.backend in ("openvino", "onnxruntime")


def test_a_misspelt_key_in_a_recipe_would_fail_the_check() -> None:
    from common.errors import UserError

    args = build_parser().parse_args([*_recipe("sweep-full"), "--set", "compress.last_step_shares=0.5"])
    with pytest.raises(UserError, match="last_step_shares"):
        load_config_from_args(args)
