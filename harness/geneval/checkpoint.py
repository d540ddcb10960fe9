"""Accept both releases of the GenEval detector weights.

The official GenEval instructions download the mmdet **2.x** checkpoint
``mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco_20220504_001756-743b7d99.pth``; mmdet 3.x
publishes the same training run as ``..._8xb2-lsj-50e_coco_20220504_001756-c9d0c4f2.pth``.
The weights are the same, but mmdet 3 renamed the transformer layers' sub-modules.
Measured by building both versions' Mask2Former Swin-S from their own configs (649 keys
each, 68,739,547 parameters; backbone and every other key identical):

* pixel decoder encoder layers: ``attentions.0`` -> ``self_attn``, ``ffns.0`` -> ``ffn``
  (2.x ``operation_order = (self_attn, norm, ffn, norm)``);
* transformer decoder layers: ``attentions.0`` -> ``cross_attn``, ``attentions.1`` ->
  ``self_attn``, ``ffns.0`` -> ``ffn`` (2.x ``operation_order = (cross_attn, norm,
  self_attn, norm, ffn, norm)``; mmdet 3 runs the same order with named modules).

With this mapping the 3.x model reproduces the 2.x model's detections
(``tests/harness/geneval/test_mmdet2_parity.py``, against mmdet 2.28.2 itself).
"""
from __future__ import annotations

import re
from typing import Mapping

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(.*pixel_decoder\.encoder\.layers\.\d+\.)attentions\.0\.(.*)$"), r"\1self_attn.\2"),
    (re.compile(r"^(.*pixel_decoder\.encoder\.layers\.\d+\.)ffns\.0\.(.*)$"), r"\1ffn.\2"),
    (re.compile(r"^(.*transformer_decoder\.layers\.\d+\.)attentions\.0\.(.*)$"), r"\1cross_attn.\2"),
    (re.compile(r"^(.*transformer_decoder\.layers\.\d+\.)attentions\.1\.(.*)$"), r"\1self_attn.\2"),
    (re.compile(r"^(.*transformer_decoder\.layers\.\d+\.)ffns\.0\.(.*)$"), r"\1ffn.\2"),
)


def is_mmdet2_state_dict(state_dict: Mapping[str, object]) -> bool:
    """True when the keys use mmdet 2.x names (``...layers.N.attentions.0...``)."""
    return any(".attentions.0." in k or ".ffns.0." in k for k in state_dict)


def mmdet2_key_to_mmdet3(key: str) -> str:
    for pattern, repl in _RULES:
        new, n = pattern.subn(repl, key)
        if n:
            return new
    return key


def convert_mmdet2_state_dict(state_dict: Mapping[str, object]) -> dict[str, object]:
    """Rename mmdet 2.x Mask2Former keys to mmdet 3.x; other keys unchanged; refuses collisions."""
    out: dict[str, object] = {}
    for key, value in state_dict.items():
        new = mmdet2_key_to_mmdet3(key)
        if new in out:
            raise ValueError(f"checkpoint key {key!r} maps to {new!r}, which another key already produced")
        out[new] = value
    return out


def extract_state_dict(checkpoint: Mapping[str, object]) -> dict[str, object]:
    """The model weights of an OpenMMLab checkpoint (``{"meta", "state_dict"}``) or a bare state dict."""
    sd = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(sd, Mapping) or not sd:
        raise ValueError("not a Mask2Former checkpoint: expected a dict with a non-empty 'state_dict'")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
