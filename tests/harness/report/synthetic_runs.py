"""Run directories written directly, in the store's formats, without any model or dataset.

Why: the paper tables read run directories only, so a test can state exactly what a run holds
(complete or partial, real or random weights, which summary values) and check the tables say so.
The files are written with the store's own helpers (``plan_bytes``, ``dumps_record``, ``dump_json``)
so their format is the one ``harness/store.py`` and ``harness/runner/core.py`` write.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from harness.api import WorkItem
from harness.io import atomic_write_bytes, bytes_sha256, dump_json
from harness.records import dumps_record, shard_filename
from harness.store import RunStore, plan_bytes

COMMIT = "0123456789abcdef0123456789abcdef01234567"
H200 = {"cuda": {"devices": ["NVIDIA H200"], "version": "12.8", "driver": "570.1"}, "cpu_count": 16,
        "machine": "x86_64"}
CPU = {"cuda": None, "cpu_count": 2, "machine": "x86_64"}


def write_run(root: Path, name: str, *, suite: str, adapter: str | None, results: Mapping[str, Any] | None,
              num_items: int = 4, recorded: int | None = None, real_weights: bool = True,
              weights: Mapping[str, str] | None = None, config: Mapping[str, Any] | None = None,
              protocol: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None,
              device: Mapping[str, Any] | None = None, created: str = "2026-01-01T00:00:00+00:00",
              dtype: str = "float32") -> Path:
    """A run directory ``root/name``: manifest, plan, ``recorded`` records (all by default), summary if ``results``."""
    run_dir = Path(root) / name
    items = [WorkItem(f"item/{i:04d}", {"i": i}) for i in range(num_items)]
    data = plan_bytes(items)
    info = None
    if adapter is not None:
        info = {"name": adapter, "kind": "image_tokenizer", "real_weights": real_weights, "dtype": dtype,
                "weights": dict(weights or {"weights": "sha256:" + "ab" * 32}), "resolution": None, "steps": None,
                "num_params": 1000, "extra": dict(extra or {})}
    manifest = {
        "format": 2, "suite": suite, "adapter": adapter, "adapter_info": info, "config": dict(config or {}),
        "seed": 0, "protocol": dict(protocol or {}), "metrics": [], "num_items": num_items,
        "plan_sha256": bytes_sha256(data),
        "provenance": {"device": dict(device or CPU), "git": {"commit": COMMIT, "dirty": False},
                       "packages": {"torch": "2.14.1", "numpy": "2.4.6"}, "python": "3.11.7", "created": created},
    }
    store = RunStore(run_dir)
    atomic_write_bytes(store.manifest_path, dump_json(manifest))
    store.write_plan(data)
    n = num_items if recorded is None else recorded
    lines = b"".join(dumps_record({"item_id": it.id, "seed": i, "value": i}) for i, it in enumerate(items[:n]))
    atomic_write_bytes(store.records_dir / shard_filename(0, 1), lines)
    if results is not None:
        store.write_summary({"suite": suite, "adapter": adapter, "real_weights": real_weights, "num_items": n,
                             "records_sha256": "cd" * 32, "record_files": 1, "duplicate_records": 0, "metrics": [],
                             "aggregate_overrides": {}, "results": dict(results)})
    return run_dir


def recon_results(resolution: int, continuous: Mapping[str, float], discrete: Mapping[str, float] | None = None,
                  *, paper_metric: bool = True, warnings: list[str] | None = None, num_images: int = 4) -> dict:
    """An ``imagenet_recon`` aggregate with the keys the suite writes (``paths``, ``dataset``, labels...)."""
    paths = {"continuous": dict(continuous)} if continuous else {}
    if discrete is not None:
        paths["discrete"] = dict(discrete)
    return {
        "dataset": {"resolution": resolution, "label": f"ImageNet val {resolution}", "crop": "adm_center_crop",
                    "dataset": "imagenet"},
        "paths": paths, "num_images": num_images, "num_skipped": 0, "is_paper_metric": paper_metric,
        "warnings": list(warnings or []),
        "fid_protocol": {"extractor": "fid-inception-v3-2015-12-05/pool3", "resize": "bilinear_pytorch",
                         "weights": "sha256:" + "ef" * 32},
        "reference_stats": {"source": "cache", "n": num_images}, "ssim": {"params": {"border": "full"}},
        "weights": {"adapter": "dc-ht", "adapter_real": paper_metric, "inception": "sha256:" + "ef" * 32,
                    "inception_real": paper_metric, "lpips_backbone": "sha256:" + "12" * 32,
                    "lpips_real": paper_metric},
        "report": {"model_label": "dc-ht", "tokens": None, "golden": None},
    }


def geneval_results(generator: str, correct_by_tag: Mapping[str, tuple[int, int]], *, real: bool = True,
                    generator_real: bool = True) -> dict:
    """A ``geneval_detect`` aggregate built by the GenEval scorer's own ``summarize`` (tag -> (correct, images))."""
    from harness.geneval.rules import RuleConfig, summarize

    rows, prompt = [], 0
    for tag, (ok, n) in correct_by_tag.items():
        for i in range(n):
            rows.append({"tag": tag, "correct": i < ok, "prompt_index": prompt + i // 4})
        prompt += (n + 3) // 4
    summary = summarize(rows)
    labels = []
    if not summary["complete"]:
        labels.append("INCOMPLETE: incomplete GenEval run")
    if not (real and generator_real):
        labels.append("NOT THE GENEVAL METRIC: random weights for " + ("detector" if not real else "generator"))
    summary.update({
        "rules": RuleConfig().to_dict(), "sanity_gate": {"passed": real, "items": {}},
        "models": {"detector": {"real_weights": real, "checkpoint": "mask2former.pth"},
                   "color_classifier": {"real_weights": real, "weights": "ViT-L-14.pt"},
                   "generator": {"name": generator, "real_weights": generator_real, "run_dir": "gen"}},
        "is_geneval_metric": not labels, "labels": labels, "per_image": [],
    })
    return summary
