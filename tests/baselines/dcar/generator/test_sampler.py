"""The MaskGIT sampler: schedule, RNG modes, per-item invariance, guidance and temperature properties."""
from __future__ import annotations

import math

import pytest
import torch

from baselines.dcar.generator.sampler import (
    OfficialOrderNoise,
    PerItemNoise,
    SamplingOptions,
    gumbel,
    remask_count,
    sample,
)


def _text(io, idx):
    return io["text_hidden"][idx], io["text_mask"][idx]


def test_arccos_schedule_counts():
    n, t = 256, 12
    expected = [max(1, min(255, math.floor(n * math.acos((s + 1) / t) / (math.pi / 2)))) for s in range(t)]
    got = [int(remask_count((s + 1) / t, n, torch.tensor([256]), per_row=False)[0]) for s in range(t)]
    assert got == expected
    assert got[0] == 242 and got[-1] == 1
    # clamp to (#masked - 1); official: from row 0 for every row; per_row: each row its own
    counts = torch.tensor([5, 100])
    assert remask_count(0.1, n, counts, per_row=False).tolist() == [4, 4]
    assert remask_count(0.1, n, counts, per_row=True).tolist() == [4, 100 - 1]


def test_gumbel_is_finite_at_the_ends():
    u = torch.tensor([0.0, 1e-30, 0.5, 1 - 2 ** -24])
    g = gumbel(u)
    assert torch.isfinite(g).all()
    assert g[0].item() == pytest.approx(-math.log(-math.log(1e-20)), rel=1e-6)
    assert g[2].item() == pytest.approx(-math.log(math.log(2)), rel=1e-6)


def test_masked_counts_follow_the_schedule_and_finish_unmasked(fixture_model):
    model, io = fixture_model
    text, mask = _text(io, slice(0, 2))
    seen = []
    original = model.forward_tokens

    def recording(ids, ctx, logits_at=None):
        seen.append((ids[: ids.shape[0] // 2] == model.config.mask_token_id).sum(1).tolist())
        return original(ids, ctx, logits_at)

    model.forward_tokens = recording
    try:
        out = sample(model, text, mask, SamplingOptions(num_steps=4, num_diffusion_steps=4),
                     PerItemNoise([3, 4], "cpu"))
    finally:
        del model.forward_tokens
    n = model.config.image_seq_len
    ks = [max(1, math.floor(n * math.acos((s + 1) / 4) / (math.pi / 2))) for s in range(3)]
    assert seen == [[n, n]] + [[k, k] for k in ks]
    assert (out.ids != model.config.mask_token_id).all() and out.ids.min() >= 0
    assert out.residual.shape == (2, n, 32) and torch.isfinite(out.residual).all()


def test_per_item_mode_does_not_depend_on_batch_composition(fixture_model):
    model, io = fixture_model
    hidden = torch.cat([io["text_hidden"], io["text_hidden"].flip(0)])
    masks = torch.cat([io["text_mask"], io["text_mask"].flip(0)])
    seeds = [11, 12, 13, 14]
    opts = SamplingOptions(num_steps=6, num_diffusion_steps=4)
    batch = sample(model, hidden, masks, opts, PerItemNoise(seeds, "cpu"))
    for i in range(4):
        single = sample(model, hidden[i:i + 1], masks[i:i + 1], opts, PerItemNoise([seeds[i]], "cpu"))
        assert torch.equal(single.ids[0], batch.ids[i])
        assert torch.allclose(single.residual[0], batch.residual[i], atol=1e-5)
    order = [2, 0, 3, 1]
    shuffled = sample(model, hidden[order], masks[order], opts, PerItemNoise([seeds[i] for i in order], "cpu"))
    assert torch.equal(shuffled.ids, batch.ids[order])
    # different seeds give different images
    assert not torch.equal(batch.ids[0], sample(model, hidden[:1], masks[:1], opts, PerItemNoise([99], "cpu")).ids[0])


def test_official_mode_is_reproducible_from_the_global_seed(fixture_model):
    model, io = fixture_model
    text, mask = _text(io, slice(0, 2))
    opts = SamplingOptions(num_steps=4, num_diffusion_steps=4)
    torch.manual_seed(1234)
    a = sample(model, text, mask, opts, OfficialOrderNoise(2, torch.device("cpu")))
    torch.manual_seed(1234)
    b = sample(model, text, mask, opts, OfficialOrderNoise(2, torch.device("cpu")))
    assert torch.equal(a.ids, b.ids) and torch.equal(a.residual, b.residual)
    assert torch.equal(a.ids, io["generate_ids"])  # the fixture's official generate() call


def test_zero_temperature_is_deterministic_and_zero_guidance_ignores_the_null_caption(fixture_model):
    model, io = fixture_model
    text, mask = _text(io, slice(0, 2))
    greedy = SamplingOptions(num_steps=4, randomize_temperature=0.0, predict_residuals=False)
    a = sample(model, text, mask, greedy, PerItemNoise([1, 2], "cpu"))
    b = sample(model, text, mask, greedy, PerItemNoise([5, 6], "cpu"))
    assert torch.equal(a.ids, b.ids) and a.residual is None
    unguided = SamplingOptions(num_steps=4, cfg_scale=0.0, num_diffusion_steps=4)
    ref = sample(model, text, mask, unguided, PerItemNoise([1, 2], "cpu"))
    saved = model.y_embedder.y_embedding.clone()
    try:
        model.y_embedder.y_embedding.mul_(-3.0)
        other = sample(model, text, mask, unguided, PerItemNoise([1, 2], "cpu"))
        guided = sample(model, text, mask, SamplingOptions(num_steps=4, num_diffusion_steps=4),
                        PerItemNoise([1, 2], "cpu"))
    finally:
        model.y_embedder.y_embedding.copy_(saved)
    assert torch.equal(ref.ids, other.ids) and torch.allclose(ref.residual, other.residual, atol=1e-6)
    guided_ref = sample(model, text, mask, SamplingOptions(num_steps=4, num_diffusion_steps=4),
                        PerItemNoise([1, 2], "cpu"))
    assert not torch.allclose(guided.residual, guided_ref.residual)  # with guidance the null caption matters


def test_discrete_only_never_calls_the_diffusion_head(fixture_model, monkeypatch):
    model, io = fixture_model
    text, mask = _text(io, slice(0, 2))

    def boom(*args, **kwargs):
        raise AssertionError("diffusion head called")

    hybrid = sample(model, text, mask, SamplingOptions(num_steps=4, num_diffusion_steps=4), PerItemNoise([7, 8], "cpu"))
    monkeypatch.setattr(model.diffloss, "sample", boom)
    discrete = sample(model, text, mask, SamplingOptions(num_steps=4, predict_residuals=False),
                      PerItemNoise([7, 8], "cpu"))
    assert discrete.residual is None
    assert torch.equal(discrete.ids, hybrid.ids)  # the residual noise is drawn after the token loop


def test_uncached_text_path_gives_the_same_result(fixture_model):
    model, io = fixture_model
    text, mask = _text(io, slice(0, 2))
    a = sample(model, text, mask, SamplingOptions(num_steps=4, num_diffusion_steps=4), PerItemNoise([1, 2], "cpu"))
    b = sample(model, text, mask, SamplingOptions(num_steps=4, num_diffusion_steps=4, cache_text=False),
               PerItemNoise([1, 2], "cpu"))
    assert torch.equal(a.ids, b.ids) and torch.equal(a.residual, b.residual)


@pytest.mark.parametrize("kwargs, match", [
    ({"num_steps": 0}, "num_steps"),
    ({"randomize_temperature": -1.0}, "randomize_temperature"),
    ({"cfg_scale": float("nan")}, "cfg_scale"),
    ({"num_diffusion_steps": 0}, "num_diffusion_steps"),
    ({"num_diffusion_steps": "x"}, "num_diffusion_steps"),
])
def test_bad_sampling_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SamplingOptions(**kwargs)


def test_per_item_id_sampling_has_the_gumbel_max_distribution():
    """Inverse-CDF sampling (per-item mode) and Gumbel-max (official) both draw from softmax(logits / tau)."""
    from baselines.dcar.generator.sampler import categorical_from_uniform

    logits = torch.tensor([2.0, 0.5, -1.0, 1.5, 0.0, -30.0])
    tau = 0.7
    probs = torch.softmax(logits.double() / tau, dim=0)
    k = 100_000
    grid = (torch.arange(k, dtype=torch.float64) + 0.5) / k  # evenly spread uniforms: frequencies = probs +- 1/k
    picks = categorical_from_uniform(logits.expand(k, -1), tau, grid)
    freq = torch.bincount(picks, minlength=6).double() / k
    assert torch.allclose(freq, probs, atol=2.0 / k)
    assert freq[5] == 0  # a negligible-probability id is (practically) never chosen
    g = torch.Generator().manual_seed(0)
    gumbel_picks = (logits + tau * gumbel(torch.rand(k, 6, generator=g))).argmax(-1)
    gfreq = torch.bincount(gumbel_picks, minlength=6).double() / k
    assert torch.allclose(gfreq, probs, atol=4 * (0.25 / k) ** 0.5)  # 4 sigma
    assert torch.equal(categorical_from_uniform(logits[None], 0.0, torch.tensor([0.3])), torch.tensor([0]))


def test_reduced_precision_autocast_path_runs_and_mostly_agrees(fixture_model):
    """The bf16 autocast path (used on CUDA) exercised on CPU: valid ids, finite residuals, close to fp32."""
    model, io = fixture_model
    text, mask = _text(io, slice(0, 2))
    opts = SamplingOptions(num_steps=4, num_diffusion_steps=4, randomize_temperature=0.0)
    ref = sample(model, text, mask, opts, PerItemNoise([1, 2], "cpu"))
    low = sample(model, text, mask, opts, PerItemNoise([1, 2], "cpu"), autocast_dtype=torch.bfloat16)
    assert low.ids.dtype == torch.long and (low.ids < model.config.codebook_size).all()
    assert low.residual.dtype == torch.float32 and torch.isfinite(low.residual).all()
    assert (low.ids == ref.ids).float().mean() > 0.5  # greedy decoding: bf16 rounding flips only near-ties
    assert next(model.parameters()).dtype == torch.float32  # autocast never casts the weights
