"""Fixtures and helpers shared by every test package.

Every test runs offline, with a private cache and an empty torch hub (nothing can be downloaded),
outside any torchrun environment, and on one intra-op thread.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def read_state_dict_manifest(path: Path) -> dict[str, tuple[int, ...]]:
    """Parse a ``state_dict_keys_*.txt`` manifest (``key<TAB>(shape)<TAB>kind`` lines) into {key: shape}."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        key, shape, _kind = line.split("\t")
        out[key] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    return out


@pytest.fixture(scope="session")
def state_dict_manifest():
    """``state_dict_manifest(path)`` -> {key: shape} of an official state-dict key manifest."""
    return read_state_dict_manifest


@pytest.fixture(autouse=True, scope="session")
def _one_intra_op_thread():
    """Every test runs torch on one intra-op thread (``DCAR_TEST_THREADS`` overrides), restored afterwards.

    Why: the tiny models and tensors of the tests lose more to OpenMP barrier waits than threads gain;
    on a shared 2-core CI machine one thread ran them 10-50x faster (measured). No result depends on it.
    """
    import os

    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("DCAR_TEST_THREADS", "1")))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _offline_private_dirs(tmp_path, monkeypatch):
    """A private cache and torch hub per test, no hub access, no weights from the environment, no torchrun."""
    monkeypatch.setenv("DCAR_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in ("DCAR_FID_INCEPTION", "DCAR_LPIPS_ALEXNET", "DCAR_IMAGENET_VAL", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    # `--quiet` (harness.cli.quiet_libraries) sets process-wide variables: restore them after each test
    for var in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY",
                "TRANSFORMERS_NO_ADVISORY_WARNINGS"):
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)


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
