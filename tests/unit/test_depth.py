"""Layer removal keeps the artifact contract: the arch records the new depth, old 13-conv archs still load, the
cut model runs, exports and its layer table says which convs went."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from compression import export
from compression.allocate import LayerChoice, Plan
from compression.depth import apply_plan, remove_convs
from compression.fold import folded_layers
from compression.layers import layer_rows
from fer.model import arch_of, build_model, default_arch


def _plan(widths: list[int], removed: set[int]) -> Plan:
    return Plan([LayerChoice(i, f"c{i}", 0, 0 if i in removed else w, i in removed, 0.0)
                 for i, w in enumerate(widths)], 0.0, 0.0, 0.0)


def test_an_arch_without_removed_is_the_13_conv_vgg16_and_removed_must_match_the_depth() -> None:
    dense = default_arch(width=0.125)
    assert "removed" not in arch_of(build_model(dense))
    feats = [f for f in dense["features"]]
    del feats[1]  # conv 1
    with pytest.raises(ValueError, match="13 conv layers"):
        build_model({**dense, "features": feats})
    assert arch_of(build_model({**dense, "features": feats, "removed": [1]}))["removed"] == [1]
    stage = [f for i, f in enumerate(dense["features"]) if i not in (0, 1)]  # stage 1 without its convs
    with pytest.raises(ValueError, match="every stage"):
        build_model({**dense, "features": stage, "removed": [1, 2]})
    with pytest.raises(ValueError, match="removed must list"):
        build_model({**dense, "features": feats, "removed": [0]})  # conv 0 reads the image: never removed


def test_a_removed_conv_needs_as_many_outputs_as_inputs() -> None:
    model = build_model(default_arch(width=0.125)).eval()  # conv 2: 8 -> 16 channels
    with pytest.raises(ValueError, match="as many outputs as inputs"):
        remove_convs(model, [2])


def test_apply_plan_cuts_widths_and_layers_and_the_model_exports_with_its_depth() -> None:
    torch.manual_seed(0)
    dense = build_model(default_arch(width=0.125)).eval()  # 8,8 M 16,16 M 32,32,32 M 64x3 M 64x3 M
    widths = [8, 8, 8, 8, 16, 16, 16, 32, 32, 32, 32, 32, 32]
    plan = _plan(widths, {3, 6, 11})  # conv 3 keeps conv 2's 8, conv 6 conv 5's 16, conv 11 conv 10's 32
    model = apply_plan(dense, plan)
    arch = arch_of(model)
    assert arch["removed"] == [3, 6, 11] and sum(1 for f in arch["features"] if f != "M") == 10
    assert [f for f in arch["features"] if f != "M"] == [8, 8, 8, 16, 16, 32, 32, 32, 32, 32]
    x = torch.rand(2, 1, 48, 48)
    assert model(x).shape == (2, 7)
    rebuilt = build_model(arch)  # model.pt's contract: arch + state_dict rebuild the model
    rebuilt.load_state_dict(model.state_dict())
    assert torch.equal(rebuilt.eval()(x), model(x))
    proto = export.fp32_onnx(folded_layers(model), 1)
    assert [n.op_type for n in proto.graph.node].count("Conv") == 10
    onnx.checker.check_model(proto)
    rows = layer_rows("p", default_arch(width=0.125), arch, "int8")
    gone = [r["layer"] for r in rows if r["compression_ratio"] == "removed"]
    assert gone == ["features.10", "features.20", "features.37"]  # dense module names of convs 3, 6, 11
    assert len(rows) == 15 + 1  # 13 convs + 2 linears + total


def test_identity_removal_of_a_conv_that_computes_the_identity_changes_nothing() -> None:
    torch.manual_seed(0)
    dense = build_model(default_arch(width=0.125)).eval()
    conv, bn = dense.features[3], dense.features[4]  # conv 1 (8 -> 8) and its BN
    assert isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d) and conv.bias is not None
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        for c in range(8):
            conv.weight[c, c, 1, 1] = 1.0  # the identity on the post-ReLU (non-negative) input
        bn.weight.fill_(1.0)
        bn.bias.zero_()
        assert bn.running_mean is not None and bn.running_var is not None
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
    x = torch.rand(3, 1, 48, 48)
    cut = remove_convs(dense, [1])
    np.testing.assert_allclose(cut(x).detach().numpy(), dense(x).detach().numpy(), rtol=1e-5, atol=1e-6)
