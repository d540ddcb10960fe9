"""caption_following end to end through the real runner: a picture-perfect stand-in follows every caption, the
dummy generator follows none, a killed run resumes to the same records, a steps_sweep can plot it, a report shows
its grid.

The stand-in adapter (:class:`SceneOracle`, registered as ``caption-oracle`` for these tests) renders the true scene
of each caption with ``render_scene``: captions fix their scenes, so a caption -> scene table built from the
dataset is all it needs.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest
from PIL import Image

from dcar_training.data import ShapesDataset, render_scene, scene
from harness import registry
from harness.api import AdapterInfo, TextToImage
from harness.jobs import aggregate, run

ORACLE = "caption-oracle"
N = 6


class SceneOracle(TextToImage):
    """Draws the scene each caption describes (the scenes of ``scene_seed``'s first ``n`` items), ignoring seeds."""

    def __init__(self, resolution: int = 64, scene_seed: int = 1, n: int = 64, num_steps: int | None = None):
        data = ShapesDataset(n, resolution, scene_seed)
        self.scenes = {data.caption(i): scene(scene_seed, i) for i in range(n)}
        self.resolution, self.num_steps = int(resolution), num_steps

    def info(self) -> AdapterInfo:
        return AdapterInfo(name=ORACLE, kind=self.kind, resolution=self.resolution, steps=self.num_steps,
                           weights={}, real_weights=False)

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], **options: Any):
        import torch

        imgs = np.stack([render_scene(self.scenes[p], self.resolution) for p in prompts])
        return torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0


@pytest.fixture(scope="module", autouse=True)
def _oracle_registered():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry._TABLE["adapter"], ORACLE, f"{__name__}:SceneOracle")
        yield


def _records(run_dir: Path) -> dict[str, dict]:
    lines = (run_dir / "records" / "shard-0-of-1.jsonl").read_text().splitlines()
    return {r["item_id"]: r for r in map(json.loads, lines)}


def _images(run_dir: Path) -> dict[str, str]:
    root = run_dir / "artifacts"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.png"))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The oracle and the dummy generator on the same plan and seed (both save their images)."""
    base = tmp_path_factory.mktemp("cf") / "runs"
    oracle = run("caption_following", ORACLE, base / "oracle", overrides=[f"num_items={N}"], show_progress=False)
    dummy = run("caption_following", "dummy-t2i", base / "dummy", overrides=[f"num_items={N}", "model.resolution=64"],
                show_progress=False)
    return base, oracle.summary, dummy.summary


def test_a_generator_that_draws_each_caption_scores_one(runs):
    base, summary, _ = runs
    res = summary["results"]
    assert res["background_accuracy"] == res["object_color_accuracy"] == res["all_correct"] == 1.0
    assert res["mean_object_iou"] == 1.0 and res["num_items"] == N and res["scene_seed"] == 1
    assert res["is_paper_metric"] is False and res["resolutions"] == [64]
    recs = _records(base / "oracle")
    assert sorted(recs) == [f"{i:05d}" for i in range(N)]
    for i, rec in enumerate(recs[f"{i:05d}"] for i in range(N)):
        s = scene(1, i)
        assert rec["caption"] == s.caption and rec["scene"]["background"] == s.background
        assert [tuple(o) for o in rec["scene"]["objects"]] == list(s.objects)
        assert [(o["size"], o["color"], o["shape"], o["place"]) for o in rec["objects"]] == list(s.objects)
        assert all(o["color_correct"] and o["iou"] == 1.0 for o in rec["objects"]) and rec["all_correct"]
        png = base / "oracle" / "artifacts" / rec["image"]
        assert hashlib.sha256(png.read_bytes()).hexdigest() == rec["image_sha256"]
        assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), render_scene(s, 64))
    chance = res["chance"]
    objects = [len(r["objects"]) for r in recs.values()]
    assert res["num_objects"] == sum(objects) and chance["object_color_accuracy"] == 0.1
    assert chance["all_correct"] == pytest.approx(np.mean([0.1 / 9 ** k for k in objects]))
    manifest = json.loads((base / "oracle" / "manifest.json").read_text())
    assert {m["name"] for m in manifest["metrics"]} == {"background_accuracy", "object_color_accuracy",
                                                        "mean_object_iou", "all_correct"}
    assert manifest["protocol"]["scoring"] == {"background_margin": 0.06, "object_margin": 0.02, "min_pixels": 4,
                                               "mask_coverage": 0.5}


def test_the_dummy_generator_does_not_follow_captions(runs):
    _, _, summary = runs
    res = summary["results"]
    assert res["object_color_accuracy"] < 0.5 and res["all_correct"] < 0.5 and res["mean_object_iou"] < 0.3
    assert summary["real_weights"] is False


def test_the_captions_seen_in_training_are_split_off_and_that_is_an_aggregation_key(runs, tmp_path):
    base, summary, _ = runs
    res = summary["results"]
    train = {scene(0, i).caption for i in range(16384)}
    seen = sum(r["caption"] in train for r in _records(base / "oracle").values())
    assert res["train_captions"] == {"seed": 0, "n": 16384, "planned_captions_in_training": seen}
    assert res["unseen_captions"]["num_items"] == N - seen
    copy = tmp_path / "copy"
    shutil.copytree(base / "oracle", copy)
    again = aggregate(copy, overrides=["train_captions.n=0"])["results"]
    assert again["unseen_captions"]["num_items"] == N and again["train_captions"]["planned_captions_in_training"] == 0
    assert again["all_correct"] == res["all_correct"]


def test_resume_after_a_torn_record_gives_identical_records_and_images(tmp_path):
    settings = ["num_items=5", "model.resolution=32"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run("caption_following", "dummy-t2i", whole, overrides=settings, batch_size=2, show_progress=False)
    run("caption_following", "dummy-t2i", killed, overrides=settings, batch_size=2, show_progress=False,
        aggregate_when_done=False)
    rec_file = killed / "records" / "shard-0-of-1.jsonl"
    lines = rec_file.read_bytes().splitlines(keepends=True)
    assert len(lines) == 5
    rec_file.write_bytes(b"".join(lines[:3]) + lines[3][: len(lines[3]) // 2])  # 3 records + a torn 4th line
    for line in lines[3:]:
        (killed / "artifacts" / json.loads(line)["image"]).unlink()
    res = run("caption_following", "dummy-t2i", killed, overrides=settings, batch_size=2, show_progress=False)
    assert res.completed == 2 and res.skipped == 3
    assert _records(killed) == _records(whole)
    assert _images(killed) == _images(whole)
    assert json.loads((killed / "summary.json").read_text())["records_sha256"] == \
        json.loads((whole / "summary.json").read_text())["records_sha256"]


def test_a_steps_sweep_over_it_plots_exactly_the_records(tmp_path):
    metric = "results.object_color_accuracy"
    out = tmp_path / "sweep"
    res = run("steps_sweep", None, out, show_progress=False, overrides=[
        "steps=[4,8]", f"adapters=[dummy-t2i,{ORACLE}]", "inner.suite=caption_following", f"inner.metric={metric}",
        "inner.metric_direction=higher", "inner.config.num_items=2", "inner.config.save_images=false",
        "inner.model.resolution=32"])
    recs = [json.loads(line) for line in (out / "records" / "shard-0-of-1.jsonl").read_text().splitlines()]
    assert sorted((r["adapter"], r["steps"]) for r in recs) == [(ORACLE, 4), (ORACLE, 8), ("dummy-t2i", 4),
                                                               ("dummy-t2i", 8)]
    data = json.loads((out / "figures" / "fig6.json").read_text())
    lines = {s["label"]: s for s in data["series"]}
    for name in ("dummy-t2i", ORACLE):
        by_steps = {r["steps"]: r["values"][metric] for r in recs if r["adapter"] == name}
        assert lines[name]["x"] == [4.0, 8.0] and lines[name]["y"] == [by_steps[4], by_steps[8]]
        for r in (r for r in recs if r["adapter"] == name):  # ... the inner runs' own numbers
            inner = json.loads((out / r["point_dir"] / "summary.json").read_text())
            assert inner["results"]["object_color_accuracy"] == r["values"][metric]
    assert lines[ORACLE]["y"] == [1.0, 1.0] and max(lines["dummy-t2i"]["y"]) < 1.0
    assert res.summary["results"]["best_steps"] == {"dummy-t2i": 4 if lines["dummy-t2i"]["y"][0] >= lines[
        "dummy-t2i"]["y"][1] else 8, ORACLE: 4}
    assert res.summary["results"]["figure_y_label"] == {"fig6": f"{metric} (higher is better)"}


def test_the_run_report_and_a_report_directory_show_the_grid_and_the_table(runs, tmp_path):
    from harness.report.build import read_index, write_report_dir
    from harness.report.grids import caption_verdict

    base, _, _ = runs
    md = (base / "oracle" / "report.md").read_text()
    assert "| background colour right | 100.0% |" in md
    assert "![Caption following: caption-oracle](figures/caption_following_grid.png)" in md
    own = base / "oracle" / "figures" / "caption_following_grid.png"
    assert own.is_file() and own.stat().st_size > 1000
    # a report directory over both runs: one grid, the two adapters side by side (same plan, same seed)
    write_report_dir([base], tmp_path / "rep")
    index = read_index(tmp_path / "rep")
    grids = [f for f in index["figures"] if f["id"].startswith("caption_following_grid")]
    assert [f["id"] for f in grids] == ["caption_following_grid"] and grids[0]["status"] == "drawn"
    png = tmp_path / "rep" / grids[0]["path"]
    assert png.is_file() and png.stat().st_size > 1000
    data = json.loads((tmp_path / "rep" / grids[0]["data"]).read_text())["data"]
    with Image.open(png) as im:
        assert list(im.size) == data["size_px"]
    assert [c["adapter"] for c in data["columns"]] == [ORACLE, "dummy-t2i"]
    for col in data["columns"]:
        recs = _records(Path(col["run"]))
        assert col["files"] == [recs[i]["image"] for i in data["items"]]
        assert col["image_sha256"] == [recs[i]["image_sha256"] for i in data["items"]]
        assert col["verdicts"] == [caption_verdict(recs[i]) for i in data["items"]]
        assert col["all_correct"] == [recs[i]["all_correct"] for i in data["items"]]
    assert data["items"] == [f"{i:05d}" for i in range(N)] and data["problems"] == []
    assert data["columns"][0]["verdicts"][0].startswith("✓ bg ok")
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "### Caption following: caption-oracle vs dummy-t2i" in text and "| object colour right" in text


def test_a_single_run_alone_gets_a_one_column_grid_and_a_modified_image_is_marked(runs, tmp_path):
    from harness.report.collect import collect_runs
    from harness.report.figures import build_figures

    base, _, _ = runs
    copy = tmp_path / "dummy"
    shutil.copytree(base / "dummy", copy)
    png = copy / "artifacts" / "images" / "00001.png"
    png.write_bytes(png.read_bytes()[:-10] + b"0123456789")
    (fig,) = [f for f in build_figures(collect_runs([copy]), tmp_path / "rep") if f.id.startswith("caption")]
    assert fig.status == "drawn" and [c["adapter"] for c in fig.data["columns"]] == ["dummy-t2i"]
    assert len(fig.data["problems"]) == 1 and "modified" in fig.data["problems"][0]
    assert "1 image(s) are missing or modified" in fig.caption


def test_it_is_registered_and_listed(capsys):
    from harness.cli import main

    assert main(["ls", "suite"]) == 0
    assert "caption_following" in capsys.readouterr().out
    assert registry.resolve("suite", "caption_following").name == "caption_following"
