"""The generate stage through the harness runner, and the fail-fast check (no mmdet, no weights needed)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.geneval.folder import scan_folder
from harness.geneval.prompts import load_prompts
from harness.jobs import run
from harness.seeding import item_seed

PROMPTS = [0, 200, 480]  # single_object, counting, color_attr


def gen(out, *, shard=None, batch_size=None, prompts=PROMPTS, n=2, model="dummy-t2i"):
    return run("geneval", model, out, overrides=[f"prompts={json.dumps(prompts)}", f"samples_per_prompt={n}",
                                                  "model.resolution=32"],
               shard=shard, batch_size=batch_size, show_progress=False)


def hashes(run_dir: Path) -> dict[str, str]:
    root = run_dir / "artifacts" / "geneval"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.png"))}


def test_generate_writes_the_official_layout(tmp_path):
    res = gen(tmp_path / "run")
    assert res.planned == 6 and res.completed == 6
    root = tmp_path / "run" / "artifacts" / "geneval"
    assert sorted(os.listdir(root)) == ["00000", "00200", "00480"]
    for p in PROMPTS:
        meta_text = (root / f"{p:05d}" / "metadata.jsonl").read_text()
        assert json.loads(meta_text) == load_prompts()[p]  # one JSON object = that prompt's line
        assert sorted(os.listdir(root / f"{p:05d}" / "samples")) == ["0000.png", "0001.png"]
    scan = scan_folder(root)
    assert scan.num_images == 6 and scan.warnings() == []  # our own folders pass our own (and the official) reader
    img = Image.open(root / "00200" / "samples" / "0001.png")
    assert img.format == "PNG" and img.mode == "RGB" and img.size == (32, 32)
    s = res.summary["results"]
    assert s["num_images"] == 6 and s["images_per_tag"]["counting"] == 2 and s["expected_images"] == 2212


def test_png_holds_exactly_the_adapter_output_with_the_item_seed(tmp_path):
    from baselines.dummy import DummyTextToImage
    from harness.images import to_uint8

    gen(tmp_path / "run", prompts=[200], n=1)
    prompt = load_prompts()[200]["prompt"]
    expected = to_uint8(DummyTextToImage(resolution=32).generate([prompt], [item_seed(0, "00200/0000")]))[0]
    got = np.asarray(Image.open(tmp_path / "run" / "artifacts" / "geneval" / "00200" / "samples" / "0000.png"))
    assert np.array_equal(got, expected.permute(1, 2, 0).numpy())


def test_resume_shards_and_batch_size_give_identical_images(tmp_path):
    a = gen(tmp_path / "a", batch_size=4)
    again = gen(tmp_path / "a", batch_size=4)
    assert again.completed == 0 and again.skipped == 6  # resumable: nothing redone
    gen(tmp_path / "b", shard="0/2", batch_size=1)
    gen(tmp_path / "b", shard="1/2", batch_size=3)
    assert hashes(tmp_path / "a") == hashes(tmp_path / "b") and len(hashes(a.run_dir)) == 6


def test_bad_prompt_selection_is_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"outside 0\.\.552"):
        gen(tmp_path / "run", prompts=[553])


def test_check_fails_fast_listing_missing_files_and_where_they_are_looked_for(tmp_path, monkeypatch, capsys):
    from harness.geneval.cli import main

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("DCAR_GENEVAL_DETECTOR_CKPT", raising=False)
    monkeypatch.delenv("DCAR_GENEVAL_CLIP_WEIGHTS", raising=False)
    rc = main(["run", "--model", "dummy-t2i", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 1  # a user error: exit 1 like the main CLI, one message, no traceback
    assert "\ndcar-bench geneval: error: GenEval cannot run; missing:" in err and "Traceback" not in err
    assert "GenEval detector checkpoint (Mask2Former Swin-S COCO) not found" in err
    assert "env:DCAR_GENEVAL_DETECTOR_CKPT" in err
    assert str(tmp_path / ".cache/dcar-bench/geneval/mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco_20220504_001756-743b7d99.pth") in err
    assert "GenEval colour classifier weights (CLIP ViT-L-14, OpenAI) not found" in err
    assert "env:DCAR_GENEVAL_CLIP_WEIGHTS" in err and "models--timm--vit_large_patch14_clip_224.openai" in err
    assert not (tmp_path / "run").exists()  # nothing generated before the check passed
    rc = main(["check"])
    assert rc == 1 and "NOT READY" in capsys.readouterr().err


def test_check_finds_files_given_by_env(tmp_path, monkeypatch, capsys):
    from harness.geneval.cli import check

    ckpt = tmp_path / "m2f.pth"
    clip = tmp_path / "ViT-L-14.pt"
    ckpt.write_bytes(b"x")
    clip.write_bytes(b"x")
    monkeypatch.setenv("DCAR_GENEVAL_DETECTOR_CKPT", str(ckpt))
    monkeypatch.setenv("DCAR_GENEVAL_CLIP_WEIGHTS", str(clip))
    problems = check()
    out = capsys.readouterr().out
    assert f"GenEval detector checkpoint (Mask2Former Swin-S COCO): {ckpt}" in out
    assert not [p for p in problems if "not found" in p]  # only packages may be missing in this env


@pytest.mark.slow
def test_generate_with_the_tiny_dcar_adapter(tmp_path, monkeypatch):
    """The real DC-AR pipeline (tiny config, random weights) through the generate stage."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = run("geneval", "dc-ar", tmp_path / "run", overrides=["prompts=[0, 300]", "samples_per_prompt=2",
                                                               "model.config=tiny", "model.random_init_seed=0"],
              show_progress=False)
    assert res.completed == 4
    scan = scan_folder(tmp_path / "run" / "artifacts" / "geneval")
    assert scan.num_images == 4 and scan.warnings() == []
    h = hashes(tmp_path / "run")
    assert len(set(h.values())) == 4  # different seeds per (prompt, sample) -> different images


def test_detect_refuses_an_incomplete_folder_before_detecting(tmp_path):
    from harness.geneval.rules import IncompleteRunError

    gen(tmp_path / "gen", prompts=[0, 100], n=1)
    images = tmp_path / "gen" / "artifacts" / "geneval"
    with pytest.raises(IncompleteRunError, match=r"2 of 2212 images, 2 of 553 prompts .*two_object 1/396"):
        run("geneval_detect", None, tmp_path / "det", overrides=[f"images_dir={json.dumps(str(images))}"],
            show_progress=False)
    assert not (tmp_path / "det" / "records").exists() or not any((tmp_path / "det" / "records").iterdir())
