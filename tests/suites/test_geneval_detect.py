"""The geneval_detect suite end to end with stand-in models (no mmdet, no weights), and its refusals.

What is real here: plan, validate, records (:func:`harness.geneval.records.image_record`), the sanity
gate, the rules, scoring, the manifest and the report; only the two models are stand-ins
(``tests/suites/conftest.py``). Every refusal must come before a model loads, as one line.
"""
from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from harness import jobs
from harness.api import UserError
from harness.geneval.folder import GenEvalFolderError
from harness.geneval.prompts import load_prompts
from harness.geneval.rules import IncompleteRunError

SINGLE = [i for i, p in enumerate(load_prompts()) if p["tag"] == "single_object"][:2]
TWO = [i for i, p in enumerate(load_prompts()) if p["tag"] == "two_object"][:2]


@pytest.fixture
def generated(tmp_path):
    """A generate run (dummy-t2i, 4 prompts x 1 image, 32 px) and its images folder."""
    res = jobs.run("geneval", "dummy-t2i", tmp_path / "gen", overrides=[f"prompts={SINGLE + TWO}", "samples_per_prompt=1",
                                                                        "model.resolution=32"], show_progress=False)
    return res.run_dir, res.run_dir / "artifacts" / "geneval"


def detect(images, out, *extra):
    return jobs.run("geneval_detect", None, out, overrides=[f"images_dir={json.dumps(str(images))}", *extra],
                    show_progress=False)


@pytest.fixture
def no_models(monkeypatch):
    """Fail loudly if the detect stage tries to load its models (refusals must come first)."""
    from harness.geneval import detection

    def refuse(cfg):
        raise AssertionError("models were loaded before the refusal")

    monkeypatch.setattr(detection, "load_models", refuse)


def test_detect_flow_scores_reports_and_titles_the_run_by_its_images(generated, tmp_path, stand_in_models):
    gen_dir, images = generated
    res = detect(images, tmp_path / "det", "allow_partial=true")
    assert res.completed == 6 + 4  # the six gate images, then each PNG
    s = res.summary["results"]
    assert s["tag_scores"]["single_object"] == 1.0 and s["tag_scores"]["two_object"] == 1.0
    assert s["overall"] is None  # fewer than the 6 tags: not a GenEval overall
    assert s["sanity_gate"]["passed"] and s["models"]["generator"] == {"name": "dummy-t2i", "real_weights": False,
                                                                      "run_dir": str(gen_dir.resolve())}
    assert s["labels"][0].startswith("INCOMPLETE: incomplete GenEval run: 4 of 2212 images")
    assert "NOT THE GENEVAL METRIC: random weights for color_classifier, detector, generator" in s["labels"]
    assert stand_in_models.inputs.count("array") == 3 and len(stand_in_models.inputs) == 7
    manifest = json.loads((tmp_path / "det" / "manifest.json").read_text())
    assert manifest["subject"] == f"images of dummy-t2i ({images.resolve()})"
    report = (tmp_path / "det" / "report.md").read_text()
    assert report.startswith(f"# dcar-bench: geneval_detect × images of dummy-t2i ({images.resolve()})")
    assert "× None" not in report and "**dummy-t2i †**" in report


def test_aggregate_and_rescore_read_only_the_detect_run(generated, tmp_path, stand_in_models, capsys):
    from harness.geneval.cli import main

    gen_dir, images = generated
    first = detect(images, tmp_path / "det", "allow_partial=true").summary["results"]
    shutil.rmtree(gen_dir)  # images and their generating run gone: scoring needs neither
    again = jobs.aggregate(tmp_path / "det")["results"]
    assert again == first
    rc = main(["score", str(tmp_path / "det"), "--rule", "threshold=0.96"])  # above every stand-in score
    assert rc == 0 and "score > 0.96" in capsys.readouterr().out
    summary = json.loads((tmp_path / "det" / "summary.json").read_text())
    assert summary["aggregate_overrides"] == {"rules.threshold": 0.96}
    assert summary["results"]["tag_scores"]["single_object"] == 0.0 and summary["results"]["rules"]["threshold"] == 0.96
    assert summary["results"]["models"]["generator"]["name"] == "dummy-t2i"
    # a threshold below the recorded one cannot be answered from the records: refused with the fix
    rc = main(["score", str(tmp_path / "det"), "--rule", "threshold=0.1"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "below the record_threshold=0.3" in err
    assert "--set record_threshold=0.1 --set rules.threshold=0.1" in err


def test_score_refuses_a_run_of_another_suite(generated, capsys):
    from harness.geneval.cli import main

    gen_dir, _ = generated
    rc = main(["score", str(gen_dir)])
    err = capsys.readouterr().err
    assert rc == 1 and err == (f"dcar-bench geneval: error: {gen_dir} is a 'geneval' run; `geneval score` needs a "
                               "geneval_detect run (made by `dcar-bench geneval detect`)\n")


def test_partial_folder_is_refused_at_plan_time_in_one_line(generated, tmp_path, no_models, capsys):
    from harness.geneval.cli import main

    _, images = generated
    with pytest.raises(IncompleteRunError, match=r"4 of 2212 images.*--set allow_partial=true"):
        detect(images, tmp_path / "det")
    assert not (tmp_path / "det").exists()  # refused before the run directory was made
    rc = main(["detect", "--images", str(images), "--out", str(tmp_path / "det"), "--random-weights", "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("dcar-bench geneval: error: incomplete GenEval run: 4 of 2212 images")
    assert err.count("\n") == 1 and "--allow-partial" in err


def test_wrong_layout_is_refused_naming_the_folder_and_the_fix(generated, tmp_path, no_models, capsys):
    from harness.geneval.cli import main

    gen_dir, images = generated
    rc = main(["detect", "--images", str(gen_dir), "--out", str(tmp_path / "det"), "--random-weights", "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1
    assert err.startswith(f"dcar-bench geneval: error: no digit-named prompt folders in {gen_dir.resolve()}")
    assert f"--images {gen_dir.resolve() / 'artifacts' / 'geneval'}" in err
    (images / "00000" / "metadata.jsonl").unlink()
    with pytest.raises(GenEvalFolderError, match=r"1 prompt folder\(s\) .* lack metadata.jsonl"):
        detect(images, tmp_path / "det", "allow_partial=true")


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_undecodable_png_is_refused_before_the_detector_loads(generated, tmp_path, no_models, monkeypatch, damage):
    from harness.geneval import detection

    monkeypatch.setattr(detection, "check_ready", lambda cfg: None)  # as if mmdet and the weights were there
    _, images = generated
    bad = images / f"{TWO[0]:05d}" / "samples" / "0000.png"
    data = bad.read_bytes()
    bad.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    with pytest.raises(GenEvalFolderError) as e:
        detect(images, tmp_path / "det", "allow_partial=true")
    assert f"{TWO[0]:05d}/samples/0000.png (" in str(e.value) and "cannot be decoded" in str(e.value)
    assert not (tmp_path / "det").exists()


def test_missing_packages_or_weights_are_refused_before_the_detector_loads(generated, tmp_path, no_models,
                                                                            monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("DCAR_GENEVAL_DETECTOR_CKPT", raising=False)
    monkeypatch.delenv("DCAR_GENEVAL_CLIP_WEIGHTS", raising=False)
    _, images = generated
    with pytest.raises(UserError, match="dcar-bench\\[geneval\\]|GenEval detector checkpoint"):
        detect(images, tmp_path / "det", "allow_partial=true")
    assert not (tmp_path / "det").exists()


def test_images_dir_is_required(tmp_path):
    with pytest.raises(UserError, match="geneval_detect needs images_dir.*--set images_dir=DIR"):
        jobs.run("geneval_detect", None, tmp_path / "det", show_progress=False)


def test_a_folder_written_by_another_tool_is_read_like_ours(tmp_path, stand_in_models):
    """A folder not made by dcar-bench (no run around it): no generator recorded, scored by its own metadata."""
    from harness.geneval.folder import metadata_bytes, prompt_dir

    for p in SINGLE:
        d = prompt_dir(tmp_path / "other", p)
        (d / "samples").mkdir(parents=True)
        (d / "metadata.jsonl").write_bytes(metadata_bytes(load_prompts()[p]))
        Image.new("RGB", (16, 16), (9, 9, 9)).save(d / "samples" / "0000.png")
    res = detect(tmp_path / "other", tmp_path / "det", "allow_partial=true")
    s = res.summary["results"]
    assert "generator" not in s["models"] and s["tag_scores"]["single_object"] == 1.0
    manifest = json.loads((tmp_path / "det" / "manifest.json").read_text())
    assert manifest["subject"] == f"images in {(tmp_path / 'other').resolve()}"
