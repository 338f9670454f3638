"""Which model a row is about: the model text from a manifest, and training precision in the dense model's key."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from common.config import load_config
from common.model_id import model_record, model_text
from fer.model import default_arch


def test_model_text_names_architecture_width_and_imports() -> None:
    rec = model_record("VGG16-FER", 0.25, "fp32")
    assert model_text({"method": "l1", "model": rec}) == "VGG16-FER x0.25"
    full = model_record("VGG16-FER", 1.0, "bf16")
    assert model_text({"method": "l1", "model": full}) == "VGG16-FER x1 (bf16-trained)"
    imported = {"method": "imported", "imported_from": "/tmp/x/fer2013_cnn.onnx"}
    assert model_text(imported) == "imported: fer2013_cnn.onnx"
    # manifests from before the model field: a dense arch gives its width, a pruned one cannot
    assert model_text({"method": "dense", "arch": default_arch(width=0.25)}) == "VGG16-FER x0.25"
    assert model_text({"method": "dense", "arch": default_arch(width=0.75)}) == "VGG16-FER x0.75"
    assert "not recorded" in model_text({"method": "l1", "arch": {"features": [10, "M"]}})


def test_training_precision_keys_the_dense_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """One config (`train.bf16 = true`) trains in bf16 on a CPU with native bf16 and in fp32 elsewhere: two
    models, so two dense cache entries and two artifact directories."""
    import fer.train
    from harness.orchestrate.pipeline import artifacts_dir, dense_key

    data = SimpleNamespace(digest=lambda: "d")
    cfg = load_config(None, ["train.bf16=true", "train.device=cpu"])
    here = (fer.train.training_precision(cfg.train), dense_key(cfg, data))  # type: ignore[arg-type]
    keys = {}
    for native in (True, False):  # the CPU capability probe, as a bf16 CPU and as an AVX2 one answer it
        monkeypatch.setattr(fer.train, "bf16_supported", lambda native=native: native)
        prec = fer.train.training_precision(cfg.train)
        keys[prec] = (dense_key(cfg, data), artifacts_dir(cfg, data))  # type: ignore[arg-type]
    assert set(keys) == {"bf16", "fp32"}
    assert keys["bf16"][0] != keys["fp32"][0] and keys["bf16"][1] != keys["fp32"][1]
    assert keys[here[0]][0] == here[1]  # this machine's key is the one of the precision it trains in
