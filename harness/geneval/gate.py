"""The sanity gate: the detector and colour classifier must get known images right before a run is scored.

Why: broken GenEval installs (CPU-only mmcv ops on GPU, wrong checkpoint, mmdet version
clash) still print scores, just wrong ones (reported upstream in djghosh13/geneval
issues #6-#14). Every detection run therefore also runs the same
models on a few images with known content, through the same code path and the same
rules, and scoring refuses a run whose gate failed.

Images: scikit-image's bundled sample photos (no download) with one object each that a
COCO detector must find, judged by the GenEval ``single_object`` rule (score > 0.3);
and flat colour patches (whole-image mask) that CLIP must name.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

#: scikit-image sample -> the COCO class that must be detected in it
GATE_OBJECTS: Mapping[str, str] = {"astronaut": "person", "chelsea": "cat", "coffee": "cup"}
#: flat patches -> the colour CLIP must name (class "object" in the templates)
GATE_COLORS: Mapping[str, tuple[int, int, int]] = {"red": (220, 20, 20), "green": (30, 170, 40), "blue": (25, 50, 220)}
GATE_COLOR_CLASS = "cup"
GATE_PATCH_SIZE = 224


def gate_item_ids() -> list[str]:
    return [f"gate/object/{n}" for n in GATE_OBJECTS] + [f"gate/color/{c}" for c in GATE_COLORS]


def parse_gate_id(item_id: str) -> tuple[str, str]:
    """``"gate/object/chelsea"`` -> ``("object", "chelsea")``."""
    prefix, kind, name = item_id.split("/")
    if prefix != "gate" or kind not in ("object", "color") or name not in (GATE_OBJECTS if kind == "object" else GATE_COLORS):
        raise ValueError(f"{item_id!r} is not a sanity-gate item (known: {gate_item_ids()})")
    return kind, name


def gate_object_image(name: str):
    """RGB uint8 (H, W, 3) of a scikit-image sample."""
    import numpy as np
    from skimage import data

    img = np.asarray(getattr(data, name)())
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[:, :, :3].astype(np.uint8))


def gate_object_metadata(name: str) -> dict[str, Any]:
    cls = GATE_OBJECTS[name]
    return {"tag": "single_object", "include": [{"class": cls, "count": 1}], "prompt": f"sanity gate: {name} ({cls})"}


def gate_color_image(color: str):
    from PIL import Image

    return Image.new("RGB", (GATE_PATCH_SIZE, GATE_PATCH_SIZE), GATE_COLORS[color])


def gate_color_record(classifier: Any, color: str) -> dict[str, Any]:
    """The record of a colour gate item: what the classifier calls a flat patch (whole-image box, no mask)."""
    (predicted, probs), = classifier.classify(gate_color_image(color), [((0, 0, GATE_PATCH_SIZE, GATE_PATCH_SIZE), None)],
                                              GATE_COLOR_CLASS)
    return {"gate": {"kind": "color", "expected": color}, "color": predicted, "color_probs": probs}


def gate_object_record(raw: Any, name: str, *, record_threshold: float, max_objects: int) -> dict[str, Any]:
    """The record of an object gate item from the detector's raw output on :func:`gate_object_image`."""
    from harness.geneval.records import image_record

    meta = gate_object_metadata(name)
    rec = image_record(raw, meta, None, None, record_threshold=record_threshold, max_objects=max_objects)
    rec["gate"] = {"kind": "object", "expected": meta["include"][0]["class"]}
    return rec


def evaluate_gate(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Pass/fail per gate item from its records (``gate`` key), overall pass only if every item passed."""
    from harness.geneval.rules import judge_record

    results = {}
    for rec in records:
        gate = rec.get("gate")
        if not gate:
            continue
        if gate["kind"] == "object":
            j = judge_record(rec)
            results[rec["item_id"]] = {"passed": j.correct, "expected": gate["expected"],
                                       "detail": "found" if j.correct else j.reason,
                                       "best_score": max((o["score"] for o in rec["detections"].get(gate["expected"], [])),
                                                         default=None)}
        else:
            ok = rec["color"] == gate["expected"]
            results[rec["item_id"]] = {"passed": ok, "expected": gate["expected"], "detail": f"predicted {rec['color']}"}
    missing = [i for i in gate_item_ids() if i not in results]
    return {"passed": bool(results) and not missing and all(r["passed"] for r in results.values()),
            "items": results, "missing": missing}


def gate_message(gate: Mapping[str, Any]) -> str:
    lines = [f"  {k}: expected {v['expected']}: {'ok' if v['passed'] else 'FAILED'} ({v['detail']})"
             for k, v in gate["items"].items()]
    if gate["missing"]:
        lines.append(f"  not run: {', '.join(gate['missing'])}")
    return "\n".join(lines)
