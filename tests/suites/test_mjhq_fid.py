"""The mjhq_fid suite end to end on a tiny fake MJHQ tree: records, every protocol, per category, the cached
reference, subsets, invariances, file-only aggregation and the refusals that name the file.

The three Inception protocols run a stand-in backbone here (their preprocessing is the real one; the real
network is compared with pytorch-fid and clean-fid in tests/harness/metrics/test_protocols.py: a 2048-d
``sqrtm`` per category would take minutes). FD-DINOv2 and CMMD run the real code with tiny random models.
"""
from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from harness.api import UserError
from tests.harness.data.fake_mjhq import make_tree
from tests.harness.helpers import read_records

TINY_BACKBONES = ["metrics.inception.random_init_seed=0", "metrics.dinov2.random_init_seed=0",
                  "metrics.dinov2.size=tiny", "metrics.clip_vision.random_init_seed=0", "metrics.clip_vision.size=tiny"]
CLIP = ["metrics.clip_score.enabled=true", "metrics.clip_score.random_init_seed=0", "metrics.clip_score.size=tiny"]
ALL = ("sana", "clean_fid", "torch_fidelity", "fd_dinov2", "cmmd")


@pytest.fixture
def stand_in_inception(monkeypatch):
    """6-d features from 2x2 mean colours of whatever each protocol's preprocessing made (scale-normalised)."""
    import harness.metrics.protocols as P

    proj = torch.from_numpy(np.random.default_rng(0).normal(size=(12, 6))).float()

    def backbones(cfg, wanted, device):
        def fn(x):
            x = x.float()
            x = x / (x.flatten(1).abs().amax(1).view(-1, 1, 1, 1) + 1e-6)
            return torch.tanh(torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1) @ proj)

        return {n: P.Backbone(f"stand-in/{n}", "test:stand-in", False, fn, {"dims": 6}) for n in wanted}

    monkeypatch.setattr(P, "inception_backbones", backbones)


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "mjhq", per_category=2)


def _run(tree, out, *over, adapter="dummy-t2i", **kw):
    from harness.jobs import run

    base = [f"dataset.root={json.dumps(str(tree))}", "dataset.require_full=false", *TINY_BACKBONES]
    if adapter == "dummy-t2i":
        base.append("model.resolution=48")
    return run("mjhq_fid", adapter, out, overrides=[*base, *over], show_progress=False, **kw)


def _results(run_dir):
    return json.loads((run_dir / "summary.json").read_text())["results"]


def test_end_to_end_with_the_tiny_dcar(tmp_path, tree, stand_in_inception):
    res = _run(tree, tmp_path / "a", *CLIP, "model.config=tiny", "model.random_init_seed=0", adapter="dc-ar")
    assert res.completed == 20
    r = _results(tmp_path / "a")
    _check_results(r, 20)
    assert {v["source"] for v in r["reference_stats"].values()} == {"computed"}
    recs = read_records(tmp_path / "a")
    assert len(recs) == 20 and all((tmp_path / "a" / "artifacts" / rec["image"]).is_file() for rec in recs)
    # a second run (another directory, same cache) takes every protocol's reference from the cache
    _run(tree, tmp_path / "b", *CLIP, "model.config=tiny", "model.random_init_seed=0", adapter="dc-ar")
    r2 = _results(tmp_path / "b")
    assert {v["source"] for v in r2["reference_stats"].values()} == {"cache"}
    assert r2["fid"] == r["fid"] and r2["per_category"] == r["per_category"]


def _check_results(r, n):
    from harness.data.mjhq import CATEGORIES

    assert r["num_images"] == n
    assert set(r["fid"]) == set(ALL) and all(isinstance(v, float) and np.isfinite(v) for v in r["fid"].values())
    assert set(r["per_category"]) == set(CATEGORIES)
    assert all(isinstance(r["per_category"][c][p], float) for c in CATEGORIES for p in ALL)
    assert "MJHQ-30K FID" not in r["label"] and f"{n} of 30,000" in r["label"]
    assert r["is_paper_metric"] is False and r["is_full_mjhq"] is False
    assert isinstance(r["clip_score"], float)


def test_every_protocol_overall_and_per_category_and_the_cache(tmp_path, tree, stand_in_inception):
    _run(tree, tmp_path / "a", *CLIP)
    r = _results(tmp_path / "a")
    _check_results(r, 20)
    assert {v["source"] for v in r["reference_stats"].values()} == {"computed"}
    assert all(v["n"] == 20 for v in r["reference_stats"].values())
    report = (tmp_path / "a" / "report.md").read_text()
    for name in ALL:
        assert f"| {name}" in report
    _run(tree, tmp_path / "b", *CLIP)
    r2 = _results(tmp_path / "b")
    assert {v["source"] for v in r2["reference_stats"].values()} == {"cache"}  # reused, reported
    assert r2["fid"] == r["fid"]


def test_a_subset_is_the_first_n_prompts_and_never_called_mjhq_30k_fid(tmp_path, tree, stand_in_inception):
    _run(tree, tmp_path / "run", "dataset.limit=4", "metrics.protocols=[sana]")
    meta = list(json.loads((tree / "meta_data.json").read_text()))
    assert [rec["item_id"] for rec in read_records(tmp_path / "run")] == sorted(meta[:4])
    r = _results(tmp_path / "run")
    assert r["num_images"] == 4 and r["reference_stats"]["sana"]["n"] == 20  # reference: all real images
    assert set(r["fid"]) == {"sana"} and "4 of 30,000" in r["label"] and "MJHQ-30K FID" not in r["label"]
    assert any("NOT MJHQ-30K FID" in w for w in r["warnings"])
    assert "4 of 30,000" in (tmp_path / "run" / "report.md").read_text()


def test_results_do_not_depend_on_batch_size_and_resume_is_exact(tmp_path, tree, stand_in_inception):
    """Another batch size moves features only in the last float digits (GEMM shapes); a resume changes nothing."""
    over = ["metrics.protocols=[sana, fd_dinov2, cmmd]"]
    _run(tree, tmp_path / "b5", *over, batch_size=5)
    assert _run(tree, tmp_path / "b3", *over, batch_size=3).completed == 20
    a, b = _results(tmp_path / "b5"), _results(tmp_path / "b3")
    for name in a["fid"]:
        assert b["fid"][name] == pytest.approx(a["fid"][name], rel=1e-5)
    # resume: drop half of the records and rerun the same command
    recfile = next((tmp_path / "b3" / "records").glob("*.jsonl"))
    lines = recfile.read_text().splitlines()
    recfile.write_text("\n".join(lines[:9]) + "\n")
    (tmp_path / "b3" / "summary.json").unlink()
    assert _run(tree, tmp_path / "b3", *over, batch_size=3).completed == 11
    assert _results(tmp_path / "b3")["fid"] == b["fid"]
    assert len({rec["item_id"] for rec in read_records(tmp_path / "b3")}) == 20  # one record per item


def test_aggregation_reads_files_only(tmp_path, tree, stand_in_inception, monkeypatch):
    import harness.metrics.protocols as P
    from harness.jobs import aggregate

    _run(tree, tmp_path / "run", "metrics.protocols=[sana, cmmd]")
    before = _results(tmp_path / "run")
    shutil.rmtree(tree)

    def refuse(*a, **k):
        raise AssertionError("aggregation built a backbone")

    monkeypatch.setattr(P, "build_protocols", refuse)
    summary = aggregate(tmp_path / "run", overrides=["metrics.frechet=eigh", "metrics.per_category=false"])
    assert summary["results"]["per_category"] == {}
    assert summary["results"]["fid"]["sana"] == pytest.approx(before["fid"]["sana"], rel=1e-6)
    assert summary["results"]["fid"]["cmmd"] == before["fid"]["cmmd"]


def test_reference_statistics_of_another_protocol_are_refused_by_name(tmp_path, tree, stand_in_inception):
    _run(tree, tmp_path / "a", "metrics.protocols=[sana, clean_fid]")
    clean = tmp_path / "a" / "artifacts" / "reference" / "clean_fid.npz"
    with pytest.raises(UserError, match=rf"reference.stats.sana = {clean} holds reference statistics of protocol "
                                        r"'clean_fid', not 'sana'"):
        _run(tree, tmp_path / "b", "metrics.protocols=[sana]", f"reference.stats.sana={json.dumps(str(clean))}")
    assert not (tmp_path / "b").exists()  # refused before anything was written
    sana = tmp_path / "a" / "artifacts" / "reference" / "sana.npz"
    _run(tree, tmp_path / "c", "metrics.protocols=[sana]", f"reference.stats.sana={json.dumps(str(sana))}")
    r = _results(tmp_path / "c")
    assert r["reference_stats"]["sana"]["source"] == "file"
    assert r["fid"]["sana"] == _results(tmp_path / "a")["fid"]["sana"]


def test_a_reference_made_with_other_weights_is_refused_at_aggregation(tmp_path, tree, stand_in_inception):
    from harness.jobs import aggregate

    _run(tree, tmp_path / "a", "metrics.protocols=[fd_dinov2]")
    ref = tmp_path / "a" / "artifacts" / "reference" / "fd_dinov2.npz"
    _run(tree, tmp_path / "b", "metrics.protocols=[fd_dinov2]", "metrics.dinov2.random_init_seed=1")
    with pytest.raises(UserError, match=r"holds reference statistics of protocol 'fd_dinov2' with other settings "
                                        r"\(weights: 'random-init:tiny:0' vs 'random-init:tiny:1'\)"):
        aggregate(tmp_path / "b", overrides=[f"reference.stats.fd_dinov2={json.dumps(str(ref))}"])


@pytest.mark.parametrize("damage, message", [
    ("missing_category", r"category folder plants missing"),
    ("count", r"people: 1 of the 2 images meta_data.json lists for category people are missing"),
    ("grayscale", r"is mode L, not RGB"),
    ("corrupt", r"cannot read image .*\.jpg"),
])
def test_damaged_trees_are_refused_naming_the_file_before_any_model_loads(tmp_path, tree, damage, message,
                                                                          monkeypatch):
    import baselines.dummy as dummy

    monkeypatch.setattr(dummy.DummyTextToImage, "__init__", lambda *a, **k: (_ for _ in ()).throw(
        AssertionError("the adapter was built")))
    victim = next((tree / "people").iterdir())
    if damage == "missing_category":
        shutil.rmtree(tree / "plants")
    elif damage == "count":
        victim.unlink()
    elif damage == "grayscale":
        Image.open(victim).convert("L").save(victim, format="JPEG")
    else:
        victim.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(UserError, match=message):
        _run(tree, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_jpeg_q75_is_byte_identical_to_sanas_writer():
    from torchvision.utils import save_image

    from suites.mjhq_fid import encode_image

    x = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(0)) * 2 - 1  # Sana: value_range (-1, 1)
    buf = io.BytesIO()
    save_image(x, buf, format="jpeg", normalize=True, value_range=(-1, 1))
    u8 = (((x + 1) / 2)[0] * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    assert encode_image(u8, "jpeg_q75") == buf.getvalue()


def test_unknown_protocol_and_empty_list_are_config_errors(tmp_path, tree):
    with pytest.raises(UserError, match=r"unknown protocol 'fid'"):
        _run(tree, tmp_path / "run", "metrics.protocols=[fid]")
    with pytest.raises(UserError, match=r"metrics.protocols is empty"):
        _run(tree, tmp_path / "run", "metrics.protocols=[]")


def test_doctor_lists_the_dataset_and_every_backbone(tmp_path, tree, monkeypatch):
    from harness.doctor import doctor

    text, problems = doctor(["mjhq_fid"])
    for name in ("MJHQ-30K (meta_data.json + images)", "FID Inception weights", "DINOv2 ViT-L/14 (FD-DINOv2)",
                 "CLIP ViT-L/14-336 (CMMD)", "CLIP ViT-L/14 OpenAI weights (CLIP score"):
        assert name in text
    assert "env:DCAR_MJHQ_ROOT" in text and "env:DCAR_DINOV2" in text and "env:DCAR_CMMD_CLIP" in text
    assert "[optional, absent] CLIP ViT-L/14 OpenAI" in text  # off by default: listed, not a problem
    monkeypatch.setenv("DCAR_MJHQ_ROOT", str(tree))
    assert doctor(["mjhq_fid"])[1] == problems - 1


def test_only_every_prompt_against_the_full_reference_is_called_mjhq_30k_fid(tmp_path, tree, stand_in_inception,
                                                                               monkeypatch):
    """With the dataset's size shrunk to the fake tree's, a complete run is labelled MJHQ-30K FID (random weights
    still make it not the paper's metric) and a limited one is not."""
    import harness.data.mjhq as mjhq

    monkeypatch.setattr(mjhq, "PER_CATEGORY", 2)
    monkeypatch.setattr(mjhq, "NUM_IMAGES", 20)
    _run(tree, tmp_path / "full", "dataset.require_full=true", "metrics.protocols=[sana]")
    r = _results(tmp_path / "full")
    assert r["label"] == "MJHQ-30K FID" and r["is_full_mjhq"] is True
    assert r["is_paper_metric"] is False and any("random" in w for w in r["warnings"])
    _run(tree, tmp_path / "part", "dataset.require_full=true", "dataset.limit=19", "metrics.protocols=[sana]")
    r = _results(tmp_path / "part")
    assert r["label"] != "MJHQ-30K FID" and r["is_full_mjhq"] is False
