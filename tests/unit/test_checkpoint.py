"""Checkpoints (save/load with weights_only) and local torchvision VGG16-BN weights for transfer learning."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from common.errors import UserError
from fer.checkpoint import load_checkpoint, save_checkpoint
from fer.model import VGG16FER, build_model, default_arch
from fer.pretrained import load_torchvision_vgg16_bn


def _small_model(seed: int = 0) -> VGG16FER:
    torch.manual_seed(seed)
    arch = default_arch(width=0.125)
    arch["features"] = [c if c == "M" else (int(c) // 2 if i % 3 == 0 else c) for i, c in enumerate(arch["features"])]
    model = build_model(arch)
    with torch.no_grad():  # non-trivial BN statistics so that the round trip checks buffers too
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(0, 1)  # type: ignore[union-attr]
                m.running_var.uniform_(0.5, 2)  # type: ignore[union-attr]
    return model.eval()


def test_round_trip_keeps_weights_arch_and_meta(tmp_path: Path) -> None:
    model = _small_model()
    meta = {"dataset": "synthfer", "test_accuracy": 0.91, "epochs": 5, "classes": ["angry", "neutral"], "x": None}
    path = tmp_path / "sub" / "model.pt"
    save_checkpoint(path, model, meta)
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temp file left behind
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"arch", "state_dict", "meta"}
    loaded, meta2 = load_checkpoint(path)
    assert meta2 == meta
    assert loaded.arch["features"] == model.arch["features"]
    assert not loaded.training
    x = torch.rand(4, 1, 48, 48)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_meta_must_be_plain(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="plain"):
        save_checkpoint(tmp_path / "m.pt", _small_model(), {"when": object()})
    assert not list(tmp_path.iterdir())


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint(path, _small_model(), {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"model\.pt.*truncated") as e:
        load_checkpoint(path)
    assert "\n" not in str(e.value)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ([1, 2, 3], "not a dict"),
        ({"state_dict": {}}, "missing arch, meta"),
        ({"arch": {"features": [1]}, "state_dict": {}, "meta": {}}, "invalid architecture"),
    ],
)
def test_not_a_vgg_checkpoint_is_refused(tmp_path: Path, content: object, problem: str) -> None:
    path = tmp_path / "other.pt"
    torch.save(content, path)
    with pytest.raises(UserError, match=problem) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)


def test_wrong_shapes_or_missing_tensors_are_refused(tmp_path: Path) -> None:
    model = _small_model()
    state = model.state_dict()
    arch = dict(model.arch)
    bad = dict(state)
    bad["features.0.weight"] = torch.zeros(3, 1, 3, 3)
    torch.save({"arch": arch, "state_dict": bad, "meta": {}}, tmp_path / "shape.pt")
    with pytest.raises(UserError, match=r"features\.0\.weight has shape \(3, 1, 3, 3\)"):
        load_checkpoint(tmp_path / "shape.pt")
    partial = {k: v for k, v in state.items() if not k.startswith("classifier.3")}
    torch.save({"arch": arch, "state_dict": partial, "meta": {}}, tmp_path / "partial.pt")
    with pytest.raises(UserError, match="missing 2 tensors"):
        load_checkpoint(tmp_path / "partial.pt")


class _CarriesCode:
    """Unpickling this calls a function: weights_only loading must refuse it."""

    def __reduce__(self) -> tuple[object, ...]:
        return (print, ("this must never run",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_that_carries_code_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _small_model()
    path = tmp_path / "evil.pt"
    torch.save({"arch": dict(model.arch), "state_dict": model.state_dict(), "meta": {"x": _CarriesCode()}}, path)
    with pytest.raises(UserError, match=r"refused.*code") as e:
        load_checkpoint(path)
    assert "evil.pt" in str(e.value)
    assert "this must never run" not in capsys.readouterr().out
    # a plain pickle (not a torch zip file) is refused too, without running it
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_CarriesCode()))
    with pytest.raises(UserError):
        load_checkpoint(raw)
    assert "this must never run" not in capsys.readouterr().out


def _torchvision_layout(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A state_dict with torchvision vgg16_bn's key names: features.N.* plus an ImageNet-shaped head (trimmed)."""
    sd = {
        k: torch.randn_like(v.float()).to(v.dtype) for k, v in model.state_dict().items() if k.startswith("features.")
    }
    sd["classifier.6.weight"] = torch.zeros(1000, 8)  # torchvision's head keys; must be ignored
    sd["classifier.6.bias"] = torch.zeros(1000)
    return sd


def test_torchvision_weights_are_copied_into_features(tmp_path: Path) -> None:
    model = build_model(default_arch(in_channels=3))
    src = _torchvision_layout(model)
    assert "features.41.running_var" in src and "features.0.weight" in src  # torchvision's indices
    path = tmp_path / "vgg16_bn.pth"
    torch.save(src, path)
    head = model.classifier[0]
    assert isinstance(head, torch.nn.Linear)
    head_before = head.weight.detach().clone()
    copied = load_torchvision_vgg16_bn(model, path)
    assert copied == 13 * 7  # conv weight+bias, BN weight/bias/mean/var/num_batches_tracked
    sd = model.state_dict()
    assert torch.equal(sd["features.0.weight"], src["features.0.weight"])
    assert torch.equal(sd["features.41.running_mean"], src["features.41.running_mean"])
    assert torch.equal(head.weight, head_before)


def test_torchvision_weights_wrong_file_is_refused(tmp_path: Path) -> None:
    model3 = build_model(default_arch(in_channels=3, width=0.125))
    model1 = build_model(default_arch(in_channels=1))
    full = build_model(default_arch(in_channels=3))
    path = tmp_path / "vgg16_bn.pth"
    torch.save(_torchvision_layout(full), path)
    with pytest.raises(UserError, match="in_channels = 3"):
        load_torchvision_vgg16_bn(model1, path)
    with pytest.raises(UserError, match=r"features\.0\.weight"):
        load_torchvision_vgg16_bn(model3, path)
    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, other)
    with pytest.raises(UserError, match="no 'features"):
        load_torchvision_vgg16_bn(full, other)
    with pytest.raises(UserError, match="does not exist"):
        load_torchvision_vgg16_bn(full, tmp_path / "missing.pth")
