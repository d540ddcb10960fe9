"""Detector output -> compact JSON records that the pure-Python rules re-score.

Why records: detection is the expensive, GPU-bound step; the rules are cheap. A record
holds, per image, every class's detections above ``record_threshold`` (boxes and scores
as the official per-class arrays give them, most confident first), and for the classes
the prompt asks a colour of, the masks (COCO run-length encoding, readable with
``pycocotools.mask.decode``) and CLIP's colour. Scoring then needs no detector, and a
threshold or rule question is answered by re-scoring the JSONL.

The RLE is COCO's compressed string format, written here in pure Python so records can
be made and read without pycocotools (tests check it against pycocotools).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

RECORD_FORMAT = 1


# ---------------------------------------------------------------- COCO RLE


def _counts_from_mask(mask) -> list[int]:
    import numpy as np

    flat = np.asarray(mask, dtype=bool).ravel(order="F")  # COCO: column-major
    if flat.size == 0:
        return [0]
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0] + runs  # counts always start with a run of zeros
    return runs


def _encode_counts(counts: Sequence[int]) -> str:
    # COCO's LEB128-like text encoding: from the 3rd count on, store the difference to
    # the count two before; 5 bits per char, 0x20 = "more follows", +48 to printable.
    out = []
    for i, c in enumerate(counts):
        x = int(c) - int(counts[i - 2]) if i > 2 else int(c)
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = (x != -1) if (ch & 0x10) else (x != 0)
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return "".join(out)


def _decode_counts(s: str) -> list[int]:
    counts: list[int] = []
    p = 0
    while p < len(s):
        x = 0
        k = 0
        more = True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_encode(mask) -> dict[str, Any]:
    """(H, W) bool mask -> ``{"size": [H, W], "counts": str}`` (COCO compressed RLE)."""
    import numpy as np

    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"rle_encode expects a 2-D mask, got shape {m.shape}")
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": _encode_counts(_counts_from_mask(m))}


def rle_decode(rle: Mapping[str, Any]):
    """COCO compressed RLE -> (H, W) bool array."""
    import numpy as np

    h, w = (int(v) for v in rle["size"])
    counts = _decode_counts(rle["counts"]) if isinstance(rle["counts"], str) else list(rle["counts"])
    if sum(counts) != h * w:
        raise ValueError(f"corrupt RLE: run lengths sum to {sum(counts)}, mask has {h * w} pixels")
    flat = np.zeros(h * w, dtype=bool)
    pos, val = 0, False
    for c in counts:
        if val:
            flat[pos:pos + c] = True
        pos += c
        val = not val
    return flat.reshape((w, h)).T


# ---------------------------------------------------------------- records


def color_classes(metadata: Mapping[str, Any]) -> set[str]:
    """Classes whose colour the prompt asks about."""
    return {r["class"] for r in metadata.get("include", []) if "color" in r}


def candidate_indices(scores, threshold: float, max_objects: int) -> list[int]:
    """Indices of one class's detections the rules can look at, most confident first (official ordering)."""
    from harness.metrics.geneval_rules import above_threshold, descending_order

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
