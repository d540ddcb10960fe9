"""Diffusion head schedule, respacing and sampling properties."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines.dcar.generator.diffusion import (
    DiffusionHead,
    RespacedSchedule,
    cosine_betas,
    space_timesteps,
    timestep_embedding,
)


def test_cosine_betas_follow_the_alpha_bar_formula():
    betas = cosine_betas(1000)
    assert betas.dtype == np.float64 and betas.shape == (1000,)
    abar = np.cumprod(1 - betas)

    def f(t):
        return math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2

    for t in (0, 1, 10, 250, 500, 900):
        assert abar[t] == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    assert betas.max() == 0.999  # clipped at the very end


def test_space_timesteps_official_rule():
    steps32 = sorted(space_timesteps(1000, "32"))
    assert len(steps32) == 32 and steps32[:5] == [0, 32, 64, 97, 129] and steps32[-1] == 999
    assert sorted(space_timesteps(1000, "4")) == [0, 333, 666, 999]
    assert sorted(space_timesteps(1000, "ddim10")) == list(range(0, 1000, 100))
    two = sorted(space_timesteps(1000, "2,3"))  # two sections of 500, 2 then 3 steps
    assert two == [0, 499, 500, 750, 999]
    for bad in ("0", "abc", "2000", ""):
        with pytest.raises(ValueError):
            space_timesteps(1000, bad)


def test_respaced_betas_keep_the_selected_alpha_bars():
    base = np.cumprod(1 - cosine_betas(1000))
    sched = RespacedSchedule("20")
    assert len(sched) == 20
    assert np.allclose(np.cumprod(1 - sched.betas), base[sched.timestep_map], rtol=1e-12)
    # at respaced step 0 the posterior mean is x0 itself (coef1 = 1, coef2 = 0)
    assert sched.posterior_mean_coef1[0] == pytest.approx(1.0) and sched.posterior_mean_coef2[0] == pytest.approx(0.0)


def test_timestep_embedding_is_cos_then_sin():
    emb = timestep_embedding(torch.tensor([0, 7]), 256)
    assert emb.shape == (2, 256)
    assert torch.allclose(emb[0, :128], torch.ones(128)) and torch.allclose(emb[0, 128:], torch.zeros(128))
    assert emb[1, 0].item() == pytest.approx(math.cos(7.0), abs=1e-6)
    assert emb[1, 128 + 1].item() == pytest.approx(math.sin(7 * math.exp(-math.log(10000) / 128)), abs=1e-6)


def _head(seed=0):
    head = DiffusionHead(token_size=32, cond_channels=16, width=32, depth=2, vae_scale=0.107)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (p.shape[-1] ** -0.5 if p.ndim > 1 else 0.1))
    return head.eval()


def test_guided_eps_is_official_convention_and_variance_is_not_guided():
    net = _head().net
    g = torch.Generator().manual_seed(1)
    x, c = torch.randn(6, 32, generator=g), torch.randn(6, 16, generator=g)
    t = torch.tensor([0, 100, 999, 0, 100, 999])
    s = 4.5
    out = net.forward_with_cfg(x, t, c, s)
    plain = net(torch.cat([x[:3], x[:3]]), t, c)
    cond, uncond = plain[:3, :32], plain[3:, :32]
    assert torch.allclose(out[:3, :32], cond + s * (cond - uncond), atol=1e-5)
    assert torch.equal(out[:3, :32], out[3:, :32])
    assert torch.equal(out[:, 32:], plain[:, 32:])
    assert torch.allclose(net.forward_with_cfg(x, t, c, 0.0)[:3, :32], cond, atol=1e-6)


def test_sample_is_bounded_by_vae_scale_and_driven_only_by_its_noise():
    head = _head()
    z = torch.randn(2 * 8, 16, generator=torch.Generator().manual_seed(2))

    def noise_fn_factory(seed):
        g = torch.Generator().manual_seed(seed)
        return lambda shape: torch.randn(shape, generator=g)

    a = head.sample(z, cfg_scale=4.5, num_steps=8, noise_fn=noise_fn_factory(0))
    b = head.sample(z, cfg_scale=4.5, num_steps=8, noise_fn=noise_fn_factory(0))
    c = head.sample(z, cfg_scale=4.5, num_steps=8, noise_fn=noise_fn_factory(1))
    assert a.shape == (16, 32)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    # the last step returns the clamped x0 estimate scaled by vae_scale
    assert a.abs().max() <= 0.107 + 1e-7
    # guided: the cond half shares its noise with the uncond half, so both start equal
    calls = []

    def recording(shape):
        calls.append(shape)
        return torch.zeros(shape)

    head.sample(z, cfg_scale=4.5, num_steps=3, noise_fn=recording)
    assert calls == [(8, 32)] + [(16, 32)] * 3  # official order: initial half noise, then one draw per step


def test_last_step_is_finite_even_when_the_variance_output_overflows():
    head = _head()
    with torch.no_grad():
        head.net.final_layer.linear.bias[32:] = 1e4  # absurd variance interpolation -> exp overflow
    z = torch.randn(8, 16, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(0)
    out = head.sample(z, cfg_scale=4.5, num_steps=1, noise_fn=lambda shape: torch.randn(shape, generator=g))
    assert torch.isfinite(out).all() and out.abs().max() <= 0.107 + 1e-7
