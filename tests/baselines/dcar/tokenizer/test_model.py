"""DC-HT model behaviour on a tiny random-weight config: shapes, quantizer maths, hybrid paths, bad input."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from baselines.dcar.tokenizer import DCHT, DCHTConfig


def _x(images):
    return images * 2 - 1


def test_shapes_of_every_path(tiny_model, images):
    x = _x(images)
    with torch.no_grad():
        z = tiny_model.encode(x)
        assert z.shape == (3, 32, 2, 2)
        z_q, info = tiny_model.quantize(z)
        assert z_q.shape == z.shape and info["indices"].shape == (3, 4) and info["indices"].dtype == torch.long
        assert info["residual"].shape == (3, 4, 32) and info["features"].shape == z.shape
        assert tiny_model.decode(z_q).shape == x.shape
        tokens = tiny_model.tokenize(x)
        assert torch.equal(tokens["ids"], info["indices"])
        # non-square images work; decode_tokens assumes a square grid
        assert tiny_model.encode(torch.zeros(1, 3, 32, 96)).shape == (1, 32, 1, 3)


def test_indices_are_nearest_codes_by_cosine_in_raster_order(tiny_model, images):
    with torch.no_grad():
        z = tiny_model.encode(_x(images))
        _, info = tiny_model.quantize(z)
    flat = z.permute(0, 2, 3, 1).reshape(3, -1, 32)  # raster order: row-major over (h, w)
    cos = F.normalize(flat, dim=-1) @ F.normalize(tiny_model.quantize.embedding.weight, dim=-1).t()
    assert torch.equal(info["indices"], cos.argmax(-1))


def test_residual_is_normalised_latent_minus_code_and_loss_formula(tiny_model, images):
    with torch.no_grad():
        z = tiny_model.encode(_x(images))
        z_q, info = tiny_model.quantize(z)
    feats = F.normalize(z, dim=1)
    torch.testing.assert_close(info["features"], feats)
    codes = F.normalize(tiny_model.quantize.embedding.weight[info["indices"]], dim=-1)  # (B, N, C)
    torch.testing.assert_close(info["residual"], feats.flatten(2).transpose(1, 2) - codes)
    torch.testing.assert_close(z_q.flatten(2).transpose(1, 2), codes, atol=1e-6, rtol=0)
    mse = torch.mean((codes - feats.flatten(2).transpose(1, 2)) ** 2)
    torch.testing.assert_close(info["loss"], 1.25 * mse)  # codebook loss + 0.25 * commitment loss
    assert all(torch.linalg.vector_norm(codes, dim=-1).sub(1).abs().max() < 1e-5 for _ in [0])


def test_straight_through_gradient_reaches_the_latent():
    q = DCHT(DCHTConfig.tiny(codebook_size=16)).quantize
    z = torch.randn(1, 32, 2, 2, requires_grad=True)
    z_q, info = q(z)
    (z_q * torch.randn_like(z_q)).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_hybrid_decode_equals_continuous_and_tokens_only_equals_discrete(tiny_model, images):
    with torch.no_grad():
        z = tiny_model.encode(_x(images))
        z_q, info = tiny_model.quantize(z)
        continuous = tiny_model.decode(tiny_model.latent_features(z))
        hybrid = tiny_model.decode_tokens(info["indices"], info["residual"])
        discrete = tiny_model.decode(z_q)
        tokens_only = tiny_model.decode_tokens(info["indices"])
    torch.testing.assert_close(hybrid, continuous, atol=1e-5, rtol=0)
    torch.testing.assert_close(tokens_only, discrete, atol=1e-5, rtol=0)
    assert (hybrid - discrete).abs().max() > 1e-3  # the residual carries information


def test_plain_vq_ignores_residual_like_the_official_code(tiny_model):
    cfg = DCHTConfig.tiny()
    cfg.quantizer_type = "vq"
    model = DCHT(cfg).eval()
    model.load_state_dict(tiny_model.state_dict())
    ids = torch.randint(0, 1024, (1, 4))
    with torch.no_grad():
        torch.testing.assert_close(model.decode_tokens(ids, torch.randn(1, 4, 32)), model.decode_tokens(ids))


@pytest.mark.parametrize("shape,message", [
    ((1, 3, 64, 48), "multiples of 32"),
    ((1, 3, 100, 64), "multiples of 32"),
    ((1, 4, 64, 64), "3 RGB channels"),
    ((1, 1, 64, 64), "3 RGB channels"),
    ((3, 64, 64), r"\(B, 3, H, W\)"),
])
def test_bad_image_shapes_are_rejected(tiny_model, shape, message):
    with pytest.raises(ValueError, match=message):
        tiny_model.encode(torch.zeros(shape))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_images_are_rejected(tiny_model, bad):
    x = torch.zeros(1, 3, 64, 64)
    x[0, 1, 5, 7] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        tiny_model.encode(x)


def test_integer_images_are_rejected(tiny_model):
    with pytest.raises(TypeError, match="floating-point"):
        tiny_model.encode(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


def test_bad_tokens_are_rejected(tiny_model):
    with pytest.raises(ValueError, match="square"):
        tiny_model.decode_tokens(torch.zeros(1, 6, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 1024\)"):
        tiny_model.decode_tokens(torch.full((1, 4), 1024))
    with pytest.raises(ValueError, match=r"\[0, 1024\)"):
        tiny_model.decode_tokens(torch.full((1, 4), -1))
    with pytest.raises(TypeError, match="integer"):
        tiny_model.decode_tokens(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="residual must have shape"):
        tiny_model.decode_tokens(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, 16))
    with pytest.raises(ValueError, match="NaN or Inf"):
        tiny_model.decode_tokens(torch.zeros(1, 4, dtype=torch.long), torch.full((1, 4, 32), math.nan))
    with pytest.raises(ValueError, match="latents"):
        tiny_model.decode(torch.zeros(1, 16, 2, 2))
