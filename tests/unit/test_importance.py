"""Each pruning criterion ranks filters as its algorithm says, on small known cases."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from compression.importance import (
    CDPImportance,
    FilterNormImportance,
    HRankImportance,
    agp_sparsity,
    cdp_scores,
    feature_map_rank,
    l1_filter_norms,
    make_importance,
)
from fer.model import build_model, default_arch


def _group(model: Any, conv: Any) -> Any:
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, 1, 48, 48))
    return dg.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=list(range(conv.out_channels)))


def _tiny() -> Any:
    torch.manual_seed(0)
    return build_model(default_arch(width=0.125)).eval()


def test_l1_importance_is_the_filter_l1_norm() -> None:
    model = _tiny()
    conv = model.features[3]
    with torch.no_grad():
        for i in range(conv.out_channels):
            conv.weight[i] = (i + 1) * 0.1 * torch.sign(torch.randn_like(conv.weight[i]))
    scores = make_importance("l1")(_group(model, conv))
    assert torch.allclose(scores, l1_filter_norms(conv), rtol=1e-5)
    assert torch.equal(torch.argsort(scores), torch.arange(conv.out_channels))


def test_taylor_ranks_by_weight_times_gradient() -> None:
    model = _tiny()
    conv = model.features[0]
    with torch.no_grad():
        conv.weight.fill_(1.0)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    grads = torch.tensor([3.0, -1.0, 0.0, 5.0, -2.0, 0.5, 4.0, -6.0])
    conv.weight.grad = grads[:, None, None, None].expand_as(conv.weight).clone()
    scores = make_importance("sfpga")(_group(model, conv))
    expected = grads.abs() * conv.weight[0].numel()
    assert torch.allclose(scores, expected)
    assert int(scores.argmin()) == 2  # zero gradient: the loss does not care about this filter


def test_cdp_tfidf_prefers_class_discriminative_filters() -> None:
    # rows: filters, columns: 3 classes (mean post-ReLU activation per class); equal total response
    a = torch.tensor([
        [1.0, 1.0, 1.0],  # responds equally to every class
        [3.0, 0.0, 0.0],  # only to class 0
        [0.0, 3.0, 0.0],  # only to class 1
        [0.0, 0.0, 3.0],  # only to class 2
        [0.0, 0.0, 0.0],  # silent
    ])
    s = cdp_scores(a)
    # TF: every class's total is 4 -> generic 3 * 1/4, specific 3/4; IDF: log(4 / (1 + df)) + 1
    assert torch.allclose(s[0], torch.tensor(0.75 * (math.log(4 / 4) + 1)))
    assert torch.allclose(s[1:4], torch.full((3,), 0.75 * (math.log(4 / 2) + 1)))
    assert s[4] == 0
    assert torch.argsort(s).tolist()[:2] == [4, 0]


def test_cdp_refresh_scores_every_layer_from_activations() -> None:
    model = _tiny()
    imp = CDPImportance()
    x = torch.rand(28, 1, 48, 48)
    y = torch.arange(28) % 7
    imp.refresh(model, x, y)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert all(imp.scores[c].shape == (c.out_channels,) for c in convs)
    assert imp.scores[model.classifier[0]].shape == (model.classifier[0].out_features,)


def test_feature_map_rank_known_matrices() -> None:
    u, v = torch.rand(48), torch.rand(48)
    maps = torch.stack([torch.zeros(48, 48), torch.outer(u, v), torch.eye(48), torch.outer(u, v) + torch.outer(v, u)])
    assert feature_map_rank(maps[None]).squeeze(0).tolist() == [0.0, 1.0, 48.0, 2.0]


def test_hrank_prunes_low_rank_filters_first() -> None:
    model = _tiny()
    conv, bn = model.features[0], model.features[1]
    with torch.no_grad():
        # filter 5: dead (output 0 after ReLU); filter 2: constant map (rank 1)
        conv.weight[5] = 0
        conv.bias[5] = 0
        bn.bias[5] = -1.0
        conv.weight[2] = 0
        conv.bias[2] = 0
        bn.bias[2] = 1.0
    imp = HRankImportance()
    imp.refresh(model, torch.rand(16, 1, 48, 48), torch.zeros(16, dtype=torch.long))
    order = torch.argsort(imp.scores[conv]).tolist()
    assert order[:2] == [5, 2]
    scores = imp(_group(model, conv))
    assert scores is not None and scores.shape == (conv.out_channels,)


def test_tgpp_final_removal_ranks_zeroed_filters_last() -> None:
    model = _tiny()
    conv = model.features[0]
    with torch.no_grad():
        conv.weight[[1, 6]] = 0
    scores = FilterNormImportance()(_group(model, conv))
    assert scores is not None
    assert set(torch.argsort(scores)[:2].tolist()) == {1, 6}


def test_agp_cubic_schedule() -> None:
    assert agp_sparsity(0, 100, 0.5) == 0.0
    assert agp_sparsity(100, 100, 0.5) == 0.5
    assert abs(agp_sparsity(50, 100, 0.5) - 0.5 * (1 - 0.5**3)) < 1e-12
    values = [agp_sparsity(t, 100, 0.5) for t in range(101)]
    assert values == sorted(values)
    # cubic: most of the pruning happens early
    assert agp_sparsity(25, 100, 0.5) > 0.25


def test_global_scope_normalises_per_layer() -> None:
    model = _tiny()
    conv = model.features[0]
    s = make_importance("l1", "global")(_group(model, conv))
    assert abs(float(s.mean()) - 1.0) < 1e-5
