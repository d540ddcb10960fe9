"""GenEval's colour classifier: zero-shot CLIP ViT-L-14 (OpenAI weights) on masked, grey-filled crops.

Follows ``evaluate_images.py`` (djghosh13/geneval af4902f) and the ``clip-benchmark`` 1.4.0
helpers it calls:

* text side, per object class: for each of the 10 colours, encode the 3 templates
  (``a photo of a {c} {cls}``, ``a photo of a {c}-colored {cls}``, ``a photo of a {c} object``),
  L2-normalise each, average, L2-normalise again;
* image side, per object: paste the image onto a flat ``#999`` canvas through the object's
  mask, crop to its box (PIL rounds the float box), CLIP's own eval transform;
* logits = 100 * normalised image feature @ class vectors; the colour is the argmax.

On CUDA the official code runs under fp16 autocast (``amp=True``); we do the same there.
On CPU it runs in float32.

Weights: the OpenAI ViT-L-14 weights from a local file (:data:`CLIP_WEIGHTS`), loaded
with QuickGELU as the OpenAI model uses it (open_clip's ``"ViT-L-14"`` config alone
would use GELU and silently change every feature).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from harness.api import MissingResourceError, Requirement
from harness.geneval.rules import COLORS

TEMPLATES: tuple[str, ...] = ("a photo of a {c} {cls}", "a photo of a {c}-colored {cls}", "a photo of a {c} object")
BGCOLOR = "#999"  # (153, 153, 153)
CLIP_MODEL = "ViT-L-14"
BATCH_SIZE = 16

CLIP_WEIGHTS = Requirement(
    name="GenEval colour classifier weights (CLIP ViT-L-14, OpenAI)",
    description=(
        "OpenAI CLIP ViT-L/14 weights for open_clip: the OpenAI release ViT-L-14.pt "
        "(https://openaipublic.azureedge.net/clip/models/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt, "
        "what open_clip's pretrained='openai' downloads), or open_clip_model.safetensors / open_clip_pytorch_model.bin "
        "from the Hugging Face repo timm/vit_large_patch14_clip_224.openai; pass it as "
        "`dcar-bench geneval detect --clip-weights PATH` (suite config key clip_weights)"
    ),
    env_var="DCAR_GENEVAL_CLIP_WEIGHTS",
    hf_repo="timm/vit_large_patch14_clip_224.openai",
    default_paths=("~/.cache/clip/ViT-L-14.pt", "~/.cache/dcar-bench/geneval/ViT-L-14.pt"),
    must_contain=("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "ViT-L-14.pt"),
)


def resolve_weights_file(path: Path) -> Path:
    if path.is_dir():
        for name in CLIP_WEIGHTS.must_contain:
            if (path / name).is_file():
                return path / name
    return path


def masked_crop(image, box: Sequence[float], mask=None, bgcolor: str = BGCOLOR, crop: bool = True):
    """The official ImageCrops item: image pasted through ``mask`` onto a ``bgcolor`` canvas, cropped to ``box``.

    ``image``: PIL RGB image; ``mask``: (H, W) bool array of the same size, or None (whole image kept).
    """
    from PIL import Image

    if mask is not None:
        import numpy as np

        mask = np.asarray(mask, dtype=bool)
        if tuple(mask.shape) != (image.size[1], image.size[0]):
            raise ValueError(f"mask shape {mask.shape} does not match image size {image.size[::-1]} (H, W)")
        if bgcolor != "original":
            canvas = Image.new("RGB", image.size, color=bgcolor)
            canvas.paste(image, mask=Image.fromarray(mask))
            image = canvas
    return image.crop(tuple(float(v) for v in box[:4])) if crop else image


@dataclass
class ColorClassifier:
    model: Any
    preprocess: Any
    tokenizer: Any
    device: str = "cpu"
    model_name: str = CLIP_MODEL
    weights: str | None = None  # None = random weights (tests)
    extra: dict[str, Any] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def real_weights(self) -> bool:
        return self.weights is not None

    def info(self) -> dict[str, Any]:
        return {"model": self.model_name, "weights": self.weights, "real_weights": self.real_weights,
                "templates": list(TEMPLATES), "colors": list(COLORS), "bgcolor": BGCOLOR, "device": self.device,
                "amp_fp16": self.device.startswith("cuda"), **self.extra}

    def _autocast(self):
        import contextlib

        import torch

        if self.device.startswith("cuda"):
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def class_vectors(self, cls: str):
        """(D, 10) zero-shot weights for ``cls`` (cached per class, as the official clf_cache)."""
        import torch
        import torch.nn.functional as F

        if cls not in self._cache:
            cols = []
            with torch.no_grad(), self._autocast():
                for c in COLORS:
                    texts = self.tokenizer([t.format(c=c, cls=cls) for t in TEMPLATES]).to(self.device)
                    emb = F.normalize(self.model.encode_text(texts), dim=-1).mean(dim=0)
                    cols.append(emb / emb.norm())
            self._cache[cls] = torch.stack(cols, dim=1)
        return self._cache[cls]

    def classify(self, image, objects: Sequence[tuple[Sequence[float], Any]], cls: str) -> list[tuple[str, list[float]]]:
        """Colour of each ``(box, mask)`` object of class ``cls`` in ``image`` -> ``(colour, softmax probs)``."""
        import torch
        import torch.nn.functional as F

        if not objects:
            return []
        weights = self.class_vectors(cls)
        out: list[tuple[str, list[float]]] = []
        crops = [self.preprocess(masked_crop(image, box, mask)) for box, mask in objects]
        for start in range(0, len(crops), BATCH_SIZE):
            batch = torch.stack(crops[start:start + BATCH_SIZE]).to(self.device)
            with torch.no_grad(), self._autocast():
                feats = F.normalize(self.model.encode_image(batch), dim=-1)
                logits = 100.0 * feats @ weights
            probs = logits.float().softmax(dim=-1).cpu()
            for row, lg in zip(probs, logits.float().cpu()):
                out.append((COLORS[int(lg.argmax())], row.tolist()))
        return out


def load_color_classifier(weights: str | os.PathLike | None = None, *, model_name: str = CLIP_MODEL,
                          device: str = "cpu", random_init_seed: int | None = None) -> ColorClassifier:
    """open_clip model + eval transform + tokenizer; ``weights=None`` needs ``random_init_seed`` (tests)."""
    import open_clip
    import torch

    if weights is None and random_init_seed is None:
        raise ValueError("load_color_classifier needs CLIP weights, or random_init_seed for a random-weight test model")
    extra: dict[str, Any] = {"open_clip": open_clip.__version__}
    if weights is None:
        torch.manual_seed(int(random_init_seed))  # type: ignore[arg-type]
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=None)
        extra["random_init_seed"] = int(random_init_seed)  # type: ignore[arg-type]
        path = None
    else:
        path = resolve_weights_file(Path(weights))
        if not path.is_file():
            raise MissingResourceError(f"CLIP weights {path} do not exist. {CLIP_WEIGHTS.description}")
        # OpenAI CLIP uses QuickGELU; the plain "ViT-L-14" config would build GELU.
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=str(path), force_quick_gelu=True, weights_only=False)
        extra["quick_gelu"] = True
    model = model.to(device).eval()
    tokenizer = open_clip.get_tokenizer(model_name)
    return ColorClassifier(model, preprocess, tokenizer, device, model_name, str(path) if path else None, extra)
