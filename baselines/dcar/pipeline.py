"""DC-AR text -> image: prompts -> T5 -> hybrid sampler -> DC-HT decode (with residuals) -> images.

Why a pipeline object separate from the adapter: the adapter owns resource lookup and the
harness contract; the pipeline is the plain composition of three models that a script or a
benchmark can also build directly (e.g. with random weights).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from baselines.common import nonfinite_rows, padded_rows
from harness.api import DataError

from .generator.sampler import RNG_MODES, OfficialOrderNoise, PerItemNoise, SamplingOptions, sample
from .generator.text_encoder import T5TextEncoder, check_prompts
from .generator.transformer import DCAR

#: ``compile`` option values: torch.compile modes ("reduce-overhead" = CUDA graphs on a GPU)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: ``sdpa_backend`` option values -> torch.nn.attention.SDPBackend names (auto: PyTorch's own choice)
SDPA_BACKENDS = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "math": "MATH", "cudnn": "CUDNN_ATTENTION"}

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def parse_dtype(value: str | torch.dtype | None) -> torch.dtype:
    if value is None:
        return torch.float32
    if isinstance(value, torch.dtype):
        return value
    try:
        return DTYPES[str(value).lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {value!r}; use one of {sorted(DTYPES)}") from None


class _Clock:
    """Wall-clock laps (synchronising CUDA first) for the timing breakdown in the result info."""

    def __init__(self, device: torch.device):
        self.device = device
        self.laps: dict[str, float] = {}
        self._last = self._now()

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def lap(self, name: str) -> None:
        now = self._now()
        self.laps[name] = now - self._last
        self._last = now


@dataclass
class GenerationResult:
    images: torch.Tensor  # (B, 3, H, W) float32 CPU in [0, 1]
    ids: torch.Tensor  # (B, N) long
    residual: torch.Tensor | None  # (B, N, C) or None (discrete-only)
    info: dict[str, Any] = field(default_factory=dict)


class DCARPipeline:
    """The three models plus the settings that are fixed for a run (device, autocast dtype).

    ``decoder`` is any object with ``decode_tokens(ids, residual) -> (B, 3, H, W) in [-1, 1]``
    (the DC-HT tokenizer). ``autocast_dtype`` (bf16/fp16) applies to the generator on CUDA only;
    the T5 encoder and DC-HT run in their own dtype (fp32 by default), as in the official code.
    """

    def __init__(self, generator: DCAR, decoder: Any, text_encoder: T5TextEncoder, *,
                 device: str | torch.device = "cpu", autocast_dtype: str | torch.dtype | None = None,
                 compile_mode: str | None = None, compile_backend: str = "inductor", sdpa_backend: str = "auto"):
        self.device = torch.device(device)
        if compile_mode is not None and compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile must be null or one of {COMPILE_MODES}, got {compile_mode!r}")
        if sdpa_backend != "auto" and sdpa_backend not in SDPA_BACKENDS:
            raise ValueError(f"sdpa_backend must be 'auto' or one of {sorted(SDPA_BACKENDS)}, got {sdpa_backend!r}")
        self.compile_mode, self.compile_backend, self.sdpa_backend = compile_mode, compile_backend, sdpa_backend
        self.generator = generator.to(self.device).eval()
        self.decoder = decoder.to(self.device).eval()
        self.text_encoder = text_encoder.to(self.device).eval()
        dtype = parse_dtype(autocast_dtype)
        if dtype != torch.float32 and self.device.type != "cuda":
            raise ValueError(f"autocast dtype {dtype} is only supported on CUDA (device is {self.device}); "
                             "use float32 on CPU")
        self.autocast_dtype = dtype
        if text_encoder.hidden_size != generator.config.context_dim:
            raise ValueError(f"text encoder width {text_encoder.hidden_size} != generator context_dim "
                             f"{generator.config.context_dim}")
        if text_encoder.max_length > generator.config.text_token_length:
            raise ValueError(f"text encoder max_length {text_encoder.max_length} exceeds the generator's "
                             f"null caption length {generator.config.text_token_length}")
        if compile_mode is not None:
            self._compile(compile_mode, compile_backend)

    def _compile(self, mode: str, backend: str) -> None:
        """``torch.compile`` the two per-step hot spots: the transformer blocks and the diffusion-head MLP.

        Both have static shapes inside the loops (the blocks see (2B, N) ids every step; the masked-position
        selection stays outside), so one graph each is compiled per batch shape. ``reduce-overhead`` records
        them as CUDA graphs on a GPU, which removes the launch cost of 28 blocks x 12 steps at batch 1.
        Instance attributes shadow the methods, so the module tree and state dict are unchanged.
        """
        kwargs: dict[str, Any] = {"backend": backend, "dynamic": False}
        if backend == "inductor":
            kwargs["mode"] = mode
        self.generator.forward_hidden = torch.compile(self.generator.forward_hidden, **kwargs)
        net = self.generator.diffloss.net
        net.forward = torch.compile(net.forward, **kwargs)

    def _sdpa(self):
        """The SDPA backend context for the generator (``auto``: PyTorch's choice, i.e. no restriction)."""
        import contextlib

        if self.sdpa_backend == "auto":
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel([getattr(SDPBackend, SDPA_BACKENDS[self.sdpa_backend])])

    @torch.no_grad()
    def __call__(self, prompts: Sequence[str], seeds: Sequence[int] | None = None, *,
                 options: SamplingOptions | None = None, rng_mode: str = "per_item",
                 progress: Callable | None = None, pad_to: int | None = None) -> GenerationResult:
        """Generate one image per prompt.

        ``rng_mode="per_item"`` needs ``seeds`` (one per prompt); ``"official"`` consumes the global RNG
        of the device (seed it with ``torch.manual_seed`` first) and ignores ``seeds``.

        ``pad_to`` (per_item only): compute at least this many rows, the extra ones copies of the last
        prompt and seed, and return only the real ones. Every tensor of the computation (T5, transformer,
        diffusion head, DC-HT decoder) then has the same shape as in a full batch of ``pad_to``, so an
        image is bit-identical whether it was computed in a full batch, in a short last batch or alone
        after a resume. Each row's values depend only on its own prompt and seed (per-item noise, per-row
        re-mask counts, no op that reduces across rows), so the copies change nothing but the shape. The
        official mode draws its noise for the whole batch from one stream, so padding would change the
        real rows' noise: it is refused there.

        NaN/Inf in the decoded images (before clamping, which would hide an Inf) raise
        :class:`harness.api.DataError` naming the prompt index, prompt and seed.
        """
        prompts = check_prompts(prompts)
        options = options or SamplingOptions()
        if rng_mode not in RNG_MODES:
            raise ValueError(f"rng_mode must be one of {RNG_MODES}, got {rng_mode!r}")
        n = len(prompts)
        if rng_mode == "per_item":
            if seeds is None:
                raise ValueError("rng_mode='per_item' needs one seed per prompt")
            seeds = [int(s) for s in seeds]
            if len(seeds) != n:
                raise ValueError(f"got {n} prompts but {len(seeds)} seeds")
            noise: PerItemNoise | OfficialOrderNoise = PerItemNoise(padded_rows(seeds, pad_to), self.device)
        else:
            if pad_to is not None:
                raise ValueError("pad_to needs rng_mode='per_item' (the official mode's noise depends on the batch)")
            noise = OfficialOrderNoise(n, self.device)
        clock = _Clock(self.device)
        text = self.text_encoder.encode(prompts, pad_to=pad_to)
        clock.lap("text_encoder_s")
        with self._sdpa():
            out = sample(self.generator, text.hidden, text.mask, options, noise,
                         autocast_dtype=self.autocast_dtype if self.autocast_dtype != torch.float32 else None,
                         progress=progress)
        clock.lap("sampler_s")
        residual = out.residual if options.predict_residuals else None
        decoded = self.decoder.decode_tokens(out.ids, residual)[:n].float()
        bad = nonfinite_rows(decoded)
        if bad:
            def who(i: int) -> str:
                seed = f", seed {seeds[i]}" if rng_mode == "per_item" else ""
                return f"prompt index {i} ({prompts[i][:80]!r}{seed})"

            raise DataError(f"DC-AR produced NaN/Inf pixels for {len(bad)} of {n} prompt(s): "
                            + "; ".join(who(i) for i in bad[:5]) + ("; ..." if len(bad) > 5 else "")
                            + ". Check the weights; with dtype bfloat16/float16, try dtype=float32")
        images = (decoded * 0.5 + 0.5).clamp(0, 1).cpu()
        clock.lap("decoder_s")
        info = {"truncated_prompts": text.truncated, "num_text_tokens": text.num_tokens, "timings": clock.laps,
                "computed_rows": int(out.ids.shape[0]), "sampler": dict(out.info)}
        return GenerationResult(images=images, ids=out.ids[:n].cpu(),
                                residual=None if residual is None else residual[:n].cpu(), info=info)
