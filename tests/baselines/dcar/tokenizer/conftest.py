"""Shared fixtures of the DC-HT tests: one tiny random-weight model, built once per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from baselines.dcar.tokenizer import DCHT, DCHTConfig
from tests.paths import REPO_ROOT

PARITY_DIR = REPO_ROOT / "tests" / "fixtures" / "parity"

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def randomize_(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give every parameter and BN buffer seeded non-trivial values (so zero/one inits hide no bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif name.endswith("running_mean") or (t.ndim == 1 and name.endswith("bias")):
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
            elif t.ndim == 1:
                t.copy_(1 + 0.1 * torch.randn(t.shape, generator=g))
            else:
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) / fan_in ** 0.5)
    return model



@pytest.fixture(scope="session")
def randomize():
    """The :func:`randomize_` helper, as a fixture (test modules here are not a package)."""
    return randomize_


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    return PARITY_DIR


@pytest.fixture(scope="session")
def tiny_model() -> DCHT:
    return randomize_(DCHT(DCHTConfig.tiny()), seed=11).eval()


@pytest.fixture(scope="session")
def images() -> torch.Tensor:
    """Three natural 64x64 images in [0, 1] (scikit-image samples), shape (3, 3, 64, 64)."""
    from skimage import data
    from skimage.transform import resize

    imgs = [data.astronaut(), data.chelsea(), data.coffee()]
    arr = [resize(im, (64, 64), anti_aliasing=True) for im in imgs]
    return torch.tensor(__import__("numpy").stack(arr), dtype=torch.float32).permute(0, 3, 1, 2).contiguous()
