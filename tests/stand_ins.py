"""Stand-ins for expensive metric models, shared by the tests that only need their shape of output."""
from __future__ import annotations

import numpy as np
import torch


class TinyExtractor:
    """Deterministic 3-d features (fixed projection of 4x4 mean colours) standing in for Inception.

    Three dimensions keep the covariances of four or more images full-rank, where sqrtm is well conditioned.
    """

    real_weights = False
    weights_id = "test:tiny-projection"

    def __init__(self, *args, **kwargs):
        self.proj = np.random.default_rng(0).normal(size=(48, 3))

    def describe(self):
        return {"extractor": "tiny-test-projection", "dims": 3, "weights": self.weights_id,
                "real_weights": self.real_weights, "resize": "none"}

    def __call__(self, images):
        from harness.images import to_uint8

        u8 = to_uint8(images).double()
        pooled = torch.nn.functional.adaptive_avg_pool2d(u8, 4).flatten(1).numpy() / 255.0
        return np.tanh(pooled @ self.proj)
