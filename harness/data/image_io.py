"""Robust image reading: always RGB, and a broken file is named instead of crashing a 50k-image run.

Why: ImageNet val has CMYK and grayscale JPEGs, user folders contain RGBA/palette PNGs, and a
truncated download must either stop the run with the file's name or be skipped *and counted*
(``skip_corrupt``) so the report can say how many images were evaluated. Conversion follows
torchvision's default ``pil_loader`` (``Image.convert("RGB")``), which the DC-AE evaluator uses.
PIL's global ``LOAD_TRUNCATED_IMAGES`` flag is never touched.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from harness.api import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class CorruptImageError(DataError, OSError):
    """An image file could not be decoded; ``path`` names it, ``hint`` (if any) says what the caller can do.

    Also an ``OSError`` (what PIL raises for such files), so ``except OSError`` callers keep working.
    """

    def __init__(self, path: str | os.PathLike, reason: str, hint: str = ""):
        self.path = str(path)
        self.reason = reason
        self.hint = hint
        super().__init__(f"cannot read image {self.path}: {reason}" + (f". {hint}" if hint else ""))


def to_rgb(img):
    """PIL image of any mode -> RGB (CMYK, L, 1, P, RGBA, LA, I;16 ...)."""
    from PIL import Image

    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: convert("RGB") would clip at 255; scale the 16-bit range to 8 bits instead
        arr = np.asarray(img, dtype=np.float64)
        arr = np.clip(np.floor(arr / 257.0 + 0.5), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    return img.convert("RGB")


def open_rgb(path: str | os.PathLike):
    """Open and fully decode ``path`` as an RGB PIL image; raise :class:`CorruptImageError` naming it."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    if path.stat().st_size == 0:
        raise CorruptImageError(path, "empty file (0 bytes)")
    try:
        with Image.open(path) as img:
            img.load()  # force decoding now: truncated data fails here, not later
            return to_rgb(img)
    except (UnidentifiedImageError, SyntaxError, ValueError, OSError, Image.DecompressionBombError) as exc:
        raise CorruptImageError(path, f"{type(exc).__name__}: {exc}") from exc


def probe_image(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be an image (missing, empty, unidentifiable header), or None if it looks like one.

    Reads only the header, so a planner can check tens of thousands of files in seconds before any
    model loads; a file truncated after its header still passes and is caught by :func:`open_rgb`.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        with Image.open(path):
            return None
    except FileNotFoundError:
        return "file not found"
    except (UnidentifiedImageError, SyntaxError, ValueError, OSError, Image.DecompressionBombError) as exc:
        return f"{type(exc).__name__}: {exc}"


def read_rgb_array(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8 array of ``path`` in RGB."""
    return np.asarray(open_rgb(path), dtype=np.uint8)


@dataclass
class LoadReport:
    """Which files were loaded and which were skipped (with the reason) when ``skip_corrupt`` is on."""

    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)


def load_images(paths: Iterable[str | os.PathLike], *, skip_corrupt: bool = False):
    """Load many files as RGB PIL images.

    Returns (images, report). A corrupt file raises :class:`CorruptImageError` unless
    ``skip_corrupt`` is set, in which case it is left out and recorded in ``report.skipped``.
    """
    images, report = [], LoadReport()
    for p in paths:
        try:
            img = open_rgb(p)
        except CorruptImageError as exc:
            if not skip_corrupt:
                raise
            report.skipped[str(p)] = exc.reason
            continue
        images.append(img)
        report.loaded.append(str(p))
    return images, report


def list_images(root: str | os.PathLike, *, recursive: bool = True) -> list[Path]:
    """Image files under ``root`` (by extension, case-insensitive), sorted by relative path."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    it = root.rglob("*") if recursive else root.iterdir()
    files = [p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())
