"""imagenet_recon on procedural pictures (``dataset.kind: shapes``): held-out ``ShapesDataset`` pictures rendered
in ``run_batch`` from (seed, index), labelled NOT ImageNet everywhere, a null ``dataset.limit`` refused in one line.

The helpers come from test_imagenet_recon.py; the cheap stand-in extractor replaces Inception except in the slow test.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from harness.api import UserError
from harness.metrics.fid import fid_from_features
from harness.runner.config import ConfigError
from tests.stand_ins import TinyExtractor
from tests.suites.test_imagenet_recon import FAST, _ctx, _feed_back, _hints, _message, _run, _suite, _with_ids

SHAPES = {"dataset.kind": "shapes", "dataset.resolution": 64, "dataset.limit": 4}


@pytest.fixture
def tiny_extractor(monkeypatch):
    import harness.metrics.inception as inception

    monkeypatch.setattr(inception, "InceptionFeatureExtractor", TinyExtractor)
    return TinyExtractor()


def _records(run_dir):
    lines = (run_dir / "records" / "shard-0-of-1.jsonl").read_text().splitlines()
    return {r["item_id"]: r for r in map(json.loads, lines)}


def _rendered(seed: int, n: int, resolution: int) -> np.ndarray:
    from dcar_training.data import ShapesDataset

    ds = ShapesDataset(n, resolution, seed)
    return np.stack([ds.image(i) for i in range(n)])


def _dummy_psnr(u8: np.ndarray, path: str) -> np.ndarray:
    """DummyTokenizer's reconstruction PSNR written out in numpy: (2x2 mean pool, nearest up for discrete) then
    quantisation to 64 (continuous) / 8 (discrete) levels, then uint8 rounding as every metric sees it."""
    x = u8.astype(np.float64) / 255.0
    if path == "discrete":
        n, h, w, c = x.shape
        pooled = x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
        x = pooled.repeat(2, axis=1).repeat(2, axis=2)
    levels = 64 if path == "continuous" else 8
    recon = np.floor(np.round(x * (levels - 1)) / (levels - 1) * 255 + 0.5)
    mse = ((recon - u8.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
    return 10 * np.log10(255.0 ** 2 / mse)


def test_plan_renders_held_out_pictures_and_the_dummy_tokenizer_gives_the_expected_psnr(tmp_path, tiny_extractor):
    from baselines.dummy import DummyTokenizer
    from harness.io import bytes_sha256
    from suites.imagenet_recon import ImageNetReconSuite, _inputs_digest

    suite = _suite(**SHAPES)
    items = suite.plan()
    assert [it.id for it in items] == [f"shapes/s1/{i:05d}" for i in range(4)]
    assert items[3].payload == {"shapes_seed": 1, "index": 3, "example": True}
    suite.validate(items)  # nothing to check on disk; 4 >= the 2 rFID needs
    want = _rendered(1, 4, 64)
    # rebuilt from the payload alone, already square at the resolution (no crop), not the training pictures
    assert all(np.array_equal(suite._load(it), want[i]) for i, it in enumerate(items))
    assert not np.array_equal(want, _rendered(0, 4, 64))
    ctx = _ctx(tmp_path, suite)
    records = _with_ids(items, suite.run_batch(items[:3], DummyTokenizer(), ctx)
                        + suite.run_batch(items[3:], DummyTokenizer(), ctx))
    for path in ("continuous", "discrete"):
        expected = _dummy_psnr(want, path)
        assert [r["psnr"][path] for r in records] == pytest.approx(expected, rel=1e-9), path
    assert records[0]["input_sha256"] == bytes_sha256(want[0].tobytes())
    example = tmp_path / "run" / "artifacts" / "examples" / "shapes" / "s1" / "00002" / "input.png"
    assert np.array_equal(np.asarray(Image.open(example)), want[2])
    assert (tmp_path / "run" / "artifacts" / "inception" / "shapes" / "s1" / "00003.npz").is_file()

    summary = ImageNetReconSuite(suite.config).aggregate(records, ctx)
    assert summary["dataset"] == {"dataset": "procedural-shapes", "label": "procedural shapes (held-out seed 1), "
                                  "NOT ImageNet", "crop": "none (rendered at resolution)", "resolution": 64, "seed": 1}
    cont = summary["paths"]["continuous"]
    assert cont["PSNR"] == pytest.approx(_dummy_psnr(want, "continuous").mean(), rel=1e-9)
    # rFID's reference statistics are those of the same rendered pictures
    assert summary["reference_stats"]["inputs_sha256"] == _inputs_digest(records)
    real = tiny_extractor(torch.from_numpy(want).permute(0, 3, 1, 2))
    recon = tiny_extractor(DummyTokenizer().reconstruct(torch.from_numpy(want).permute(0, 3, 1, 2) / 255.0,
                                                        path="continuous"))
    f32 = [np.asarray(f, np.float32).astype(np.float64) for f in (real, recon)]
    assert cont["rFID"] == pytest.approx(fid_from_features(*f32), rel=1e-9)
    assert summary["fid_protocol"]["dataset"] == "procedural-shapes"
    assert summary["is_paper_metric"] is False
    assert "dataset: procedural shapes (held-out seed 1), NOT ImageNet" in summary["warnings"]
    text = ImageNetReconSuite(suite.config).render(json.loads(json.dumps(summary)))
    assert "procedural shapes (held-out seed 1), NOT ImageNet" in text and "NOT the paper's metric" in text


def _tiny_dc_ht_run(out):
    """Like the smoke entry but with the tiny DC-HT with random weights, random Inception and LPIPS trunk seeds."""
    over = {**FAST, "dataset.kind": "shapes", "dataset.resolution": 128, "dataset.limit": 8,
            "model.config": "tiny", "model.random_init_seed": 0, "metrics.frechet": "eigh"}
    res = _run("imagenet_recon", "dc-ht", out, overrides=over, show_progress=False, batch_size=4)
    results = res.summary["results"]
    assert results["num_images"] == 8 and sorted(results["paths"]) == ["continuous", "discrete"]
    assert all(v["rFID"] is not None and v["PSNR"] > 0 for v in results["paths"].values())
    assert list(_records(out)) == [f"shapes/s1/{i:05d}" for i in range(8)]
    assert results["dataset"]["label"] == "procedural shapes (held-out seed 1), NOT ImageNet"
    assert results["is_paper_metric"] is False and results["weights"]["adapter"] == "dc-ht"
    assert "dataset: procedural shapes (held-out seed 1), NOT ImageNet" in results["warnings"]
    report = (out / "report.md").read_text()
    assert "procedural shapes (held-out seed 1), NOT ImageNet" in report and "NOT the paper's metric" in report
    assert len(list((out / "artifacts" / "examples" / "shapes" / "s1").iterdir())) == 8  # report.examples: 8
    return results


def test_tiny_dc_ht_on_shapes_at_128_px_through_the_runner(tmp_path, tiny_extractor):
    """The stand-in extractor replaces the 2048-d Inception (over a minute on a busy 2-core machine; see below)."""
    _tiny_dc_ht_run(tmp_path / "r")


@pytest.mark.slow
def test_tiny_dc_ht_on_shapes_with_the_kaiming_inception(tmp_path):
    """The same run with the real (Kaiming-initialised) 2048-d FID Inception, exactly as the smoke entry."""
    results = _tiny_dc_ht_run(tmp_path / "r")
    assert results["fid_protocol"]["extractor"].startswith("fid-inception")


def test_batch_size_shards_and_resume_give_the_same_shapes_results(tmp_path, tiny_extractor):
    over = {**FAST, **SHAPES, "dataset.limit": 5, "report.examples": 2}
    kw = {"overrides": over, "show_progress": False}
    a = _run("imagenet_recon", "dummy-tokenizer", tmp_path / "a", batch_size=2, **kw)  # a padded last batch
    assert _run("imagenet_recon", "dummy-tokenizer", tmp_path / "b", batch_size=4, shard="0/2", **kw).summary is None
    b = _run("imagenet_recon", "dummy-tokenizer", tmp_path / "b", batch_size=3, shard="1/2", **kw)
    again = _run("imagenet_recon", "dummy-tokenizer", tmp_path / "a", batch_size=2, **kw)  # resume: nothing to redo
    assert again.completed == 0 and again.skipped == 5
    ra, rb = a.summary["results"], b.summary["results"]
    for path, vals in ra["paths"].items():
        for key, v in vals.items():
            assert rb["paths"][path][key] == pytest.approx(v, rel=1e-6, abs=1e-12), (path, key)
    assert rb["reference_stats"]["source"] == "cache"  # the same rendered pictures, the same protocol
    shown = [k for k, r in _records(tmp_path / "a").items() if "examples" in r]
    assert shown == ["shapes/s1/00000", "shapes/s1/00001"]


def test_a_null_limit_is_refused_in_one_line_and_the_hint_works(tmp_path, tiny_extractor):
    from suites.imagenet_recon import ImageNetReconSuite

    msg = _message(lambda: _suite(**{"dataset.kind": "shapes"}))
    assert "dataset.limit" in msg and "shapes" in msg and "\n" not in msg
    with pytest.raises(ConfigError):
        _suite(**{"dataset.kind": "shapes"})
    assert _feed_back(msg) == ["dataset.limit"]
    fixed = _suite(**{"dataset.kind": "shapes", "dataset.limit": int(_hints(msg)[0][1])})
    assert len(fixed.plan()) == int(_hints(msg)[0][1])
    with pytest.raises(UserError, match="dataset.limit"):  # the runner refuses it before building anything
        _run("imagenet_recon", "dummy-tokenizer", tmp_path / "r", overrides={**FAST, "dataset.kind": "shapes"},
             show_progress=False)
    assert not (tmp_path / "r" / "records").exists()
    one = _suite(**{**SHAPES, "dataset.limit": 1})
    with pytest.raises(UserError, match="--set dataset.limit=2"):
        one.validate(one.plan())
    # no dataset requirement: with random metric trunks a shapes run needs no file at all
    cfg = {"dataset": {"kind": "shapes", "limit": 8}}
    names = [r.name for r in ImageNetReconSuite.requirements(cfg)]
    assert names == ["FID Inception weights", "LPIPS AlexNet backbone"]
    smoke = {**cfg, "metrics": {"inception": {"random_init_seed": 0}, "lpips": {"random_backbone_seed": 0}}}
    assert ImageNetReconSuite.requirements(smoke) == []


def test_the_training_seed_is_labelled_not_held_out():
    label = _suite(**SHAPES, **{"dataset.seed": 0}).dataset_description()["label"]
    assert "NOT held out" in label and "NOT ImageNet" in label
    assert _suite(**SHAPES, **{"dataset.seed": 7}).plan()[0].id == "shapes/s7/00000"
