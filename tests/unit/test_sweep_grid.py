"""Sweep grid: point names, order, cache keys, and one-line exit-2 errors for bad flags."""

from __future__ import annotations

import pytest

from common.config import load_config
from common.errors import UserError
from compression.points import SweepPoint, point_name
from harness.cli import main
from harness.orchestrate.sweep import Eta, parse_grid


def test_point_names_say_method_scope_sparsity_and_precision() -> None:
    assert point_name("l1", "local", 0.7, "int8") == "l1-s0.70-int8"
    assert point_name("l1", "global", 0.7, "int8") == "l1-g0.70-int8"
    assert point_name("cdcp", "local", 0.3, "fp32") == "cdcp-s0.30-fp32"
    assert point_name("l1", "local", 0.725, "fp32") == "l1-s0.725-fp32"  # never merged with 0.72 / 0.73


def test_grid_is_the_product_with_fp32_before_int8() -> None:
    pts = parse_grid("0.5, 0.3,0.5", "l1,cdcp", "int8,fp32", "local,global")
    assert len(pts) == 2 * 2 * 2 * 2  # duplicate 0.5 dropped
    assert [p.name for p in pts[:4]] == ["l1-s0.50-fp32", "l1-s0.50-int8", "l1-s0.30-fp32", "l1-s0.30-int8"]
    assert pts[-1] == SweepPoint("cdcp", "global", 0.3, "int8")


def test_each_point_has_its_own_cache_key() -> None:
    cfg = load_config(None)
    keys = {p.config(cfg).section_hash("data", "model", "train", "compress")
            for p in parse_grid("0.3,0.5", "l1,cdcp", "fp32", "local,global")}
    assert len(keys) == 8
    c = SweepPoint("cdcp", "global", 0.3, "int8").config(cfg).compress
    assert (c.methods, c.scope, c.sparsity) == (["cdcp"], "global", 0.3)


@pytest.mark.parametrize(("args", "message"), [
    (["--sparsity", ""], "--sparsity '': empty"),
    (["--sparsity", " , "], "--sparsity ' , ': empty"),
    (["--sparsity", "0"], "--sparsity 0: must lie in (0, 1)"),
    (["--sparsity", "1.0"], "--sparsity 1.0: must lie in (0, 1)"),
    (["--sparsity", "-0.2"], "--sparsity -0.2: must lie in (0, 1)"),
    (["--sparsity", "0.97"], "--sparsity 0.97: at most 0.95"),
    (["--sparsity", "half"], "--sparsity 'half': not a number"),
    (["--method", "magic"], "--method 'magic': unknown; valid: l1, cdcp, sfpga, drcp, tgpp"),
    (["--method", "dense"], "--method 'dense': unknown"),
    (["--scope", "regional"], "--scope 'regional': unknown; valid: local, global"),
    (["--precision", "fp16"], "--precision 'fp16': unknown; valid: fp32, int8"),
    (["--precision", ""], "--precision '': empty"),
    (["--tolerance", "-1"], "--tolerance -1: must be between 0 and 100"),
    (["--backend", "tpu"], "unknown backend 'tpu'"),
])
def test_bad_flags_exit_2_with_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str],
                                        tmp_path: object) -> None:
    code = main(["sweep", *args, "--set", f"store.cache_dir={tmp_path}/cache"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


def test_parse_grid_raises_user_error_not_assert() -> None:
    with pytest.raises(UserError, match="--scope"):
        parse_grid("0.5", "l1", "int8", "")


def test_eta_is_the_mean_build_time_times_what_is_left() -> None:
    eta = Eta()
    assert eta.text(3) == "ETA unknown (3 to go)"
    eta.add(30.0)
    eta.add(50.0)
    assert eta.text(3) == "ETA 2.0 min (3 to go)"
    assert eta.text(1) == "ETA 40 s (1 to go)"
    assert eta.text(0) == "done"


def test_mac_target_points_are_named_by_their_reduction_and_rank_globally() -> None:
    from compression.points import macs_point, parse_point_name

    pts = parse_grid(None, "l1", "fp32,int8", "local", "16, 8,16,12.5")
    assert [p.name for p in pts] == ["l1-m16-fp32", "l1-m16-int8", "l1-m8-fp32", "l1-m8-int8", "l1-m12.5-fp32",
                                     "l1-m12.5-int8"]
    assert all(p.scope == "global" and p.macs_reduction > 1 for p in pts)
    both = parse_grid("0.5", "l1", "int8", "local", "16")
    assert [p.name for p in both] == ["l1-s0.50-int8", "l1-m16-int8"]
    c = macs_point("l1", 16, "int8").config(load_config(None)).compress
    assert (c.macs_reduction, c.scope, c.methods) == (16.0, "global", ["l1"])
    assert macs_point("l1", 16, "int8").fields() == {"variant": "l1-m16-int8", "method": "l1", "scope": "global",
                                                      "sparsity": None, "precision": "int8", "macs_reduction": 16.0}
    for p in [*pts, *parse_grid("0.3,0.725", "l1,cdcp", "int8", "local,global")]:
        assert parse_point_name(p.name) == p  # names round-trip
    with pytest.raises(UserError, match="not a sweep point name"):
        parse_point_name("l1-x16-int8")
    with pytest.raises(UserError, match=r"MAC reduction must lie in \(1, 1000\]"):
        parse_point_name("l1-m1-int8")


@pytest.mark.parametrize(("args", "message"), [
    (["--macs-reduction", "1"], "--macs-reduction 1: must lie in (1, 1000]"),
    (["--macs-reduction", "x"], "--macs-reduction 'x': not a number"),
    (["--macs-reduction", ""], "--macs-reduction '': empty"),
    (["--macs-reduction", "16", "--method", "cdcp"], "method 'cdcp' cannot prune to a MAC target"),
])
def test_bad_macs_reduction_exits_2_with_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str],
                                                  tmp_path: object) -> None:
    code = main(["sweep", *args, "--set", f"store.cache_dir={tmp_path}/cache"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_recipe_keys_are_in_the_cache_key_but_the_budget_is_not() -> None:
    base = load_config(None).section_hash("compress")
    for key in ("compress.kd_weight=0.5", "compress.kd_temperature=2", "compress.macs_reduction=16",
                "compress.max_layer_sparsity=0.8", "compress.round_to=4", "compress.finetune_schedule=train",
                "compress.scale_epochs=false", "compress.finetune_lr_floor=0.1", "compress.last_step_share=0.5"):
        assert load_config(None, [key]).section_hash("compress") != base, key
    assert load_config(None, ["compress.budget_minutes=30"]).section_hash("compress") == base


def test_a_knob_added_later_leaves_built_artifacts_reusable_at_its_default() -> None:
    # last_step_share came after artifacts were built: at its default (the old even split) it is not hashed, so
    # their cache keys are what they were; set, it is hashed like any recipe key
    default = load_config(None).hashed_fields("compress")["compress"]
    assert "last_step_share" not in default and "kd_weight" in default
    assert load_config(None, ["compress.last_step_share=0.0"]).section_hash("compress") == \
        load_config(None).section_hash("compress")
    assert load_config(None, ["compress.last_step_share=0.5"]).hashed_fields("compress")["compress"][
        "last_step_share"] == 0.5
