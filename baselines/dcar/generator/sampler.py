"""DC-AR's hybrid sampler: MaskGIT-style unmasking of discrete ids, then residuals from the diffusion head.

Why every detail matters: the released images come from a specific loop (the official ``DCAR.generate``) --
annealed Gumbel temperature ``tau = 1.5 (1 - r)``, logits divided by ``0.5 + 0.8 (1 - r)``,
CFG ``cond + s (cond - uncond)`` with constant s = 4.5, confidence = tempered logit of the
sampled id + fresh Gumbel noise (not a probability), an arccos schedule whose re-mask count
comes from batch row 0, and residuals predicted from the hidden states of the *last* pass.

Random numbers come from a :class:`NoiseSource`:

* :class:`OfficialOrderNoise` consumes the default generator of the model's device in exactly the
  official order (``rand(2B)`` for the null-caption swap, ``(B, N, V)`` id noise, ``(B, N)``
  confidence noise per step; then ``randn(B N, C)`` and one ``randn(2 B N, C)`` per diffusion
  step), so ``torch.manual_seed(s)`` reproduces the official ``generate()`` bit for bit.
* :class:`PerItemNoise` gives every image its own seeded CPU generator and draws only what
  that image needs, so an image does not depend on batch size, batch composition or shard.
  In this mode the re-mask count is computed per row (the official row-0 rule would couple rows),
  and the ids are drawn by inverse CDF from softmax(logits / tau) -- the same distribution as the
  official Gumbel-max, with one random number per position instead of one per vocabulary entry.

Speed options (:class:`SamplingOptions`), each giving bit-identical ids to the default path at fp32
(``tests/baselines/dcar/generator/test_speed_options.py``):

* ``trim_caption`` (default on): the caption is cut to the longest valid length *in the batch*, rounded up
  to a multiple of :data:`TRIM_MULTIPLE` (64), before ``text_context``. Why the batch maximum and not
  per-row packing: every row still attends to exactly the same valid keys under the same key-padding mask
  (only positions that are padding in every row are dropped) and the batch stays one dense attention call.
  Why rounded up: the fused attention reduces over keys in 16-wide vectors, and its result for a row is
  bit-identical for *any* key count at least the row's valid length rounded up to 16 (measured on CPU at
  the released widths: lengths 3, 20, 64, 70 against 8...300 keys); below that the row's last valid keys
  fall into the scalar tail and round differently. With 64 every row gets at least that many keys whatever
  its batch-mates are, so its output does not depend on them and equals the untrimmed (300-key) output:
  batch-composition invariance is kept, bit for bit. T5 pads every caption to 300 tokens and an ordinary
  prompt has 10-30, so an ordinary batch attends to 64 keys instead of 300.
* ``static_shapes``: the number of masked positions before each step is known on the host in advance
  (every row starts fully masked and follows the same arccos schedule), so masked positions are
  selected with a fixed-size gather instead of a boolean index (no ``nonzero``), per-item noise is
  drawn for that known count (no ``.tolist()``) and the re-mask counts are precomputed (no ``.cpu()``):
  the step loop has no host-device synchronisation, which CUDA graphs / ``torch.compile`` need. A tie at
  the confidence cut-off (which would re-mask one extra token) is detected on the device and checked once
  after the loop; the batch is then redone on the default path, so the result never differs.
* ``packed_text`` with ``cache_text=False`` and ``masked_logits_only=False`` is the *official-style*
  loop (packed valid caption tokens, text K/V recomputed every step, logits at every position): the
  baseline against which the profile suite measures the two optimisations.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from .transformer import DCAR, TextContext

RNG_MODES = ("per_item", "official")


def gumbel(uniform: torch.Tensor) -> torch.Tensor:
    """``-log(-log(u))`` with both logs clamped at 1e-20 (MaskGIT convention)."""
    return -torch.log((-torch.log(uniform.clamp(min=1e-20))).clamp(min=1e-20))


def categorical_from_uniform(logits: torch.Tensor, tau: float, uniform: torch.Tensor) -> torch.Tensor:
    """Index i with probability softmax(logits / tau)_i per row, from one U[0,1) number per row (inverse CDF).

    The CDF is accumulated in float64 so that the rounding of 16384 summands does not bias the tail;
    ``tau == 0`` is the argmax (the limit of the tempered distribution).
    """
    if tau == 0:
        return logits.argmax(dim=-1)
    cdf = torch.softmax(logits.double() / tau, dim=-1).cumsum(dim=-1)
    target = uniform.double().reshape(-1, 1) * cdf[:, -1:]
    return torch.searchsorted(cdf, target, right=True).squeeze(-1).clamp_(max=logits.shape[-1] - 1)


# --------------------------------------------------------------------------- noise sources


class NoiseSource:
    """Where the sampler's random numbers come from."""

    per_row_schedule: bool = False

    def null_caption_draw(self, batch: int, device: torch.device) -> None:
        """The official code draws ``rand(2B)`` inside the null-caption swap (the values are unused)."""

    def choose_ids(self, logits: torch.Tensor, tau: float, is_mask: torch.Tensor,
                   counts: Sequence[int] | None = None) -> torch.Tensor:
        """Sample one id per masked position from softmax(logits / tau); logits (M, V), row-major positions.

        ``counts``: the number of masked positions per row when the caller knows it without reading the
        device (static-shape sampling); None reads it from ``is_mask``.
        """
        raise NotImplementedError

    def confidence_uniform(self, shape: tuple[int, int], device: torch.device) -> torch.Tensor:
        raise NotImplementedError

    def diffusion_noise(self, shape: tuple[int, ...], device: torch.device, tokens_per_image: int) -> torch.Tensor:
        """N(0,1) noise for the diffusion head: ``(k B N, C)`` rows, image-major within each of the k copies."""
        raise NotImplementedError


class OfficialOrderNoise(NoiseSource):
    """The device's global generator, consumed exactly as the official ``DCAR.generate``."""

    def __init__(self, batch: int, device: torch.device):
        self.batch = batch
        self.device = torch.device(device)

    def null_caption_draw(self, batch: int, device: torch.device) -> None:
        torch.rand(batch, device=self.device)

    def choose_ids(self, logits: torch.Tensor, tau: float, is_mask: torch.Tensor,
                   counts: Sequence[int] | None = None) -> torch.Tensor:
        """Gumbel-max over a full (B, N, V) uniform draw, as the official code (the unmasked rows are unused)."""
        b, n = is_mask.shape
        uniform = torch.rand(b, n, logits.shape[-1], device=self.device)[is_mask]
        return (logits + tau * gumbel(uniform)).argmax(dim=-1)

    def confidence_uniform(self, shape: tuple[int, int], device: torch.device) -> torch.Tensor:
        return torch.rand(shape, device=self.device)

    def diffusion_noise(self, shape: tuple[int, ...], device: torch.device, tokens_per_image: int) -> torch.Tensor:
        return torch.randn(shape, device=self.device)


class PerItemNoise(NoiseSource):
    """One seeded CPU generator per image; noise drawn on CPU and moved to the device."""

    per_row_schedule = True

    def __init__(self, seeds: Sequence[int], device: torch.device):
        self.seeds = [int(s) for s in seeds]
        self.generators = []
        for seed in self.seeds:
            g = torch.Generator(device="cpu")
            g.manual_seed(seed)
            self.generators.append(g)
        self.device = torch.device(device)

    def fresh(self) -> "PerItemNoise":
        """The same seeds from the start (to redo a batch on another path with the same random numbers)."""
        return PerItemNoise(self.seeds, self.device)

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        """CPU noise to the device; on CUDA through pinned memory without blocking the host."""
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def choose_ids(self, logits: torch.Tensor, tau: float, is_mask: torch.Tensor,
                   counts: Sequence[int] | None = None) -> torch.Tensor:
        """Inverse-CDF categorical sampling: one uniform per masked position instead of one per vocabulary entry.

        argmax(l + tau G) with Gumbel G is *distributed* exactly as Categorical(softmax(l / tau)); drawing it
        by inverse CDF needs V times fewer CPU random numbers (16384x: 4M per image and step otherwise),
        which is what keeps per-item noise cheap at batch 16 on a GPU.
        """
        if counts is None:
            counts = is_mask.sum(dim=1).tolist()
        uniform = torch.cat([torch.rand(int(m), generator=g) for g, m in zip(self.generators, counts)])
        return categorical_from_uniform(logits, tau, self._to_device(uniform))

    def confidence_uniform(self, shape: tuple[int, int], device: torch.device) -> torch.Tensor:
        b, n = shape
        return self._to_device(torch.stack([torch.rand(n, generator=g) for g in self.generators]))

    def diffusion_noise(self, shape: tuple[int, ...], device: torch.device, tokens_per_image: int) -> torch.Tensor:
        """Each image draws (tokens, C) per call; rows are image-major per copy ([cond; uncond] stacks),
        and the extra copies (the uncond half, whose samples are discarded) reuse the same values."""
        rows, channels = shape
        per_copy = len(self.generators) * tokens_per_image
        if rows % per_copy:
            raise ValueError(f"diffusion noise rows {rows} not a multiple of batch x tokens = {per_copy}")
        draws = torch.cat([torch.randn(tokens_per_image, channels, generator=g) for g in self.generators])
        return self._to_device(draws.repeat(rows // per_copy, 1))


# --------------------------------------------------------------------------- the loop


@dataclass
class SamplingOptions:
    """The knobs a sweep needs; defaults are the released ones (see ``config.SAMPLING_DEFAULTS_SOURCE``)."""

    num_steps: int = 12
    cfg_scale: float = 4.5  # official convention: cond + s * (cond - uncond)
    randomize_temperature: float = 1.5
    softmax_temperature_annealing: bool = True
    num_diffusion_steps: int | str = 32
    diffusion_temperature: float = 1.0
    predict_residuals: bool = True  # False: the discrete-only baseline (no diffusion-head call)
    cache_text: bool = True  # False recomputes caption embedding + text K/V every step (for benchmarking)
    masked_logits_only: bool = True  # False projects every position to logits, as the official code (benchmarking)
    trim_caption: bool = True  # cut the caption to the batch's longest valid length (exact; see module docstring)
    packed_text: bool = False  # official layout: packed valid tokens, one attention per row (benchmarking)
    static_shapes: bool = False  # no host-device sync in the step loop (fixed-size gathers; per-item noise only)

    def __post_init__(self) -> None:
        if int(self.num_steps) < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")
        self.num_steps = int(self.num_steps)
        if not math.isfinite(float(self.cfg_scale)):
            raise ValueError(f"cfg_scale must be finite, got {self.cfg_scale}")
        if float(self.randomize_temperature) < 0:
            raise ValueError(f"randomize_temperature must be >= 0, got {self.randomize_temperature}")
        steps = str(self.num_diffusion_steps)
        if not (steps.isdigit() or steps.startswith("ddim") or "," in steps) or steps in ("0",):
            raise ValueError(f"num_diffusion_steps must be a positive int (or an iDDPM respacing string), got {steps!r}")


@dataclass
class SampleOutput:
    ids: torch.Tensor  # (B, N) long
    residual: torch.Tensor | None  # (B, N, token_size) float32, None when predict_residuals=False
    info: dict = field(default_factory=dict)


#: trimmed caption lengths are multiples of this (see the module docstring: it keeps rows batch-independent)
TRIM_MULTIPLE = 64


def trim_caption(text_hidden: torch.Tensor, text_mask: torch.Tensor,
                 multiple: int = TRIM_MULTIPLE) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop trailing caption positions that are padding in every row, keeping a multiple of ``multiple``.

    One host read, before the step loop. Returns views of the inputs (nothing is copied).
    """
    valid = text_mask.bool().any(dim=0).nonzero()
    last = int(valid.max()) + 1 if valid.numel() else text_mask.shape[1]
    length = min(text_mask.shape[1], -(-last // multiple) * multiple)
    return text_hidden[:, :length], text_mask[:, :length]


def static_mask_counts(seq_len: int, num_steps: int) -> list[int]:
    """Masked positions per row before each step (and after the last re-masking), from the schedule alone.

    Every row starts with all ``seq_len`` positions masked and re-masks exactly :func:`remask_count` of them
    (barring an exact tie at the cut-off, which the static path checks), so the counts are the same for every
    row and known without reading the device.
    """
    counts = [seq_len]
    for step in range(num_steps - 1):  # remask_count's arithmetic on host numbers (its values are small integers)
        k = int(np.floor(seq_len * (np.arccos((step + 1) / num_steps) / (math.pi * 0.5))))
        counts.append(max(1, min(counts[-1] - 1, k)))
    return counts


def remask_count(step_ratio: float, seq_len: int, masked_per_row: torch.Tensor, per_row: bool) -> torch.Tensor:
    """How many of the tokens must stay masked after this step: arccos schedule, clamped to [1, #masked - 1].

    Official rule: ``k = clamp(floor(N arccos(r) / (pi/2)), 1, #masked(row 0) - 1)`` (float32), shared by all
    rows. ``per_row`` uses each row's own masked count instead. Returns (B,) long.
    """
    k = torch.tensor([np.floor(seq_len * (np.arccos(step_ratio) / (math.pi * 0.5)))], dtype=torch.float32)
    counts = masked_per_row.to(torch.float32).cpu()
    k = torch.maximum(torch.tensor([1.0]), torch.minimum(counts - 1, k))
    if not per_row:
        k = k[:1].expand_as(counts)
    return k.long()


@torch.no_grad()
def sample(model: DCAR, text_hidden: torch.Tensor, text_mask: torch.Tensor, options: SamplingOptions,
           noise: NoiseSource, *, autocast_dtype: torch.dtype | None = None,
           progress: Callable | None = None) -> SampleOutput:
    """Generate token ids (and residuals) for a batch of encoded captions.

    ``text_hidden`` (B, L, context_dim) and ``text_mask`` (B, L) bool come from the text encoder.
    """
    if options.static_shapes:
        if not isinstance(noise, PerItemNoise):
            raise ValueError("static_shapes needs per-item noise (rng_mode='per_item'): the official mode's "
                             "global stream cannot be replayed if the batch has to be redone")
        out = _sample(model, text_hidden, text_mask, options, noise, autocast_dtype, progress)
        if not out.info.get("static_tie"):
            return out
        # an exact confidence tie re-masked a different number of tokens than the schedule: redo on the default path
        options = dataclasses.replace(options, static_shapes=False)
        noise = noise.fresh()
        out = _sample(model, text_hidden, text_mask, options, noise, autocast_dtype, progress)
        out.info["static_fallback"] = True
        return out
    return _sample(model, text_hidden, text_mask, options, noise, autocast_dtype, progress)


def _sample(model: DCAR, text_hidden: torch.Tensor, text_mask: torch.Tensor, options: SamplingOptions,
            noise: NoiseSource, autocast_dtype: torch.dtype | None, progress: Callable | None) -> SampleOutput:
    cfg = model.config
    device = model.x_embedder.weight.device
    b = text_hidden.shape[0]
    n, mask_id = cfg.image_seq_len, cfg.mask_token_id
    text_hidden = text_hidden.to(device)
    text_mask = text_mask.to(device).bool()
    if options.trim_caption and not options.packed_text:
        text_hidden, text_mask = trim_caption(text_hidden, text_mask)
    static = options.static_shapes
    if static:
        counts = static_mask_counts(n, options.num_steps)
        keeps = [torch.full((b,), k, dtype=torch.long, device=device) for k in counts[1:] + [1]]
        tie = torch.zeros((), dtype=torch.bool, device=device)
    both_hidden = torch.cat([text_hidden, text_hidden], dim=0)
    both_mask = torch.cat([text_mask, text_mask], dim=0)
    drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(device)

    def autocast():
        if autocast_dtype is None or device.type == "cpu" and autocast_dtype == torch.float32:
            return torch.autocast(device_type=device.type, enabled=False)
        return torch.autocast(device_type=device.type, dtype=autocast_dtype)

    def make_context() -> TextContext:
        return model.text_context(both_hidden, both_mask, drop, packed=options.packed_text)

    with autocast():
        context = make_context() if options.cache_text else None
    ids = torch.full((b, n), mask_id, dtype=torch.long, device=device)
    hidden = None
    steps = range(options.num_steps)
    for step in progress(steps) if progress else steps:
        # a compiled reduce-overhead (CUDA graph) forward may reuse its output buffers from here on; a no-op otherwise
        torch.compiler.cudagraph_mark_step_begin()
        ratio = (step + 1) / options.num_steps
        tau = options.randomize_temperature * (1.0 - ratio)
        is_mask = ids == mask_id
        noise.null_caption_draw(2 * b, device)
        last = step == options.num_steps - 1
        with autocast():
            ctx = context if context is not None else make_context()
            if static:
                # the masked positions in ascending order, a fixed count per step: a gather, not a boolean index
                m_row = counts[step]
                tie = tie | (is_mask.sum(dim=1) != m_row).any()
                order = torch.argsort((~is_mask).to(torch.uint8), dim=1, stable=True)[:, :m_row]
                hidden = model.forward_hidden(torch.cat([ids, ids]), ctx)
                both_order = torch.cat([order, order])
                selected = hidden.gather(1, both_order[..., None].expand(-1, -1, hidden.shape[-1]))
                logits_both = model.final_layer(selected.reshape(-1, hidden.shape[-1]))
            elif options.masked_logits_only:
                logits_both, hidden = model.forward_tokens(torch.cat([ids, ids]), ctx,
                                                           logits_at=torch.cat([is_mask, is_mask]))
            else:
                logits_full, hidden = model.forward_tokens(torch.cat([ids, ids]), ctx)
                logits_both = logits_full[torch.cat([is_mask, is_mask])]
        logits_both = logits_both.float()
        m = logits_both.shape[0] // 2
        cond, uncond = logits_both[:m], logits_both[m:]
        logits = cond + (cond - uncond) * options.cfg_scale
        if options.softmax_temperature_annealing:
            logits = logits / (0.5 + 0.8 * (1 - ratio))
        if static:
            chosen = noise.choose_ids(logits, tau, is_mask, counts=[m_row] * b)
            chosen_logit = logits.gather(-1, chosen[:, None]).squeeze(-1)
            candidates = ids.scatter(1, order, chosen.view(b, m_row))
            score = torch.full((b, n), float("inf"), device=device).scatter(1, order, chosen_logit.view(b, m_row))
            keep_masked = keeps[step]
        else:
            chosen = noise.choose_ids(logits, tau, is_mask)
            chosen_logit = logits.gather(-1, chosen[:, None]).squeeze(-1)
            candidates = ids.clone()
            candidates[is_mask] = chosen
            score = torch.full((b, n), float("inf"), device=device)
            score[is_mask] = chosen_logit
            keep_masked = remask_count(ratio, n, is_mask.sum(dim=1), noise.per_row_schedule).to(device)
        confidence = score + tau * gumbel(noise.confidence_uniform((b, n), device))
        sorted_conf = torch.sort(confidence, dim=-1).values
        cut_off = sorted_conf.gather(-1, (keep_masked - 1)[:, None])
        remask = confidence <= cut_off
        ids = candidates if last else torch.where(remask, torch.full_like(candidates, mask_id), candidates)

    residual = None
    if options.predict_residuals:
        z = hidden.reshape(2 * b * n, -1).clone()  # owned: a CUDA-graph output buffer may be reused by the head
        with autocast():
            sampled = model.diffloss.sample(
                z, cfg_scale=options.cfg_scale, num_steps=options.num_diffusion_steps,
                noise_fn=lambda shape: noise.diffusion_noise(shape, device, n),
                temperature=options.diffusion_temperature)
        residual = sampled[: b * n].float().reshape(b, n, cfg.token_size)
    info = {"text_tokens": int(text_mask.shape[1])}
    if static:
        info["static_tie"] = bool(tie)  # the one host read of the static path, after the loop
    return SampleOutput(ids=ids, residual=residual, info=info)
