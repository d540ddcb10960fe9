"""The diffusers DC-AE adapter behind the golden sanity check: contract, saved-weights round trip, errors."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from harness.api import ImageTokenizer, MissingResourceError  # noqa: E402
from harness.registry import resolve  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return resolve("adapter", "dc-ae")(random_init_seed=0)


def _images(n, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g)


def test_reconstructs_in_the_harness_convention(tiny):
    assert isinstance(tiny, ImageTokenizer)
    x = _images(2)
    y = tiny.reconstruct(x)
    assert y.shape == x.shape and y.dtype == torch.float32 and 0 <= y.min() and y.max() <= 1
    info = tiny.info()
    assert info.real_weights is False and info.weights == {"dc-ae": "random-init:0"}
    assert info.extra["spatial_compression"] == 4 and tiny.downsample == 4


def test_seeded_random_init_is_reproducible_and_batch_invariant(tiny):
    other = resolve("adapter", "dc-ae")(random_init_seed=0)
    x = _images(4, seed=1)
    together = tiny.reconstruct(x)
    alone = torch.cat([other.reconstruct(x[i : i + 1]) for i in range(4)])
    assert (together - alone).abs().max() < 1e-5
    assert not torch.equal(tiny.reconstruct(x), resolve("adapter", "dc-ae")(random_init_seed=1).reconstruct(x))


def test_saved_diffusers_directory_loads_back_exactly(tiny, tmp_path):
    tiny.model.save_pretrained(tmp_path / "dcae")
    loaded = resolve("adapter", "dc-ae")(weights=str(tmp_path / "dcae"))
    x = _images(2, seed=2)
    assert torch.equal(loaded.reconstruct(x), tiny.reconstruct(x))
    info = loaded.info()
    assert info.real_weights is True
    (file, digest), = info.weights.items()
    assert file.endswith("diffusion_pytorch_model.safetensors") and len(digest) == 64


def test_bad_inputs_and_missing_weights_give_clear_errors(tiny, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="multiples of 4"):
        tiny.reconstruct(torch.rand(1, 3, 30, 32))
    with pytest.raises(ValueError, match="3 RGB channels"):
        tiny.reconstruct(torch.rand(1, 4, 32, 32))
    with pytest.raises(ValueError, match="NaN"):
        tiny.reconstruct(torch.full((1, 3, 32, 32), float("nan")))
    with pytest.raises(ValueError, match="continuous path"):
        tiny.reconstruct(_images(1), path="discrete")
    monkeypatch.delenv("DCAR_DCAE_PATH", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    with pytest.raises(MissingResourceError, match="DCAR_DCAE_PATH"):
        resolve("adapter", "dc-ae")()
    with pytest.raises(MissingResourceError, match="nowhere"):
        resolve("adapter", "dc-ae")(weights=str(tmp_path / "nowhere"))


def test_set_batch_size_pads_short_calls_so_an_image_is_bit_identical(tiny):
    padded = resolve("adapter", "dc-ae")(random_init_seed=0)
    padded.set_batch_size(4)
    x = _images(4, seed=3)
    alone = padded.reconstruct(x[1:2])
    assert alone.shape == (1, 3, 32, 32)
    assert torch.equal(alone[0], padded.reconstruct(torch.cat([x[1:], x[:1]]))[0])


def test_non_finite_input_is_a_data_error_naming_the_row(tiny):
    from harness.api import DataError

    x = _images(2)
    x[1, 0, 0, 0] = float("nan")
    with pytest.raises(DataError, match=r"DC-AE input images: .*row\(s\) 1"):
        tiny.reconstruct(x)
    with pytest.raises(ValueError, match="either weights or random_init_seed"):
        resolve("adapter", "dc-ae")(weights="x", random_init_seed=0)
