"""Every registered metric of this package resolves and declares name, direction and parameters."""
from __future__ import annotations

import pytest

from harness import registry


@pytest.mark.parametrize("name,kwargs,direction", [
    ("psnr", {}, "higher"), ("ssim", {"border": "valid"}, "higher"), ("lpips", {"random_backbone_seed": 0}, "lower"),
    ("fid", {"method": "eigh"}, "lower"), ("kid", {"subsets": 3}, "lower"),
])
def test_registered_metrics_declare_their_spec(name, kwargs, direction):
    metric = registry.resolve("metric", name)(**kwargs)
    spec = metric.spec
    assert spec.name == name and spec.direction == direction and spec.reference
    assert spec.to_dict()["params"]  # parameters are recorded, not empty
    for key, value in kwargs.items():
        if key in ("border", "method", "subsets"):
            assert spec.params[key] == value
