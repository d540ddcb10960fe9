"""Detection records, the sanity gate, scoring refusals/labels and the Table 3 layout (no mmdet needed).

Masks are COCO RLE through pycocotools (the ``geneval`` extra): tests that store a mask are marked ``geneval``.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from harness.geneval.detector import RawDetections
from harness.geneval.gate import gate_item_ids
from harness.geneval.records import colour_targets, image_record, make_record, rle_decode, rle_encode
from harness.geneval.rules import IncompleteRunError, judge_record
from harness.geneval.scoring import REFERENCE_TABLE, SanityGateError, render_table3, score_records
from harness.report.reference import reference_table

NAMES = ("person", "cat", "cup", "car")


#: tests that store or read a mask: run by `tox -e geneval -- tests` (which has pycocotools), skipped without it
coco = pytest.mark.geneval


def needs_pycocotools():
    pytest.importorskip("pycocotools", reason="COCO RLE masks need pycocotools (pip install 'dcar-bench[geneval]')")


def raw_with(dets: dict[int, list[tuple[tuple[float, float, float, float], float]]], h=64, w=96) -> RawDetections:
    boxes, masks = [], []
    for c in range(len(NAMES)):
        rows = dets.get(c, [])
        boxes.append(np.array([[*b, s] for b, s in rows], np.float32).reshape(-1, 5))
        ms = np.zeros((len(rows), h, w), bool)
        for k, (b, _) in enumerate(rows):
            x1, y1, x2, y2 = (int(v) for v in b)
            ms[k, y1:y2, x1:x2] = True
        masks.append(ms)
    return RawDetections(boxes, masks, h, w)


@coco
def test_rle_roundtrip_and_known_encoding():
    needs_pycocotools()
    m = np.zeros((3, 4), bool)
    m[1:, 1:3] = True  # column-major runs: 4 zeros, 2 ones, 1 zero, 2 ones, 3 zeros
    rle = rle_encode(m)
    assert rle["size"] == [3, 4]
    assert (rle_decode(rle) == m).all()
    assert (rle_decode({"size": [3, 4], "counts": [4, 2, 1, 2, 3]}) == m).all()  # uncompressed COCO form too
    rs = np.random.RandomState(0)
    for _ in range(50):
        m = rs.rand(*rs.randint(1, 30, 2)) < rs.rand()
        assert (rle_decode(rle_encode(m)) == m).all()
    full = np.ones((5, 5), bool)
    assert (rle_decode(rle_encode(full)) == full).all()  # starts with a zero-length run of zeros
    with pytest.raises(ValueError, match="corrupt RLE"):
        rle_decode({"size": [3, 4], "counts": [4, 2]})
    with pytest.raises(ValueError, match="2-D"):
        rle_encode(np.zeros((2, 2, 2), bool))
    with pytest.raises(ValueError, match="corrupt RLE"):  # pycocotools alone would decode this silently
        rle_decode({"size": [3, 4], "counts": "42"})


@coco
def test_record_format_is_unchanged_by_pycocotools():
    """The strings the hand-written encoder wrote before pycocotools did (records stay readable both ways)."""
    needs_pycocotools()
    m = np.zeros((3, 4), bool)
    m[1:, 1:3] = True
    assert rle_encode(m) == {"size": [3, 4], "counts": "42102"}
    m2 = np.zeros((6, 7), bool)
    m2[0, 0] = True
    m2[2:5, 1:6] = True
    m2[5, 6] = True
    assert rle_encode(m2) == {"size": [6, 7], "counts": "0172L00000003N"}
    assert (rle_decode({"size": [6, 7], "counts": "0172L00000003N"}) == m2).all()
    json.dumps(rle_encode(m2))  # plain str counts, list size: the record's JSON layout


@coco
def test_rle_matches_pycocotools():
    needs_pycocotools()
    from pycocotools import mask as coco

    rs = np.random.RandomState(1)
    for _ in range(100):
        m = rs.rand(*rs.randint(1, 50, 2)) < rs.rand()
        ours = rle_encode(m)
        ref = coco.encode(np.asfortranarray(m.astype(np.uint8)))
        assert ours["counts"] == ref["counts"].decode() and ours["size"] == list(ref["size"])


@coco
def test_make_record_keeps_official_order_threshold_cap_and_masks_only_for_colour_classes():
    needs_pycocotools()
    meta = {"tag": "colors", "include": [{"class": "cup", "count": 1, "color": "red"}]}
    raw = raw_with({2: [((0, 0, 10, 10), 0.5), ((20, 0, 40, 30), 0.95), ((50, 5, 60, 9), 0.2)],
                    0: [((1, 1, 5, 5), 0.8)]})
    targets = colour_targets(raw, meta, NAMES, record_threshold=0.3, max_objects=16)
    assert targets == [(2, 1), (2, 0)]  # cup detections above 0.3, most confident first
    colors = {(2, 1): ("red", [0.9] + [0.1 / 9] * 9), (2, 0): ("blue", [0.1] * 10)}
    rec = make_record(raw, meta, NAMES, record_threshold=0.3, max_objects=16, colors=colors)
    json.dumps(rec)  # JSON-serialisable
    cups = rec["detections"]["cup"]
    assert [o["score"] for o in cups] == pytest.approx([0.95, 0.5])
    assert cups[0]["box"] == [20.0, 0.0, 40.0, 30.0] and cups[0]["color"] == "red"
    assert rle_decode(cups[0]["mask"]).sum() == 20 * 30
    assert "mask" not in rec["detections"]["person"][0]  # no colour asked of persons
    assert judge_record(rec).correct
    rec2 = make_record(raw, meta, NAMES, record_threshold=0.3, max_objects=1, colors=colors)
    assert len(rec2["detections"]["cup"]) == 1
    with pytest.raises(ValueError, match="returned 4 classes, expected 3"):
        make_record(raw, meta, NAMES[:3], record_threshold=0.3, max_objects=16)


def test_tied_scores_keep_the_official_top1_through_record_and_rules():
    # two cups with the same score: the official np.argsort(scores)[::-1] puts index 1 (x 50..60) first,
    # the record stores that order, and the rules must not re-sort it (a reversed stable sort swaps ties)
    meta = {"tag": "position", "include": [{"class": "cup", "count": 1},
                                            {"class": "car", "count": 1, "position": ["left of", 0]}]}
    raw = raw_with({2: [((0, 0, 10, 10), 0.5), ((50, 0, 60, 10), 0.5)], 3: [((25, 0, 35, 10), 0.9)]})
    official_top = int(np.argsort(raw.boxes[2][:, 4])[::-1][0])
    rec = make_record(raw, meta, NAMES, record_threshold=0.3, max_objects=16)
    assert rec["detections"]["cup"][0]["box"] == [float(v) for v in raw.boxes[2][official_top, :4]]
    assert official_top == 1 and judge_record(rec).correct  # car (x 25..35) is left of the x 50..60 cup


COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")


def one_hot(color):
    return [1.0 if c == color else 0.0 for c in COLOURS]


class StubClassifier:
    """Names every object by a colour chosen from its box (x1 < 30 -> red, else blue); records the calls."""

    def __init__(self):
        self.calls = []

    def classify(self, image, objects, cls):
        self.calls.append((cls, image.size, len(objects)))
        out = []
        for box, mask in objects:
            assert mask.shape == (image.size[1], image.size[0]) and mask.dtype == bool
            color = "red" if box[0] < 30 else "blue"
            out.append((color, one_hot(color)))
        return out


@coco
def test_image_record_turns_raw_detections_and_a_classifier_into_the_scored_record():
    """The public one-image function: rules checked on recorded detections, no detector involved."""
    needs_pycocotools()
    from PIL import Image

    meta = {"tag": "color_attr", "include": [{"class": "cup", "count": 1, "color": "red"},
                                              {"class": "car", "count": 1, "color": "blue"}]}
    raw = raw_with({2: [((0, 0, 10, 10), 0.9), ((40, 0, 50, 10), 0.6), ((5, 5, 9, 9), 0.1)],
                    3: [((60, 20, 90, 40), 0.8)], 0: [((1, 1, 5, 5), 0.95)]})
    clf = StubClassifier()
    rec = image_record(raw, meta, Image.new("RGB", (96, 64)), clf, class_names=NAMES, record_threshold=0.3,
                       max_objects=16)
    assert clf.calls == [("cup", (96, 64), 2), ("car", (96, 64), 1)]  # one call per asked class, above threshold only
    assert [o["color"] for o in rec["detections"]["cup"]] == ["red", "blue"]
    assert rec["detections"]["car"][0]["color"] == "blue" and "color" not in rec["detections"]["person"][0]
    colors = {(2, 0): ("red", one_hot("red")), (2, 1): ("blue", one_hot("blue")), (3, 0): ("blue", one_hot("blue"))}
    assert rec == make_record(raw, meta, NAMES, record_threshold=0.3, max_objects=16, colors=colors)
    assert judge_record(rec).correct  # red cup (top-1) and blue car
    # the same detections with the cup's top colour flipped: the rules now say wrong, with the reason
    rec["detections"]["cup"][0]["color"] = "blue"
    j = judge_record(rec)
    assert not j.correct and "expected red cup>=1, found 0 red" in j.reason


def test_image_record_without_a_colour_question_needs_no_classifier_and_no_image():
    meta = {"tag": "two_object", "include": [{"class": "cup", "count": 1}, {"class": "car", "count": 1}]}
    raw = raw_with({2: [((0, 0, 10, 10), 0.9)], 3: [((20, 0, 30, 10), 0.2)]})
    rec = image_record(raw, meta, None, None, class_names=NAMES, record_threshold=0.3, max_objects=16)
    assert set(rec["detections"]) == {"cup"} and "mask" not in rec["detections"]["cup"][0]
    assert judge_record(rec).reason == "expected car>=1, found 0"
    colour = {"tag": "colors", "include": [{"class": "cup", "count": 1, "color": "red"}]}
    with pytest.raises(ValueError, match="needs a colour classifier"):
        image_record(raw, colour, None, None, class_names=NAMES, record_threshold=0.3, max_objects=16)


# ------------------------------------------------------------------ scoring


def gate_records(passed=True):
    recs = []
    for gid in gate_item_ids():
        _, kind, name = gid.split("/")
        if kind == "color":
            recs.append({"item_id": gid, "gate": {"kind": "color", "expected": name}, "color": name if passed else "pink"})
        else:
            cls = {"astronaut": "person", "chelsea": "cat", "coffee": "cup"}[name]
            dets = {cls: [{"box": [0, 0, 10, 10], "score": 0.97 if passed else 0.05}]}
            recs.append({"item_id": gid, "gate": {"kind": "object", "expected": cls},
                         "metadata": {"tag": "single_object", "include": [{"class": cls, "count": 1}]},
                         "detections": dets})
    return recs


def image_records():
    from harness.geneval.prompts import load_prompts

    recs = []
    for p, meta in enumerate(load_prompts()):
        cls = meta["include"][0]["class"]
        for s in range(4):
            ok = s < 2  # half the images have the first object (enough for single_object only)
            dets = {cls: [{"box": [0, 0, 10, 10], "score": 0.95, "color": meta["include"][0].get("color", "red")}]} if ok else {}
            recs.append({"item_id": f"img/{p:05d}/samples/{s:04d}.png", "prompt_index": p, "metadata": meta,
                         "detections": dets, "file": f"{p:05d}/samples/{s:04d}.png"})
    return recs


def test_full_run_scores_and_is_the_metric_only_with_real_weights_and_gate():
    real = {"detector": {"real_weights": True}, "color_classifier": {"real_weights": True},
            "generator": {"real_weights": True, "name": "dc-ar"}}
    s = score_records(gate_records() + image_records(), models=real)
    assert s["complete"] and s["total_images"] == 2212 and s["total_prompts"] == 553
    assert s["tag_scores"]["single_object"] == 0.5 and s["tag_scores"]["colors"] == 0.5
    assert s["tag_scores"]["two_object"] == 0.0  # second object never detected
    assert s["tag_scores"]["counting"] == 0.0  # one detection, N >= 2 needed
    assert s["overall"] == pytest.approx((0.5 + 0 + 0 + 0.5 + 0 + 0) / 6)
    assert s["is_geneval_metric"] and s["labels"] == [] and s["sanity_gate"]["passed"]
    table = render_table3(s, reference_table(REFERENCE_TABLE), "dc-ar")
    assert "| DC-AR (paper) | 1.00 | 0.75 | 0.52 | 0.90 | 0.45 | 0.51 | 0.69 |" in table
    assert "| **dc-ar** | 0.50 | 0.00 | 0.00 | 0.50 | 0.00 | 0.00 | **0.17** |" in table
    assert "†" not in table and "Sanity gate: passed (6/6" in table


def test_random_weights_are_labelled_not_the_metric():
    models = {"detector": {"real_weights": False}, "color_classifier": {"real_weights": True},
              "generator": {"real_weights": False}}
    s = score_records(gate_records() + image_records(), models=models)
    assert not s["is_geneval_metric"]
    assert s["labels"] == ["NOT THE GENEVAL METRIC: random weights for detector, generator"]
    table = render_table3(s, reference_table(REFERENCE_TABLE), "dc-ar")
    assert "**dc-ar †**" in table and "† not comparable with the paper" in table


def test_failed_sanity_gate_refuses_to_score():
    with pytest.raises(SanityGateError) as e:
        score_records(gate_records(passed=False) + image_records())
    msg = str(e.value)
    assert "gate/object/astronaut: expected person: FAILED" in msg and "gate/color/red: expected red: FAILED" in msg
    # a missing gate is a failure too
    with pytest.raises(SanityGateError, match="not run: gate/object/astronaut"):
        score_records(gate_records()[1:] + image_records())
    s = score_records(gate_records(passed=False) + image_records(), require_gate=False)
    assert "NOT THE GENEVAL METRIC: the sanity gate failed or was skipped" in s["labels"]


def test_partial_run_refused_with_counts_unless_allowed():
    recs = gate_records() + image_records()[:-8]  # two prompts' images missing
    with pytest.raises(IncompleteRunError, match=r"2204 of 2212 images, 551 of 553 prompts.*color_attr 392/400"):
        score_records(recs)
    s = score_records(recs, allow_partial=True)
    assert not s["complete"] and s["labels"][0].startswith("INCOMPLETE: incomplete GenEval run: 2204 of 2212")
