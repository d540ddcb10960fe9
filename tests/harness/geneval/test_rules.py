"""The GenEval rules on hand-made detections: every tag and every edge case the official scorer has."""
from __future__ import annotations

import pytest

from harness.geneval.rules import (
    COLORS,
    GENEVAL_METRIC,
    TAGS,
    Detection,
    Expected,
    IncompleteRunError,
    MissingColorError,
    RuleConfig,
    box_iou,
    check_complete,
    filter_class,
    filter_detections,
    judge,
    judge_record,
    relative_position,
    summarize,
)


def det(score, box=(0, 0, 10, 10), color=None):
    return Detection(box=tuple(float(v) for v in box), score=float(score), color=color)


def record(metadata, detections):
    return {"metadata": metadata, "detections": detections}


SINGLE = {"tag": "single_object", "include": [{"class": "cow", "count": 1}], "prompt": "a photo of a cow"}
TWO = {"tag": "two_object", "include": [{"class": "cow", "count": 1}, {"class": "dog", "count": 1}],
       "prompt": "a photo of a cow and a dog"}
COUNT3 = {"tag": "counting", "include": [{"class": "clock", "count": 3}], "exclude": [{"class": "clock", "count": 4}],
          "prompt": "a photo of three clocks"}
COLOR = {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "pink"}], "prompt": "a photo of a pink car"}
POS = {"tag": "position",
       "include": [{"class": "fork", "count": 1}, {"class": "stop sign", "count": 1, "position": ["above", 0]}],
       "prompt": "a photo of a stop sign above a fork"}
CATTR = {"tag": "color_attr",
         "include": [{"class": "skis", "count": 1, "color": "red"}, {"class": "tie", "count": 1, "color": "brown"}],
         "prompt": "a photo of a red skis and a brown tie"}


# ------------------------------------------------------------------ constants


def test_official_constants():
    r = RuleConfig()
    assert (r.threshold, r.counting_threshold, r.max_objects, r.max_overlap, r.position_threshold) == (0.3, 0.9, 16, 1.0, 0.1)
    assert COLORS == ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
    assert TAGS == ("single_object", "two_object", "counting", "colors", "position", "color_attr")
    assert GENEVAL_METRIC.direction == "higher" and GENEVAL_METRIC.params["threshold"] == 0.3
    assert Expected().total_images == 2212 and Expected().total_prompts == 553


def test_bad_rule_config_is_rejected():
    with pytest.raises(ValueError, match="max_objects"):
        RuleConfig(max_objects=0)
    with pytest.raises(ValueError, match="threshold"):
        RuleConfig(threshold=float("nan"))


# ------------------------------------------------------------------ per-class filtering


def test_score_exactly_at_threshold_is_dropped():
    # strictly greater, compared in float32 as numpy does in the official scorer (float32 scores vs a Python float)
    import numpy as np

    at = float(np.float32(0.3))  # 0.30000001192..., how a float32 detector score of "0.3" is recorded
    above = float(np.nextafter(np.float32(0.3), np.float32(1)))
    assert bool(np.array([at], dtype=np.float32) > 0.3) is False  # the official comparison
    assert filter_class([det(0.3)], 0.3) == []
    assert filter_class([det(at)], 0.3) == []
    assert len(filter_class([det(above)], 0.3)) == 1
    assert not judge_record(record(SINGLE, {"cow": [{"box": [0, 0, 5, 5], "score": 0.3}]})).correct
    assert judge_record(record(SINGLE, {"cow": [{"box": [0, 0, 5, 5], "score": 0.3001}]})).correct


def test_counting_threshold_exactly_at_0_9_is_dropped():
    three_at_09 = {"clock": [{"box": [i * 20, 0, i * 20 + 10, 10], "score": 0.9} for i in range(3)]}
    j = judge_record(record(COUNT3, three_at_09))
    assert not j.correct and "expected clock>=3, found 0" in j.reason


def test_sorted_by_score_and_capped_at_16():
    dets = [det(0.31 + i * 0.01, box=(i, 0, i + 5, 5)) for i in range(20)]  # ascending scores
    kept = filter_class(dets, 0.3)
    assert len(kept) == 16
    assert [d.score for d in kept] == sorted((d.score for d in dets), reverse=True)[:16]


def test_cap_applies_after_threshold():
    # 10 low-score detections must not use up the cap: the 16 highest above 0.3 are kept
    dets = [det(0.1) for _ in range(10)] + [det(0.5 + i * 0.01) for i in range(17)]
    kept = filter_class(dets, 0.3)
    assert len(kept) == 16 and min(d.score for d in kept) == pytest.approx(0.51)


def test_sixteen_cap_makes_a_crowd_pass_the_counting_exclude():
    # 17 clocks above 0.9: the cap leaves 16, so "fewer than 17" would pass; with N=16 the prompt is correct
    meta = {"tag": "counting", "include": [{"class": "clock", "count": 16}], "exclude": [{"class": "clock", "count": 17}]}
    dets = {"clock": [{"box": [i * 20, 0, i * 20 + 10, 10], "score": 0.95} for i in range(17)]}
    assert judge_record(record(meta, dets)).correct
    assert not judge_record(record(meta, dets), RuleConfig(max_objects=17)).correct


def test_nms_disabled_by_default_and_inclusive_iou_when_enabled():
    a, b = det(0.9, (0, 0, 9, 9)), det(0.8, (0, 0, 9, 9))
    assert len(filter_class([a, b], 0.3)) == 2  # identical boxes survive: NMS off at 1.0
    assert len(filter_class([a, b], 0.3, RuleConfig(max_overlap=0.5))) == 1
    # inclusive pixels: [0,0,9,9] has area 100, [5,0,14,9] overlaps in 5x10 = 50 -> IoU 50/150
    assert box_iou((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 9, 9), (20, 20, 29, 29)) == 0.0
    c = det(0.7, (5, 0, 14, 9))
    assert len(filter_class([a, c], 0.3, RuleConfig(max_overlap=0.34))) == 2
    assert len(filter_class([a, c], 0.3, RuleConfig(max_overlap=1 / 3))) == 1  # IoU >= overlap is dropped


def test_no_cross_class_suppression():
    out = filter_detections({"cow": [det(0.9)], "dog": [det(0.9)], "cat": [det(0.2)]}, "two_object")
    assert set(out) == {"cow", "dog"}  # same box in two classes both kept; empty classes absent


# ------------------------------------------------------------------ tags


def test_single_object():
    assert judge(SINGLE, {"cow": [det(0.5)]}).correct
    j = judge(SINGLE, {"dog": [det(0.99)]})
    assert not j.correct and j.reason == "expected cow>=1, found 0"


def test_two_object_needs_both_and_ignores_clutter():
    assert judge(TWO, {"cow": [det(0.5)], "dog": [det(0.4)], "person": [det(0.99)] * 3}).correct
    j = judge(TWO, {"cow": [det(0.5)]})
    assert not j.correct and "expected dog>=1, found 0" in j.reason


@pytest.mark.parametrize("extra_score,expected", [(0.89, True), (0.91, False)])
def test_counting_one_extra_detection_at_0_89_vs_0_91(extra_score, expected):
    clocks = [{"box": [i * 20, 0, i * 20 + 10, 10], "score": 0.95} for i in range(3)]
    clocks.append({"box": [100, 0, 110, 10], "score": extra_score})
    j = judge_record(record(COUNT3, {"clock": clocks}))
    assert j.correct is expected
    if not expected:
        assert j.reason == "expected clock<4, found 4"


def test_counting_too_few():
    clocks = [{"box": [0, 0, 10, 10], "score": 0.95}] * 2 + [{"box": [0, 0, 10, 10], "score": 0.85}]
    assert not judge_record(record(COUNT3, {"clock": clocks})).correct


def test_colors_uses_top1_only():
    assert judge(COLOR, {"car": [det(0.9, color="pink"), det(0.8, color="red")]}).correct
    j = judge(COLOR, {"car": [det(0.9, color="red"), det(0.8, color="pink")]})
    assert not j.correct and j.reason == "expected pink car>=1, found 0 pink; and 1 red"


def test_colors_missing_recorded_colour_is_an_error_not_a_silent_fail():
    with pytest.raises(MissingColorError, match="no recorded colour"):
        judge(COLOR, {"car": [det(0.9)]})


def test_colour_mismatch_on_one_of_several_objects():
    meta = {"tag": "colors", "include": [{"class": "car", "count": 3, "color": "pink"}]}
    three_pink = {"car": [det(0.9, color="pink"), det(0.8, color="pink"), det(0.7, color="pink")]}
    one_blue = {"car": [det(0.9, color="pink"), det(0.8, color="blue"), det(0.7, color="pink")]}
    assert judge(meta, three_pink).correct
    j = judge(meta, one_blue)
    assert not j.correct and j.reason == "expected pink car>=3, found 2 pink; and 1 blue, 2 pink"  # COLORS order


def test_color_attr_both_objects_must_match():
    assert judge(CATTR, {"skis": [det(0.5, color="red")], "tie": [det(0.5, color="brown")]}).correct
    j = judge(CATTR, {"skis": [det(0.5, color="red")], "tie": [det(0.5, color="black")]})
    assert not j.correct and "expected brown tie>=1, found 0 brown" in j.reason
    assert not judge(CATTR, {"skis": [det(0.5, color="brown")], "tie": [det(0.5, color="red")]}).correct


def test_position_above():
    fork = det(0.9, (100, 300, 200, 400))
    sign_above = det(0.9, (100, 0, 200, 100))
    sign_below = det(0.9, (100, 500, 200, 600))
    assert judge(POS, {"fork": [fork], "stop sign": [sign_above]}).correct
    j = judge(POS, {"fork": [fork], "stop sign": [sign_below]})
    assert not j.correct and j.reason == "expected stop sign above target, found below target"


def test_position_missing_target_group():
    j = judge(POS, {"stop sign": [det(0.9, (100, 0, 200, 100))]})
    assert not j.correct
    assert j.reasons == ["expected fork>=1, found 0", "no target for stop sign to be above"]


def test_position_unknown_later_group_is_an_error():
    meta = {"tag": "position", "include": [{"class": "fork", "count": 1, "position": ["above", 1]},
                                            {"class": "cup", "count": 1}]}
    with pytest.raises(ValueError, match="group 1"):
        judge(meta, {"fork": [det(0.9)], "cup": [det(0.9)]})


# ------------------------------------------------------------------ relative_position and c = 0.1


def test_relative_position_clear_cases():
    b = (100, 100, 200, 200)
    assert relative_position((300, 100, 400, 200), b) == {"right of"}
    assert relative_position((-200, 100, -100, 200), b) == {"left of"}
    assert relative_position((100, -200, 200, -100), b) == {"above"}
    assert relative_position((100, 400, 200, 500), b) == {"below"}
    assert relative_position((400, 400, 500, 500), b) == {"right of", "below"}  # diagonal: both


def test_relative_position_tie_same_centre_is_no_relation():
    assert relative_position((100, 100, 200, 200), (100, 100, 200, 200)) == set()
    assert relative_position((140, 140, 160, 160), (100, 100, 200, 200)) == set()


def test_relative_position_c_shrink():
    # boxes 100 wide, centres 25 apart horizontally: shrink 0.1*(100+100)=20 -> revised 5, dx = 5/25 = 0.2
    a, b = (125, 100, 225, 200), (100, 100, 200, 200)
    assert relative_position(a, b) == set()
    assert relative_position(a, b, c=0.0) == {"right of"}  # without the shrink it would be "right of"
    # exactly at the shrink: offset 20 == 0.1*(100+100) -> revised 0 -> no relation
    assert relative_position((120, 100, 220, 200), b) == set()
    # revised/offset exactly 0.5 is not enough (strict >): offset 40, shrink 20 -> dx 0.5
    assert relative_position((140, 100, 240, 200), b) == set()
    assert relative_position((141, 100, 241, 200), b) == {"right of"}


def test_relative_position_normalises_by_unrevised_offset():
    # horizontal offset 300, vertical 300: revised x = 300-20 = 280, dx = 280/424 = 0.66 > 0.5 -> both relations
    b = (0, 0, 100, 100)
    assert relative_position((300, 300, 400, 400), b) == {"right of", "below"}
    # vertical offset small relative to horizontal: only "right of"
    assert relative_position((300, 50, 400, 150), b) == {"right of"}


def test_position_every_object_against_every_target():
    meta = {"tag": "position", "include": [{"class": "cup", "count": 2},
                                            {"class": "fork", "count": 1, "position": ["left of", 0]}]}
    fork = det(0.9, (0, 0, 50, 50))
    cups_right = [det(0.9, (200, 0, 250, 50)), det(0.8, (400, 0, 450, 50))]
    cups_one_left = [det(0.9, (200, 0, 250, 50)), det(0.8, (-300, 0, -250, 50))]
    assert judge(meta, {"cup": cups_right, "fork": [fork]}).correct
    assert not judge(meta, {"cup": cups_one_left, "fork": [fork]}).correct


# ------------------------------------------------------------------ records and aggregation


def test_malformed_records_are_rejected_clearly():
    with pytest.raises(ValueError, match="needs 'box'"):
        judge_record(record(SINGLE, {"cow": [{"score": 0.5}]}))
    with pytest.raises(ValueError, match="not one of the GenEval colours"):
        judge_record(record(COLOR, {"car": [{"box": [0, 0, 1, 1], "score": 0.5, "color": "teal"}]}))
    with pytest.raises(ValueError, match="include"):
        judge({"tag": "single_object"}, {})


def _rows(correct_by_tag, per_tag=None):
    rows, p = [], 0
    for tag in TAGS:
        n = (per_tag or {}).get(tag, 4)
        for i in range(n):
            rows.append({"tag": tag, "prompt_index": p + i // 4, "correct": correct_by_tag[tag](i)})
        p += 1000
    return rows


def test_overall_is_mean_of_tag_accuracies_not_of_images():
    # single_object: 4 of 4 images, every other tag 8 images with 2 correct -> tags 1.0 and 0.25
    per_tag = {t: (4 if t == "single_object" else 8) for t in TAGS}
    rows = _rows({t: (lambda i: True) if t == "single_object" else (lambda i: i < 2) for t in TAGS}, per_tag)
    s = summarize(rows, Expected({t: per_tag[t] // 4 for t in TAGS}))
    assert s["tag_scores"]["single_object"] == 1.0 and s["tag_scores"]["counting"] == 0.25
    assert s["overall"] == pytest.approx((1.0 + 5 * 0.25) / 6)
    assert s["percent_correct_images"] == pytest.approx((4 + 5 * 2) / 44)  # a different number
    assert s["complete"]


def test_sdxl_unrounded_vs_rounded_overall():
    # overall is the mean of the unrounded per-tag scores (as the official summary_scores.py computes it):
    # a fixed per-tag accuracy reproduces the mean exactly
    acc = {"single_object": 0.98, "two_object": 0.74, "counting": 0.39, "colors": 0.85, "position": 0.15, "color_attr": 0.23}
    rows = []
    for k, tag in enumerate(TAGS):
        rows += [{"tag": tag, "prompt_index": k * 1000 + i, "correct": i < acc[tag] * 100} for i in range(100)]
    s = summarize(rows)
    assert s["overall"] == pytest.approx(sum(acc.values()) / 6)


def test_incomplete_run_is_refused_with_counts_unless_allowed():
    rows = [{"tag": t, "prompt_index": k, "correct": True} for k, t in enumerate(TAGS)]
    s = summarize(rows)
    assert not s["complete"] and s["total_images"] == 6 and s["expected_total_images"] == 2212
    with pytest.raises(IncompleteRunError) as e:
        check_complete(s)
    msg = str(e.value)
    assert "6 of 2212 images" in msg and "6 of 553 prompts" in msg and "counting 1/320" in msg
    assert "--allow-partial" in msg
    check_complete(s, allow_partial=True)  # no raise


def test_overall_none_when_a_tag_is_missing():
    rows = [{"tag": "single_object", "prompt_index": 0, "correct": True}]
    s = summarize(rows)
    assert s["overall"] is None and s["tag_scores"]["counting"] is None


def test_unknown_tag_is_rejected():
    with pytest.raises(ValueError, match="unknown GenEval tag"):
        summarize([{"tag": "shape", "prompt_index": 0, "correct": True}])
