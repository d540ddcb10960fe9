"""Meissonic (Table 3 peer, 1.0B) through its official code: ``viiika/Meissonic``.

Drives, from a user checkout (read at commit aeba85e, 2026-06-10), what ``inference.py`` does:
``src.transformer.Transformer2DModel``, diffusers ``VQModel``, ``CLIPTokenizer`` and ``src.scheduler.Scheduler``
from the subfolders ``transformer``/``vqvae``/``tokenizer``/``scheduler`` of ``MeissonFlow/Meissonic``, the text
encoder ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` (``CLIPTextModelWithProjection``; the script's comment: "using
original text enc for stable sampling"), ``src.pipeline.Pipeline(vq_model, tokenizer, text_encoder, transformer,
scheduler)``, then ``pipe(prompt, negative_prompt, height, width, guidance_scale, num_inference_steps,
generator, output_type="pt")`` (the script saves PIL images; ``"pt"`` is the same postprocessing as a tensor in
[0, 1]).

Settings (``num_steps`` is passed as ``num_inference_steps``): ``inference.py``'s **64 steps, CFG 9,
1024 x 1024** and its negative prompt. DC-AR Table 3 lists Meissonic's GenEval scores without its sampling
settings; these are the official script's.

Randomness: the pipeline takes ``generator=`` (the scheduler's multinomial draw and Gumbel noise use it); the
script passes none. Here each item runs alone with a CPU generator seeded by its seed (the scheduler moves
probabilities to the generator's device itself), so an image does not depend on its batch.

Checked by hand on a clone of aeba85e with tiny random components saved in the release's folder layout: the
adapter's images equal a direct ``pipe(...)`` call with the same generator, and the PIL images ``inference.py``
saves equal ours quantised; an image is the same alone and in a batch. With diffusers 0.42 this needed one patch
(Meissonic's transformer reaches diffusers' Flux attention processor, which reads ``Attention.head_dim``, absent in
0.42): the README installs diffusers from source of its time, so run Meissonic in an environment with that
diffusers. Untested: the real weights.
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

from harness.api import AdapterInfo, Requirement, TextToImage

from .base import CheckoutAdapter, item_generator, locate_weights, to_harness_images, weights_record
from .repo import CheckoutSpec

SPEC = CheckoutSpec(
    name="Meissonic", github="viiika/Meissonic", env_var="DCAR_MEISSONIC_REPO",
    expected=("src/pipeline.py", "src/transformer.py", "src/scheduler.py", "inference.py"),
    install="pip install -r requirements.txt", read_commit="aeba85e8db9cc4831f0766d226e82548b6ebe76a")

WEIGHTS = Requirement(
    name="Meissonic weights", description="`git clone https://huggingface.co/MeissonFlow/Meissonic`",
    env_var="DCAR_MEISSONIC_WEIGHTS", config_key="weights", hf_repo="MeissonFlow/Meissonic",
    must_contain=("transformer", "vqvae"))
TEXT_ENCODER = Requirement(
    name="CLIP ViT-H/14 laion2B text encoder (Meissonic's)",
    description="`git clone https://huggingface.co/laion/CLIP-ViT-H-14-laion2B-s32B-b79K`",
    env_var="DCAR_MEISSONIC_TEXT_ENCODER", config_key="text_encoder",
    hf_repo="laion/CLIP-ViT-H-14-laion2B-s32B-b79K", must_contain=("config.json",))

NEGATIVE_PROMPT = ("worst quality, low quality, low res, blurry, distortion, watermark, logo, signature, text, jpeg "
                   "artifacts, signature, sketch, duplicate, ugly, identifying mark")  # inference.py, verbatim


class MeissonicAdapter(CheckoutAdapter, TextToImage):
    """Meissonic text-to-image (1024 px) from the official checkout."""

    #: distributions whose versions the run records (the official code's own dependencies)
    libraries: ClassVar[tuple[str, ...]] = ("diffusers", "transformers")

    name: ClassVar[str] = "meissonic"
    spec: ClassVar[CheckoutSpec] = SPEC
    defaults: ClassVar[dict[str, Any]] = {"num_steps": 64, "guidance_scale": 9.0,
                                          "negative_prompt": NEGATIVE_PROMPT}
    defaults_source: ClassVar[str] = "Meissonic inference.py (steps 64, CFG 9, resolution 1024, negative prompt)"
    official_rng: ClassVar[str] = "generator argument of Pipeline.__call__ (the script passes none: global RNG)"

    def __init__(self, repo: str | None = None, weights: str | None = None, text_encoder: str | None = None,
                 resolution: int = 1024, device: str = "auto", rng_mode: str = "per_item",
                 num_steps: int | None = None, guidance_scale: float | None = None,
                 negative_prompt: str | None = None):

        self._init_settings(rng_mode, {"num_steps": num_steps, "guidance_scale": guidance_scale,
                                       "negative_prompt": negative_prompt})
        mods = self._open_checkout(repo, ["src.transformer", "src.pipeline", "src.scheduler"])
        self.weights_paths = locate_weights([(WEIGHTS, weights), (TEXT_ENCODER, text_encoder)])
        from diffusers import VQModel
        from transformers import CLIPTextModelWithProjection, CLIPTokenizer

        root = str(self.weights_paths[WEIGHTS.name])
        self.device = self._resolve_device(device)
        transformer = mods["src.transformer"].Transformer2DModel.from_pretrained(root, subfolder="transformer")
        vq_model = VQModel.from_pretrained(root, subfolder="vqvae")
        text = CLIPTextModelWithProjection.from_pretrained(str(self.weights_paths[TEXT_ENCODER.name]))
        tokenizer = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer")
        scheduler = mods["src.scheduler"].Scheduler.from_pretrained(root, subfolder="scheduler")
        self.pipe = mods["src.pipeline"].Pipeline(vq_model, tokenizer=tokenizer, text_encoder=text,
                                                  transformer=transformer, scheduler=scheduler).to(self.device)
        if hasattr(self.pipe, "set_progress_bar_config"):  # DiffusionPipeline: one bar per item would flood the log
            self.pipe.set_progress_bar_config(disable=True)
        self.resolution = int(resolution)

    @classmethod
    def weight_requirements(cls) -> list[Requirement]:
        return [WEIGHTS, TEXT_ENCODER]

    def _sample(self, prompts: list[str], seeds: list[int], s: dict[str, Any]):
        import torch

        with torch.no_grad():
            out = self.pipe(prompt=prompts, negative_prompt=[s["negative_prompt"]] * len(prompts),
                            height=self.resolution, width=self.resolution, guidance_scale=float(s["guidance_scale"]),
                            num_inference_steps=int(s["num_steps"]), generator=item_generator(seeds[0]),
                            output_type="pt")
        return to_harness_images(out.images, (0.0, 1.0), "Meissonic images")

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], **options: Any):
        s = self._merge(options)
        return self._run(prompts, seeds, lambda p, sd: self._sample(p, sd, s))

    def info(self) -> AdapterInfo:
        return AdapterInfo(
            name=self.name, kind=self.kind, resolution=self.resolution, dtype="float32",
            steps=int(self.settings["num_steps"]),
            num_params=sum(p.numel() for p in self.pipe.transformer.parameters()),
            weights=weights_record(self.weights_paths), real_weights=True,
            extra=self._extra(device=str(self.device)))
