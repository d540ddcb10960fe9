"""The imagenet_recon suite: records, artifacts, aggregation from files, runner invariances, labelling.

Most tests swap the 2048-d Inception for a cheap deterministic extractor (the network itself is
tested in test_inception.py; a 2048-d sqrtm alone takes minutes on a busy 2-core machine); the
slow test runs the real (Kaiming-initialised) Inception end to end.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from harness.metrics.fid import FeatureStats, ProtocolMismatchError, fid_from_features
from harness.runner import run
from harness.api import RunContext

FAST = {"metrics.lpips.random_backbone_seed": 0, "metrics.inception.random_init_seed": 0}


class TinyExtractor:
    """Deterministic 3-d features (fixed projection of 4x4 mean colours) standing in for Inception.

    Three dimensions keep the covariances of four or more images full-rank, where sqrtm is well conditioned.
    """

    real_weights = False
    weights_id = "test:tiny-projection"

    def __init__(self, *args, **kwargs):
        self.proj = np.random.default_rng(0).normal(size=(48, 3))

    def describe(self):
        return {"extractor": "tiny-test-projection", "dims": 3, "weights": self.weights_id, "real_weights": False,
                "resize": "none"}

    def __call__(self, images):
        from harness.images import to_uint8

        u8 = to_uint8(images).double()
        pooled = torch.nn.functional.adaptive_avg_pool2d(u8, 4).flatten(1).numpy() / 255.0
        return np.tanh(pooled @ self.proj)


@pytest.fixture
def tiny_extractor(monkeypatch):
    import harness.metrics.inception as inception

    monkeypatch.setattr(inception, "InceptionFeatureExtractor", TinyExtractor)
    return TinyExtractor()


def _suite(**over):
    from harness.runner.config import merge_config
    from suites.imagenet_recon import ImageNetReconSuite

    cfg = merge_config(ImageNetReconSuite.default_config(), None, {**FAST, **over})
    return ImageNetReconSuite(cfg)


def test_direct_lifecycle_records_artifacts_and_aggregate(tmp_path, tiny_extractor):
    from baselines.dummy import DummyTokenizer
    from harness.cache import Cache
    from harness.images import to_float
    from harness.metrics.recon import psnr_per_image, ssim_per_image
    from suites.imagenet_recon import ImageNetReconSuite

    suite = _suite(**{"dataset.kind": "skimage_samples", "dataset.resolution": 64, "dataset.limit": 4})
    items = suite.plan()
    assert [it.id for it in items] == ["skimage/astronaut", "skimage/coffee", "skimage/chelsea", "skimage/rocket"]
    ctx = RunContext(run_dir=tmp_path / "run", config=suite.config, cache=Cache(tmp_path / "cache"),
                     show_progress=False)
    tok = DummyTokenizer()
    records = suite.run_batch(items[:3], tok, ctx) + suite.run_batch(items[3:], tok, ctx)
    for it, rec in zip(items, records):
        rec["item_id"] = it.id  # what the runner adds
    # per-image numbers are the metric functions applied to the crop and its reconstruction
    crop = torch.from_numpy(suite._load(items[1])).permute(2, 0, 1)[None]
    recon = tok.reconstruct(to_float(crop), path="discrete")
    assert records[1]["psnr"]["discrete"] == pytest.approx(psnr_per_image(crop, recon)[0], abs=1e-12)
    assert records[1]["ssim"]["discrete"] == pytest.approx(ssim_per_image(crop, recon)[0], abs=1e-12)
    assert (tmp_path / "run" / "artifacts" / "inception" / "skimage" / "coffee.npz").is_file()

    summary = suite.aggregate(records, ctx)
    cont, disc = summary["paths"]["continuous"], summary["paths"]["discrete"]
    assert cont["num_images"] == 4 and cont["PSNR"] > disc["PSNR"] and cont["LPIPS"] < disc["LPIPS"]
    assert cont["PSNR"] == pytest.approx(np.mean([r["psnr"]["continuous"] for r in records]))
    # rFID = Fréchet distance between the real crops' features and the reconstructions' features
    crops = torch.from_numpy(np.stack([suite._load(it) for it in items])).permute(0, 3, 1, 2)
    real = tiny_extractor(crops)
    rec_feats = tiny_extractor(tok.reconstruct(to_float(crops), path="discrete"))
    # artifacts hold float32 features (what the network outputs), statistics are float64
    f32 = [np.asarray(f, np.float32).astype(np.float64) for f in (real, rec_feats)]
    assert disc["rFID"] == pytest.approx(fid_from_features(*f32), rel=1e-9)
    assert disc["rFID"] > cont["rFID"] > 0
    assert summary["reference_stats"]["source"].startswith("computed")
    assert suite.aggregate(records, ctx)["reference_stats"]["source"] == "cache"  # the same crops: served
    # labelling: never presented as the paper's metric
    assert summary["is_paper_metric"] is False
    assert any("NOT ImageNet" in w for w in summary["warnings"])
    text = ImageNetReconSuite({}).render(json.loads(json.dumps(summary)))
    assert "NOT ImageNet" in text and "NOT the paper's metric" in text and "discrete_rFID" in text
    # a tampered artifact is detected
    art = tmp_path / "run" / "artifacts" / "inception" / "skimage" / "rocket.npz"
    blob = bytearray(art.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    art.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="sha256"):
        suite.aggregate(records, ctx)


def _imagefolder(root, n=6, corrupt=None):
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"n0000000{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 256, (40 + i, 56 + 2 * i, 3), dtype=np.uint8)
        Image.fromarray(arr).resize((90 + 7 * i, 70 + 5 * i), Image.BICUBIC).save(d / f"img_{i}.JPEG", quality=92)
    if corrupt is not None:
        p = sorted(root.rglob("*.JPEG"))[corrupt]
        p.write_bytes(p.read_bytes()[:200])
        return p


def _run(out, root, **kw):
    over = {**FAST, "dataset.root": str(root), "dataset.resolution": 64, **kw.pop("over", {})}
    return run("imagenet_recon", "dummy-tokenizer", out, overrides=over, show_progress=False, **kw)


def test_runner_results_do_not_depend_on_batch_size_or_shards_and_skip_corrupt(tmp_path, tiny_extractor):
    root = tmp_path / "val"
    bad = _imagefolder(root, corrupt=3)
    with pytest.raises(Exception, match=bad.name):
        _run(tmp_path / "strict", root, batch_size=4)
    over = {"dataset.skip_corrupt": True}
    a = _run(tmp_path / "a", root, batch_size=2, over=over).summary["results"]
    b = _run(tmp_path / "b", root, batch_size=5, over=over).summary["results"]
    assert _run(tmp_path / "c", root, batch_size=3, shard="0/2", over=over).summary is None
    c = _run(tmp_path / "c", root, batch_size=3, shard="1/2", over=over).summary["results"]
    assert a["num_images"] == 5 and a["num_skipped"] == 1 and a["skipped"] == [f"{bad.parent.name}/{bad.name}"]
    assert any("skipped" in w for w in a["warnings"])
    # PSNR/SSIM are exact; LPIPS and Inception run batched convolutions, equal up to float32 rounding
    for other in (b, c):
        for path, vals in a["paths"].items():
            for key, v in vals.items():
                tol = 0 if key in ("PSNR", "SSIM", "num_images", "PSNR_identical_images") else 1e-6
                assert other["paths"][path][key] == pytest.approx(v, rel=tol, abs=1e-12), (path, key)
    assert b["reference_stats"]["source"] == "cache"  # same crops, same protocol: computed once


def test_reference_stats_file_of_another_protocol_is_refused(tmp_path, tiny_extractor):
    root = tmp_path / "val"
    _imagefolder(root, n=3)
    first = _run(tmp_path / "a", root, batch_size=3).summary["results"]
    proto = first["fid_protocol"]
    good = FeatureStats.from_features(np.random.default_rng(1).normal(size=(20, 3)), proto)
    good.save(tmp_path / "good.npz")
    ok = _run(tmp_path / "b", root, batch_size=3, over={"reference.stats_path": str(tmp_path / "good.npz")})
    assert ok.summary["results"]["reference_stats"]["source"] == "file"
    bad = FeatureStats.from_features(np.random.default_rng(1).normal(size=(20, 3)), {**proto, "resolution": 256})
    bad.save(tmp_path / "bad.npz")
    with pytest.raises(ProtocolMismatchError, match="resolution: 256 vs 64"):
        _run(tmp_path / "c", root, batch_size=3, over={"reference.stats_path": str(tmp_path / "bad.npz")})


def test_unsupported_path_and_bad_config_are_clear(tmp_path, tiny_extractor):
    root = tmp_path / "val"
    _imagefolder(root, n=2)
    with pytest.raises(ValueError, match="not supported by the adapter"):
        _run(tmp_path / "p", root, over={"paths": ["continuous", "hybrid"]})
    with pytest.raises(ValueError, match="dataset.kind"):
        _suite(**{"dataset.kind": "cifar"}).plan()


@pytest.mark.slow
def test_end_to_end_with_kaiming_inception_and_table1(tmp_path):
    """The real 2048-d Inception path through the runner, at 256 px so the report shows Table 1."""
    over = {**FAST, "dataset.kind": "skimage_samples", "dataset.limit": 3, "dataset.resolution": 256,
            "metrics.frechet": "eigh", "report.tokens": 64}
    res = run("imagenet_recon", "dummy-tokenizer", tmp_path / "r", overrides=over, show_progress=False, batch_size=2)
    results = res.summary["results"]
    assert results["fid_protocol"]["extractor"].startswith("fid-inception")
    assert results["paths"]["discrete"]["rFID"] > results["paths"]["continuous"]["rFID"] > 0
    report = (tmp_path / "r" / "report.md").read_text()
    assert "DC-HT (64 tokens)" in report and "21.50" in report and "NOT the paper's metric" in report


@pytest.mark.slow
def test_dc_ht_adapters_run_through_the_suite(tmp_path, tiny_extractor):
    """The real DC-HT adapter classes (tiny config, random weights): both paths for dc-ht, one for dc-ht-discrete."""
    over = {**FAST, "dataset.kind": "skimage_samples", "dataset.limit": 4, "dataset.resolution": 64,
            "model.config": "tiny", "model.random_init_seed": 0}
    hybrid = run("imagenet_recon", "dc-ht", tmp_path / "h", overrides=over, show_progress=False, batch_size=4)
    res = hybrid.summary["results"]
    assert sorted(res["paths"]) == ["continuous", "discrete"]
    assert res["weights"]["adapter"] == "dc-ht" and res["weights"]["adapter_real"] is False
    assert all(v["PSNR"] > 0 and v["rFID"] >= 0 for v in res["paths"].values())
    disc = run("imagenet_recon", "dc-ht-discrete", tmp_path / "d", overrides=over, show_progress=False, batch_size=4)
    dres = disc.summary["results"]
    assert list(dres["paths"]) == ["discrete"]
    # the discrete-only adapter reconstructs through the same discrete path as dc-ht with the same weights
    assert dres["paths"]["discrete"]["PSNR"] == pytest.approx(res["paths"]["discrete"]["PSNR"], rel=1e-6)


def test_requirements_follow_the_config():
    from suites.imagenet_recon import ImageNetReconSuite

    names = [r.name for r in ImageNetReconSuite.requirements(ImageNetReconSuite.default_config())]
    assert names == ["ImageNet validation images", "FID Inception weights", "LPIPS AlexNet backbone"]
    smoke = {"dataset": {"kind": "skimage_samples"},
             "metrics": {"inception": {"random_init_seed": 0}, "lpips": {"random_backbone_seed": 0}}}
    assert ImageNetReconSuite.requirements(smoke) == []


def test_paper_metric_label_needs_all_50000_val_images(tmp_path, tiny_extractor, monkeypatch):
    """IMAGENET_RECON.md A "Data": a val folder with fewer images is not the paper's metric, even with real weights."""
    import harness.data.imagenet as imagenet
    import suites.imagenet_recon as recon_suite
    from baselines.dummy import DummyTokenizer
    from harness.cache import Cache

    monkeypatch.setattr(TinyExtractor, "real_weights", True)
    monkeypatch.setattr(recon_suite.ImageNetReconSuite, "_lpips_identity", lambda self: ("test", True))
    manifest = {"adapter": "t", "adapter_info": {"real_weights": True}}
    monkeypatch.setattr(recon_suite, "_read_manifest", lambda ctx: manifest)
    root = tmp_path / "val"
    _imagefolder(root, n=4)

    def summary():
        suite = _suite(**{"dataset.root": str(root), "dataset.resolution": 64})
        ctx = RunContext(run_dir=tmp_path / "run", config=suite.config, cache=Cache(tmp_path / "cache"),
                         show_progress=False)
        items = suite.plan()
        records = suite.run_batch(items, DummyTokenizer(), ctx)
        for it, rec in zip(items, records):
            rec["item_id"] = it.id
        return suite.aggregate(records, ctx)

    partial = summary()
    assert partial["is_paper_metric"] is False
    assert any("not all 50,000" in w for w in partial["warnings"])
    monkeypatch.setattr(imagenet, "NUM_VAL_IMAGES", 4)  # pretend the folder is the whole split
    whole = summary()
    assert whole["is_paper_metric"] is True and whole["warnings"] == []
