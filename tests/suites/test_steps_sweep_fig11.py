"""Fig. 11's path: the sweep over a class-to-image adapter with ImageNet-256 gFID (imagenet_gfid) as the inner metric."""
from __future__ import annotations

import json

import numpy as np
import pytest

from harness.jobs import run
from suites.steps_sweep import StepsSweepSuite

GFID = ["classes=0:5", "images_per_class=2", "batch_size=10", "model.resolution=16",
        "metrics.inception.random_init_seed=0", "metrics.inception.batch_size=10", "metrics.frechet=eigh"]


def test_a_class_to_image_inner_suite_makes_fig11():
    suite = StepsSweepSuite({"inner": {"suite": "imagenet_gfid"}, "adapters": ["dummy-c2i"]})
    assert suite.figure_id() == "fig11"
    assert suite.point_overrides("dummy-c2i", 64)["model.num_steps"] == 64


def test_default_config_targets_mjhq_sana_fid_for_dcar_and_its_discrete_only_baseline():
    cfg = StepsSweepSuite({}).cfg
    assert cfg.steps == [4, 6, 8, 10, 12, 16, 24, 32]
    assert cfg.adapters == ["dc-ar", "dc-ar-discrete-only"]
    assert (cfg.inner.suite, cfg.inner.metric, cfg.inner.metric_direction) == ("mjhq_fid", "results.fid.sana", "lower")


@pytest.mark.slow  # two 10-image gFID runs with 2048-d statistics: ~1 min on 2 busy cores
def test_fig11_sweep_over_dummy_c2i_plots_the_inner_gfid(tmp_path):
    rng = np.random.default_rng(3)
    basis = rng.normal(size=(2048, 32)) * 0.05
    ref = tmp_path / "adm_in256_stats.npz"
    np.savez(ref, mu=rng.uniform(0, 0.3, 2048), sigma=basis @ basis.T + np.eye(2048) * 1e-3)
    out = tmp_path / "sweep"
    sets = ["steps=[4,16]", "adapters=[dummy-c2i]", "inner.suite=imagenet_gfid", "inner.metric=results.fid",
            "report.labels.dummy-c2i=MAR-B stand-in", f"inner.config.reference.stats_path={ref}",
            *[f"inner.config.{s}" for s in GFID if not s.startswith(("model.", "batch_size"))],
            "inner.model.resolution=16"]
    res = run("steps_sweep", None, out, overrides=sets, show_progress=False).summary["results"]
    assert res["figure"] == "fig11"
    data = json.loads((out / "figures" / "fig11.json").read_text())
    fids = [json.loads((out / f"points/dummy-c2i/steps-{s:03d}/summary.json").read_text())["results"]["fid"]
            for s in (4, 16)]
    assert data["series"][0]["y"] == fids and data["series"][0]["label"] == "MAR-B stand-in"
    assert sorted(f["value"] for f in data["paper_facts"]) == [12.0, 64.0]  # DC-AR 12, MAR-B 64
    assert fids[0] != fids[1]


def test_the_fig11_configuration_with_mar_b_is_checked_without_loading_mar(tmp_path):
    """Registry, kind, step option and the inner gFID config of mar-b are validated before any point (or MAR) runs."""
    np.savez(tmp_path / "ref.npz", mu=np.zeros(2048), sigma=np.eye(2048))
    suite = StepsSweepSuite({"adapters": ["mar-b", "dummy-c2i"], "steps": [16, 64],
                             "inner": {"suite": "imagenet_gfid", "metric": "results.fid",
                                       "config": {"reference": {"stats_path": str(tmp_path / "ref.npz")},
                                                  "metrics": {"inception": {"random_init_seed": 0}}}}})
    items = suite.plan()
    suite.validate(items)
    assert [it.id for it in items] == ["mar-b/steps-016", "mar-b/steps-064", "dummy-c2i/steps-016",
                                       "dummy-c2i/steps-064"]
    assert suite.point_overrides("mar-b", 64) == {"reference.stats_path": str(tmp_path / "ref.npz"),
                                                 "metrics.inception.random_init_seed": 0, "model.num_steps": 64}


def test_doctor_lists_what_the_sweeps_inner_suite_needs_under_the_sweeps_inner_config():
    random_inception = {"metrics": {"inception": {"random_init_seed": 0}}}
    reqs = StepsSweepSuite.requirements({"inner": {"suite": "imagenet_gfid", "config": random_inception},
                                         "adapters": ["dummy-c2i"]})
    assert [r.name for r in reqs] == ["ImageNet 256x256 gFID reference statistics"]
    reqs = StepsSweepSuite.requirements({"inner": {"suite": "imagenet_gfid"}, "adapters": ["dummy-c2i"]})
    assert "FID Inception weights" in [r.name for r in reqs]
