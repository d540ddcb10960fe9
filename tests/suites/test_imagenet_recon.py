"""The imagenet_recon suite: records, artifacts, aggregation from files, runner invariances, labelling,
plan-time validation and fix hints that work when fed back.

Most tests swap the 2048-d Inception for a cheap deterministic extractor (the network itself is
tested in test_inception.py; a 2048-d sqrtm alone takes minutes on a busy 2-core machine); the
slow test and the deleted-folder test run the real (Kaiming-initialised) Inception end to end.
"""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from harness.api import DataError, MissingResourceError, RunContext, RunManifest, UserError
from harness.metrics.fid import FeatureStats, ProtocolMismatchError, fid_from_features
from tests.stand_ins import TinyExtractor

FAST = {"metrics.lpips.random_backbone_seed": 0, "metrics.inception.random_init_seed": 0}


@pytest.fixture
def tiny_extractor(monkeypatch):
    import harness.metrics.inception as inception

    monkeypatch.setattr(inception, "InceptionFeatureExtractor", TinyExtractor)
    return TinyExtractor()


def _run(*args, **kwargs):
    from harness.jobs import run

    return run(*args, **kwargs)


def _aggregate(*args, **kwargs):
    from harness.jobs import aggregate

    return aggregate(*args, **kwargs)


def _config(**over):
    from harness.runner.config import merge_config
    from suites.imagenet_recon import ImageNetReconSuite

    return merge_config(ImageNetReconSuite.default_config(), None, {**FAST, **over})


def _suite(**over):
    from suites.imagenet_recon import ImageNetReconSuite

    return ImageNetReconSuite(_config(**over))


def _ctx(tmp_path, suite, manifest=None):
    from harness.cache import Cache

    return RunContext(run_dir=tmp_path / "run", config=suite.config, cache=Cache(tmp_path / "cache"),
                      show_progress=False, manifest=manifest)


def _with_ids(items, records):
    for it, rec in zip(items, records):
        rec["item_id"] = it.id  # what the runner adds
    return records


def _forbid_metric_models(monkeypatch):
    """Aggregation must read files only: building Inception or LPIPS there is a failure."""
    import harness.metrics.inception as inception
    import harness.metrics.recon as recon

    def refuse(*args, **kwargs):
        raise AssertionError("aggregation built a metric network")

    monkeypatch.setattr(inception, "InceptionFeatureExtractor", refuse)
    monkeypatch.setattr(recon, "LPIPS", refuse)


def test_direct_lifecycle_records_artifacts_and_aggregate(tmp_path, tiny_extractor, monkeypatch):
    from baselines.dummy import DummyTokenizer
    from harness.images import to_float
    from harness.metrics.recon import psnr_per_image, ssim_per_image
    from suites.imagenet_recon import ImageNetReconSuite

    suite = _suite(**{"dataset.kind": "skimage_samples", "dataset.resolution": 64, "dataset.limit": 4})
    items = suite.plan()
    assert [it.id for it in items] == ["skimage/astronaut", "skimage/coffee", "skimage/chelsea", "skimage/rocket"]
    ctx = _ctx(tmp_path, suite)
    tok = DummyTokenizer()
    records = _with_ids(items, suite.run_batch(items[:3], tok, ctx) + suite.run_batch(items[3:], tok, ctx))
    # per-image numbers are the metric functions applied to the crop and its reconstruction
    crop = torch.from_numpy(suite._load(items[1])).permute(2, 0, 1)[None]
    recon = tok.reconstruct(to_float(crop), path="discrete")
    assert records[1]["psnr"]["discrete"] == pytest.approx(psnr_per_image(crop, recon)[0], abs=1e-12)
    assert records[1]["ssim"]["discrete"] == pytest.approx(ssim_per_image(crop, recon)[0], abs=1e-12)
    assert (tmp_path / "run" / "artifacts" / "inception" / "skimage" / "coffee.npz").is_file()
    # each record names the metric models it was measured with, so aggregation need not build them
    assert records[0]["models"] == {"inception": "test:tiny-projection", "inception_real": False,
                                    "lpips": "random-init:torch.manual_seed(0)", "lpips_real": False}

    _forbid_metric_models(monkeypatch)
    fresh = ImageNetReconSuite(suite.config)  # a new process aggregating: nothing built yet
    summary = fresh.aggregate(records, ctx)
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
    # the protocol comes from the artifacts (the extractor's self-description), not from a rebuilt network
    assert summary["fid_protocol"] == {"dataset": "skimage-samples", "crop": "adm_center_crop", "resolution": 64,
                                       **tiny_extractor.describe()}
    assert summary["weights"]["inception"] == "test:tiny-projection" and summary["weights"]["adapter"] is None
    assert summary["reference_stats"]["source"].startswith("computed")
    assert fresh.aggregate(records, ctx)["reference_stats"]["source"] == "cache"  # the same crops: served
    # labelling: never presented as the paper's metric
    assert summary["is_paper_metric"] is False
    assert any("NOT ImageNet" in w for w in summary["warnings"])
    text = ImageNetReconSuite({}).render(json.loads(json.dumps(summary)))
    assert "NOT ImageNet" in text and "NOT the paper's metric" in text and "discrete_rFID" in text
    # records that disagree on the metric models are refused (two Inceptions in one rFID)
    mixed = [dict(r) for r in records]
    mixed[2]["models"] = {**mixed[2]["models"], "lpips": "sha256:other"}
    with pytest.raises(DataError, match="different Inception/LPIPS weights"):
        fresh.aggregate(mixed, ctx)
    # a tampered artifact is detected
    art = tmp_path / "run" / "artifacts" / "inception" / "skimage" / "rocket.npz"
    blob = bytearray(art.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    art.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="sha256"):
        fresh.aggregate(records, ctx)


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


def _run_folder(out, root, **kw):
    over = {**FAST, "dataset.root": str(root), "dataset.resolution": 64, **kw.pop("over", {})}
    return _run("imagenet_recon", "dummy-tokenizer", out, overrides=over, show_progress=False, **kw)


def test_runner_results_do_not_depend_on_batch_size_or_shards_and_skip_corrupt(tmp_path, tiny_extractor):
    root = tmp_path / "val"
    bad = _imagefolder(root, corrupt=3)
    with pytest.raises(Exception, match=bad.name):
        _run_folder(tmp_path / "strict", root, batch_size=4)
    over = {"dataset.skip_corrupt": True}
    a = _run_folder(tmp_path / "a", root, batch_size=2, over=over).summary["results"]
    b = _run_folder(tmp_path / "b", root, batch_size=5, over=over).summary["results"]
    assert _run_folder(tmp_path / "c", root, batch_size=3, shard="0/2", over=over).summary is None
    c = _run_folder(tmp_path / "c", root, batch_size=3, shard="1/2", over=over).summary["results"]
    assert a["num_images"] == 5 and a["num_skipped"] == 1 and a["skipped"] == [f"{bad.parent.name}/{bad.name}"]
    assert any("skipped" in w for w in a["warnings"])
    # PSNR/SSIM are exact; LPIPS and Inception run batched convolutions, equal up to float32 rounding
    for other in (b, c):
        for path, vals in a["paths"].items():
            for key, v in vals.items():
                tol = 0 if key in ("PSNR", "SSIM", "num_images", "PSNR_identical_images") else 1e-6
                assert other["paths"][path][key] == pytest.approx(v, rel=tol, abs=1e-12), (path, key)
    assert b["reference_stats"]["source"] == "cache"  # same crops, same protocol: computed once


def test_reference_stats_file_of_another_protocol_is_refused(tmp_path, tiny_extractor, monkeypatch):
    import baselines.dummy as dummy

    root = tmp_path / "val"
    _imagefolder(root, n=3)
    first = _run_folder(tmp_path / "a", root, batch_size=3).summary["results"]
    proto = first["fid_protocol"]
    good = FeatureStats.from_features(np.random.default_rng(1).normal(size=(20, 3)), proto)
    good.save(tmp_path / "good.npz")
    ok = _run_folder(tmp_path / "b", root, batch_size=3, over={"reference.stats_path": str(tmp_path / "good.npz")})
    assert ok.summary["results"]["reference_stats"]["source"] == "file"
    bad = FeatureStats.from_features(np.random.default_rng(1).normal(size=(20, 3)), {**proto, "resolution": 256})
    bad.save(tmp_path / "bad.npz")
    # refused at plan time: the tokenizer is never built
    monkeypatch.setattr(dummy.DummyTokenizer, "__init__", lambda self, **kw: pytest.fail("tokenizer was built"))
    with pytest.raises(ProtocolMismatchError, match="resolution: 256 vs 64"):
        _run_folder(tmp_path / "c", root, batch_size=3, over={"reference.stats_path": str(tmp_path / "bad.npz")})
    suite = _suite(**{"dataset.root": str(root), "dataset.resolution": 64, "reference.stats_path": str(tmp_path / "bad.npz")})
    with pytest.raises(ProtocolMismatchError, match="resolution: 256 vs 64"):
        suite.validate(suite.plan())


def test_aggregate_accepts_a_corrected_reference_path_without_redoing_items(tmp_path, tiny_extractor):
    root = tmp_path / "val"
    _imagefolder(root, n=4)
    res = _run_folder(tmp_path / "r", root, batch_size=4)
    before = res.summary
    assert before["results"]["reference_stats"]["source"].startswith("computed")
    # a stats file inside the run directory is shown relative to it (runs are relocatable)
    stats = FeatureStats.from_features(np.random.default_rng(2).normal(size=(30, 3)),
                                       before["results"]["fid_protocol"])
    stats.save(tmp_path / "r" / "ref" / "stats.npz")
    after = _aggregate(tmp_path / "r", overrides={"reference.stats_path": str(tmp_path / "r" / "ref" / "stats.npz")})
    assert after["records_sha256"] == before["records_sha256"]
    ref = after["results"]["reference_stats"]
    assert ref == {"source": "file", "path": "ref/stats.npz", "n": 30}
    assert after["results"]["paths"]["continuous"]["rFID"] != before["results"]["paths"]["continuous"]["rFID"]
    assert str(tmp_path) not in json.dumps(after["results"])


def test_aggregate_and_report_after_the_image_folder_is_deleted(tmp_path, monkeypatch):
    """Issue 9: aggregation reads plan.jsonl, records, artifacts and manifest only; the dataset may be gone.

    Tiny DC-HT with random weights, random-weight Inception and LPIPS (like the smoke entry), an
    ImageFolder of scikit-image pictures as the 'ImageNet val' root.
    """
    import skimage.data

    root = tmp_path / "val"
    for i, name in enumerate(("astronaut", "coffee", "chelsea")):
        (root / f"n0000000{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(root / f"n0000000{i % 2}" / f"{name}.JPEG")
    over = {**FAST, "dataset.root": str(root), "dataset.resolution": 64, "metrics.frechet": "eigh",
            "model.config": "tiny", "model.random_init_seed": 0}
    res = _run("imagenet_recon", "dc-ht", tmp_path / "r", overrides=over, show_progress=False, batch_size=3)
    first = json.loads((tmp_path / "r" / "summary.json").read_text())
    report_before = (tmp_path / "r" / "report.md").read_text()
    assert res.summary["results"]["num_images"] == 3

    shutil.rmtree(root)
    _forbid_metric_models(monkeypatch)
    again = _aggregate(tmp_path / "r")
    results, old = again["results"], first["results"]
    assert results["reference_stats"]["source"] == "cache"  # same crops: the statistics computed at the first run
    assert {k: v for k, v in results.items() if k != "reference_stats"} == \
        {k: v for k, v in old.items() if k != "reference_stats"}
    assert again["records_sha256"] == first["records_sha256"]
    report = (tmp_path / "r" / "report.md").read_text()
    table = [line for line in report_before.splitlines() if line.startswith("| **dc-ht [")]
    assert table and all(line in report for line in table)
    assert "NOT the paper's metric" in report


def test_unsupported_path_and_bad_config_are_clear(tmp_path, tiny_extractor):
    root = tmp_path / "val"
    _imagefolder(root, n=2)
    with pytest.raises(ValueError, match="not supported by the adapter"):
        _run_folder(tmp_path / "p", root, over={"paths": ["continuous", "hybrid"]})
    with pytest.raises(ValueError, match="dataset.kind"):
        _suite(**{"dataset.kind": "cifar"}).plan()
    with pytest.raises(ValueError, match="'dataset.resolution'.*expected an integer"):
        _suite(**{"dataset.resolution": "abc"})


@pytest.mark.slow
def test_end_to_end_with_kaiming_inception_and_table1(tmp_path):
    """The real 2048-d Inception path through the runner, at 256 px so the report shows Table 1."""
    over = {**FAST, "dataset.kind": "skimage_samples", "dataset.limit": 3, "dataset.resolution": 256,
            "metrics.frechet": "eigh", "report.tokens": 64}
    res = _run("imagenet_recon", "dummy-tokenizer", tmp_path / "r", overrides=over, show_progress=False, batch_size=2)
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
    hybrid = _run("imagenet_recon", "dc-ht", tmp_path / "h", overrides=over, show_progress=False, batch_size=4)
    res = hybrid.summary["results"]
    assert sorted(res["paths"]) == ["continuous", "discrete"]
    assert res["weights"]["adapter"] == "dc-ht" and res["weights"]["adapter_real"] is False
    assert all(v["PSNR"] > 0 and v["rFID"] >= 0 for v in res["paths"].values())
    disc = _run("imagenet_recon", "dc-ht-discrete", tmp_path / "d", overrides=over, show_progress=False, batch_size=4)
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
    """The paper's numbers are over all 50,000 val images: a folder with fewer is not its metric, even with real weights."""
    import harness.data.imagenet as imagenet
    import harness.metrics.recon as recon
    from baselines.dummy import DummyTokenizer

    class RealLabelledLPIPS(recon.LPIPS):  # the random trunk, labelled as the real one
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.weights_id, self.real_weights = "test", True

    monkeypatch.setattr(TinyExtractor, "real_weights", True)
    monkeypatch.setattr(recon, "LPIPS", RealLabelledLPIPS)
    manifest = RunManifest(suite="imagenet_recon", adapter="t", config={}, seed=0, protocol={}, num_items=4,
                           plan_sha256="", adapter_info={"real_weights": True})
    root = tmp_path / "val"
    _imagefolder(root, n=4)

    def summary():
        suite = _suite(**{"dataset.root": str(root), "dataset.resolution": 64})
        items = suite.plan()
        records = _with_ids(items, suite.run_batch(items, DummyTokenizer(), _ctx(tmp_path, suite, manifest)))
        return suite.aggregate(records, _ctx(tmp_path, suite, manifest))

    partial = summary()
    assert partial["is_paper_metric"] is False
    assert any("not all 50,000" in w for w in partial["warnings"])
    monkeypatch.setattr(imagenet, "NUM_VAL_IMAGES", 4)  # pretend the folder is the whole split
    whole = summary()
    assert whole["is_paper_metric"] is True and whole["warnings"] == []
    assert whole["weights"]["adapter"] == "t" and whole["report"]["model_label"] == "t"


# --------------------------------------------------------------------------- plan-time validation


def test_validate_refuses_what_would_fail_later(tmp_path, tiny_extractor):
    root = tmp_path / "val"
    _imagefolder(root, n=3)
    base = {"dataset.root": str(root), "dataset.resolution": 64}
    _suite(**base).validate(_suite(**base).plan())  # a good config passes
    # one image can never be aggregated (a covariance needs two samples): refused before any work
    one = _suite(**base, **{"dataset.limit": 1})
    with pytest.raises(UserError, match="need at least 2 samples for a covariance.*--set dataset.limit=2"):
        one.validate(one.plan())
    # every explicit path must exist
    for key in ("metrics.inception.weights_path", "metrics.lpips.backbone_path", "reference.stats_path",
                "dataset.labels_file"):
        over = {**base, key: str(tmp_path / "missing.bin")}
        if key == "metrics.inception.weights_path":
            over["metrics.inception.random_init_seed"] = None
        if key == "metrics.lpips.backbone_path":
            over["metrics.lpips.random_backbone_seed"] = None
        suite = _suite(**over)
        with pytest.raises(MissingResourceError, match=f"{re.escape(key)} = .*missing.bin: no such file"):
            suite.validate(suite.plan())
    # weights that are not given are looked up now, not after the tokenizer loaded
    suite = _suite(**{**base, "metrics.lpips.random_backbone_seed": None})
    with pytest.raises(MissingResourceError, match="LPIPS AlexNet backbone not found"):
        suite.validate(suite.plan())


def test_empty_or_corrupt_images_are_named_in_one_line_with_the_skip_option(tmp_path, tiny_extractor):
    root = tmp_path / "val"
    _imagefolder(root, n=4)
    empty = sorted(root.rglob("*.JPEG"))[1]
    empty.write_bytes(b"")
    base = {"dataset.root": str(root), "dataset.resolution": 64}
    suite = _suite(**base)
    with pytest.raises(DataError) as err:
        suite.validate(suite.plan())
    msg = str(err.value)
    assert str(empty) in msg and "empty file" in msg and "dataset.skip_corrupt=true" in msg and "\n" not in msg
    skipping = _suite(**base, **{"dataset.skip_corrupt": True})
    skipping.validate(skipping.plan())  # 3 readable images remain: fine
    # a file whose header reads but whose data is cut is named when its item runs, with the item and the option
    from baselines.dummy import DummyTokenizer

    empty.unlink()
    cut = sorted(root.rglob("*.JPEG"))[0]
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    suite = _suite(**base)
    items = suite.plan()
    suite.validate(items)
    with pytest.raises(DataError) as err:
        suite.run_batch(items, DummyTokenizer(), _ctx(tmp_path, suite))
    msg = str(err.value)
    assert str(cut) in msg and f"item {items[0].id}" in msg and "dataset.skip_corrupt=true" in msg
    assert "\n" not in msg
    # with skip_corrupt the record says skipped, with the reason and no absolute path
    skipping = _suite(**base, **{"dataset.skip_corrupt": True})
    records = skipping.run_batch(items, DummyTokenizer(), _ctx(tmp_path, skipping))
    assert records[0]["skipped"] is True and str(tmp_path) not in json.dumps(records[0])
    # fewer than two readable images left: refused at plan time
    for p in sorted(root.rglob("*.JPEG"))[1:]:
        p.write_bytes(b"")
    with pytest.raises(UserError, match="need at least 2 samples"):
        skipping.validate(skipping.plan())


def test_non_finite_reconstruction_names_the_item(tmp_path, tiny_extractor):
    from baselines.dummy import DummyTokenizer

    class NaNTokenizer(DummyTokenizer):
        def reconstruct(self, images, path=None):
            out = super().reconstruct(images, path).clone()
            out[1, 0, 0, 0] = float("nan")
            return out

    suite = _suite(**{"dataset.kind": "skimage_samples", "dataset.resolution": 64, "dataset.limit": 3})
    items = suite.plan()
    with pytest.raises(DataError, match=f"reconstruction of item {re.escape(items[1].id)} holds NaN or Inf"):
        suite.run_batch(items, NaNTokenizer(), _ctx(tmp_path, suite))


# --------------------------------------------------------------------------- fix hints, fed back

_SET = re.compile(r"--set ([A-Za-z_][\w.]*)=(\S+)")


def _hints(message: str) -> list[tuple[str, str]]:
    """Every ``--set key=value`` a message suggests (trailing punctuation of the sentence removed)."""
    return [(k, v.rstrip(".,;)")) for k, v in _SET.findall(message)]


def _feed_back(message: str) -> list[str]:
    """Apply each hint to the suite's defaults: the key must be accepted and land where the typed config reads it."""
    from harness.runner.config import merge_config, parse_set
    from suites.imagenet_recon import ImageNetReconSuite

    hints = _hints(message)
    assert hints, f"no --set hint in: {message}"
    for key, value in hints:
        assert not key.startswith("model."), f"{key} is an adapter option, not a key of this suite: {message}"
        merged = merge_config(ImageNetReconSuite.default_config(), None, [f"{key}={value}"])
        node = ImageNetReconSuite.typed_config(merged)
        for part in key.split("."):
            node = getattr(node, part)
        assert node == parse_set(f"{key}={value}")[1], (key, value, node)
    return [k for k, _ in hints]


def _message(fn, **kwargs) -> str:
    with pytest.raises(UserError) as err:
        fn(**kwargs)
    return str(err.value)


def test_every_hint_the_suite_prints_works_when_fed_back(tmp_path, tiny_extractor):
    from baselines.dummy import DummyTokenizer

    root = tmp_path / "val"
    _imagefolder(root, n=3)
    base = {"dataset.root": str(root), "dataset.resolution": 64}

    def validated(**over):
        suite = _suite(**{**base, **over})
        suite.validate(suite.plan())
        return suite

    one = _message(lambda: validated(**{"dataset.limit": 1}))
    assert _feed_back(one) == ["dataset.limit"]
    validated(**{"dataset.limit": int(_hints(one)[0][1])})  # applying it fixes it
    # a weights path needs its random-init seed unset (both at once is its own error, tested below)
    explicit = {"dataset.root": {}, "reference.stats_path": {}, "dataset.labels_file": {},
                "metrics.inception.weights_path": {"metrics.inception.random_init_seed": None},
                "metrics.lpips.backbone_path": {"metrics.lpips.random_backbone_seed": None}}
    for key, extra in explicit.items():
        assert key in _feed_back(_message(validated, **{key: str(tmp_path / "nowhere"), **extra}))
    assert "dataset.resolution" in _feed_back(_message(lambda: _suite(**{"dataset.resolution": 8})))
    both = _message(lambda: _suite(**{"metrics.inception.weights_path": "w.pth"}))
    assert _feed_back(both) == ["metrics.inception.random_init_seed"]
    both = _message(lambda: _suite(**{"metrics.lpips.backbone_path": "a.pth"}))
    assert _feed_back(both) == ["metrics.lpips.random_backbone_seed"]
    paths = _suite(**{**base, "paths": ["hybrid"]})
    hint = _message(lambda: paths.run_batch(paths.plan(), DummyTokenizer(), _ctx(tmp_path, paths)))
    assert _feed_back(hint) == ["paths"]
    sorted(root.rglob("*.JPEG"))[0].write_bytes(b"")
    corrupt = _message(lambda: validated())
    assert _feed_back(corrupt) == ["dataset.skip_corrupt"]
    validated(**{"dataset.skip_corrupt": True})


def test_hints_for_missing_dataset_and_weights_name_keys_that_work(tmp_path, monkeypatch):
    """Issue 16: these hints once said `model.dataset.root` and `model.metrics.inception.weights_path`.

    They come from :func:`harness.resources.missing_message` (the one text doctor and loaders share).
    """
    missing_root = _message(lambda: _suite(**{"metrics.inception.random_init_seed": 0}).plan())
    assert "dataset.root" in _feed_back(missing_root)
    assert "model.dataset.root" not in missing_root
    root = tmp_path / "val"
    _imagefolder(root, n=2)
    suite = _suite(**{"dataset.root": str(root), "metrics.inception.random_init_seed": None})
    weights = _message(lambda: suite.validate(suite.plan()))
    assert "metrics.inception.weights_path" in _feed_back(weights)
    assert "model.metrics" not in weights


def test_a_wrong_dataset_kind_hint_names_a_valid_value():
    """The type-checked config's hint for an enumerated key must suggest one of its values."""
    assert _feed_back(_message(lambda: _suite(**{"dataset.kind": "cifar"}))) == ["dataset.kind"]


def test_inception_and_lpips_calls_are_padded_to_the_run_batch_size():
    import torch

    from suites.imagenet_recon import _padded_call

    seen = []

    def fn(a, b=None):
        seen.append(a.shape[0])
        return a.float().mean(dim=(1, 2, 3)) if b is None else (a.float() - b.float()).abs().mean(dim=(1, 2, 3))

    x = torch.arange(3 * 3 * 4 * 4, dtype=torch.uint8).reshape(3, 3, 4, 4)
    out = _padded_call(fn, 8, x)
    assert seen == [8] and out.shape == (3,) and torch.equal(out, fn(x))
    assert _padded_call(fn, 2, x, x).shape == (3,) and seen[-1] == 3  # never cut a batch larger than n
