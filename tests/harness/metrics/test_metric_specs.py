"""Every registered metric of this package resolves and declares name, direction and parameters."""
from __future__ import annotations

import pytest

from harness import registry


@pytest.mark.parametrize("name,kwargs,direction", [
    ("psnr", {}, "higher"), ("ssim", {"border": "valid"}, "higher"), ("ssim", {"precision": "float64"}, "higher"),
    ("lpips", {"random_backbone_seed": 0}, "lower"),
    ("fid", {"method": "eigh"}, "lower"), ("kid", {"subsets": 3}, "lower"),
])
def test_registered_metrics_declare_their_spec(name, kwargs, direction):
    metric = registry.resolve("metric", name)(**kwargs)
    spec = metric.spec
    assert spec.name == name and spec.direction == direction and spec.reference
    assert spec.to_dict()["params"]  # parameters are recorded, not empty
    recorded_as = {"border": "border", "method": "method", "subsets": "subsets", "precision": "ssim_precision"}
    for key, value in kwargs.items():
        if key in recorded_as:
            assert spec.params[recorded_as[key]] == value


def test_ssim_spec_records_the_evaluator_precision_by_default():
    spec = registry.resolve("metric", "ssim")().spec
    assert spec.params["ssim_precision"] == "float32" and "DC-AE evaluator" in spec.params["precision_convention"]
    assert spec.to_dict()["params"]["ssim_precision"] == "float32"  # what lands in manifests and summaries
