"""Deterministic stand-in models, so the harness can be tested without weights or a GPU.

Why they exist: resume, sharding and batch-size invariance are properties of the
harness, and they can only be tested if the model's output for an item depends on
nothing but (input, seed). Each dummy draws its images from a CPU generator seeded
with :func:`harness.seeding.item_seed` of (item seed, input) -- the harness's own
derivation, so two runs agree bit for bit whatever the batching. Every image is made on
its own (no batched float kernels), so the dummies need no batch padding
(:class:`baselines.common.BatchPadding`). ``delay_s`` (seconds per item) slows them down
for kill/resume tests. ``num_steps`` (generators only; unset by default, which keeps the images
as they always were) makes the picture a function of the step count too, with more fine noise at
fewer steps, so a sampling-steps sweep over a dummy gives a curve that is not flat.

They have no weights: ``info().weights`` is empty and ``info().real_weights`` is False,
so their results are never a paper metric.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

from baselines.common import IMAGE_FIX, require_finite
from harness.api import AdapterInfo, ClassToImage, ImageTokenizer, TextToImage
from harness.seeding import item_generator, item_seed


def _check_options(options: dict, allowed: Sequence[str], who: str) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"{who}.generate got unknown option(s) {unknown}; it accepts {sorted(allowed)}")


def _fine_weight(num_steps: int | None) -> float:
    """Share of per-pixel noise: 0.2 without ``num_steps``; 0.2 * (1 + 4 / n) with it (0.4 at 4 steps, 0.25 at 16)."""
    return 0.2 if num_steps is None else min(1.0, 0.2 * (1.0 + 4.0 / num_steps))


def _smooth_noise(seed: int, resolution: int, fine_weight: float = 0.2):
    """A (3, R, R) image in [0,1]: low-resolution noise upsampled, so it looks like an image, not static."""
    import torch
    import torch.nn.functional as F

    g = item_generator(seed)
    coarse = torch.rand((1, 3, max(1, resolution // 4), max(1, resolution // 4)), generator=g)
    fine = torch.rand((1, 3, resolution, resolution), generator=g)
    up = F.interpolate(coarse, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return ((1.0 - fine_weight) * up + fine_weight * fine).clamp(0, 1)[0]


class _DummyBase:
    def __init__(self, resolution: int = 32, delay_s: float = 0.0, num_steps: int | None = None):
        if int(resolution) < 1:
            raise ValueError(f"resolution must be a positive integer, got {resolution!r}")
        if float(delay_s) < 0:
            raise ValueError(f"delay_s must be >= 0, got {delay_s!r}")
        if num_steps is not None and (isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1):
            raise ValueError(f"num_steps must be a positive integer or unset, got {num_steps!r}")
        self.resolution = int(resolution)
        self.delay_s = float(delay_s)
        self.num_steps = num_steps

    def _sleep(self, n: int) -> None:
        if self.delay_s:
            time.sleep(self.delay_s * n)

    def _images(self, who: str, what: str, keys: list[str], seeds: Sequence[int], options: dict):
        """One smooth noise image per (key, seed): the generator seeded with ``item_seed(seed, key)``."""
        import torch

        _check_options(options, ("steps", "guidance_scale"), who)
        if len(keys) != len(seeds):
            raise ValueError(f"got {len(keys)} {what} but {len(seeds)} seeds")
        if not keys:
            return torch.zeros((0, 3, self.resolution, self.resolution))
        self._sleep(len(keys))
        weight = _fine_weight(self.num_steps)
        return torch.stack([_smooth_noise(item_seed(s, k), self.resolution, weight) for k, s in zip(keys, seeds)])


class DummyTextToImage(_DummyBase, TextToImage):
    """prompt + seed -> smooth random image; a pure function of (prompt, seed, resolution)."""

    def info(self) -> AdapterInfo:
        return AdapterInfo(name="dummy-t2i", kind=self.kind, resolution=self.resolution, dtype="float32",
                           steps=self.num_steps or 1, num_params=0, weights={}, real_weights=False,
                           extra={"note": "deterministic noise images for harness tests"})

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], **options: Any):
        return self._images("dummy-t2i", "prompts", list(prompts), seeds, options)


class DummyClassToImage(_DummyBase, ClassToImage):
    """class id + seed -> smooth random image."""

    def info(self) -> AdapterInfo:
        return AdapterInfo(name="dummy-c2i", kind=self.kind, resolution=self.resolution, dtype="float32",
                           steps=self.num_steps or 1, num_params=0, weights={}, real_weights=False)

    def generate(self, class_ids: Sequence[int], seeds: Sequence[int], **options: Any):
        return self._images("dummy-c2i", "class ids", [f"class:{int(c)}" for c in class_ids], seeds, options)


class DummyTokenizer(ImageTokenizer):
    """A lossy but deterministic 'tokenizer': quantise (continuous) or pool + quantise (discrete).

    Reconstruction error is real and path-dependent (discrete is coarser), so recon
    metrics computed on it are non-trivial yet reproducible.
    """

    paths = ("continuous", "discrete")
    downsample = 2

    def __init__(self, continuous_levels: int = 64, discrete_levels: int = 8, delay_s: float = 0.0):
        if int(continuous_levels) < 2 or int(discrete_levels) < 2:
            raise ValueError("continuous_levels and discrete_levels must be >= 2")
        self.continuous_levels = int(continuous_levels)
        self.discrete_levels = int(discrete_levels)
        self.delay_s = float(delay_s)

    def info(self) -> AdapterInfo:
        return AdapterInfo(name="dummy-tokenizer", kind=self.kind, resolution=None, dtype="float32",
                           num_params=0, weights={}, real_weights=False,
                           extra={"paths": list(self.paths), "downsample": self.downsample})

    def reconstruct(self, images, path: str | None = None):
        import torch.nn.functional as F

        from harness.images import check_batch

        path = path or self.paths[0]
        if path not in self.paths:
            raise ValueError(f"dummy-tokenizer: unknown path {path!r}; choose one of {self.paths}")
        if hasattr(images, "is_floating_point"):
            require_finite(images, "dummy-tokenizer input images", fix=IMAGE_FIX)
        check_batch(images, name="dummy-tokenizer input", multiple_of=self.downsample)
        if self.delay_s:
            time.sleep(self.delay_s * images.shape[0])
        x = images.float().clamp(0, 1)
        if path == "discrete":
            x = F.interpolate(F.avg_pool2d(x, self.downsample), scale_factor=self.downsample, mode="nearest")
            levels = self.discrete_levels
        else:
            levels = self.continuous_levels
        return (x * (levels - 1)).round() / (levels - 1)
