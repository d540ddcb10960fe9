"""HART-0.7B (beyond the paper's tables: DC-AR's hybrid-tokenizer sibling) through ``mit-han-lab/hart``.

Why it is here: HART is the same group's hybrid autoregressive model (VAR-style next-scale prediction + a residual
diffusion head), and its published A100 speed figures (quoted in issue 12: 0.3 s latency and 10.6 images/s at
512 px, from the HART paper; not re-checked against the paper text here) are ahead of DC-AR's, so the profile and
quality suites can put DC-AR beside its closest sibling.

Drives, from a user checkout (read at commit e28a41f, 2024-10-16), what ``sample.py`` does:
``transformers.AutoModel.from_pretrained(<hart-0.7b-1024px>/llm)`` (``hart.modules.models.transformer`` registers
``HARTForT2I`` with ``AutoModel``), the EMA weights ``ema_model.bin`` from the same folder (``--use_ema True``),
Qwen2-VL-1.5B-Instruct as text encoder (``AutoTokenizer`` + ``AutoModel``), ``hart.utils.encode_prompts(prompts,
text_model, text_tokenizer, 300, llm_system_prompt, True)``, then ``autoregressive_infer_cfg(B, label_B, cfg=4.5,
g_seed, more_smooth, context_position_ids, context_mask)`` under ``torch.inference_mode()`` and
``torch.autocast("cuda", float16)``; its output is already in [0, 1].

Settings: cfg 4.5, max_token_length 300, the LLM system prompt on (``sample.py`` defaults); **more_smooth False**:
``sample.py`` defaults it to True, but the code says it is "only used in visualization, not used in FID/IS
benchmarking" (and mit-han-lab/hart#14 reports FID ~10 instead of 5.38 with it on). The ShieldGemma prompt filter
of the demo is not run (it would replace prompts). Resolution 1024: the only released weights are
``hart-0.7b-1024px``; no 512 px checkpoint is in the README at the commit read, so the 512 px figures above cannot
be re-measured from public weights.

Randomness: ``g_seed`` seeds HART's own generator (Gumbel sampling), but the MaskGIT orders come from
``np.random.shuffle`` and the diffusion head's noise from the global torch RNG; each item runs alone with
``g_seed=<its seed>`` inside :func:`baselines.checkout.base.isolated_rng`. HART calls ``.cuda()`` itself and needs
its fused kernels (``hart/kernels``): a CUDA machine only. Untested here: the real model (needs weights and a GPU).
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

from harness.api import AdapterInfo, Requirement, TextToImage

from .base import CheckoutAdapter, locate_weights, to_harness_images, weights_record
from .repo import CheckoutSpec

SPEC = CheckoutSpec(
    name="HART", github="mit-han-lab/hart", env_var="DCAR_HART_REPO",
    expected=("hart/modules/models/transformer/hart_transformer_t2i.py", "hart/utils/tools.py",
              "hart/utils/constants.py", "sample.py", "latency_profile.py"),
    install="pip install -e . && cd hart/kernels && python setup.py install",
    read_commit="e28a41fe15025baf3d48ab004f5d3727c88d8fc7")

WEIGHTS = Requirement(
    name="HART-0.7B 1024px transformer (the llm/ folder)",
    description=("`git clone https://huggingface.co/mit-han-lab/hart-0.7b-1024px` and point at its llm/ folder "
                 "(config.json, weights, ema_model.bin); its tokenizer/ folder must sit beside it"),
    env_var="DCAR_HART_PATH", config_key="weights", must_contain=("config.json",))
QWEN = Requirement(
    name="Qwen2-VL-1.5B-Instruct (HART's text encoder)",
    description="`git clone https://huggingface.co/mit-han-lab/Qwen2-VL-1.5B-Instruct`",
    env_var="DCAR_HART_TEXT_MODEL", config_key="text_model", hf_repo="mit-han-lab/Qwen2-VL-1.5B-Instruct",
    must_contain=("config.json",))


class HARTAdapter(CheckoutAdapter, TextToImage):
    """HART-0.7B text-to-image (1024 px) from the official checkout."""

    #: distributions whose versions the run records (the official code's own dependencies)
    libraries: ClassVar[tuple[str, ...]] = ("transformers", "hart")

    name: ClassVar[str] = "hart"
    spec: ClassVar[CheckoutSpec] = SPEC
    defaults: ClassVar[dict[str, Any]] = {"cfg": 4.5, "more_smooth": False, "top_k": 0, "top_p": 0.0}
    defaults_source: ClassVar[str] = ("sample.py defaults (cfg 4.5, max_token_length 300, LLM system prompt, EMA); "
                                      "more_smooth False as the code says for FID benchmarking")
    official_rng: ClassVar[str] = "g_seed generator for Gumbel sampling + global numpy/torch RNGs (orders, diffusion)"
    cuda_only: ClassVar[bool] = True

    def __init__(self, repo: str | None = None, weights: str | None = None, text_model: str | None = None,
                 use_ema: bool = True, max_token_length: int = 300, use_llm_system_prompt: bool = True,
                 device: str = "auto", autocast: bool = True, rng_mode: str = "per_item",
                 cfg: float | None = None, more_smooth: bool | None = None):
        import torch

        self._init_settings(rng_mode, {"cfg": cfg, "more_smooth": more_smooth})
        mods = self._open_checkout(repo, ["hart.modules.models.transformer", "hart.utils"])
        self.weights_paths = locate_weights([(WEIGHTS, weights), (QWEN, text_model)])
        from transformers import AutoModel, AutoTokenizer

        self._utils = mods["hart.utils"]
        self.device = self._resolve_device(device)
        model_path = self.weights_paths[WEIGHTS.name]
        model = AutoModel.from_pretrained(str(model_path)).to(self.device)
        if use_ema:
            ema = model_path / "ema_model.bin"
            if not ema.is_file():
                raise FileNotFoundError(f"HART EMA weights {ema} are missing (model.use_ema=true); the llm/ folder of "
                                        "hart-0.7b-1024px has them, or pass --set model.use_ema=false")
            # sample.py loads them into a deepcopy and samples with the copy; loading in place is the same model
            model.load_state_dict(torch.load(str(ema), map_location="cpu", weights_only=True))
        self.model = model.eval()
        text_path = str(self.weights_paths[QWEN.name])
        self.text_tokenizer = AutoTokenizer.from_pretrained(text_path)
        self.text_model = AutoModel.from_pretrained(text_path).to(self.device).eval()
        self.use_ema, self.max_token_length = bool(use_ema), int(max_token_length)
        self.use_llm_system_prompt, self.autocast = bool(use_llm_system_prompt), bool(autocast)
        self.resolution = 1024

    @classmethod
    def weight_requirements(cls) -> list[Requirement]:
        return [WEIGHTS, QWEN]

    def _sample(self, prompts: list[str], seeds: list[int], s: dict[str, Any]):
        import torch

        on = self.autocast and self.device.type == "cuda"
        amp = torch.autocast(self.device.type, dtype=torch.float16, enabled=on)
        with torch.inference_mode(), amp:
            tokens, mask, position_ids, context = self._utils.encode_prompts(
                prompts, self.text_model, self.text_tokenizer, self.max_token_length, self._utils.llm_system_prompt,
                self.use_llm_system_prompt)
            images = self.model.autoregressive_infer_cfg(
                B=context.size(0), label_B=context, cfg=float(s["cfg"]), g_seed=int(seeds[0]),
                more_smooth=bool(s["more_smooth"]), top_k=s["top_k"], top_p=s["top_p"],
                context_position_ids=position_ids, context_mask=mask)
        return to_harness_images(images, (0.0, 1.0), "HART images")

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], **options: Any):
        s = self._merge(options)
        return self._run(prompts, seeds, lambda p, sd: self._sample(p, sd, s))

    def info(self) -> AdapterInfo:
        return AdapterInfo(
            name=self.name, kind=self.kind, resolution=self.resolution,
            dtype="float16-autocast" if self.autocast and self.device.type == "cuda" else "float32",
            num_params=sum(p.numel() for p in self.model.parameters()),
            weights=weights_record(self.weights_paths), real_weights=True,
            extra=self._extra(use_ema=self.use_ema, max_token_length=self.max_token_length,
                              use_llm_system_prompt=self.use_llm_system_prompt, device=str(self.device),
                              safety_checker="not run (the demo's ShieldGemma prompt filter)"))
