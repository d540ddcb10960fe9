"""The harness adapters for DC-AR: ``dc-ar`` (hybrid, the paper's model) and ``dc-ar-discrete-only``.

Why two adapters over one pipeline: Table 4 of the paper compares the hybrid model with a
discrete-only baseline; here that baseline is the same weights with the residual tokens left
out (ids decoded by DC-HT without residuals, and the diffusion head never called).

Resources (looked up by :mod:`harness.resources`: explicit option, env var, HF cache, default path):

* generator weights ``pytorch_model.bin`` -- option ``weights``, ``$DCAR_GENERATOR_PATH``, HF ``mit-han-lab/dc-ar-512``
* DC-HT tokenizer -- option ``tokenizer_weights``, ``$DCAR_DCHT_PATH``, HF ``mit-han-lab/dc-ht``
* T5-base -- option ``text_encoder``, ``$DCAR_T5_PATH``, HF ``google-t5/t5-base``

``random_init_seed=<int>`` builds random weights for every component not given explicitly
(``info().real_weights`` is then False). ``config="tiny"`` is a seconds-on-CPU model for smoke
runs and tests (tiny transformer, ``DCHTConfig.tiny()``, tiny random T5 with an offline tokenizer);
it has no released weights, so it is random (seed 0) unless weights are given. ``config="mini"`` loads the
mini-trained default models shipped in ``baselines/dcar/mini_weights`` (128 px, trained on procedural captioned
shapes by ``python -m dcar_training mini-defaults``; sha256-checked): the main job's defaults, recognisable
pictures that follow captions of that procedural world, and NOT the released weights (``real_weights`` False,
``weights_kind: mini-trained`` in the info).

Default number of diffusion steps: **32**, the released config's value (the paper's appendix
says 20). We follow the released config because the released weights were published with it and
the official sampling code uses it; pass ``num_diffusion_steps=20`` to follow the paper.

Batch shape and resume: float32 GEMMs round differently at different batch sizes, which moves a few
decoded pixels by one grey level between an image made in a batch of 4 and the same image made alone.
The runner tells the adapter its batch size (:meth:`set_batch_size`); from then on every shorter
``generate()`` call (the last batch, the items left after a kill) is padded up to it with copies of
its last prompt and seed (:class:`baselines.common.BatchPadding`, ``DCARPipeline(pad_to=...)``), so an
item's image is bit-identical whatever else was left in its batch, at batched speed. Across different
batch sizes only the token ids are identical, unless ``batch_invariant=True`` (every item alone, no
padding needed, slower). ``rng_mode="official"`` is never padded (its noise stream depends on the batch).

Speed options (constructor; recorded in ``info().extra["speed_options"]``; ids bit-identical to the default
path at fp32, see ``baselines.dcar.generator.sampler``): ``trim_caption`` (default true), ``static_shapes``
(no host-device sync in the step loop), ``compile`` (a ``torch.compile`` mode for the transformer blocks
and the diffusion-head MLP; ``reduce-overhead`` = CUDA graphs), ``compile_backend``, ``sdpa_backend``.
``share_weights=True`` lets adapters of the same weights and settings in one process share one pipeline (the
profile suite interleaves DC-AR's variants with one copy of the modules).
``sampler="official"`` is the official-style loop (packed valid caption tokens, text K/V recomputed every
step, logits at every position), the profile suite's baseline for the optimised sampler.
"""
from __future__ import annotations

import dataclasses
import weakref
from pathlib import Path
from typing import Any, ClassVar, Sequence

from baselines.common import BatchPadding, is_random_init, random_init_tag, seeded
from harness.api import AdapterInfo, MissingResourceError, Requirement, TextToImage
from harness.io import file_sha256

from .checkpoint import find_weights_file
from .mini import MINI_ROOT, is_mini_path, sums_digest, weights_kind
from .mini import WEIGHTS_NOTE as MINI_NOTE
from .tokenizer_adapter import DCHT_WEIGHTS

GENERATOR_REQUIREMENT = Requirement(
    name="DC-AR generator weights",
    description=("the DC-AR 512 px generator checkpoint pytorch_model.bin (a raw torch.save'd state_dict); "
                 "`git clone https://huggingface.co/mit-han-lab/dc-ar-512` (NVIDIA non-commercial license)"),
    env_var="DCAR_GENERATOR_PATH",
    config_key="weights",
    hf_repo="mit-han-lab/dc-ar-512",
    default_paths=("pretrained_models/dc-ar-512",),
    must_contain=("pytorch_model.bin", "model.safetensors"),
)
# the same files and lookup as the dc-ht adapter, under this adapter's option name
DCHT_REQUIREMENT = dataclasses.replace(DCHT_WEIGHTS, config_key="tokenizer_weights")
T5_REQUIREMENT = Requirement(
    name="T5-base text encoder",
    description=("google-t5/t5-base (config.json, model.safetensors or pytorch_model.bin, spiece.model or "
                 "tokenizer.json); `huggingface-cli download google-t5/t5-base` on a machine with internet"),
    env_var="DCAR_T5_PATH",
    config_key="text_encoder",
    hf_repo="google-t5/t5-base",
    must_contain=("model.safetensors", "pytorch_model.bin"),
)

#: generate() options and their defaults for the released config (see baselines.dcar.generator.config); an
#: adapter takes num_steps / cfg_scale / randomize_temperature / num_diffusion_steps from the config it loads
GENERATE_DEFAULTS: dict[str, Any] = {
    "num_steps": 12,
    "cfg_scale": 4.5,
    "randomize_temperature": 1.5,
    "num_diffusion_steps": 32,
    "rng_mode": "per_item",
    "softmax_temperature_annealing": True,
    "diffusion_temperature": 1.0,
}
CONFIGS = ("full", "tiny", "mini")
#: T5 tokens per caption for each config (released: 300; the mini generator was trained with 64)
MAX_TEXT_TOKENS = {"full": 300, "tiny": 32, "mini": 64}
#: live pipelines by (weights, settings): adapters of the same model share one (see DCARAdapter._shared_build)
_PIPELINES: "weakref.WeakValueDictionary[tuple, Any]" = weakref.WeakValueDictionary()
#: sampler variants: optimised (cached text K/V, logits at masked positions) | official-style loop
SAMPLERS = {
    "optimised": {"cache_text": True, "masked_logits_only": True, "packed_text": False},
    "official": {"cache_text": False, "masked_logits_only": False, "packed_text": True},
}


class DCARAdapter(BatchPadding, TextToImage):
    """DC-AR text-to-image (hybrid: discrete ids + residual tokens from the diffusion head)."""

    name: ClassVar[str] = "dc-ar"
    predict_residuals: ClassVar[bool] = True

    def __init__(self, weights: str | None = None, tokenizer_weights: str | None = None,
                 text_encoder: str | None = None, config: str = "full", random_init_seed: int | None = None,
                 device: str = "auto", dtype: str = "float32", show_progress: bool = False,
                 cache_dir: str | None = None, resolution: int | None = None, batch_invariant: bool = False,
                 sampler: str = "optimised", trim_caption: bool = True, static_shapes: bool = False,
                 compile: str | None = None, compile_backend: str = "inductor", sdpa_backend: str = "auto",
                 share_weights: bool = False, **defaults: Any):
        """``batch_invariant=True`` runs each item alone, so an image is bit-identical whatever batch it came in.

        By default items are batched: token ids are identical across batch sizes and shards (per-item RNG),
        but float rounding in batched matmuls moves a few decoded pixels by one grey level between batch
        sizes. Within one run the batch size is fixed and shorter calls are padded to it (see the module
        docstring), so a resume gives the same PNG bytes; a *different* ``batch_size`` gives the same ids but
        not always the same PNG bytes, unless this option is on (it costs the batching speed-up).
        """
        import torch

        if config not in CONFIGS:
            raise ValueError(f"config must be one of {CONFIGS}, got {config!r}")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, got {sampler!r}")
        if compile in ("none", "null", ""):
            compile = None
        self.speed_options = {"sampler": sampler, "trim_caption": bool(trim_caption),
                              "static_shapes": bool(static_shapes), "compile": compile,
                              "compile_backend": compile_backend, "sdpa_backend": sdpa_backend}
        unknown = set(defaults) - set(GENERATE_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown {self.name} option(s) {sorted(unknown)}; known: {sorted(GENERATE_DEFAULTS)}")
        if config == "tiny" and random_init_seed is None and not any((weights, tokenizer_weights, text_encoder)):
            random_init_seed = 0  # there are no released tiny weights
        if config == "mini" and random_init_seed is not None:
            raise ValueError("config='mini' loads the shipped mini-trained weights; random_init_seed does not apply. "
                             "Fix: drop random_init_seed, or use config='tiny' for random weights")
        self.config_name = config
        self.random_init_seed = random_init_seed
        self._check_options({**GENERATE_DEFAULTS, **defaults})
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.show_progress = show_progress
        self.batch_invariant = bool(batch_invariant)
        self.cache_dir = cache_dir
        self.truncated_prompts = 0
        self._weights_info: dict[str, str] = {}
        self._hashes: dict[str, str] = {}
        self._paths: dict[str, Path] = {}
        self._locate_all(weights, tokenizer_weights, text_encoder)
        self.share_weights = bool(share_weights)
        self.pipeline = self._shared_build(dtype) if self.share_weights else self._build(dtype)
        if resolution is not None and int(resolution) != self.resolution:
            raise ValueError(f"{self.name} ({config} config) generates {self.resolution}x{self.resolution} images only; "
                             f"got resolution={resolution} (leave it unset, or resize in the suite)")
        # sampling defaults follow the loaded config (= GENERATE_DEFAULTS for the released one), then overrides
        gen_cfg = self.pipeline.generator.config
        if gen_cfg.guidance_decay != "constant":
            raise ValueError(f"guidance_decay={gen_cfg.guidance_decay!r} is not supported; the released config "
                             "and demo use 'constant'")
        self.defaults = {**GENERATE_DEFAULTS, "num_steps": gen_cfg.num_steps, "cfg_scale": gen_cfg.guidance_scale,
                         "randomize_temperature": gen_cfg.randomize_temperature,
                         "num_diffusion_steps": gen_cfg.default_num_diffusion_steps, **defaults}

    # ------------------------------------------------------------------ resources

    @classmethod
    def requirements(cls) -> list[Requirement]:
        return [GENERATOR_REQUIREMENT, DCHT_REQUIREMENT, T5_REQUIREMENT]

    def _locate_all(self, weights: str | None, tokenizer_weights: str | None, text_encoder: str | None) -> None:
        """Find every needed file; one MissingResourceError lists all that are missing."""
        from harness.resources import locate

        errors = []
        for key, req, explicit in (("generator", GENERATOR_REQUIREMENT, weights),
                                   ("dcht", DCHT_REQUIREMENT, tokenizer_weights),
                                   ("t5", T5_REQUIREMENT, text_encoder)):
            if explicit is None and self.random_init_seed is not None:
                continue  # random weights for this component
            if explicit is None and self.config_name == "mini":
                from .mini import mini_component

                try:
                    self._paths[key] = mini_component(key)
                except MissingResourceError as exc:
                    raise MissingResourceError(str(exc)) from None  # one message: the shipped set is damaged
                continue
            try:
                self._paths[key] = locate(req, explicit)
            except MissingResourceError as exc:
                errors.append(str(exc))
        if errors:
            hint = ("\n(For a run without the released weights, pass random_init_seed=<int>: results are then "
                    "NOT the paper's metric.)")
            raise MissingResourceError("\n\n".join(errors) + hint)

    def _text_tokens(self) -> int:
        """T5 tokens per caption: the generator config's ``text_token_length`` for a mini-format checkpoint (its
        caption embedding is trained for that many), else the config preset's (released 300, tiny 32)."""
        if self.config_name == "mini" and "generator" in self._paths:
            from .generator.config import resolve_config

            return int(resolve_config(self._paths["generator"], None).text_token_length)
        return MAX_TEXT_TOKENS[self.config_name]

    def _shared_build(self, dtype: str):
        """``share_weights=True``: the pipeline of any live sharing adapter of this process with the same weights
        and settings (else a new one).

        Why: the profile suite holds DC-AR's variants (optimised and official-style sampler, discrete-only)
        at once to interleave them; they differ only in per-call sampling options, so one copy of the
        5 GB of full-size modules serves all of them. Held weakly: it is freed when the last adapter closes.
        """
        key = (self.config_name, self.random_init_seed, tuple(sorted((k, str(v)) for k, v in self._paths.items())),
               str(self.device), str(dtype), self.cache_dir, self.speed_options["compile"],
               self.speed_options["compile_backend"], self.speed_options["sdpa_backend"])
        pipe = _PIPELINES.get(key)
        if pipe is None:
            pipe = self._build(dtype)
            pipe.adapter_facts = (self.resolution, dict(self._weights_info))
            _PIPELINES[key] = pipe
        else:
            self.resolution, weights_info = pipe.adapter_facts
            self._weights_info.update(weights_info)
        return pipe

    def _build(self, dtype: str):
        import torch

        from baselines.dcar.tokenizer import DCHT, DCHTConfig

        from .generator.config import DCARConfig
        from .generator.text_encoder import T5TextEncoder, random_t5_base
        from .generator.transformer import DCAR
        from .pipeline import DCARPipeline

        seed = self.random_init_seed
        tiny = self.config_name == "tiny"
        # text encoder
        if "t5" in self._paths:
            try:
                t5 = T5TextEncoder.from_pretrained(self._paths["t5"], max_length=self._text_tokens())
            except FileNotFoundError as exc:
                raise MissingResourceError(f"{T5_REQUIREMENT.name} is incomplete: {exc}\n"
                                           f"What it is: {T5_REQUIREMENT.description}") from exc
            self._weights_info["t5"] = str(self._paths["t5"])
        elif tiny:
            t5 = T5TextEncoder.tiny(seed=seed, cache_dir=self.cache_dir)
            self._weights_info["t5"] = random_init_tag(seed)
        else:
            t5 = random_t5_base(seed=seed, cache_dir=self.cache_dir)
            self._weights_info["t5"] = random_init_tag(seed)
        # DC-HT
        if "dcht" in self._paths:
            # tiny: the tiny topology; full and mini: the config.json beside the weights (else the released one)
            dcht = DCHT.from_pretrained(self._paths["dcht"], config=DCHTConfig.tiny() if tiny else None)
            self._weights_info["dcht"] = str(self._paths["dcht"])
        else:
            with seeded(seed + 1):  # +1: not the same stream as the T5 built from `seed`
                dcht = DCHT(DCHTConfig.tiny() if tiny else DCHTConfig()).eval()
            self._weights_info["dcht"] = random_init_tag(seed)
        # generator
        gen_config = (DCARConfig.tiny(codebook_size=dcht.config.codebook_size, context_dim=t5.hidden_size)
                      if tiny else None)
        if "generator" in self._paths:
            generator = DCAR.from_pretrained(self._paths["generator"], gen_config)
            self._weights_info["generator"] = str(self._paths["generator"])
        else:
            with torch.device("meta"):
                generator = DCAR(gen_config or DCARConfig.full())
            generator = generator.to_empty(device="cpu")
            generator.reset_pos_embed()
            generator.init_random(seed)  # its own seeded generator, independent of the global RNG
            self._weights_info["generator"] = random_init_tag(seed)
        if generator.config.token_size != dcht.config.latent_channels:
            raise ValueError(f"generator token_size {generator.config.token_size} != DC-HT latent channels "
                             f"{dcht.config.latent_channels}")
        if generator.config.codebook_size != dcht.config.codebook_size:
            raise ValueError(f"generator codebook {generator.config.codebook_size} != DC-HT codebook "
                             f"{dcht.config.codebook_size}")
        self.resolution = generator.config.grid_size * dcht.spatial_compression
        so = self.speed_options
        return DCARPipeline(generator, dcht, t5, device=self.device, autocast_dtype=dtype,
                            compile_mode=so["compile"], compile_backend=so["compile_backend"],
                            sdpa_backend=so["sdpa_backend"])

    # ------------------------------------------------------------------ contract

    @staticmethod
    def _check_options(options: dict[str, Any]) -> None:
        from .generator.sampler import RNG_MODES

        if options["rng_mode"] not in RNG_MODES:
            raise ValueError(f"rng_mode must be one of {RNG_MODES}, got {options['rng_mode']!r}")

    def _options(self, overrides: dict[str, Any]):
        from .generator.sampler import SamplingOptions

        unknown = set(overrides) - set(GENERATE_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown generate() option(s) {sorted(unknown)}; known: {sorted(GENERATE_DEFAULTS)}")
        merged = {**self.defaults, **overrides}
        self._check_options(merged)
        sampling = SamplingOptions(
            num_steps=merged["num_steps"], cfg_scale=float(merged["cfg_scale"]),
            randomize_temperature=float(merged["randomize_temperature"]),
            softmax_temperature_annealing=bool(merged["softmax_temperature_annealing"]),
            num_diffusion_steps=merged["num_diffusion_steps"],
            diffusion_temperature=float(merged["diffusion_temperature"]),
            predict_residuals=self.predict_residuals, trim_caption=self.speed_options["trim_caption"],
            static_shapes=self.speed_options["static_shapes"] and merged["rng_mode"] == "per_item",
            **SAMPLERS[self.speed_options["sampler"]])
        return sampling, merged["rng_mode"]

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], **options: Any):
        """Images (B, 3, H, W) float32 CPU in [0, 1]; see ``GENERATE_DEFAULTS`` for the options."""
        sampling, rng_mode = self._options(options)
        progress = None
        if self.show_progress:
            from tqdm.auto import tqdm

            def progress(it):
                return tqdm(it, desc=f"{self.name} steps", leave=False)
        if self.batch_invariant and len(prompts) > 1:
            if rng_mode != "per_item":
                raise ValueError("batch_invariant=True needs rng_mode='per_item' (the official mode's global RNG "
                                 "stream depends on the batch)")
            import torch

            return torch.cat([self.generate([p], [s], **options) for p, s in zip(prompts, seeds)])
        # items alone (batch_invariant) need no padding; the official mode must not be padded (its noise)
        pad_to = self.pad_to if rng_mode == "per_item" and not self.batch_invariant else None
        result = self.pipeline(prompts, seeds, options=sampling, rng_mode=rng_mode, progress=progress, pad_to=pad_to)
        self.truncated_prompts += len(result.info["truncated_prompts"])
        return result.images

    def info(self) -> AdapterInfo:
        gen = self.pipeline.generator
        weights = {}
        for key, value in self._weights_info.items():
            if is_random_init(value):
                weights[key] = value
                continue
            path = Path(value)
            try:
                file = find_weights_file(path)
            except FileNotFoundError:
                file = path
            if str(file) not in self._hashes:  # hash each file once (the generator is 2.7 GB)
                self._hashes[str(file)] = file_sha256(file) if file.is_file() else "unreadable"
            weights[str(file)] = self._hashes[str(file)]
        kind = weights_kind(self._weights_info)
        real = kind == "checkpoint"
        if kind == "mini-trained" and all(is_mini_path(p) and Path(p).resolve().is_relative_to(MINI_ROOT)
                                          for p in self._weights_info.values()):
            weights["SHA256SUMS"] = sums_digest()  # pins the shipped configs and tokenizer files too
        num_params = (gen.num_transformer_parameters() + gen.num_head_parameters()
                      + sum(p.numel() for p in self.pipeline.decoder.parameters()))
        from .generator.config import SAMPLING_DEFAULTS_SOURCE

        return AdapterInfo(
            name=self.name, kind=self.kind, resolution=self.resolution,
            dtype=str(self.pipeline.autocast_dtype).replace("torch.", ""),
            steps=int(self.defaults["num_steps"]), num_params=int(num_params), weights=weights, real_weights=real,
            extra={
                "config": self.config_name, "device": str(self.device), "weights_kind": kind,
                **({"weights_note": MINI_NOTE} if kind == "mini-trained" else {}),
                "generate_defaults": dict(self.defaults),
                "defaults_source": (SAMPLING_DEFAULTS_SOURCE if self.config_name != "mini" else
                                    "the mini checkpoint's config.json (dcar_training.mini_defaults), not the "
                                    "released config"),
                "num_diffusion_steps_note": ("default 32 = released config dc_ar_t2i_512.yaml; the paper's "
                                             "appendix says 20 (pass num_diffusion_steps=20)")
                if self.config_name != "mini" else "default = the mini checkpoint's config.json",
                "cfg_convention": "official: cond + s * (cond - uncond) on logits and diffusion eps",
                "residual_tokens": self.predict_residuals,
                "batch_invariant": self.batch_invariant,
                "prompts_truncated": self.truncated_prompts,
                "text_max_length": self.pipeline.text_encoder.max_length,
                "transformer_params": gen.num_transformer_parameters(),
                "diffusion_head_params": gen.num_head_parameters(),
                "speed_options": dict(self.speed_options),
                "share_weights": self.share_weights,
            },
        )

    def profile_components(self) -> list[tuple[str, Any, str]]:
        """(component, object, method) triples the profile suite times: the paper's breakdown of one generate()."""
        pipe = self.pipeline
        gen = pipe.generator
        return [("text_encoder", pipe.text_encoder, "encode"),
                ("generator_steps", gen, "text_context"), ("generator_steps", gen, "forward_tokens"),
                ("generator_steps", gen, "forward_hidden"), ("generator_steps", gen.final_layer, "forward"),
                ("diffusion_head", gen.diffloss, "sample"),
                ("decoder", pipe.decoder, "decode_tokens")]

    def close(self) -> None:
        self.pipeline = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass


class DCARDiscreteOnlyAdapter(DCARAdapter):
    """The Table 4 baseline: the same model, ids decoded by DC-HT without residual tokens (no diffusion head)."""

    name: ClassVar[str] = "dc-ar-discrete-only"
    predict_residuals: ClassVar[bool] = False

