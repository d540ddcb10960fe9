"""A tiny MJHQ-30K-shaped tree (meta_data.json + <category>/<id>.jpg) made in a tmp dir, for tests."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from harness.data.mjhq import CATEGORIES


def picture(seed: int, size: int = 64) -> Image.Image:
    """A smooth, seeded RGB picture (distinct colours per seed, so features differ across images)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(0, 1, size=3)
    freq = rng.uniform(1, 4, size=3)
    arr = np.stack([0.5 + 0.5 * np.sin(2 * np.pi * (freq[c] * xx + base[c] * yy) + base[c] * 6) for c in range(3)], -1)
    return Image.fromarray((arr * 255).astype(np.uint8), "RGB")


def jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def make_tree(root: Path, per_category: int = 2, size: int = 64, categories=CATEGORIES) -> Path:
    """``root/meta_data.json`` (interleaved categories, so key order is not category order) + the JPEGs."""
    root.mkdir(parents=True, exist_ok=True)
    meta = {}
    k = 0
    for i in range(per_category):
        for c in categories:
            image_id = f"{k:04x}{c[:3]}"
            meta[image_id] = {"category": c, "prompt": f"a picture of {c} number {i}"}
            (root / c).mkdir(exist_ok=True)
            (root / c / f"{image_id}.jpg").write_bytes(jpeg_bytes(picture(k, size)))
            k += 1
    (root / "meta_data.json").write_text(json.dumps(meta))
    return root
