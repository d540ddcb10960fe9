"""The caption-following scorer: exact on render_scene's own pictures, wrong where the picture is wrong.

The masks are recomputed from the scene's geometry (harness/metrics/caption_following.py), so the first tests check
that they are render_scene's pixel coverage, pixel for pixel; the chance levels are checked against scene()'s draws.
"""
from __future__ import annotations

import numpy as np
import pytest

from dcar_training.data import COLORS, PLACES, SIZES, Scene, render_scene, scene
from harness.api import DataError
from harness.metrics.caption_following import (
    ScoringParams,
    ShapeWorld,
    aggregate_scores,
    chance_levels,
    dilate,
    erode,
    metric_specs,
    object_masks,
    score_image,
    visible_coverage,
)

WORLD = ShapeWorld(COLORS, PLACES, SIZES)
#: hand-made scenes for the hard cases: overlaps (a later object on top), shared colours, every shape and size
SPECIAL = [
    Scene("white", (("big", "red", "circle", "center"), ("big", "red", "square", "left"))),  # same colour, overlap
    Scene("black", (("big", "yellow", "triangle", "top"), ("big", "blue", "circle", "center"))),  # overlap
    Scene("gray", (("small", "pink", "triangle", "right"), ("small", "white", "square", "bottom"))),
    Scene("pink", (("big", "gray", "square", "center"),)),
]


def _scenes(n: int, seed: int = 1) -> list[Scene]:
    return SPECIAL + [scene(seed, i) for i in range(n)]


@pytest.mark.parametrize("res", [64, 128])
def test_masks_are_render_scenes_pixel_coverage(res):
    for s in _scenes(20):
        img = render_scene(s, res)
        cov = visible_coverage(s, WORLD, res)
        masks = object_masks(s, WORLD, res)
        for color in {o[1] for o in s.objects}:
            same = [k for k, o in enumerate(s.objects) if o[1] == color]
            full = np.sum([cov[k] for k in same], axis=0) == 1
            drawn = (img == COLORS[color]).all(axis=2)
            assert np.array_equal(drawn, full), (s, color)  # drawn in the pure colour exactly where fully covered
            assert not (drawn & ~np.logical_or.reduce([masks.objects[k] for k in same])).any()  # ... inside the mask
        bg = (img == COLORS[s.background]).all(axis=2)
        assert np.array_equal(bg, ~masks.touched), s  # the background colour exactly where no object touches
        mixed = ~bg & ~np.logical_or.reduce([(img == COLORS[o[1]]).all(axis=2) for o in s.objects])
        assert np.array_equal(mixed, masks.edge), s  # the edge pixels are the mixed-colour ones


def test_a_later_object_covers_an_earlier_one_and_coverage_is_a_partition():
    s = SPECIAL[1]  # the blue circle (second) is drawn over the yellow triangle
    cov = visible_coverage(s, WORLD, 128)
    assert np.all(np.sum(cov, axis=0) <= 1.0)
    alone = visible_coverage(Scene("black", s.objects[:1]), WORLD, 128)[0]
    assert cov[0].sum() < alone.sum() - 50  # part of the triangle is hidden
    assert np.array_equal(cov[1], visible_coverage(Scene("black", s.objects[1:]), WORLD, 128)[0])


@pytest.mark.parametrize("res, n", [(128, 24), (256, 8)])
def test_render_scene_itself_scores_perfectly(res, n):
    scores = [score_image(render_scene(s, res), s, WORLD) for s in _scenes(n)]
    for s, sc in zip(_scenes(n), scores):
        assert sc.resolution == res and sc.background_correct and sc.measured_background == s.background
        assert all(o.color_correct for o in sc.objects) and sc.all_correct
        assert all(o.iou > 0.95 for o in sc.objects), [(o.color, o.iou) for o in sc.objects]
        assert all(o.iou == 1.0 for o in sc.objects)  # without the mixed-colour edge pixels it is exact
    assert scores[0].objects[0].shares_color and scores[0].objects[0].iou == scores[0].objects[1].iou == 1.0
    agg = aggregate_scores([sc.to_record() for sc in scores])
    assert agg["background_accuracy"] == agg["object_color_accuracy"] == agg["all_correct"] == 1.0
    assert agg["mean_object_iou"] == 1.0 and agg["num_items"] == len(scores)


def test_a_swapped_background_is_wrong_and_the_objects_stay_right():
    for s in _scenes(8):
        other = next(c for c in COLORS if c != s.background and c not in {o[1] for o in s.objects})
        sc = score_image(render_scene(Scene(other, s.objects), 128), s, WORLD)
        assert not sc.background_correct and sc.measured_background == other and not sc.all_correct
        assert all(o.color_correct and o.iou == 1.0 for o in sc.objects)


def test_a_wrong_object_colour_place_or_a_missing_object_is_caught():
    s = Scene("white", (("big", "red", "circle", "left"), ("small", "blue", "square", "right")))
    recolored = score_image(render_scene(Scene("white", (("big", "green", "circle", "left"), s.objects[1])), 128),
                            s, WORLD)
    assert recolored.background_correct and [o.color_correct for o in recolored.objects] == [False, True]
    assert recolored.objects[0].measured_color == "green" and recolored.objects[0].iou == 0.0
    moved = score_image(render_scene(Scene("white", (("big", "red", "circle", "right"), s.objects[1])), 128), s, WORLD)
    assert not moved.objects[0].color_correct and moved.objects[0].iou < 0.2
    missing = score_image(render_scene(Scene("white", s.objects[1:]), 128), s, WORLD)
    assert missing.objects[0].measured_color == "white" and missing.objects[0].iou == 0.0
    assert missing.objects[1].color_correct and not missing.all_correct


def test_uniform_noise_and_a_flat_image_score_as_expected():
    rng = np.random.default_rng(0)
    scenes = [s for s in _scenes(30) if s.background != "gray" and all(o[1] != "gray" for o in s.objects)]
    for s in scenes[:10]:
        noise = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
        sc = score_image(noise, s, WORLD)
        # the median of uniform noise is mid-grey in every region: only a grey background or object would match
        assert sc.measured_background == "gray" and not sc.background_correct
        assert not any(o.color_correct for o in sc.objects) and all(o.iou < 0.3 for o in sc.objects)
    s = SPECIAL[3]  # a big grey square on pink
    flat = np.full((128, 128, 3), COLORS["gray"], np.uint8)
    sc = score_image(flat, s, WORLD)
    assert not sc.background_correct and sc.objects[0].color_correct  # the colour is there, the shape is not
    assert sc.objects[0].iou == pytest.approx(sc.objects[0].mask_pixels / (128 * 128), abs=0.02)


def test_a_blurred_or_slightly_shifted_picture_still_reads_right():
    from PIL import Image, ImageFilter

    for s in _scenes(6):
        img = render_scene(s, 128)
        blurred = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(1.5)))
        shifted = np.roll(img, (2, -2), axis=(0, 1))
        for pic in (blurred, shifted):
            sc = score_image(pic, s, WORLD)
            assert sc.all_correct, s
            assert min(o.iou for o in sc.objects) > 0.5


def test_any_square_resolution_and_bad_inputs():
    s = SPECIAL[2]
    assert score_image(render_scene(s, 100), s, WORLD).all_correct
    with pytest.raises(DataError, match="square"):
        score_image(np.zeros((64, 32, 3), np.uint8), s, WORLD)
    with pytest.raises(DataError, match="uint8"):
        score_image(np.zeros((64, 64, 3), np.float32), s, WORLD)
    with pytest.raises(DataError, match="not in the palette"):
        score_image(np.zeros((64, 64, 3), np.uint8), Scene("teal", s.objects), WORLD)
    with pytest.raises(DataError, match="unknown shape"):
        score_image(np.zeros((64, 64, 3), np.uint8), Scene("white", (("big", "red", "hexagon", "left"),)), WORLD)
    with pytest.raises(ValueError, match="background_margin"):
        ScoringParams(background_margin=0.7)


def test_dilation_and_erosion_match_a_brute_force_square_element():
    rng = np.random.default_rng(1)
    mask = rng.random((23, 19)) < 0.08
    for m in (0, 1, 3):
        pad = np.pad(mask, m)
        brute = np.zeros_like(mask)
        for dy in range(-m, m + 1):
            for dx in range(-m, m + 1):
                brute |= pad[m + dy: m + dy + 23, m + dx: m + dx + 19]
        assert np.array_equal(dilate(mask, m), brute)
    full = np.ones((10, 10), bool)
    assert erode(full, 2).sum() == 36  # outside the image counts as outside the mask
    blob = dilate(mask, 2)
    assert not (erode(blob, 2) & ~blob).any() and (dilate(erode(blob, 2), 2) <= blob).all()


def test_chance_levels_follow_scene_draws():
    """Objects never take the background's colour, so an object's colour is uniform over all 10 marginally."""
    draws = [scene(7, i) for i in range(3000)]
    objs = [(s.background, o[1]) for s in draws for o in s.objects]
    assert all(bg != c for bg, c in objs)
    freq = {c: sum(o == c for _, o in objs) / len(objs) for c in COLORS}
    assert all(abs(f - 0.1) < 0.02 for f in freq.values()), freq
    red = sum(c == "red" for _, c in objs) / len(objs)  # a caption-blind constant guess: about 1/10
    given = [c for bg, c in objs if bg != "red"]
    assert red == pytest.approx(0.1, abs=0.02) and given.count("red") / len(given) == pytest.approx(1 / 9, abs=0.02)
    ch = chance_levels([1, 2])
    assert ch["background_accuracy"] == ch["object_color_accuracy"] == 0.1
    assert ch["object_color_given_background"] == pytest.approx(1 / 9)
    assert ch["all_correct"] == pytest.approx((1 / 90 + 1 / 810) / 2)


def test_every_aggregate_declares_its_spec():
    specs = {m.name: m for m in metric_specs()}
    assert set(specs) == {"background_accuracy", "object_color_accuracy", "mean_object_iou", "all_correct"}
    for m in specs.values():
        assert m.direction == "higher" and m.params["default_scoring"]["background_margin"] == 0.06 and m.reference
