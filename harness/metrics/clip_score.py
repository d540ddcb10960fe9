"""CLIP score of (image, prompt) pairs: ViT-L/14 through open-clip-torch, ``100 x cosine``, no clamp.

Why no clamp and ×100: Sana's ``tools/metrics/clip-score`` (the MJHQ CLIP column next to the FIDs
it reports) multiplies the cosine by CLIP's ``logit_scale.exp()`` (= 100 for the OpenAI weights)
and averages, unlike torchmetrics' ``CLIPScore`` which clamps negative cosines to 0. Sana loads the
OpenAI ``clip`` package; open_clip's ``ViT-L-14`` with the OpenAI weights is the same network,
preprocessing (resize 224 bicubic, centre crop, CLIP mean/std) and tokenizer (77 tokens, truncated).
Weights come from a local file, ``$DCAR_CLIPSCORE_WEIGHTS`` or the HF cache; never downloaded.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from harness.api import MetricSpec, MissingDependencyError, Requirement

CLIP_SCORE_REQUIREMENT = Requirement(
    name="CLIP ViT-L/14 OpenAI weights (CLIP score, open_clip format)",
    description="timm/vit_large_patch14_clip_224.openai (open_clip_model.safetensors or open_clip_pytorch_model.bin, "
                "~1.7 GB): `huggingface-cli download timm/vit_large_patch14_clip_224.openai`, or a local file",
    env_var="DCAR_CLIPSCORE_WEIGHTS",
    config_key="metrics.clip_score.weights_path",
    hf_repo="timm/vit_large_patch14_clip_224.openai",
    must_contain=("open_clip_model.safetensors", "open_clip_pytorch_model.bin"),
)
MODEL_NAME = "ViT-L-14"
SPEC = MetricSpec("clip_score", "higher", {"model": "ViT-L/14 OpenAI (open_clip)", "score": "100 * cosine",
                                           "reduction": "mean over images", "clamp": "none",
                                           "context_length": 77, "truncate": True},
                  reference="Sana tools/metrics/clip-score/clip_score.py (OpenAI clip package)")


def _open_clip():
    try:
        import open_clip
    except ImportError as exc:
        raise MissingDependencyError(f"CLIP score needs open-clip-torch: pip install 'dcar-bench[clip]' ({exc})") \
            from None
    return open_clip


def _weights_file(weights_path: str | None):
    from pathlib import Path

    from harness.resources import locate

    found = Path(locate(CLIP_SCORE_REQUIREMENT, weights_path))
    if found.is_dir():
        for name in CLIP_SCORE_REQUIREMENT.must_contain:
            if (found / name).is_file():
                return found / name
    return found


def tiny_model(seed: int):
    """A 1-layer open_clip CLIP with ViT-L/14's tokenizer vocabulary (tests only)."""
    import torch

    open_clip = _open_clip()
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = CLIP(16, CLIPVisionCfg(layers=1, width=32, head_width=16, patch_size=8, image_size=32),
                     CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=1))
    preprocess = open_clip.image_transform(32, is_train=False, mean=open_clip.OPENAI_DATASET_MEAN,
                                           std=open_clip.OPENAI_DATASET_STD)
    return model, preprocess


class CLIPScorer:
    """``scorer(pictures, prompts)`` -> per-pair ``100 * cos(image, text)`` (float64)."""

    spec = SPEC

    def __init__(self, weights_path: str | None = None, *, random_init_seed: int | None = None, size: str = "full",
                 device: str = "cpu"):
        open_clip = _open_clip()
        self.device = device
        if random_init_seed is not None:
            if size == "tiny":
                model, preprocess = tiny_model(random_init_seed)
            else:
                import torch

                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(int(random_init_seed))
                    model, _, preprocess = open_clip.create_model_and_transforms(MODEL_NAME, pretrained=None)
            self.weights_id, self.real_weights = f"random-init:{size}:{int(random_init_seed)}", False
        else:
            from harness.io import file_sha256

            path = _weights_file(weights_path)
            model, _, preprocess = open_clip.create_model_and_transforms(MODEL_NAME, pretrained=str(path))
            self.weights_id, self.real_weights = "sha256:" + file_sha256(path), True
        self.model = model.eval().requires_grad_(False).to(device)
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(MODEL_NAME)

    def describe(self) -> dict[str, Any]:
        return {"metric": "clip_score", "model": MODEL_NAME, "weights": self.weights_id,
                "real_weights": self.real_weights, **dict(SPEC.params)}

    def __call__(self, pictures: Sequence[Any], prompts: Sequence[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            images = torch.stack([self.preprocess(p) for p in pictures]).to(self.device)
            text = self.tokenizer(list(prompts)).to(self.device)  # context 77, truncated
            img = self.model.encode_image(images)
            txt = self.model.encode_text(text)
            img = img / img.norm(dim=-1, keepdim=True)
            txt = txt / txt.norm(dim=-1, keepdim=True)
            return (100.0 * (img * txt).sum(-1)).double().cpu().numpy()
