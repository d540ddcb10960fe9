"""Metric tests run offline, with a private cache and an empty torch hub (nothing can be downloaded)."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _offline_private_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("DCAR_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in ("DCAR_FID_INCEPTION", "DCAR_LPIPS_ALEXNET", "DCAR_IMAGENET_VAL", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def inception_kaiming():
    """One seeded Kaiming-initialised FID-Inception for the whole session (building it is cheap, running it is not)."""
    from harness.metrics.inception import InceptionFeatureExtractor

    return InceptionFeatureExtractor(random_init_seed=0, batch_size=8)


@pytest.fixture(scope="session")
def sample_crops():
    """The :func:`make_sample_crops` function."""
    return make_sample_crops


def make_sample_crops(size: int = 64, names=("astronaut", "coffee", "chelsea", "rocket")) -> np.ndarray:
    """(N, size, size, 3) uint8 centre crops of scikit-image sample pictures."""
    import skimage.data
    from PIL import Image

    out = []
    for n in names:
        img = Image.fromarray(getattr(skimage.data, n)()).convert("RGB")
        s = min(img.size)
        left, top = (img.size[0] - s) // 2, (img.size[1] - s) // 2
        out.append(np.asarray(img.crop((left, top, left + s, top + s)).resize((size, size), Image.BICUBIC)))
    return np.stack(out)
