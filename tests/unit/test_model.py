"""VGG16-FER: layer structure, output shapes, parameter count, architecture round trip."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fer.model import VGG16FER, arch_of, build_model, count_params, default_arch


def test_dense_model_has_the_papers_parameter_count() -> None:
    model = build_model(default_arch())
    total, nonzero = count_params(model)
    assert round(total / 1e6, 2) == 14.99
    assert nonzero <= total
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.features) == 13
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.features) == 5
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 512), (512, 7)]


@pytest.mark.parametrize("in_channels", [1, 3])
def test_forward_shapes(in_channels: int) -> None:
    model = build_model(default_arch(in_channels=in_channels, width=0.125)).eval()
    x = torch.rand(3, in_channels, 48, 48)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (3, 7)
    assert torch.isfinite(out).all()
    feats = model.features(x)
    assert feats.shape == (3, 64, 1, 1)  # 512 * 0.125 channels at 1x1 after five pools


def test_arch_of_round_trips_a_pruned_model() -> None:
    arch = default_arch(width=0.125)
    arch["features"] = [c if c == "M" else max(1, int(c) // 2) for c in arch["features"]]
    arch["features"][0] = 5
    model = build_model(arch)
    again = arch_of(model)
    assert again == {**arch, "features": list(arch["features"])}
    rebuilt = build_model(again)
    rebuilt.load_state_dict(model.state_dict())
    x = torch.rand(2, 1, 48, 48)
    model.eval(), rebuilt.eval()
    assert torch.equal(model(x), rebuilt(x))


def test_invalid_arch_is_refused() -> None:
    arch = default_arch(width=0.125)
    with pytest.raises(ValueError, match="13 conv"):
        VGG16FER({**arch, "features": arch["features"][:-2]})
    with pytest.raises(ValueError, match="lacks"):
        VGG16FER({k: v for k, v in arch.items() if k != "hidden"})
    with pytest.raises(TypeError):
        arch_of(nn.Linear(2, 2))


def test_executed_layer_counts_come_from_what_ran_not_the_class() -> None:
    """A conv that forward never calls is not counted; a quantized Linear that runs counts as int8."""
    from backends.torch_model import executed_layer_counts

    class Partial(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.unused = nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3)
            self.fc = nn.Linear(2 * 46 * 46, 7)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.flatten(self.used(x), 1))

    int8, total, ops = executed_layer_counts(Partial().eval(), torch.zeros(1, 1, 48, 48))
    assert (int8, total) == (0, 2) and ops == {"aten::conv2d": 1, "aten::linear": 1}
    if "x86" in torch.backends.quantized.supported_engines or "fbgemm" in torch.backends.quantized.supported_engines:
        import torch.ao.nn.quantized as nnq

        q = nnq.Linear(4, 3)

        class Quant(nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return q(torch.quantize_per_tensor(x, 0.1, 0, torch.quint8)).dequantize()

        int8, total, ops = executed_layer_counts(Quant(), torch.zeros(2, 4))
        assert (int8, total) == (1, 1) and "quantized::linear" in ops
