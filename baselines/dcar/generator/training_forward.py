"""Training-side forward passes of DC-AR: masked-token cross-entropy and the residual diffusion loss.

Why a separate module: the inference modules (transformer, sampler) are tuned for sampling speed; training needs
the same networks with losses attached, and nothing here changes how they sample. All randomness (mask ratio,
masked positions, diffusion timesteps, noise) is passed in by the caller, so a sample's loss depends only on
its own seeds.

* Masking (the official training-side code): ``t ~ U(0, 1)``, ``ratio = clamp(arccos(t) / (pi/2), 1e-6, 1)``,
  ``n = max(1, round(N * ratio))`` positions chosen uniformly are replaced by ``[MASK]`` (= codebook_size).
* Cross-entropy over the masked positions (mean over the masked tokens of the batch).
* Diffusion loss on the residual tokens of *every* position (the official ``forward_diff_loss`` takes the
  hidden states of all 256 positions), each row repeated ``diffusion_batch_mul`` (4) times with its own
  timestep and noise, target ``residual / vae_scale`` (sampling returns ``x0 * vae_scale``); loss =
  epsilon MSE + the learned-variance VLB term of improved DDPM (``LossType.MSE`` with ``learn_sigma``, as the
  MAR diffusion code the head comes from: KL to the true posterior, with a frozen mean, for t > 0 and the
  discretised Gaussian NLL at t = 0, in bits).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .diffusion import cosine_betas
from .transformer import DCAR


def mask_count(t: float, num_tokens: int) -> int:
    """How many of ``num_tokens`` positions an arccos masking schedule hides for ``t`` in [0, 1)."""
    ratio = min(max(math.acos(float(t)) / (math.pi / 2), 1e-6), 1.0)
    return max(1, int(round(num_tokens * ratio)))


def random_mask(num_tokens: int, generator: torch.Generator) -> torch.Tensor:
    """One sample's bool mask (N,): draw t, then that many positions uniformly (both from ``generator``)."""
    t = float(torch.rand(1, generator=generator)[0])
    n = mask_count(t, num_tokens)
    mask = torch.zeros(num_tokens, dtype=torch.bool)
    mask[torch.randperm(num_tokens, generator=generator)[:n]] = True
    return mask


def masked_token_forward(model: DCAR, ids: torch.Tensor, mask: torch.Tensor, text_hidden: torch.Tensor,
                         text_mask: torch.Tensor, drop: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy over masked positions, hidden states (B, N, C)) for ground-truth ``ids`` (B, N)."""
    inputs = torch.where(mask, torch.full_like(ids, model.config.mask_token_id), ids)
    context = model.text_context(text_hidden, text_mask, drop)
    logits, hidden = model.forward_tokens(inputs, context, logits_at=mask)
    ce = F.cross_entropy(logits.float(), ids[mask])
    return ce, hidden


@lru_cache(maxsize=4)
def _train_schedule(num_train_steps: int) -> dict[str, np.ndarray]:
    betas = cosine_betas(num_train_steps)
    alphas = 1.0 - betas
    abar = np.cumprod(alphas)
    abar_prev = np.append(1.0, abar[:-1])
    post_var = betas * (1.0 - abar_prev) / (1.0 - abar)
    return {
        "sqrt_abar": np.sqrt(abar), "sqrt_1m_abar": np.sqrt(1.0 - abar),
        "sqrt_recip_abar": np.sqrt(1.0 / abar), "sqrt_recipm1_abar": np.sqrt(1.0 / abar - 1.0),
        "post_log_var": np.log(np.append(post_var[1], post_var[1:])), "log_betas": np.log(betas),
        "coef1": betas * np.sqrt(abar_prev) / (1.0 - abar), "coef2": (1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar),
    }


def _take(name: str, t: torch.Tensor, num_train_steps: int) -> torch.Tensor:
    table = torch.from_numpy(_train_schedule(num_train_steps)[name]).to(t.device)
    return table[t].float()[:, None]


def _normal_kl(mean1, logvar1, mean2, logvar2):
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_standard_normal_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def _discretized_gaussian_log_likelihood(x, means, log_scales):
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = _approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = _approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(x < -0.999, log_cdf_plus,
                       torch.where(x > 0.999, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=1e-12))))


def diffusion_loss(model: DCAR, hidden: torch.Tensor, residual: torch.Tensor, timesteps: torch.Tensor,
                   noise: torch.Tensor) -> torch.Tensor:
    """Mean (eps MSE + VLB) over rows; ``hidden`` (M, C) and ``residual`` (M, token_size) are already repeated
    ``batch_mul`` times, ``timesteps`` (M,) long in [0, T), ``noise`` (M, token_size)."""
    head = model.diffloss
    steps = head.num_train_steps
    x0 = residual.float() / head.vae_scale
    xt = _take("sqrt_abar", timesteps, steps) * x0 + _take("sqrt_1m_abar", timesteps, steps) * noise
    out = head.net(xt.to(hidden.dtype), timesteps, hidden).float()
    eps, var_values = out[:, : head.token_size], out[:, head.token_size:]
    mse = ((eps - noise) ** 2).mean(dim=1)
    # VLB with a frozen mean: only the variance head learns from it
    min_log, max_log = _take("post_log_var", timesteps, steps), _take("log_betas", timesteps, steps)
    frac = (var_values + 1) / 2
    model_log_var = frac * max_log + (1 - frac) * min_log
    eps_frozen = eps.detach()
    pred_x0 = _take("sqrt_recip_abar", timesteps, steps) * xt - _take("sqrt_recipm1_abar", timesteps, steps) * eps_frozen
    model_mean = _take("coef1", timesteps, steps) * pred_x0 + _take("coef2", timesteps, steps) * xt
    true_mean = _take("coef1", timesteps, steps) * x0 + _take("coef2", timesteps, steps) * xt
    kl = _normal_kl(true_mean, min_log, model_mean, model_log_var).mean(dim=1) / math.log(2.0)
    nll = -_discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_var).mean(dim=1) / math.log(2.0)
    vb = torch.where(timesteps == 0, nll, kl)
    return (mse + vb).mean()
