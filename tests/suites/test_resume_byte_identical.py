"""A dc-ar run interrupted by a kill resumes to records and PNGs byte-identical to an uninterrupted run.

The kill is reproduced exactly as it leaves the run directory: some complete records, a torn last
line (the write that was cut), the images of the unrecorded items missing, and a temp file of the
atomic image write that was in flight. The runner re-runs the whole batch the lost item belonged to, at
its plan position (the recorded items are recomputed but not written), so the item is computed with the
shape, rows and neighbours of the uninterrupted run; the adapters also pad every short call to the run's
batch size (without either, the lost dc-ar item redone alone differs by a grey level).
"""
from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest

from harness.jobs import run

pytest.importorskip("transformers")

SETTINGS = ["model.config=tiny", "model.random_init_seed=0", "prompts=0:2", "samples_per_prompt=2"]


def _images(run_dir: Path) -> dict[str, str]:
    root = run_dir / "artifacts"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.png"))}


def _records(run_dir: Path) -> dict[str, dict]:
    lines = (run_dir / "records" / "shard-0-of-1.jsonl").read_text().splitlines()
    return {r["item_id"]: r for r in map(json.loads, lines)}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_dc_ar_resume_after_a_torn_record_is_byte_identical(tmp_path, monkeypatch):
    monkeypatch.setenv("DCAR_BENCH_CACHE", str(tmp_path / "cache"))
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run("geneval", "dc-ar", whole, overrides=SETTINGS, batch_size=4, show_progress=False)
    run("geneval", "dc-ar", killed, overrides=SETTINGS, batch_size=4, show_progress=False, aggregate_when_done=False)

    rec_file = killed / "records" / "shard-0-of-1.jsonl"
    lines = rec_file.read_bytes().splitlines(keepends=True)
    assert len(lines) == 4
    rec_file.write_bytes(b"".join(lines[:3]) + lines[3][: len(lines[3]) // 2])  # 3 records + a torn 4th line
    lost = [json.loads(line) for line in lines[3:]]
    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname())
    for rec in lost:
        png = killed / "artifacts" / "geneval" / rec["file"]
        png.unlink()
    (png.parent / f".{png.name}.{host}-999999999.x1y2z3.tmp").write_bytes(b"half an image")
    (killed / "summary.json").unlink(missing_ok=True)

    res = run("geneval", "dc-ar", killed, overrides=SETTINGS, batch_size=4, show_progress=False)
    assert res.completed == 1 and res.skipped == 3
    assert _records(killed) == _records(whole)
    assert _images(killed) == _images(whole)
    assert not list((killed / "artifacts").rglob("*.tmp"))
    assert json.loads((killed / "summary.json").read_text())["records_sha256"] == \
        json.loads((whole / "summary.json").read_text())["records_sha256"]


IMAGENET_SETTINGS = ["model.config=tiny", "model.random_init_seed=0", "dataset.kind=skimage_samples",
                     "dataset.limit=4", "metrics.inception.random_init_seed=0", "metrics.lpips.random_backbone_seed=0",
                     "metrics.frechet=eigh"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_imagenet_recon_resume_after_a_torn_record_is_byte_identical(tmp_path, monkeypatch):
    pytest.importorskip("lpips")
    monkeypatch.setenv("DCAR_BENCH_CACHE", str(tmp_path / "cache"))
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run("imagenet_recon", "dc-ht", whole, overrides=IMAGENET_SETTINGS, batch_size=3, show_progress=False)
    run("imagenet_recon", "dc-ht", killed, overrides=IMAGENET_SETTINGS, batch_size=3, show_progress=False,
        aggregate_when_done=False)
    rec_file = killed / "records" / "shard-0-of-1.jsonl"
    lines = rec_file.read_bytes().splitlines(keepends=True)
    rec_file.write_bytes(lines[0] + lines[1][:10])  # items 1-3 are redone as one batch (the whole run had 3 + 1)
    res = run("imagenet_recon", "dc-ht", killed, overrides=IMAGENET_SETTINGS, batch_size=3, show_progress=False)
    assert res.completed == 3
    assert _records(killed) == _records(whole)
    feats = {p.name: p.read_bytes() for p in sorted((whole / "artifacts" / "inception").glob("*.npz"))}
    assert feats == {p.name: p.read_bytes() for p in sorted((killed / "artifacts" / "inception").glob("*.npz"))}
