"""GenEval's detector input without mmdet: the official mmdet 2.x test pipeline, reproduced step by step.

Why a copy and not HF's image processor: HF's ``Mask2FormerImageProcessor`` resizes with PIL and
normalises before padding, which moves scores (~1e-4) and shifts masks on non-square images. The
official pipeline (GenEval's config, ``match_official_test_pipeline`` for mmdet 3) is: decode with
OpenCV as BGR uint8 -> ``Resize`` (1333, 800) keep-ratio with ``cv2.resize`` INTER_LINEAR on
uint8 (mmcv ``imrescale``: factor ``min(1333/long, 800/short)``, size ``int(x*f + 0.5)``) ->
pad bottom/right to a multiple of 32 with 128 -> BGR->RGB, float, ``(x - mean) / std``. The
unpadded resized size (``img_shape``) and the original size (``ori_shape``) go to post-processing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from harness.api import MissingDependencyError

SCALE = (1333, 800)
SIZE_DIVISOR = 32
PAD_VALUE = 128
MEAN = (123.675, 116.28, 103.53)  # RGB, as the mmdet config's data_preprocessor
STD = (58.395, 57.12, 57.375)


@dataclass
class Batch:
    """One image ready for the model: ``pixel_values`` (1, 3, Hp, Wp) and the shapes post-processing needs."""

    pixel_values: Any
    img_shape: tuple[int, int]  # resized, unpadded (h, w)
    ori_shape: tuple[int, int]  # as loaded (h, w)
    pad_shape: tuple[int, int]


def _cv2():
    try:
        import cv2
    except ImportError as exc:
        raise MissingDependencyError("the transformers GenEval detector resizes with OpenCV, as mmdet does: "
                                     "pip install 'dcar-bench[geneval]' (opencv-python-headless)") from exc
    return cv2


def load_bgr(path: str | os.PathLike) -> Any:
    """Decode an image file exactly as mmdet's ``LoadImageFromFile`` (mmcv ``imfrombytes``, cv2, 'color')."""
    import numpy as np

    cv2 = _cv2()
    with open(path, "rb") as f:
        buf = np.frombuffer(f.read(), np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"OpenCV cannot decode {path}")
    return img


def rescale_size(h: int, w: int, scale: tuple[int, int] = SCALE) -> tuple[int, int]:
    """mmcv ``rescale_size``: the (h, w) a keep-ratio resize to ``scale`` gives."""
    f = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return int(h * float(f) + 0.5), int(w * float(f) + 0.5)


def preprocess(image: Any) -> Batch:
    """A file path (decoded as mmdet does) or an RGB uint8 HxWx3 array -> :class:`Batch`."""
    import numpy as np
    import torch

    if isinstance(image, (str, os.PathLike)):
        bgr = load_bgr(image)
    else:
        arr = np.asarray(image)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise ValueError(f"detector input arrays must be HxWx3 uint8 RGB, got {arr.shape} {arr.dtype}")
        bgr = np.ascontiguousarray(arr[:, :, ::-1])
    cv2 = _cv2()
    h, w = bgr.shape[:2]
    nh, nw = rescale_size(h, w)
    resized = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    ph, pw = -(-nh // SIZE_DIVISOR) * SIZE_DIVISOR, -(-nw // SIZE_DIVISOR) * SIZE_DIVISOR
    padded = np.full((ph, pw, 3), PAD_VALUE, np.uint8)
    padded[:nh, :nw] = resized
    x = torch.from_numpy(padded).permute(2, 0, 1)[[2, 1, 0], ...].float()  # BGR -> RGB, as DetDataPreprocessor
    mean = torch.tensor(MEAN).view(-1, 1, 1)
    std = torch.tensor(STD).view(-1, 1, 1)
    x = (x - mean) / std
    return Batch(pixel_values=x[None].contiguous(), img_shape=(nh, nw), ori_shape=(h, w), pad_shape=(ph, pw))
