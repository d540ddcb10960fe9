"""One place for the image conventions every suite shares.

Float images are (B, 3, H, W) float32 in [0, 1]; uint8 images are (B, 3, H, W) or
(H, W, 3) uint8. Quantisation is ``floor(x * 255 + 0.5)`` clamped to [0, 255], the
DC-AE evaluator's rounding (TiTok's evaluator truncates instead; the two agree on
images that are already quantised).
"""
from __future__ import annotations

from harness.api import DataError


def to_uint8(images):
    """float [0,1] tensor -> uint8 tensor of the same shape (DC-AE rounding)."""
    import torch

    if not torch.is_tensor(images):
        raise TypeError(f"expected a torch tensor, got {type(images).__name__}")
    if images.dtype == torch.uint8:
        return images
    if not torch.isfinite(images).all():
        raise DataError("images contain NaN or Inf values; refusing to quantise them")
    return torch.floor(images.float().clamp(0, 1) * 255.0 + 0.5).clamp(0, 255).to(torch.uint8)


def to_float(images_u8):
    """uint8 tensor -> float32 in [0, 1]."""
    import torch

    if images_u8.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {images_u8.dtype}")
    return images_u8.float() / 255.0


def check_batch(images, *, name: str = "images", multiple_of: int = 1):
    """Validate a (B, 3, H, W) float batch in [0,1]; raise :class:`DataError` (a ValueError) naming ``name``."""
    import torch

    if not torch.is_tensor(images):
        raise TypeError(f"{name}: expected a torch tensor, got {type(images).__name__}")
    if images.ndim != 4:
        raise DataError(f"{name}: expected shape (B, 3, H, W), got {tuple(images.shape)}")
    if images.shape[1] != 3:
        raise DataError(f"{name}: expected 3 RGB channels, got {images.shape[1]} (shape {tuple(images.shape)})")
    h, w = images.shape[-2:]
    if multiple_of > 1 and (h % multiple_of or w % multiple_of):
        raise DataError(f"{name}: height and width must be multiples of {multiple_of}, got {h}x{w}")
    if images.is_floating_point() and not torch.isfinite(images).all():
        raise DataError(f"{name}: contains NaN or Inf values")
    return images
