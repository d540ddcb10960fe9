"""``dcar-bench geneval parity``: both detector backends on the same images and weights, compared.

Why a command: "the transformers backend equals mmdet" is a claim about the user's own weights,
images and hardware (geneval issue #15: scores that move between GPUs), so it must be checkable
there. Per image it reports whether the kept detections are the same (per class: count, then boxes
and scores after sorting by score, masks pixel by pixel), their largest differences, and whether the
GenEval verdict (the ported rules on each backend's record, one shared colour classifier) agrees.
On a complete folder with real weights that is all 2,212 verdicts.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np


def compare_raw(a: Any, b: Any) -> dict[str, Any]:
    """Two images' :class:`~harness.geneval.detector.RawDetections` -> counts, largest differences, mask pixels."""
    same_counts = True
    box = score = 0.0
    mask_pixels = 0
    for c in range(len(a.boxes)):
        ba, bb = a.boxes[c], b.boxes[c]
        if len(ba) != len(bb):
            same_counts = False
            continue
        if not len(ba):
            continue
        oa = np.argsort(-ba[:, 4], kind="stable")
        ob = np.argsort(-bb[:, 4], kind="stable")
        box = max(box, float(np.abs(ba[oa, :4] - bb[ob, :4]).max()))
        score = max(score, float(np.abs(ba[oa, 4] - bb[ob, 4]).max()))
        mask_pixels += int((a.masks[c][oa] != b.masks[c][ob]).sum())
    return {"same_counts": same_counts, "max_box_diff": box, "max_score_diff": score,
            "mask_pixels_differing": mask_pixels,
            "identical": same_counts and box == 0.0 and mask_pixels == 0}


@dataclass
class ParityResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    models: dict[str, Any] = field(default_factory=dict)

    @property
    def verdicts_agree(self) -> int:
        return sum(r["verdict_agrees"] for r in self.rows)

    def summary(self) -> dict[str, Any]:
        rows = self.rows
        return {"images": len(rows), "verdicts_agree": self.verdicts_agree,
                "detections_identical": sum(r["identical"] for r in rows),
                "same_counts": sum(r["same_counts"] for r in rows),
                "max_box_diff": max((r["max_box_diff"] for r in rows), default=0.0),
                "max_score_diff": max((r["max_score_diff"] for r in rows), default=0.0),
                "mask_pixels_differing": sum(r["mask_pixels_differing"] for r in rows),
                "models": self.models, "per_image": rows}


def image_verdict(raw: Any, metadata: Mapping[str, Any], image: Any, classifier: Any, rules: Any) -> tuple[bool, str]:
    """The GenEval verdict of one image from raw detections (the same path as ``geneval detect`` + score)."""
    from harness.geneval.records import image_record
    from harness.geneval.rules import judge_record

    rec = image_record(raw, metadata, image, classifier, record_threshold=min(rules.threshold,
                       rules.counting_threshold), max_objects=rules.max_objects)
    j = judge_record(rec, rules)
    return j.correct, j.reason


def compare_backends(mmdet_detector: Any, hf_detector: Any, items: Iterable[tuple[str, Any, Mapping[str, Any]]],
                     classifier: Any, rules: Any = None, progress: Any = None) -> ParityResult:
    """``items``: (name, image path or RGB array, prompt metadata) -> per-image comparison rows."""
    from harness.geneval.detection import run_detector
    from harness.geneval.rules import DEFAULT_RULES

    rules = rules or DEFAULT_RULES
    result = ParityResult(models={"mmdet": mmdet_detector.info(), "transformers": hf_detector.info()})
    for name, image, meta in items:
        ra, rb = run_detector(mmdet_detector, image), run_detector(hf_detector, image)
        row = {"file": name, "tag": meta.get("tag"), **compare_raw(ra, rb)}
        va, reason_a = image_verdict(ra, meta, image, classifier, rules)
        vb, reason_b = image_verdict(rb, meta, image, classifier, rules)
        row.update({"verdict_mmdet": va, "verdict_transformers": vb, "verdict_agrees": va == vb})
        if va != vb:
            row["reasons"] = {"mmdet": reason_a, "transformers": reason_b}
        result.rows.append(row)
        if progress is not None:
            progress(row)
    return result


def load_pair(checkpoint: str | os.PathLike | None, *, device: str = "cpu", mmdet_config: str | None = None,
              random_init_seed: int | None = None) -> tuple[Any, Any]:
    """(mmdet detector, transformers detector) on the same weights: the checkpoint, or one random mmdet model's."""
    from harness.geneval.detector import load_detector
    from harness.geneval.hf_mask2former import load_hf_detector

    if checkpoint is not None:
        return (load_detector(mmdet_config, checkpoint, device=device),
                load_hf_detector(checkpoint, device=device))
    mm = load_detector(mmdet_config, None, device=device, random_init_seed=random_init_seed)
    sd = {k: v.detach().cpu() for k, v in mm.model.state_dict().items()}
    hf = load_hf_detector(state_dict=sd, device=device)
    hf.extra["weights"] = f"the random mmdet model's (seed {random_init_seed}), converted"
    return mm, hf


def folder_items(images_dir: str | os.PathLike, limit: int | None = None) -> list[tuple[str, Path, dict[str, Any]]]:
    """(relative name, path, metadata) of every sample of a GenEval folder, in folder order."""
    from harness.geneval.folder import inspect_folder

    scan = inspect_folder(Path(images_dir).expanduser().resolve())
    items = [(scan.relpath(s), s, pf.metadata) for pf in scan.prompts for s in pf.samples]
    return items[:limit] if limit else items


def render(summary: Mapping[str, Any]) -> str:
    """A few lines for the terminal: agreement counts and largest differences, then the disagreeing images."""
    n = summary["images"]
    lines = [f"images: {n}",
             f"GenEval verdicts agree: {summary['verdicts_agree']}/{n}",
             f"detections identical (per-class counts, boxes, scores, masks): {summary['detections_identical']}/{n}"
             f"; same per-class counts: {summary['same_counts']}/{n}",
             f"max |box difference| {summary['max_box_diff']:.3g} px, max |score difference| "
             f"{summary['max_score_diff']:.3g}, mask pixels differing {summary['mask_pixels_differing']}"]
    if n != 2212:
        lines.append(f"(a full GenEval folder has 2,212 images; this one has {n})")
    bad = [r for r in summary["per_image"] if not r["verdict_agrees"]]
    for r in bad[:20]:
        lines.append(f"  verdict differs: {r['file']} ({r['tag']}): mmdet {r['verdict_mmdet']}, "
                     f"transformers {r['verdict_transformers']}")
    return "\n".join(lines)
