"""DC-AE f32c32, Table 1's continuous peer of DC-HT: published architecture, tiny contract, weights, errors."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from harness.api import ImageTokenizer, MissingResourceError  # noqa: E402
from harness.registry import resolve  # noqa: E402


def test_published_architecture_is_f32c32_and_builds_on_meta():
    from diffusers import AutoencoderDC

    from baselines.diffusers_dcae import DCAEF32C32Adapter, _published_config

    with torch.device("meta"):
        model = AutoencoderDC.from_config(_published_config(DCAEF32C32Adapter.full_config_file))
    assert model.config.latent_channels == 32
    assert 2 ** (len(model.config.encoder_block_out_channels) - 1) == 32  # 32x spatial compression
    # golden count of the dc-ae-f32c32-in-1.0 config (diffusers' convert_dcae_to_diffusers.py), encoder + decoder
    assert sum(p.numel() for p in model.parameters()) == 323_356_460


def test_tiny_random_reconstructs_and_records_random_weights():
    tiny = resolve("adapter", "dc-ae-f32c32")(random_init_seed=0)
    assert isinstance(tiny, ImageTokenizer)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = tiny.reconstruct(x)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    info = tiny.info()
    assert info.real_weights is False and info.weights == {"dc-ae-f32c32": "random-init:0"}
    assert info.name == "dc-ae-f32c32-tiny-random"


def test_saved_directory_loads_back_exactly(tmp_path, monkeypatch):
    tiny = resolve("adapter", "dc-ae-f32c32")(random_init_seed=1)
    tiny.model.save_pretrained(tmp_path / "f32")
    monkeypatch.setenv("DCAR_DCAE_F32C32_PATH", str(tmp_path / "f32"))
    loaded = resolve("adapter", "dc-ae-f32c32")()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    assert torch.equal(loaded.reconstruct(x), tiny.reconstruct(x)) and loaded.info().real_weights is True


def test_missing_weights_and_bad_config_are_clear(tmp_path, monkeypatch):
    monkeypatch.delenv("DCAR_DCAE_F32C32_PATH", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    with pytest.raises(MissingResourceError, match="DCAR_DCAE_F32C32_PATH") as err:
        resolve("adapter", "dc-ae-f32c32")()
    assert "mit-han-lab/dc-ae-f32c32-in-1.0-diffusers" in str(err.value)
    with pytest.raises(ValueError, match="'tiny' or 'full'"):
        resolve("adapter", "dc-ae-f32c32")(random_init_seed=0, config="huge")
    with pytest.raises(ValueError, match="must be 'tiny'"):  # dc-ae ships no full config
        resolve("adapter", "dc-ae")(random_init_seed=0, config="full")
