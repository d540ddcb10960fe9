"""The official folder contract: shipped prompt file, and reading folders made by other tools."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from harness.api import UserError
from harness.geneval.folder import (
    GenEvalFolderError,
    check_decodable,
    inspect_folder,
    metadata_bytes,
    prompt_dir,
    sample_relpath,
    scan_folder,
)
from harness.geneval.prompts import load_class_names, load_prompts
from harness.geneval.rules import PROMPTS_PER_TAG, TAGS


def test_shipped_prompt_file_matches_the_official_counts():
    prompts = load_prompts()
    assert len(prompts) == 553
    counts = {t: sum(p["tag"] == t for p in prompts) for t in TAGS}
    assert counts == dict(PROMPTS_PER_TAG)
    # tags appear in the official order of first appearance
    first = []
    for p in prompts:
        if p["tag"] not in first:
            first.append(p["tag"])
    assert tuple(first) == TAGS
    names = load_class_names()
    assert len(names) == 80 and names[0] == "person" and names[-1] == "toothbrush"
    assert {r["class"] for p in prompts for r in p["include"]} <= set(names)
    # counting prompts: exclude = N+1 of the same class
    for p in prompts:
        if p["tag"] == "counting":
            assert p["exclude"] == [{"class": p["include"][0]["class"], "count": p["include"][0]["count"] + 1}]


def test_layout_names():
    assert sample_relpath(12, 3) == "00012/samples/0003.png"
    assert prompt_dir("/x", 7) == Path("/x/00007")
    assert json.loads(metadata_bytes(load_prompts()[0])) == load_prompts()[0]


def make_folder(root: Path, indices=(0, 1, 2), n=4, ext="png", meta_override=None):
    prompts = load_prompts()
    for i in indices:
        d = prompt_dir(root, i)
        (d / "samples").mkdir(parents=True, exist_ok=True)
        meta = (meta_override or {}).get(i, prompts[i])
        (d / "metadata.jsonl").write_bytes(metadata_bytes(meta))
        for s in range(n):
            Image.new("RGB", (8, 8), (s * 40, 0, 0)).save(d / "samples" / f"{s:04d}.{ext}")
    return root


def test_clean_folder(tmp_path):
    scan = scan_folder(make_folder(tmp_path))
    assert [p.index for p in scan.prompts] == [0, 1, 2]
    assert scan.num_images == 12 and scan.warnings() == []


def test_five_digit_sample_names_are_accepted(tmp_path):
    d = prompt_dir(tmp_path, 0)
    (d / "samples").mkdir(parents=True)
    (d / "metadata.jsonl").write_bytes(metadata_bytes(load_prompts()[0]))
    Image.new("RGB", (8, 8)).save(d / "samples" / "00000.png")
    Image.new("RGB", (8, 8)).save(d / "grid.png")  # ignored like the official scorer does
    assert scan_folder(tmp_path).num_images == 1


def test_jpeg_only_samples_are_counted_and_warned(tmp_path):
    make_folder(tmp_path, indices=(0,))
    make_folder(tmp_path, indices=(1, 2), ext="jpg")
    scan = scan_folder(tmp_path)
    assert scan.num_images == 4
    assert len(scan.ignored_other_images) == 8 and scan.no_png_prompts == [1, 2]
    text = "\n".join(scan.warnings())
    assert "8 non-PNG sample file(s) are ignored" in text
    assert "2 prompt folder(s) have no PNG sample" in text


def test_missing_metadata_is_an_error_with_count(tmp_path):
    make_folder(tmp_path)
    (prompt_dir(tmp_path, 1) / "metadata.jsonl").unlink()
    (prompt_dir(tmp_path, 2) / "metadata.jsonl").unlink()
    with pytest.raises(GenEvalFolderError, match=r"2 prompt folder\(s\) .* lack metadata.jsonl.*00001, 00002"):
        scan_folder(tmp_path)


def test_non_digit_folders_are_ignored_with_a_warning(tmp_path):
    make_folder(tmp_path, indices=(0,))
    (tmp_path / "prompt_1" / "samples").mkdir(parents=True)
    (tmp_path / "logs").mkdir()
    scan = scan_folder(tmp_path)
    assert scan.ignored_non_digit == ["logs", "prompt_1"]
    assert any("2 sub-folder(s) with non-digit names" in w for w in scan.warnings())


def test_only_non_digit_folders_is_an_error(tmp_path):
    (tmp_path / "a_cow" / "samples").mkdir(parents=True)
    with pytest.raises(GenEvalFolderError, match="no digit-named prompt folders.*a_cow"):
        scan_folder(tmp_path)


def test_metadata_not_matching_the_shipped_prompt_file(tmp_path):
    other = dict(load_prompts()[5])
    make_folder(tmp_path, indices=(0, 1), meta_override={1: other})
    scan = scan_folder(tmp_path)
    assert scan.mismatched_metadata == [1]
    assert any("1 prompt folder(s) hold metadata that differs" in w for w in scan.warnings())
    with pytest.raises(GenEvalFolderError, match="differs"):
        scan_folder(tmp_path, strict_metadata=True)


def test_corrupt_metadata_and_missing_root(tmp_path):
    with pytest.raises(GenEvalFolderError, match="does not exist"):
        scan_folder(tmp_path / "nope")
    make_folder(tmp_path, indices=(0,))
    # a multi-line jsonl (e.g. the whole prompt file copied in) is not one object
    (prompt_dir(tmp_path, 0) / "metadata.jsonl").write_text('{"tag": "a"}\n{"tag": "b"}\n')
    with pytest.raises(GenEvalFolderError, match="not a single JSON object"):
        scan_folder(tmp_path)


def test_duplicate_prompt_numbers_are_an_error(tmp_path):
    make_folder(tmp_path, indices=(3,))
    (tmp_path / "3").mkdir()
    with pytest.raises(GenEvalFolderError, match="both stand for prompt 3"):
        scan_folder(tmp_path)


def test_undecodable_pngs_are_named_with_the_fix(tmp_path):
    """A zero-byte and a truncated PNG pass a names-only scan but not the decoding check (issue 16, item 4)."""
    make_folder(tmp_path, indices=(0, 1), n=2)
    (prompt_dir(tmp_path, 0) / "samples" / "0001.png").write_bytes(b"")
    good = (prompt_dir(tmp_path, 1) / "samples" / "0000.png").read_bytes()
    (prompt_dir(tmp_path, 1) / "samples" / "0000.png").write_bytes(good[: len(good) // 2])
    scan = scan_folder(tmp_path)
    assert scan.num_images == 4  # listed like the official scorer lists them
    with pytest.raises(GenEvalFolderError) as e:
        check_decodable(scan)
    msg = str(e.value)
    assert isinstance(e.value, UserError) and "\n" not in msg
    assert msg.startswith(f"2 of 4 PNG sample(s) in {tmp_path} cannot be decoded")
    assert "00000/samples/0001.png (empty file (0 bytes))" in msg and "00001/samples/0000.png (" in msg
    assert "--allow-partial" in msg
    with pytest.raises(GenEvalFolderError, match="cannot be decoded"):
        inspect_folder(tmp_path)
    (prompt_dir(tmp_path, 0) / "samples" / "0001.png").unlink()
    (prompt_dir(tmp_path, 1) / "samples" / "0000.png").write_bytes(good)
    assert inspect_folder(tmp_path).num_images == 3


def test_wrong_layouts_name_the_folder_and_the_fix(tmp_path):
    # a generate run directory instead of its images folder
    run = tmp_path / "gen"
    make_folder(run / "artifacts" / "geneval", indices=(0,))
    (run / "records").mkdir()
    with pytest.raises(GenEvalFolderError) as e:
        scan_folder(run)
    assert str(e.value).startswith(f"no digit-named prompt folders in {run}") and "\n" not in str(e.value)
    assert f"--images {run / 'artifacts' / 'geneval'}" in str(e.value)
    assert scan_folder(run / "artifacts" / "geneval").num_images == 4  # the hint, fed back, works
    # a flat folder of images (no per-prompt folders, no metadata)
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8)).save(flat / f"{i:04d}.png")
    with pytest.raises(GenEvalFolderError, match=r"holds 3 loose image file\(s\) \(0000.png, 0001.png, 0002.png\).*"
                                                 r"one folder per prompt"):
        scan_folder(flat)
    with pytest.raises(GenEvalFolderError, match="does not exist.*expected <folder>/00000/metadata.jsonl"):
        scan_folder(tmp_path / "missing")
