"""The registered DC-HT adapters: weight lookup, provenance, batch invariance, path equivalences, errors."""
from __future__ import annotations

import hashlib
import math

import pytest
import torch

from baselines.dcar.tokenizer_adapter import DCHT_WEIGHTS, DCHTAdapter, DCHTDiscreteAdapter
from harness import registry
from harness.api import MissingResourceError


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory, tiny_model):
    d = tmp_path_factory.mktemp("dc-ht-tiny")
    tiny_model.save_pretrained(d)
    return d


@pytest.fixture()
def no_weights_anywhere(monkeypatch, tmp_path):
    monkeypatch.delenv("DCAR_DCHT_PATH", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))


@pytest.fixture(scope="module")
def adapter(weights_dir):
    return DCHTAdapter(weights=str(weights_dir))


def test_registered_names_resolve_to_the_adapters():
    assert registry.resolve("adapter", "dc-ht") is DCHTAdapter
    assert registry.resolve("adapter", "dc-ht-discrete") is DCHTDiscreteAdapter
    assert DCHTAdapter.paths == ("continuous", "discrete") and DCHTAdapter.default_path == "continuous"
    assert DCHTDiscreteAdapter.paths == ("discrete",)
    assert DCHTAdapter.requirements() == [DCHT_WEIGHTS] and DCHT_WEIGHTS.env_var == "DCAR_DCHT_PATH"


def test_without_weights_the_error_says_what_and_how(no_weights_anywhere):
    with pytest.raises(MissingResourceError) as info:
        DCHTAdapter()
    msg = str(info.value)
    assert "DC-HT tokenizer weights" in msg and "DCAR_DCHT_PATH" in msg and "mit-han-lab/dc-ht" in msg
    assert "git clone https://huggingface.co/mit-han-lab/dc-ht" in msg


def test_explicit_missing_path_is_an_error_even_if_env_is_set(monkeypatch, tmp_path, weights_dir):
    monkeypatch.setenv("DCAR_DCHT_PATH", str(weights_dir))
    with pytest.raises(MissingResourceError, match="no such path"):
        DCHTAdapter(weights=str(tmp_path / "typo"))


def test_env_var_and_hf_cache_lookup_and_provenance(monkeypatch, tmp_path, weights_dir, no_weights_anywhere):
    monkeypatch.setenv("DCAR_DCHT_PATH", str(weights_dir))
    info = DCHTAdapter().info()
    assert info.real_weights and info.num_params == 2_710_124 and info.kind == "image_tokenizer"
    expected = hashlib.sha256((weights_dir / "model.safetensors").read_bytes()).hexdigest()
    assert info.weights["model.safetensors"] == expected and "config.json" in info.weights
    monkeypatch.delenv("DCAR_DCHT_PATH")
    snap = tmp_path / "hub" / "models--mit-han-lab--dc-ht" / "snapshots" / "0123abc"
    snap.mkdir(parents=True)
    for f in ("config.json", "model.safetensors"):
        (snap / f).write_bytes((weights_dir / f).read_bytes())
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert DCHTAdapter().info().weights["model.safetensors"] == expected


def test_random_init_is_explicit_seeded_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = DCHTAdapter(config="tiny", random_init_seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    b = DCHTDiscreteAdapter(config="tiny", random_init_seed=7)
    info = a.info()
    assert info.weights == {"weights": "random-init:7"} and not info.real_weights
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    c = DCHTAdapter(config="tiny", random_init_seed=8)
    assert not torch.equal(a.model.quantize.embedding.weight, c.model.quantize.embedding.weight)


@pytest.mark.parametrize("kwargs,message", [
    ({"weights": "x", "random_init_seed": 1}, "either weights or random_init_seed"),
    ({"config": "huge", "random_init_seed": 1}, "config must be"),
    ({"dtype": "int8", "random_init_seed": 1}, "dtype must be"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DCHTAdapter(**kwargs)


@pytest.mark.parametrize("path", ["continuous", "discrete"])
def test_batch_size_invariance(adapter, images, path):
    together = adapter.reconstruct(images, path=path)
    alone = torch.cat([adapter.reconstruct(images[i:i + 1], path=path) for i in range(len(images))])
    assert together.shape == images.shape and together.dtype == torch.float32
    assert 0.0 <= together.min() and together.max() <= 1.0
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
    tokens = adapter.tokenize(images)
    single = [adapter.tokenize(images[i:i + 1]) for i in range(len(images))]
    assert torch.equal(tokens["ids"], torch.cat([s["ids"] for s in single]))
    torch.testing.assert_close(tokens["residual"], torch.cat([s["residual"] for s in single]), atol=1e-5, rtol=0)


def test_continuous_path_equals_hybrid_decode_of_encoder_residuals(adapter, images):
    continuous = adapter.reconstruct(images)  # default path
    tokens = adapter.tokenize(images)
    assert tokens["ids"].shape == (3, 4) and tokens["residual"].shape == (3, 4, 32)
    hybrid = adapter.decode_tokens(tokens["ids"], tokens["residual"])
    torch.testing.assert_close(hybrid, continuous, atol=1e-5, rtol=0)
    discrete = adapter.reconstruct(images, path="discrete")
    torch.testing.assert_close(adapter.decode_tokens(tokens["ids"]), discrete, atol=1e-5, rtol=0)
    assert (continuous - discrete).abs().max() > 1e-3


def test_discrete_adapter_has_only_the_discrete_path(weights_dir, adapter, images):
    discrete = DCHTDiscreteAdapter(weights=str(weights_dir))
    assert discrete.info().name == "dc-ht-discrete"
    torch.testing.assert_close(discrete.reconstruct(images), adapter.reconstruct(images, path="discrete"))
    with pytest.raises(ValueError, match="no reconstruction path 'continuous'"):
        discrete.reconstruct(images, path="continuous")
    assert discrete.tokenize(images)["residual"].shape == (3, 4, 32)


@pytest.mark.parametrize("shape,message", [((1, 3, 48, 64), "multiples of 32"), ((1, 4, 64, 64), "3 RGB")])
def test_adapter_rejects_bad_shapes(adapter, shape, message):
    with pytest.raises(ValueError, match=message):
        adapter.reconstruct(torch.rand(shape))


def test_adapter_rejects_non_finite_images(adapter):
    x = torch.rand(1, 3, 32, 32)
    x[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        adapter.reconstruct(x)
    with pytest.raises(ValueError, match="NaN or Inf"):
        adapter.tokenize(x)


def test_bfloat16_adapter_stays_close_to_float32(weights_dir, adapter, images):
    bf16 = DCHTAdapter(weights=str(weights_dir), dtype="bfloat16")
    out = bf16.reconstruct(images)
    assert out.dtype == torch.float32 and bf16.info().dtype == "bfloat16"
    assert (out - adapter.reconstruct(images)).abs().mean() < 0.05


def test_set_batch_size_pads_short_calls_so_an_image_is_bit_identical(weights_dir, images):
    """A short call (last batch, resumed tail) is padded to the run's batch size: [x] gives the bits of [x, ...].

    Exact equality is promised: padding makes every tensor the same shape as in the full batch, and no row
    reads another's values. Unpadded, DC-HT's float32 kernels differ by ~1e-6 between batch sizes.
    """
    padded = DCHTAdapter(weights=str(weights_dir))
    padded.set_batch_size(4)
    full = torch.cat([images, images[:1].flip(-1)])  # 4 different images
    for path in ("continuous", "discrete"):
        together = padded.reconstruct(full, path=path)
        alone = padded.reconstruct(full[2:3], path=path)
        assert alone.shape == (1, 3, 64, 64)
        assert torch.equal(alone[0], padded.reconstruct(full[2:], path=path)[0])
        assert torch.equal(padded.reconstruct(full[:2], path=path), together[:2])
    tokens = padded.tokenize(full[:1])
    assert tokens["ids"].shape == (1, 4) and tokens["residual"].shape == (1, 4, 32)
    assert torch.equal(tokens["residual"], padded.tokenize(full)["residual"][:1])
    decoded = padded.decode_tokens(tokens["ids"], tokens["residual"])
    assert decoded.shape == (1, 3, 64, 64)


def test_non_finite_input_is_a_data_error_naming_the_tensor_and_row(adapter):
    from harness.api import DataError

    x = torch.rand(3, 3, 32, 32)
    x[2, 1, 5, 5] = math.inf
    with pytest.raises(DataError, match=r"dc-ht input images: contains NaN or Inf values \(0 NaN, 1 Inf\) in batch row\(s\) 2"):
        adapter.reconstruct(x)
    tokens = adapter.tokenize(x[:1])
    residual = tokens["residual"].clone()
    residual[0, 0, 0] = math.nan
    with pytest.raises(DataError, match="dc-ht residual tokens"):
        adapter.decode_tokens(tokens["ids"], residual)
