"""imagenet_gfid: MAR's class-conditional gFID and Inception Score, checked against torch-fidelity on the saved PNGs.

MAR evaluates with ``torch_fidelity.calculate_metrics(input1=<folder of PNGs>, fid_statistics_file=<npz>)`` of
LTH14's torch-fidelity fork. Stock torch-fidelity 0.4.0 has no ``fid_statistics_file``; its documented cache does the
same thing: statistics stored as ``<input2_cache_name>-<extractor>-stat-fid-2048.pt`` are used instead of reading
input 2. The same seeded random Inception weights are handed to torch-fidelity as a file
(``feature_extractor_weights_path``), offline.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from harness.api import UserError
from harness.data.adm_stats import ReferenceStatsError
from harness.jobs import aggregate, run
from harness.runner.config import ConfigError

TINY = ["classes=0:5", "images_per_class=2", "batch_size=10", "model.resolution=32",
        "metrics.inception.random_init_seed=0", "metrics.inception.batch_size=10"]
#: the same trace as scipy's sqrtm (tests/harness/metrics/test_fid.py), seconds instead of a minute for 2048-d
FAST = ["metrics.frechet=eigh"]


@pytest.fixture(scope="module")
def reference_npz(tmp_path_factory):
    """MAR-format statistics (mu, sigma of pool3): a well-conditioned SPD covariance near random-Inception features."""
    rng = np.random.default_rng(7)
    path = tmp_path_factory.mktemp("ref") / "adm_in256_stats.npz"
    basis = rng.normal(size=(2048, 64)) * 0.05
    np.savez(path, mu=rng.uniform(0.0, 0.3, 2048), sigma=basis @ basis.T + np.diag(rng.uniform(1e-3, 1e-2, 2048)))
    return path


@pytest.fixture(scope="module")
def gfid_run(tmp_path_factory, reference_npz):
    out = tmp_path_factory.mktemp("gfid") / "run"
    res = run("imagenet_gfid", "dummy-c2i", out, overrides=[*TINY, *FAST, f"reference.stats_path={reference_npz}"],
              show_progress=False)
    return out, res.summary


def _torch_fidelity(images_dir, reference_npz, tmp_path):
    """MAR's call (fid + isc over the PNG folder against the npz), on stock torch-fidelity with our weights."""
    import torch_fidelity

    from harness.metrics.inception import random_state_dict

    weights = tmp_path / "weights-inception-random0.pth"
    torch.save(random_state_dict(0), weights)
    cache = tmp_path / "fidelity_cache"
    cache.mkdir()
    with np.load(reference_npz) as ref:  # torch-fidelity's statistics of input 1: float32 mu, float64 sigma
        torch.save({"mu": ref["mu"].astype(np.float32), "sigma": ref["sigma"]},
                   cache / "adm_in256-inception-v3-compat-stat-fid-2048.pt")
    unread = tmp_path / "input2-is-never-read"  # one picture: its statistics (a NaN covariance) would fail the test
    unread.mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8), (200, 10, 10)).save(unread / "0.png")
    return torch_fidelity.calculate_metrics(
        input1=str(images_dir), input2=str(unread), input2_cache_name="adm_in256", cache_root=str(cache),
        fid=True, isc=True, cuda=False, verbose=False, feature_extractor_weights_path=str(weights))


@pytest.mark.slow  # one tiny run (10 images, 2048-d statistics) costs ~30 s on 2 busy cores
def test_gfid_and_is_equal_torch_fidelity_on_the_saved_pngs(gfid_run, reference_npz, tmp_path):
    out, summary = gfid_run
    res = summary["results"]
    pngs = sorted((out / "artifacts" / "images").glob("*.png"))
    assert [p.name for p in pngs] == [f"{c * 2 + j:05d}.png" for c in range(5) for j in range(2)]
    theirs = _torch_fidelity(out / "artifacts" / "images", reference_npz, tmp_path)
    assert res["fid"] > 1.0
    assert res["fid"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-4)
    import shutil  # the YAML's default Fréchet method (scipy sqrtm) gives the same number

    shutil.copytree(out, tmp_path / "copy")
    sqrtm = aggregate(tmp_path / "copy", overrides=["metrics.frechet=sqrtm"])["results"]
    assert sqrtm["frechet"]["params"]["method"] == "sqrtm"
    assert sqrtm["fid"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-4)
    assert res["inception_score"]["mean"] == pytest.approx(theirs["inception_score_mean"], rel=1e-5)
    assert res["inception_score"]["std"] == pytest.approx(theirs["inception_score_std"], rel=1e-3, abs=1e-6)
    assert res["inception_score"]["splits"] == 10


@pytest.mark.slow  # one tiny run (10 images, 2048-d statistics) costs ~30 s on 2 busy cores
def test_summary_says_subset_and_random_weights(gfid_run):
    out, summary = gfid_run
    res = summary["results"]
    assert res["num_images"] == 10 and res["classes"] == {"first": 0, "last": 4, "count": 5}
    assert res["protocol_label"] == "not the 50k protocol" and res["is_paper_metric"] is False
    assert any("not the 50k protocol" in w for w in res["warnings"])
    assert res["reference_stats"]["format"] == "mu-sigma"
    report = (out / "report.md").read_text()
    assert "gFID" in report and "not the 50k protocol" in report
    records = [json.loads(line) for line in (out / "records" / "shard-0-of-1.jsonl").read_text().splitlines()]
    assert [r["class_id"] for r in records] == [c for c in range(5) for _ in range(2)]


@pytest.mark.slow  # one tiny run (10 images, 2048-d statistics) costs ~30 s on 2 busy cores
def test_reference_is_an_aggregation_only_key(gfid_run, tmp_path):
    """A corrected reference file re-aggregates from the stored features (no image is generated again)."""
    out, summary = gfid_run
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    with np.load(summary["results"]["reference_stats"]["path"]) as ref:
        np.savez(tmp_path / "other.npz", mu=ref["mu"] + 0.1, sigma=ref["sigma"])
    before = (copy / "records" / "shard-0-of-1.jsonl").read_bytes()
    again = aggregate(copy, overrides=[f"reference.stats_path={tmp_path / 'other.npz'}", "metrics.frechet=eigh"])
    assert (copy / "records" / "shard-0-of-1.jsonl").read_bytes() == before
    assert again["results"]["fid"] == pytest.approx(summary["results"]["fid"] + 0.01 * 2048, rel=0.2)
    assert again["results"]["inception_score"] == summary["results"]["inception_score"]
    with pytest.raises(ConfigError, match="metrics.isc_splits=10"):  # 11 splits of 10 images: refused, not NaN
        aggregate(copy, overrides=["metrics.isc_splits=11"])


def test_plan_is_class_major_with_mar_indices():
    from suites.imagenet_gfid import ImageNetGFIDSuite

    suite = ImageNetGFIDSuite({"classes": "3:5", "images_per_class": 3})
    items = suite.plan()
    assert [it.id for it in items][:4] == ["class0003/000", "class0003/001", "class0003/002", "class0004/000"]
    assert [it.payload["index"] for it in items] == [9, 10, 11, 12, 13, 14]
    assert ImageNetGFIDSuite({"classes": [7, 2], "images_per_class": 1}).classes() == [2, 7]  # PNG-name order


@pytest.mark.parametrize("overrides, words", [
    (["classes=10:20"], "base-60"),  # YAML reads unquoted 10:20 as 620
    (["classes=0:1001"], "outside 0..999"),
    (["classes=a:b"], "expected 'A:B'"),
    (["images_per_class=0"], "images_per_class must be >= 1"),
    (["classes=0:2", "images_per_class=2"], "Inception Score 10"),
])
def test_bad_config_is_one_line_before_anything_runs(tmp_path, reference_npz, overrides, words):
    out = tmp_path / "run"
    with pytest.raises(ConfigError) as exc:
        run("imagenet_gfid", "dummy-c2i", out, overrides=[*TINY, f"reference.stats_path={reference_npz}", *overrides],
            show_progress=False)
    assert words in str(exc.value) and "\n" not in str(exc.value)
    assert not out.exists()


@pytest.mark.parametrize("make, error", [
    (lambda p: p.write_bytes(b"garbage"), ReferenceStatsError),
    (lambda p: np.savez(p, m=np.zeros(2048), s=np.eye(4)), ReferenceStatsError),
    (lambda p: np.savez(p, mu=np.zeros(64), sigma=np.eye(64)), ReferenceStatsError),
], ids=["malformed", "wrong-keys", "wrong-dim"])
def test_bad_reference_npz_is_refused_before_the_model_loads(tmp_path, make, error):
    bad = tmp_path / "ref.npz"
    make(bad)
    out = tmp_path / "run"
    with pytest.raises(error) as exc:
        run("imagenet_gfid", "dummy-c2i", out, overrides=[*TINY, f"reference.stats_path={bad}"], show_progress=False)
    assert "\n" not in str(exc.value) and "reference.stats_path" in str(exc.value) and str(bad) in str(exc.value)
    assert not out.exists()


def test_missing_reference_names_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DCAR_IMAGENET256_FID_STATS", raising=False)
    with pytest.raises(UserError, match="DCAR_IMAGENET256_FID_STATS"):
        run("imagenet_gfid", "dummy-c2i", tmp_path / "run", overrides=TINY, show_progress=False)
    assert not (tmp_path / "run").exists()


def test_inception_logits_come_with_unchanged_pool3_features():
    from harness.metrics.inception import InceptionFeatureExtractor

    images = torch.rand((2, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    plain = InceptionFeatureExtractor(random_init_seed=0, resize="bilinear_tf1x", batch_size=2)
    both = InceptionFeatureExtractor(random_init_seed=0, resize="bilinear_tf1x", batch_size=2, logits=True)
    pool, logits = both.features_and_logits(images)
    np.testing.assert_array_equal(pool, plain(images))
    assert logits.shape == (2, 1008) and np.isfinite(logits).all() and both.describe() == plain.describe()
    with pytest.raises(ValueError, match="bilinear_tf1x"):
        InceptionFeatureExtractor(random_init_seed=0, resize="bilinear_pytorch", logits=True)
    with pytest.raises(ValueError, match="logits=True"):
        plain.features_and_logits(images)


@pytest.mark.slow  # two tiny gFID runs: ~1 min on 2 busy cores
def test_a_run_cut_after_its_first_batch_resumes_to_the_same_records_pngs_and_number(tmp_path, reference_npz):
    sets = [*TINY, *FAST, "batch_size=5", f"reference.stats_path={reference_npz}"]
    whole = run("imagenet_gfid", "dummy-c2i", tmp_path / "whole", overrides=sets, show_progress=False).summary
    cut = tmp_path / "cut"
    run("imagenet_gfid", "dummy-c2i", cut, overrides=sets, show_progress=False, aggregate_when_done=False)
    records = cut / "records" / "shard-0-of-1.jsonl"
    lines = records.read_text().splitlines(keepends=True)
    records.write_text("".join(lines[:5]))  # what a kill after the first batch leaves
    for name in ("images/00007.png", "inception/00007.npz"):
        (cut / "artifacts" / name).unlink()
    again = run("imagenet_gfid", "dummy-c2i", cut, overrides=sets, show_progress=False)
    assert again.skipped == 5 and again.completed == 5
    assert records.read_text() == (tmp_path / "whole" / "records" / "shard-0-of-1.jsonl").read_text()
    for name in ("images/00007.png", "inception/00007.npz"):
        assert (cut / "artifacts" / name).read_bytes() == (tmp_path / "whole" / "artifacts" / name).read_bytes()
    assert again.summary["results"]["fid"] == whole["results"]["fid"]
