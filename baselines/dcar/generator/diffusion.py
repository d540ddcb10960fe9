"""The diffusion MLP head that predicts DC-AR's residual tokens, and its iDDPM sampler.

Why here and not from a library: the released checkpoint stores the MAR/HART
``SimpleMLPAdaLN`` under ``diffloss.net.*`` and samples it with improved-DDPM ancestral
steps on a respaced cosine schedule (the official ``create_diffusion(timestep_respacing=...)`` of
the MAR code base). We re-implement exactly that:

* :class:`SimpleMLPAdaLN` -- per-token MLP with adaLN conditioning on (timestep, transformer hidden state);
  outputs ``[eps | v]`` where ``v`` interpolates the log-variance (learned-range variance).
* :func:`cosine_betas`, :func:`space_timesteps`, :class:`RespacedSchedule` -- the 1000-step cosine
  schedule, the official respacing rule and the respaced coefficients. Coefficients are computed in
  float64 and applied in float32, as the official code does (this matters for 1e-5 parity).
* :class:`DiffusionHead` -- the ``diffloss`` module (holds ``net``) with :meth:`DiffusionHead.sample`.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import numpy as np
import torch
from torch import nn

# --------------------------------------------------------------------------- schedule


def cosine_betas(num_train_steps: int = 1000, max_beta: float = 0.999) -> np.ndarray:
    """Improved-DDPM cosine betas: beta_i = min(1 - abar((i+1)/T) / abar(i/T), max_beta), float64."""

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / num_train_steps) / alpha_bar(i / num_train_steps), max_beta)
             for i in range(num_train_steps)]
    return np.array(betas, dtype=np.float64)


def space_timesteps(num_train_steps: int, section_counts: str | int | list[int]) -> set[int]:
    """Which of the ``num_train_steps`` original steps a respaced sampler keeps (iDDPM rule).

    ``section_counts`` is e.g. ``"32"`` (one section, evenly rounded), ``"10,15,20"`` (sections of
    equal length, each with its own count) or ``"ddim50"`` (a fixed stride).
    """
    if isinstance(section_counts, int):
        section_counts = [section_counts]
    if isinstance(section_counts, str):
        if section_counts.startswith("ddim"):
            desired = int(section_counts[len("ddim"):])
            for stride in range(1, num_train_steps):
                if len(range(0, num_train_steps, stride)) == desired:
                    return set(range(0, num_train_steps, stride))
            raise ValueError(f"cannot create exactly {desired} steps with an integer stride from {num_train_steps}")
        try:
            section_counts = [int(x) for x in section_counts.split(",")]
        except ValueError:
            raise ValueError(f"bad timestep respacing {section_counts!r}: expected e.g. '32' or '10,20'") from None
    if not section_counts or any(c < 1 for c in section_counts):
        raise ValueError(f"timestep respacing counts must be positive integers, got {section_counts}")
    size_per = num_train_steps // len(section_counts)
    extra = num_train_steps % len(section_counts)
    start = 0
    steps: list[int] = []
    for i, count in enumerate(section_counts):
        size = size_per + (1 if i < extra else 0)
        if size < count:
            raise ValueError(f"cannot divide a section of {size} steps into {count} steps")
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        position = 0.0
        for _ in range(count):
            steps.append(start + round(position))
            position += stride
        start += size
    return set(steps)


class RespacedSchedule:
    """A respaced cosine schedule and the iDDPM coefficients derived from it (float64 numpy).

    ``timestep_map[i]`` is the original (0..999) step that respaced step ``i`` stands for; the
    network is always fed the original step.
    """

    def __init__(self, respacing: str | int, num_train_steps: int = 1000):
        base_betas = cosine_betas(num_train_steps)
        base_alphas_cumprod = np.cumprod(1.0 - base_betas)
        keep = space_timesteps(num_train_steps, str(respacing))
        last = 1.0
        betas, timestep_map = [], []
        for i, abar in enumerate(base_alphas_cumprod):
            if i in keep:
                betas.append(1 - abar / last)
                last = abar
                timestep_map.append(i)
        self.respacing = str(respacing)
        self.num_train_steps = num_train_steps
        self.timestep_map = np.array(timestep_map, dtype=np.int64)
        self.betas = np.array(betas, dtype=np.float64)
        alphas = 1.0 - self.betas
        self.alphas_cumprod = np.cumprod(alphas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1)
        self.posterior_variance = self.betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        # the first posterior variance is 0: clip the log by repeating the second one (iDDPM)
        if len(self.posterior_variance) > 1:
            self.posterior_log_variance_clipped = np.log(
                np.append(self.posterior_variance[1], self.posterior_variance[1:]))
        else:
            self.posterior_log_variance_clipped = np.log(np.maximum(self.posterior_variance, 1e-20))
        self.posterior_mean_coef1 = self.betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)
        self.log_betas = np.log(self.betas)

    def __len__(self) -> int:
        return len(self.betas)

    def coef(self, name: str, index: int, like: torch.Tensor) -> torch.Tensor:
        """Coefficient ``name`` at respaced step ``index`` as a float32 scalar tensor on ``like``'s device.

        The float64 table is rounded to float32 and copied to the device once per (name, device), so a
        sampling step on a GPU does no host-to-device copy (each one would synchronise with the host).
        """
        cache = self.__dict__.setdefault("_device_tables", {})
        key = (name, str(like.device))
        if key not in cache:
            cache[key] = torch.from_numpy(np.asarray(getattr(self, name), dtype=np.float64)).float().to(like.device)
        return cache[key][index]


@lru_cache(maxsize=16)
def respaced_schedule(respacing: str, num_train_steps: int = 1000) -> RespacedSchedule:
    """Cached :class:`RespacedSchedule` (built once per step count)."""
    return RespacedSchedule(respacing, num_train_steps)


# --------------------------------------------------------------------------- network


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal timestep features: ``[cos(t w_i) | sin(t w_i)]``, w_i = max_period^(-i/half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half).to(t.device)
    args = t[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class TimestepEmbedder(nn.Module):
    """256-d sinusoidal features -> Linear -> SiLU -> Linear (keys ``mlp.0``, ``mlp.2``)."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256):
        super().__init__()
        self.frequency_embedding_size = frequency_embedding_size
        self.mlp = nn.Sequential(nn.Linear(frequency_embedding_size, hidden_size), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.frequency_embedding_size).to(self.mlp[0].weight.dtype))


class AdaLNResBlock(nn.Module):
    """``x + gate * MLP(LN(x) * (1 + scale) + shift)`` with (shift, scale, gate) from the condition."""

    def __init__(self, channels: int):
        super().__init__()
        self.in_ln = nn.LayerNorm(channels, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(channels, channels), nn.SiLU(), nn.Linear(channels, channels))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(channels, 3 * channels))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.adaLN_modulation(y).chunk(3, dim=-1)
        return x + gate * self.mlp(modulate(self.in_ln(x), shift, scale))


class AdaLNFinalLayer(nn.Module):
    """Non-affine LN, adaLN shift/scale, Linear to ``2 * token_size`` (eps | variance interpolation)."""

    def __init__(self, channels: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(channels, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(channels, out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(channels, 2 * channels))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(y).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class SimpleMLPAdaLN(nn.Module):
    """The per-token denoiser: (noisy residual x, original timestep t, condition c) -> [eps | v]."""

    def __init__(self, in_channels: int, model_channels: int, cond_channels: int, num_res_blocks: int):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = 2 * in_channels  # learned-range variance
        self.time_embed = TimestepEmbedder(model_channels)
        self.cond_embed = nn.Linear(cond_channels, model_channels)
        self.input_proj = nn.Linear(in_channels, model_channels)
        self.res_blocks = nn.ModuleList(AdaLNResBlock(model_channels) for _ in range(num_res_blocks))
        self.final_layer = AdaLNFinalLayer(model_channels, self.out_channels)

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.input_proj(x)
        y = self.time_embed(t) + self.cond_embed(c)
        for block in self.res_blocks:
            h = block(h, y)
        return self.final_layer(h, y)

    def forward_with_cfg(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor, cfg_scale: float) -> torch.Tensor:
        """Guided output for a ``[cond; uncond]`` batch sharing the first half of ``x``.

        eps = eps_c * (1 + s) - s * eps_u (official convention; s = 4.5 by default); the variance
        channels are not guided (each half keeps its own).
        """
        half = x[: len(x) // 2]
        out = self.forward(torch.cat([half, half], dim=0), t, c)
        eps, rest = out[:, : self.in_channels], out[:, self.in_channels:]
        cond_eps, uncond_eps = torch.split(eps, len(eps) // 2, dim=0)
        guided = cond_eps * (1 + cfg_scale) - cfg_scale * uncond_eps
        return torch.cat([torch.cat([guided, guided], dim=0), rest], dim=1)


# --------------------------------------------------------------------------- sampling

NoiseFn = Callable[[tuple[int, ...]], torch.Tensor]


class DiffusionHead(nn.Module):
    """The ``diffloss`` module: holds the denoiser ``net`` and samples residual tokens with it.

    Sampling draws its Gaussian noise through ``noise_fn(shape)`` so that the caller decides
    where the randomness comes from (the global RNG in official order, per-item generators otherwise).
    """

    def __init__(self, token_size: int, cond_channels: int, width: int, depth: int, vae_scale: float,
                 num_train_steps: int = 1000):
        super().__init__()
        self.token_size = token_size
        self.vae_scale = float(vae_scale)
        self.num_train_steps = num_train_steps
        self.net = SimpleMLPAdaLN(token_size, width, cond_channels, depth)

    @torch.no_grad()
    def sample(self, z: torch.Tensor, *, cfg_scale: float, num_steps: int | str, noise_fn: NoiseFn,
               temperature: float = 1.0, progress: Callable | None = None) -> torch.Tensor:
        """Ancestral iDDPM sampling of one residual token per row of ``z``; returns ``x0 * vae_scale``.

        With guidance (``cfg_scale != 1``, as in the official ``DiffLoss.sample``) ``z`` is the
        ``[cond; uncond]`` stack and the initial noise has ``len(z) // 2`` rows, duplicated; each step
        draws fresh noise for all rows (also at t = 0, where it is multiplied by 0).
        """
        schedule = respaced_schedule(str(num_steps), self.num_train_steps)
        guided = cfg_scale != 1.0
        rows = z.shape[0] // 2 if guided else z.shape[0]
        noise = noise_fn((rows, self.token_size)).to(z.device, torch.float32)
        x = torch.cat([noise, noise], dim=0) if guided else noise
        timestep_map = torch.from_numpy(schedule.timestep_map).to(z.device)
        indices = range(len(schedule) - 1, -1, -1)
        for i in progress(indices) if progress else indices:
            t = timestep_map[i].expand(x.shape[0])
            if guided:
                out = self.net.forward_with_cfg(x.to(z.dtype), t, z, cfg_scale)
            else:
                out = self.net(x.to(z.dtype), t, z)
            out = out.float()
            eps, var_values = out[:, : self.token_size], out[:, self.token_size:]
            x = self._p_sample(schedule, i, x, eps, var_values, temperature, noise_fn)
        return x * self.vae_scale

    @staticmethod
    def _p_sample(schedule: RespacedSchedule, i: int, x: torch.Tensor, eps: torch.Tensor,
                  var_values: torch.Tensor, temperature: float, noise_fn: NoiseFn) -> torch.Tensor:
        """One iDDPM step: learned-range log-variance, x0 from eps clamped to [-1, 1], posterior mean."""
        min_log = schedule.coef("posterior_log_variance_clipped", i, x)
        max_log = schedule.coef("log_betas", i, x)
        frac = (var_values + 1) / 2
        log_variance = frac * max_log + (1 - frac) * min_log
        x0 = schedule.coef("sqrt_recip_alphas_cumprod", i, x) * x - schedule.coef("sqrt_recipm1_alphas_cumprod", i, x) * eps
        x0 = x0.clamp(-1, 1)
        mean = schedule.coef("posterior_mean_coef1", i, x) * x0 + schedule.coef("posterior_mean_coef2", i, x) * x
        noise = noise_fn(tuple(x.shape)).to(x.device, torch.float32)  # drawn at t = 0 too (official RNG order)
        if i == 0:
            # the official code multiplies the noise term by 0 here; returning the mean is the same value
            # and stays finite when a (random-weight) variance output overflows exp()
            return mean
        return mean + torch.exp(0.5 * log_variance) * noise * temperature
