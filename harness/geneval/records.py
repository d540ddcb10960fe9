"""Detector output -> compact JSON records that the pure-Python rules re-score.

Why records: detection is the expensive, GPU-bound step; the rules are cheap. A record holds, per
image, every class's detections above ``record_threshold`` (boxes and scores as the official
per-class arrays give them, most confident first), and for the classes the prompt asks a colour of,
the masks (COCO compressed RLE, ``{"size": [H, W], "counts": str}``, through ``pycocotools.mask``)
and CLIP's colour. Scoring then needs no detector, and a threshold or rule question is answered by
re-scoring the JSONL.

:func:`image_record` is the one function from a detector's raw output to a record; the detect suite
calls it, and tests call it on hand-made detections with a stand-in colour classifier.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Protocol, Sequence

from harness.api import MissingDependencyError
from harness.geneval.rules import above_threshold, descending_order

RECORD_FORMAT = 1


class ColourClassifier(Protocol):
    """What :func:`image_record` needs of a colour classifier (:class:`harness.geneval.color.ColorClassifier`)."""

    def classify(self, image: Any, objects: Sequence[tuple[Sequence[float], Any]], cls: str
                 ) -> list[tuple[str, list[float]]]: ...


# ---------------------------------------------------------------- COCO RLE (pycocotools)


def _coco_mask():
    try:
        from pycocotools import mask
    except ImportError as exc:
        raise MissingDependencyError("GenEval masks are stored as COCO RLE through pycocotools, which is not "
                                     "installed: pip install 'dcar-bench[geneval]' (or pip install pycocotools)") from exc
    return mask


def rle_encode(mask) -> dict[str, Any]:
    """(H, W) bool mask -> ``{"size": [H, W], "counts": str}`` (COCO compressed RLE, ``pycocotools.mask.encode``)."""
    import numpy as np

    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"rle_encode expects a 2-D mask, got shape {m.shape}")
    rle = _coco_mask().encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_decode(rle: Mapping[str, Any]):
    """COCO RLE (compressed string, or the uncompressed list of run lengths) -> (H, W) bool array.

    pycocotools decodes a damaged string without complaint, so a string is checked by re-encoding
    the result (COCO's encoding is canonical) and a list by the sum of its runs.
    """
    coco = _coco_mask()
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, (list, tuple)):
        if sum(int(c) for c in counts) != h * w:
            raise ValueError(f"corrupt RLE: run lengths sum to {sum(int(c) for c in counts)}, mask has {h * w} pixels")
        compressed = coco.frPyObjects({"size": [h, w], "counts": [int(c) for c in counts]}, h, w)
    else:
        compressed = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else bytes(counts)}
    mask = coco.decode(compressed).astype(bool)
    if not isinstance(counts, (list, tuple)) and rle_encode(mask)["counts"].encode("ascii") != compressed["counts"]:
        raise ValueError(f"corrupt RLE: {str(counts)[:40]!r} is not a valid COCO encoding of a {h}x{w} mask")
    return mask


# ---------------------------------------------------------------- records


def color_classes(metadata: Mapping[str, Any]) -> set[str]:
    """Classes whose colour the prompt asks about."""
    return {r["class"] for r in metadata.get("include", []) if "color" in r}


def candidate_indices(scores, threshold: float, max_objects: int) -> list[int]:
    """Indices of one class's detections the rules can look at, most confident first (official ordering)."""
    order = descending_order([float(v) for v in scores])
    return [i for i in order if above_threshold(float(scores[i]), threshold)][:max_objects]


def make_record(
    raw: Any,
    metadata: Mapping[str, Any],
    class_names: Sequence[str],
    *,
    record_threshold: float,
    max_objects: int,
    colors: Mapping[tuple[int, int], tuple[str, list[float]]] | None = None,
) -> dict[str, Any]:
    """One image's detection record from :class:`~harness.geneval.detector.RawDetections`.

    ``colors`` maps ``(class index, detection index)`` to ``(colour, probabilities)`` for
    the detections whose colour was classified (see :func:`colour_targets`).
    """
    if len(raw.boxes) != len(class_names):
        raise ValueError(f"detector returned {len(raw.boxes)} classes, expected {len(class_names)}")
    wanted = color_classes(metadata)
    detections: dict[str, list[dict[str, Any]]] = {}
    for c, name in enumerate(class_names):
        boxes = raw.boxes[c]
        if len(boxes) == 0:
            continue
        keep = candidate_indices(boxes[:, 4], record_threshold, max_objects)
        objs = []
        for i in keep:
            obj: dict[str, Any] = {"box": [float(v) for v in boxes[i, :4]], "score": float(boxes[i, 4])}
            if name in wanted:
                obj["mask"] = rle_encode(raw.masks[c][i])
                if colors is not None and (c, i) in colors:
                    obj["color"], obj["color_probs"] = colors[(c, i)][0], [round(float(p), 6) for p in colors[(c, i)][1]]
            objs.append(obj)
        if objs:
            detections[name] = objs
    return {"format": RECORD_FORMAT, "height": raw.height, "width": raw.width, "metadata": dict(metadata),
            "detections": detections}


def colour_targets(raw: Any, metadata: Mapping[str, Any], class_names: Sequence[str], *,
                   record_threshold: float, max_objects: int) -> list[tuple[int, int]]:
    """``(class index, detection index)`` pairs whose colour the record must carry."""
    wanted = color_classes(metadata)
    out = []
    for c, name in enumerate(class_names):
        if name in wanted and len(raw.boxes[c]):
            out += [(c, i) for i in candidate_indices(raw.boxes[c][:, 4], record_threshold, max_objects)]
    return out


def _open_image(image: Any):
    """A PIL RGB image from a PIL image or a path, EXIF orientation applied as the official scorer does."""
    if isinstance(image, (str, os.PathLike)):
        from PIL import ImageOps

        from harness.data.image_io import open_rgb

        return ImageOps.exif_transpose(open_rgb(image)).convert("RGB")
    return image


def image_record(
    raw: Any,
    metadata: Mapping[str, Any],
    image: Any,
    classifier: ColourClassifier | None,
    *,
    class_names: Sequence[str] | None = None,
    record_threshold: float,
    max_objects: int,
) -> dict[str, Any]:
    """ONE image's record from its raw detector output and a colour classifier; no detector involved.

    ``raw``: the per-class boxes+scores and masks (:class:`~harness.geneval.detector.RawDetections`);
    ``image``: the image (PIL, or a path opened only if a colour is needed); ``classifier``: anything
    with ``classify(image, [(box, mask)], cls) -> [(colour, probs)]`` (None when the prompt asks no
    colour). Every recorded detection of a class the prompt asks a colour of is classified, one
    classifier call per class, as the official scorer batches its crops per class.
    """
    from harness.geneval.prompts import load_class_names

    names = tuple(class_names) if class_names is not None else load_class_names()
    targets = colour_targets(raw, metadata, names, record_threshold=record_threshold, max_objects=max_objects)
    colors: dict[tuple[int, int], tuple[str, list[float]]] = {}
    if targets:
        if classifier is None:
            raise ValueError(f"the prompt asks colours of {sorted(color_classes(metadata))}: image_record needs a "
                             "colour classifier")
        pil = _open_image(image)
        by_class: dict[int, list[int]] = {}
        for c, i in targets:
            by_class.setdefault(c, []).append(i)
        for c, idx in by_class.items():
            preds = classifier.classify(pil, [(raw.boxes[c][i, :4], raw.masks[c][i]) for i in idx], names[c])
            colors.update({(c, i): p for i, p in zip(idx, preds)})
    return make_record(raw, metadata, names, record_threshold=record_threshold, max_objects=max_objects, colors=colors)
