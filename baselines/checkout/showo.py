"""Show-o (Table 2, Table 3 peer) through its official code: ``showlab/Show-o``.

Drives, from a user checkout (read at commit 45a5a2d, 2026-01-09), exactly what ``inference_t2i.py`` does in
``mode='t2i'``: ``models.Showo.from_pretrained`` + ``models.MAGVITv2.from_pretrained``, the phi-1.5 tokenizer
(``AutoTokenizer``, ``padding_side="left"``) wrapped in ``training.prompting_utils.UniversalPrompting`` with the
script's special tokens, ``uni_prompting((prompts, mask tokens), 't2i_gen')`` for the conditional and the empty
prompt for the unconditional half, ``create_attention_mask_predict_next(..., rm_pad_in_image=True)``,
``Showo.t2i_generate(...)`` with ``models.get_mask_chedule('cosine')``, ids clamped to the codebook, then
``MAGVITv2.decode_code`` -> [-1, 1]. The model config is the checkout's ``configs/showo_demo_512x512.yaml``
(512 x 512, 1024 image tokens, codebook 8192), read with OmegaConf as the script's ``get_config`` does.

Settings (``num_steps`` is passed as ``timesteps``): **12 steps** (DC-AR Table 2 lists Show-o at 512 px with 12
steps; the README's 512 px demo command uses ``generation_timesteps=50``), **guidance_scale 5** (the README's
512 px t2i command; Show-o's CFG convention is ``(1 + s) * cond - s * uncond``), temperature 1.0 and the cosine mask
schedule (the script's defaults). Precision: float32, as the script runs.

Randomness: ``t2i_generate`` takes ``generator=`` and uses it for both the multinomial draw and the Gumbel noise
of ``mask_by_random_topk``; the script itself passes none (global RNG). Here each item runs alone with a generator
on the model's device seeded by its seed, so an image does not depend on its batch.

Untested here (needs the real weights): the real ``Showo``/``MAGVITv2``/phi-1.5 loading, and passing the local
phi-1.5 path as ``llm_model_path`` to ``Showo.from_pretrained`` (a diffusers config override).
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

from harness.api import AdapterInfo, Requirement, TextToImage

from .base import CheckoutAdapter, item_generator, locate_weights, to_harness_images, weights_record
from .repo import CheckoutSpec

SPEC = CheckoutSpec(
    name="Show-o", github="showlab/Show-o", env_var="DCAR_SHOWO_REPO",
    expected=("models/modeling_showo.py", "models/modeling_magvitv2.py", "models/sampling.py",
              "training/prompting_utils.py", "configs/showo_demo_512x512.yaml", "inference_t2i.py"),
    install="pip install -r requirements.txt", read_commit="45a5a2de01d1ebd10cd5864d29310a76476cdf23")

WEIGHTS = Requirement(
    name="Show-o 512x512 weights",
    description="the diffusers-format Show-o transformer: `git clone https://huggingface.co/showlab/show-o-512x512`",
    env_var="DCAR_SHOWO_WEIGHTS", config_key="weights", hf_repo="showlab/show-o-512x512",
    must_contain=("config.json",))
MAGVIT = Requirement(
    name="Show-o MAGVIT-v2 tokenizer",
    description="the image tokenizer Show-o decodes with: `git clone https://huggingface.co/showlab/magvitv2`",
    env_var="DCAR_SHOWO_MAGVITV2", config_key="vq_weights", hf_repo="showlab/magvitv2", must_contain=("config.json",))
PHI = Requirement(
    name="phi-1.5 (Show-o's language model config and tokenizer)",
    description="`git clone https://huggingface.co/microsoft/phi-1_5`",
    env_var="DCAR_PHI15_PATH", config_key="llm", hf_repo="microsoft/phi-1_5", must_contain=("config.json",))

SPECIAL_TOKENS = ("<|soi|>", "<|eoi|>", "<|sov|>", "<|eov|>", "<|t2i|>", "<|mmu|>", "<|t2v|>", "<|v2v|>", "<|lvg|>")


class ShowoAdapter(CheckoutAdapter, TextToImage):
    """Show-o 512 px text-to-image from the official checkout."""

    #: distributions whose versions the run records (the official code's own dependencies)
    libraries: ClassVar[tuple[str, ...]] = ("transformers", "diffusers", "omegaconf")
    name: ClassVar[str] = "show-o"
    spec: ClassVar[CheckoutSpec] = SPEC
    defaults: ClassVar[dict[str, Any]] = {"num_steps": 12, "guidance_scale": 5.0, "temperature": 1.0,
                                          "mask_schedule": "cosine"}
    defaults_source: ClassVar[str] = ("steps: DC-AR Table 2 (Show-o, 512 px, 12 steps); guidance_scale 5: Show-o "
                                      "README 512 px t2i command; temperature 1.0, cosine schedule: inference_t2i.py "
                                      "defaults")
    official_rng: ClassVar[str] = "generator argument of Showo.t2i_generate (the script passes none: global RNG)"

    def __init__(self, repo: str | None = None, weights: str | None = None, vq_weights: str | None = None,
                 llm: str | None = None, config_file: str = "configs/showo_demo_512x512.yaml", device: str = "auto",
                 rng_mode: str = "per_item", num_steps: int | None = None, guidance_scale: float | None = None,
                 temperature: float | None = None, mask_schedule: str | None = None):

        self._init_settings(rng_mode, {"num_steps": num_steps, "guidance_scale": guidance_scale,
                                       "temperature": temperature, "mask_schedule": mask_schedule})
        mods = self._open_checkout(repo, ["models", "training.prompting_utils"])
        paths = locate_weights([(WEIGHTS, weights), (MAGVIT, vq_weights), (PHI, llm)])
        from omegaconf import OmegaConf
        from transformers import AutoTokenizer

        self.config_path = self.checkout.path / config_file
        if not self.config_path.is_file():
            raise FileNotFoundError(f"Show-o config {self.config_path} (model.config_file) does not exist")
        self.config = OmegaConf.load(self.config_path)
        self.device = self._resolve_device(device)
        models, prompting = mods["models"], mods["training.prompting_utils"]
        self._models, self._prompting = models, prompting
        tokenizer = AutoTokenizer.from_pretrained(str(paths[PHI.name]), padding_side="left")
        self.uni_prompting = prompting.UniversalPrompting(
            tokenizer, max_text_len=self.config.dataset.preprocessing.max_seq_length, special_tokens=SPECIAL_TOKENS,
            ignore_id=-100, cond_dropout_prob=self.config.training.cond_dropout_prob)
        self.vq_model = models.MAGVITv2.from_pretrained(str(paths[MAGVIT.name])).to(self.device)
        self.vq_model.requires_grad_(False)
        self.vq_model.eval()
        self.model = models.Showo.from_pretrained(str(paths[WEIGHTS.name]),
                                                  llm_model_path=str(paths[PHI.name])).to(self.device)
        self.model.eval()
        self.weights_paths = paths
        self.resolution = int(self.config.dataset.params.resolution)

    @classmethod
    def weight_requirements(cls) -> list[Requirement]:
        return [WEIGHTS, MAGVIT, PHI]

    def _sample(self, prompts: list[str], seeds: list[int], s: dict[str, Any]):
        import torch

        cfg = self.config
        n = len(prompts)
        mask_id = self.model.config.mask_token_id
        image_tokens = torch.ones((n, cfg.model.showo.num_vq_tokens), dtype=torch.long, device=self.device) * mask_id
        input_ids, _ = self.uni_prompting((prompts, image_tokens), "t2i_gen")
        sp = self.uni_prompting.sptids_dict
        ids = dict(pad_id=int(sp["<|pad|>"]), soi_id=int(sp["<|soi|>"]), eoi_id=int(sp["<|eoi|>"]))
        if s["guidance_scale"] > 0:
            uncond_input_ids, _ = self.uni_prompting(([""] * n, image_tokens), "t2i_gen")
            attention_mask = self._prompting.create_attention_mask_predict_next(
                torch.cat([input_ids, uncond_input_ids], dim=0), rm_pad_in_image=True, **ids)
        else:
            uncond_input_ids = None
            attention_mask = self._prompting.create_attention_mask_predict_next(input_ids, rm_pad_in_image=True, **ids)
        with torch.no_grad():
            gen_ids = self.model.t2i_generate(
                input_ids=input_ids, uncond_input_ids=uncond_input_ids, attention_mask=attention_mask,
                guidance_scale=s["guidance_scale"], temperature=s["temperature"], timesteps=int(s["num_steps"]),
                noise_schedule=self._models.get_mask_chedule(s["mask_schedule"]), noise_type="mask",
                seq_len=cfg.model.showo.num_vq_tokens, uni_prompting=self.uni_prompting, config=cfg,
                generator=item_generator(seeds[0], self.device))
            gen_ids = torch.clamp(gen_ids, max=cfg.model.showo.codebook_size - 1, min=0)
            images = self.vq_model.decode_code(gen_ids)
        return to_harness_images(images, (-1.0, 1.0), "Show-o images")

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], **options: Any):
        s = self._merge(options)
        return self._run(prompts, seeds, lambda p, sd: self._sample(p, sd, s))

    def info(self) -> AdapterInfo:
        return AdapterInfo(
            name=self.name, kind=self.kind, resolution=self.resolution, dtype="float32",
            steps=int(self.settings["num_steps"]), num_params=sum(p.numel() for p in self.model.parameters()),
            weights=weights_record(self.weights_paths), real_weights=True,
            extra=self._extra(config_file=str(self.config_path), device=str(self.device),
                              cfg_convention="(1 + s) * cond - s * uncond (Show-o/MUSE)"))
