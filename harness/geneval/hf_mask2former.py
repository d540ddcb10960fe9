"""The GenEval detector through ``transformers``: ``Mask2FormerForUniversalSegmentation`` with GenEval's weights.

Why: mmdet needs mmcv (compiled ops, version pins; djghosh13/geneval issues #1, #6, #8, #12), while
``transformers`` is pure PyTorch and already installed. The weights are GenEval's own mmdet
checkpoint converted on load (:mod:`harness.geneval.convert`); pre- and post-processing reproduce
mmdet's (:mod:`harness.geneval.preprocess`, :mod:`harness.geneval.postprocess`). Architecture
differences found between mmdet 3.3's Mask2Former and HF's, and what is done about each:

* **Swin window clamping**: HF's ``SwinLayer`` alone shrinks its window to the feature map and
  drops the shift when a map is <= 7 (mmdet always pads to 7x7 windows and shifts odd blocks),
  but ``SwinBackbone`` calls its layers with ``always_partition=True``, which skips that: no
  patch needed; a 60x2000 image (stage 4 only 2 tokens high) is in the parity tests.
* **Swin weights**: fused ``qkv`` and ``nn.Unfold`` patch-merging order differ: converted
  (:mod:`harness.geneval.convert`); ``swin.layernorm`` (SwinModel's final norm) is unused.
* **positional encodings, level embeddings, reference points, padding masks**: equal by
  construction (same sine formula, eps 1e-6, 2*pi scale; level embeddings added to the keys of
  the pixel decoder and to the decoder inputs on both sides; reference points at pixel centres;
  no padding mask: the padded image is the input on both sides); differences are float rounding
  (e.g. ``linspace`` vs ``arange + 0.5``), measured by the parity tests.
* **attention arithmetic**: HF's Swin divides ``q.k`` by sqrt(d), mmdet scales ``q`` first; the
  decoder self-attention is HF's own bmm attention vs ``nn.MultiheadAttention``: float rounding.
  Masked attention amplifies it: a mask logit within rounding of 0 flips an entry of the next
  layer's binary attention mask (measured at full size in ``test_backend_parity.py``; docs/geneval.md).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from harness.api import DataError, MissingResourceError
from harness.geneval.convert import HF_ONLY_KEYS, SWIN_S_COCO, Layout, layout_of, mmdet3_to_hf


def hf_config(layout: Layout):
    """The ``Mask2FormerConfig`` of a layout (GenEval's: :data:`~harness.geneval.convert.SWIN_S_COCO`)."""
    from transformers import Mask2FormerConfig, SwinConfig

    swin = SwinConfig(embed_dim=layout.embed_dim, depths=list(layout.depths), num_heads=list(layout.num_heads),
                      window_size=layout.window_size, drop_path_rate=0.0, hidden_act="gelu", qkv_bias=True,
                      use_absolute_embeddings=False, patch_size=4, num_channels=3, layer_norm_eps=1e-5,
                      out_features=[f"stage{i + 1}" for i in range(len(layout.depths))])
    return Mask2FormerConfig(
        backbone_config=swin, feature_size=layout.feature_size, mask_feature_size=layout.mask_feature_size,
        hidden_dim=layout.feature_size, encoder_feedforward_dim=layout.encoder_feedforward_dim,
        dim_feedforward=layout.dim_feedforward, encoder_layers=layout.encoder_layers,
        decoder_layers=layout.decoder_layers + 1, num_attention_heads=layout.num_attention_heads,
        num_queries=layout.num_queries, num_labels=layout.num_labels, dropout=0.0, pre_norm=False,
        enforce_input_projection=False, common_stride=4, feature_strides=[4, 8, 16, 32], use_auxiliary_loss=False)


def build_model(layout: Layout = SWIN_S_COCO, device: str = "cpu", meta: bool = False):
    """The HF model for a layout, in eval mode (``meta``: shapes only, for key checks)."""
    import torch
    from transformers import Mask2FormerForUniversalSegmentation

    with torch.device("meta" if meta else "cpu"):
        model = Mask2FormerForUniversalSegmentation(hf_config(layout))
    return model.eval() if meta else model.to(device).eval()


def load_converted(model: Any, mmdet3_state_dict: dict[str, Any]) -> None:
    """Load converted weights strictly (every HF key but :data:`HF_ONLY_KEYS` from the checkpoint)."""
    hf = mmdet3_to_hf(mmdet3_state_dict, model.state_dict())
    result = model.load_state_dict(hf, strict=False)
    missing = sorted(set(result.missing_keys) - set(HF_ONLY_KEYS))
    if missing or result.unexpected_keys:
        raise DataError(f"converted weights do not fit: missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}")


def converted_sha256(model: Any) -> str:
    """sha256 over the loaded HF weights (key, dtype, shape, bytes in key order): what actually ran."""
    import hashlib

    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        if key in HF_ONLY_KEYS:
            continue
        t = value.detach().to("cpu").contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


@dataclass
class HFDetector:
    """A loaded HF Mask2Former plus what a result must record about it (same role as ``detector.Detector``)."""

    model: Any
    device: str
    checkpoint: str | None
    checkpoint_sha256: str | None = None
    checkpoint_format: str | None = None
    converted_sha256: str = ""
    layout: Layout = SWIN_S_COCO
    extra: dict[str, Any] = field(default_factory=dict)
    backend: str = "transformers"

    @property
    def real_weights(self) -> bool:
        return self.checkpoint is not None

    def info(self) -> dict[str, Any]:
        import torch
        import transformers

        return {"model": "Mask2Former Swin-S COCO instance", "backend": "transformers",
                "transformers": transformers.__version__, "torch": torch.__version__,
                "checkpoint": self.checkpoint, "checkpoint_sha256": self.checkpoint_sha256,
                "checkpoint_format": self.checkpoint_format, "converted_sha256": self.converted_sha256,
                "real_weights": self.real_weights, "device": self.device,
                "ops": "pure PyTorch (transformers)", **self.extra}


def read_mmdet_checkpoint(path: Path) -> tuple[dict[str, Any], str]:
    """(mmdet 3 state dict, "mmdet2"|"mmdet3") from a GenEval detector checkpoint file."""
    import torch

    from harness.geneval.checkpoint import convert_mmdet2_state_dict, extract_state_dict, is_mmdet2_state_dict
    from harness.geneval.detector import DETECTOR_CHECKPOINT

    try:  # OpenMMLab checkpoints carry numpy objects in 'meta'
        raw = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:  # torch.load raises many error types on a non-checkpoint
        raise DataError(f"{path} is not a PyTorch checkpoint ({type(exc).__name__}: {exc}); expected the "
                        f"Mask2Former Swin-S COCO .pth. {DETECTOR_CHECKPOINT.description}") from exc
    try:
        sd = extract_state_dict(raw)
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from exc
    if is_mmdet2_state_dict(sd):
        return convert_mmdet2_state_dict(sd), "mmdet2"
    return sd, "mmdet3"


def load_hf_detector(checkpoint: str | os.PathLike | None = None, device: str = "cpu",
                     random_init_seed: int | None = None, layout: Layout = SWIN_S_COCO,
                     state_dict: dict[str, Any] | None = None) -> HFDetector:
    """GenEval's checkpoint (2.x or 3.x file) converted into HF's Mask2Former.

    ``checkpoint=None``: ``state_dict`` (an mmdet 3 state dict, e.g. a random mmdet model's, for
    parity tests) or ``random_init_seed`` (HF's own random init; tests only).
    """
    import torch

    from harness.geneval.checkpoint import convert_mmdet2_state_dict, is_mmdet2_state_dict
    from harness.geneval.detector import DETECTOR_CHECKPOINT, resolve_checkpoint_file

    det_extra: dict[str, Any] = {}
    fmt = sha = path = None
    if checkpoint is not None:
        ckpt = resolve_checkpoint_file(Path(checkpoint))
        if not ckpt.is_file():
            raise MissingResourceError(f"detector checkpoint {ckpt} does not exist. {DETECTOR_CHECKPOINT.description}")
        from harness.io import file_sha256

        state_dict, fmt = read_mmdet_checkpoint(ckpt)
        sha, path = file_sha256(ckpt), str(ckpt)
    elif state_dict is not None and is_mmdet2_state_dict(state_dict):
        state_dict = convert_mmdet2_state_dict(state_dict)
    if state_dict is not None:
        try:
            layout = layout_of(state_dict)
        except ValueError as exc:
            raise DataError(f"{path or 'state dict'}: {exc}") from exc
        model = build_model(layout, device="cpu")
        try:
            load_converted(model, state_dict)
        except ValueError as exc:
            raise DataError(f"{path or 'state dict'} does not fit Mask2Former Swin ({fmt} keys): {exc}") from exc
    elif random_init_seed is not None:
        torch.manual_seed(int(random_init_seed))
        model = build_model(layout, device="cpu")
        det_extra["random_init_seed"] = int(random_init_seed)
    else:
        raise ValueError("load_hf_detector needs a checkpoint, a state_dict or random_init_seed")
    model.to(device).eval()
    return HFDetector(model=model, device=device, checkpoint=path, checkpoint_sha256=sha, checkpoint_format=fmt,
                      converted_sha256=converted_sha256(model), layout=layout, extra=det_extra)


def forward(detector: HFDetector, batch: Any) -> tuple[Any, Any]:
    """(class logits (1, Q, K+1), mask logits (1, Q, h/4, w/4)) for one preprocessed batch."""
    import torch

    with torch.no_grad():
        # (HF computes the per-layer class logits only when hidden states are returned)
        out = detector.model(pixel_values=batch.pixel_values.to(detector.device), output_hidden_states=True)
    return out.class_queries_logits, out.masks_queries_logits


def detect(detector: HFDetector, images: Sequence[Any]):
    """Images (file paths, or RGB uint8 HxWx3 arrays) -> per-class :class:`~harness.geneval.detector.RawDetections`.

    One image at a time, as the official scorer runs mmdet.
    """
    from harness.geneval.postprocess import instance_postprocess, to_per_class
    from harness.geneval.preprocess import preprocess

    out = []
    for img in images:
        batch = preprocess(img)
        cls, masks = forward(detector, batch)
        inst = instance_postprocess(cls[0], masks[0], batch, num_classes=detector.layout.num_labels)
        out.append(to_per_class(inst, detector.layout.num_labels))
    return out
