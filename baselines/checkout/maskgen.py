"""MaskGen-L with TA-TiTok (Table 2/3 "TA-TiTok (VQ)" and "TA-TiTok (KL)") through ``bytedance/1d-tokenizer``.

Drives, from a user checkout (read at commit 942a96f, 2025-03-20), what ``README_MaskGen.md`` "Get Started -
MaskGen" does: ``modeling.tatitok.TATiTok.from_pretrained`` (tokenizer), ``modeling.maskgen.MaskGen_VQ`` /
``MaskGen_KL.from_pretrained`` (generator), the open_clip ``ViT-L-14-336`` text tower with OpenAI weights (visual
tower deleted, ``transformer.batch_first = False``), then

* VQ: ``MaskGen_VQ.generate(captions, guidance_scale=12.0, randomize_temperature=2.0, sample_aesthetic_score=6.5,
  num_sample_steps=16, guidance_decay="cosine", clip_tokenizer, clip_encoder)`` (README values; 16 steps is both
  ``generate``'s default and DC-AR Table 2's step count), tokenizer ``tatitok_bl128_vq``; note that ``generate``
  uses the passed score only to switch the aesthetic micro-condition on and then takes the value from the model
  config (``sample_aesthetic_score: 6.5`` in ``configs/infer/MaskGen/maskgen_vq_l.yaml``);
* KL: ``MaskGen_KL.sample_tokens(bsz, clip_tokenizer, clip_encoder, num_iter=32, cfg=3.0, cfg_schedule="linear",
  captions, aes_scores=6.5, temperature=1.0)`` (README values; 32 steps = DC-AR Table 2), tokenizer
  ``tatitok_bl32_vae``;

The harness option ``num_steps`` is passed as ``num_sample_steps`` (VQ) or ``num_iter`` (KL). Decoding:
``TATiTok.decode_tokens(tokens, text_guidance)`` with the README's text guidance (CLIP token embedding +
positional embedding -> transformer -> ``ln_final``), clamped to [0, 1]. 256 x 256 images. The L models are the
ones DC-AR compares against (MJHQ gFID 7.74 VQ / 7.24 KL, as in the MaskGen README).

Environment: ``open_clip_text_encoding`` in ``modeling/maskgen.py`` unpacks ``(pooled, tokens)`` from open_clip's
``text_global_pool``, which returns only the pooled tensor from open_clip_torch 3.0 on, so MaskGen needs
``open_clip_torch<3`` (refused in one line otherwise). Checked by hand with open_clip_torch 2.30.0 on a clone of
942a96f, tiny random ``MaskGen_VQ`` + ``TATiTok`` and a random ViT-B-32 text tower: the adapter's images equal the
README's sequence run by hand with the same seed, and an image is the same alone and in a batch.

Randomness: both samplers draw from the global RNGs (``torch.rand``/``uniform_`` Gumbel noise, ``np.random.shuffle``
orders in KL, diffusion noise) and the README seeds them globally (``torch.manual_seed(42)``). Here each item runs
alone inside :func:`baselines.checkout.base.isolated_rng` (torch, CUDA, numpy and ``random`` seeded with the item's
seed and restored afterwards). The KL sampler calls ``.cuda()`` itself, so it runs on a CUDA machine only.

Untested here (needs weights and a GPU): the released weights, the CLIP ViT-L-14-336 loading, the KL sampler.
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

from harness.api import AdapterInfo, Requirement, TextToImage

from .base import CheckoutAdapter, locate_weights, to_harness_images, weights_record
from .repo import CheckoutSpec

SPEC = CheckoutSpec(
    name="MaskGen / TA-TiTok", github="bytedance/1d-tokenizer", env_var="DCAR_1D_TOKENIZER_REPO",
    expected=("modeling/maskgen.py", "modeling/tatitok.py", "modeling/titok.py", "demo_util.py", "README_MaskGen.md"),
    install="pip install -r requirements.txt", read_commit="942a96fbdd873780179d1b78d5462911528bf8c8")

CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
CLIP = Requirement(
    name="OpenAI CLIP ViT-L/14@336 weights (MaskGen's text encoder)",
    description=("what open_clip's `ViT-L-14-336` / `openai` tag loads: a snapshot of "
                 "timm/vit_large_patch14_clip_336.openai (open_clip_model.safetensors), or that weights file"),
    env_var="DCAR_CLIP_L336_PATH", config_key="clip_weights", hf_repo="timm/vit_large_patch14_clip_336.openai",
    must_contain=CLIP_FILES)


def _hf(name: str, key: str, env: str, what: str) -> Requirement:
    return Requirement(name=f"{what} ({name})", description=f"`git clone https://huggingface.co/turkeyju/{name}`",
                       env_var=env, config_key=key, hf_repo=f"turkeyju/{name}",
                       must_contain=("model.safetensors", "pytorch_model.bin"))


class _MaskGenAdapter(CheckoutAdapter, TextToImage):
    #: distributions whose versions the run records (the official code's own dependencies)
    libraries: ClassVar[tuple[str, ...]] = ("open_clip_torch", "diffusers", "transformers", "omegaconf",
                                            "huggingface_hub", "einops", "accelerate")
    spec: ClassVar[CheckoutSpec] = SPEC
    variant: ClassVar[str] = ""
    generator_req: ClassVar[Requirement]
    tokenizer_req: ClassVar[Requirement]
    official_rng: ClassVar[str] = "global torch/numpy RNGs (README seeds torch.manual_seed(42))"

    def __init__(self, repo: str | None = None, weights: str | None = None, tokenizer_weights: str | None = None,
                 clip_weights: str | None = None, device: str = "auto", rng_mode: str = "per_item",
                 **settings: Any):

        self._init_settings(rng_mode, settings)
        mods = self._open_checkout(repo, ["modeling.tatitok", "modeling.maskgen"])
        paths = locate_weights([(self.generator_req, weights), (self.tokenizer_req, tokenizer_weights),
                                (CLIP, clip_weights)])
        self.paths = paths
        self.device = self._resolve_device(device)
        gen_cls = getattr(mods["modeling.maskgen"], "MaskGen_VQ" if self.variant == "vq" else "MaskGen_KL")
        self.tokenizer = mods["modeling.tatitok"].TATiTok.from_pretrained(str(paths[self.tokenizer_req.name]))
        self.generator = gen_cls.from_pretrained(str(paths[self.generator_req.name]))
        for m in (self.tokenizer, self.generator):
            m.eval()
            m.requires_grad_(False)
            m.to(self.device)
        self.clip_encoder, self.clip_tokenizer = self._load_clip(str(paths[CLIP.name]))
        self.resolution = 256

    @classmethod
    def weight_requirements(cls) -> list[Requirement]:
        return [cls.generator_req, cls.tokenizer_req, CLIP]

    def _load_clip(self, path: str):
        """The README's open_clip text tower: ViT-L-14-336 with OpenAI weights, visual tower deleted.

        The README passes ``pretrained='openai'``; offline, the same weights come from a local file, and
        ``force_quick_gelu=True`` restores what the ``openai`` tag switches on (OpenAI's CLIP uses QuickGELU; a
        file path alone would build the model with GELU).
        """
        from pathlib import Path

        import open_clip

        from harness.api import MissingDependencyError

        major = int(str(getattr(open_clip, "__version__", "0")).split(".")[0] or 0)
        if major >= 3:
            raise MissingDependencyError(
                f"MaskGen's modeling/maskgen.py (commit {SPEC.read_commit[:7]}) unpacks two values from open_clip's "
                f"text_global_pool, which returns one in open_clip_torch {open_clip.__version__}; install "
                "'open_clip_torch<3' (2.30.0 checked) in the environment that runs the checkout")
        p = Path(path)
        if p.is_dir():
            p = next(p / f for f in CLIP_FILES if (p / f).is_file())
        encoder, _, _ = open_clip.create_model_and_transforms("ViT-L-14-336", pretrained=str(p), force_quick_gelu=True)
        del encoder.visual
        encoder.transformer.batch_first = False
        encoder.eval()
        encoder.requires_grad_(False)
        return encoder.to(self.device), open_clip.get_tokenizer("ViT-L-14-336")

    def _text_guidance(self, captions: list[str]):
        """The README's decoder condition: CLIP token + positional embedding -> transformer -> ln_final."""
        enc = self.clip_encoder
        tokens = self.clip_tokenizer(captions).to(self.device)
        cast_dtype = enc.transformer.get_cast_dtype()
        x = enc.token_embedding(tokens).to(cast_dtype) + enc.positional_embedding.to(cast_dtype)
        x = enc.transformer(x.permute(1, 0, 2), attn_mask=enc.attn_mask).permute(1, 0, 2)
        return enc.ln_final(x)

    def _tokens(self, captions: list[str], s: dict[str, Any]):
        raise NotImplementedError

    def _sample(self, captions: list[str], s: dict[str, Any]):
        import torch

        with torch.no_grad():
            tokens = self._tokens(captions, s)
            images = self.tokenizer.decode_tokens(tokens, self._text_guidance(captions))
        return to_harness_images(torch.clamp(images, 0.0, 1.0), (0.0, 1.0), f"MaskGen-{self.variant.upper()} images")

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], **options: Any):
        s = self._merge(options)
        return self._run(prompts, seeds, lambda p, _sd: self._sample(p, s))

    def info(self) -> AdapterInfo:
        return AdapterInfo(
            name=self.name, kind=self.kind, resolution=self.resolution, dtype="float32",
            steps=int(self.settings["num_steps"]),
            num_params=sum(p.numel() for p in self.generator.parameters()),
            weights=weights_record(self.paths), real_weights=True,
            extra=self._extra(variant=self.variant, device=str(self.device),
                              tokenizer=self.tokenizer_req.hf_repo, generator=self.generator_req.hf_repo))


class MaskGenVQAdapter(_MaskGenAdapter):
    """MaskGen-L (VQ) + TA-TiTok BL-128 VQ: DC-AR's "TA-TiTok (VQ)" row (568M, 256 px, 16 steps)."""

    name: ClassVar[str] = "maskgen-vq"
    variant: ClassVar[str] = "vq"
    generator_req: ClassVar[Requirement] = _hf("generator_maskgen_vq_l", "weights", "DCAR_MASKGEN_VQ_PATH",
                                               "MaskGen-L VQ generator")
    tokenizer_req: ClassVar[Requirement] = _hf("tokenizer_tatitok_bl128_vq", "tokenizer_weights",
                                               "DCAR_TATITOK_VQ_PATH", "TA-TiTok BL-128 VQ tokenizer")
    defaults: ClassVar[dict[str, Any]] = {"num_steps": 16, "guidance_scale": 12.0,
                                          "randomize_temperature": 2.0, "sample_aesthetic_score": 6.5,
                                          "guidance_decay": "cosine"}
    defaults_source: ClassVar[str] = ("README_MaskGen.md generate() call (guidance 12, temperature 2, aesthetic "
                                      "6.5); 16 steps: MaskGen_VQ.generate default = DC-AR Table 2")

    def _tokens(self, captions, s):
        return self.generator.generate(
            captions=captions, guidance_scale=s["guidance_scale"], randomize_temperature=s["randomize_temperature"],
            sample_aesthetic_score=s["sample_aesthetic_score"], num_sample_steps=int(s["num_steps"]),
            guidance_decay=s["guidance_decay"], clip_tokenizer=self.clip_tokenizer, clip_encoder=self.clip_encoder)


class MaskGenKLAdapter(_MaskGenAdapter):
    """MaskGen-L (KL) + TA-TiTok BL-32 VAE: DC-AR's "TA-TiTok (KL)" row (602M, 256 px, 32 steps)."""

    name: ClassVar[str] = "maskgen-kl"
    variant: ClassVar[str] = "kl"
    cuda_only: ClassVar[bool] = True  # sample_tokens / sample_orders / mask_by_order call .cuda()
    generator_req: ClassVar[Requirement] = _hf("generator_maskgen_kl_l", "weights", "DCAR_MASKGEN_KL_PATH",
                                               "MaskGen-L KL generator")
    tokenizer_req: ClassVar[Requirement] = _hf("tokenizer_tatitok_bl32_vae", "tokenizer_weights",
                                               "DCAR_TATITOK_KL_PATH", "TA-TiTok BL-32 VAE tokenizer")
    defaults: ClassVar[dict[str, Any]] = {"num_steps": 32, "cfg": 3.0, "cfg_schedule": "linear", "aes_scores": 6.5,
                                          "temperature": 1.0}
    defaults_source: ClassVar[str] = ("README_MaskGen.md sample_tokens() call (32 iterations = DC-AR Table 2, cfg 3, "
                                      "aesthetic 6.5); cfg_schedule linear, temperature 1.0: sample_tokens defaults")

    def _tokens(self, captions, s):
        return self.generator.sample_tokens(
            len(captions), self.clip_tokenizer, self.clip_encoder, num_iter=int(s["num_steps"]), cfg=s["cfg"],
            cfg_schedule=s["cfg_schedule"], captions=captions, aes_scores=float(s["aes_scores"]),
            temperature=s["temperature"])
