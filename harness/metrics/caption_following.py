"""Does a generated picture show what its procedural caption says? Background colour, object colours, object masks.

The procedural world (``dcar_training.data``: a background colour and 1-2 shapes, each (size, colour, shape,
place), drawn in relative coordinates) is the world the mini DC-AR models are trained on. Because a caption
fixes the whole picture, a generated image can be checked against the caption automatically, without a
detector: the analogue of GenEval's colour and position checks in that world. All functions here are pure numpy
on one uint8 (H, W, 3) image of any square resolution.

Why the palette and the geometry are parameters (:class:`ShapeWorld`) and not imported from
``dcar_training.data``: ``harness`` imports nothing from the packages above it (docs/architecture.md); the suite
(``suites/caption_following.py``) builds the world from ``dcar_training.data``'s ``COLORS``, ``PLACES`` and
``SIZES``, and a test checks that :func:`visible_coverage` reproduces ``render_scene``'s pixel coverage.

Scoring rules (each a field of :class:`ScoringParams`, recorded in the suite's metric specs):

* masks: each object's shape is rasterised exactly as ``render_scene`` does (4x supersampled coverage, objects
  drawn in caption order, a later object covering an earlier one); an object's *true mask* is the pixels whose
  visible coverage is >= 0.5;
* ``background_correct``: the pixels outside every object's mask dilated by ``background_margin`` x side (a square
  structuring element) are the background region; the palette colour nearest (Euclidean RGB) to their per-channel
  median colour must be ``scene.background``;
* ``color_correct`` (per object): the same for the object's true mask eroded by ``object_margin`` x side (when the
  erosion leaves fewer than ``min_pixels`` pixels, e.g. a heavily covered object, the un-eroded mask is used);
* ``iou`` (per object): IoU between the object's true mask and the pixels whose nearest palette colour is the
  object's colour, over the whole image except the *edge* pixels: those the true picture itself draws in a mixed
  colour (an object covers them partly). Why: a mixed edge colour is often nearest to a third palette colour (the
  grey edge of a black square on white is nearest to pink), so even ``render_scene``'s own picture would lose up
  to a quarter of a small object's IoU at 128 px to its neighbours' edges; without them it scores exactly 1. When
  two objects share a colour the pixels cannot tell them apart, so both are scored against the union of their
  masks (both get the same IoU). ``scene()`` never gives an object the background's colour, so in a faithful
  picture the background never counts as an object's colour;
* ``all_correct`` (per image): background and every object colour right.

Chance levels (:func:`chance_levels`): ``scene()`` draws the background uniformly from the 10 palette colours and
each object's colour uniformly from the 9 others. So an object's colour is uniform over all 10 colours
marginally, and a caption-blind image gets an object colour right with probability 1/10 (and the background
1/10); 1/9 is the chance of an object colour *given* a correct background (a model that reads only the background
and then avoids it). A caption-blind image is all-correct with probability at most 1/10 x (1/9)^k for k objects
(choose a background, then object colours different from it).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from harness.api import DataError, MetricSpec

#: supersampling of ``render_scene`` (coverage of each pixel from 4 x 4 sub-pixels)
SUPERSAMPLE = 4


class SceneLike(Protocol):
    """``dcar_training.data.Scene``: a background colour name and (size, colour, shape, place) tuples."""

    background: str
    objects: Sequence[Sequence[str]]


@dataclass(frozen=True)
class ShapeWorld:
    """The procedural world's palette and geometry: colour name -> RGB, place -> (cx, cy), size -> radius.

    Coordinates are relative to the image side (0..1); ``square_half`` is a square's half side over its radius and a
    triangle is the upward equilateral triangle inscribed in the circle of its radius (``render_scene``'s shapes).
    """

    colors: Mapping[str, tuple[int, int, int]]
    places: Mapping[str, tuple[float, float]]
    sizes: Mapping[str, float]
    square_half: float = 0.85

    def palette(self) -> tuple[list[str], np.ndarray]:
        names = list(self.colors)
        return names, np.asarray([self.colors[n] for n in names], np.float64)


@dataclass(frozen=True)
class ScoringParams:
    """The scoring rule's constants (fractions of the image side; see the module docstring)."""

    background_margin: float = 0.06
    object_margin: float = 0.02
    min_pixels: int = 4
    mask_coverage: float = 0.5

    def __post_init__(self) -> None:
        for name in ("background_margin", "object_margin"):
            v = getattr(self, name)
            if not 0 <= v < 0.5:
                raise ValueError(f"{name} must be a fraction of the image side in [0, 0.5), got {v}")
        if not 0 < self.mask_coverage <= 1:
            raise ValueError(f"mask_coverage must be in (0, 1], got {self.mask_coverage}")
        if self.min_pixels < 1:
            raise ValueError(f"min_pixels must be >= 1, got {self.min_pixels}")

    def pixels(self, fraction: float, side: int) -> int:
        """A margin in whole pixels at ``side`` (round half up; 0 stays 0, anything else at least 1)."""
        return 0 if fraction == 0 else max(1, int(math.floor(fraction * side + 0.5)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- geometry (as render_scene draws it)


@lru_cache(maxsize=2)
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel centres, float32, exactly as ``render_scene`` computes them (read-only, cached per size)."""
    yy, xx = (np.mgrid[0:n, 0:n].astype(np.float32) + 0.5) / n
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def shape_mask(world: ShapeWorld, size: str, shape: str, place: str, resolution: int) -> np.ndarray:
    """bool (4R, 4R): the sub-pixels the shape covers, the same float32 expressions as ``render_scene``."""
    n = resolution * SUPERSAMPLE
    yy, xx = _grid(n)
    try:
        cx, cy = world.places[place]
        r = world.sizes[size]
    except KeyError as exc:
        raise DataError(f"caption_following: unknown place or size {exc.args[0]!r} in a scene") from None
    if shape == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    if shape == "square":
        return (np.abs(xx - cx) <= r * world.square_half) & (np.abs(yy - cy) <= r * world.square_half)
    if shape == "triangle":
        top, base = cy - r, cy + r * 0.5
        half = (yy - top) / (base - top) * r * math.sqrt(3) / 2 * 1.0
        return (yy >= top) & (yy <= base) & (np.abs(xx - cx) <= half)
    raise DataError(f"caption_following: unknown shape {shape!r} in a scene (known: circle, square, triangle)")


def visible_coverage(scene: SceneLike, world: ShapeWorld, resolution: int) -> list[np.ndarray]:
    """Per object, float64 (R, R): the share of each pixel the object covers *visibly* (later objects on top)."""
    masks = [shape_mask(world, size, shape, place, resolution) for size, _c, shape, place in scene.objects]
    out = []
    above = np.zeros_like(masks[0]) if masks else None
    for m in reversed(masks):
        vis = m & ~above
        above = above | m
        counts = vis.reshape(resolution, SUPERSAMPLE, resolution, SUPERSAMPLE).sum(axis=(1, 3), dtype=np.int32)
        out.append(counts / float(SUPERSAMPLE * SUPERSAMPLE))  # k/16: exact, 1.0 exactly when fully covered
    return out[::-1]


@dataclass(frozen=True)
class SceneMasks:
    """The true masks of a scene at one resolution (bool (R, R) each).

    ``objects``: per object, the pixels it covers visibly by at least ``coverage``; ``touched``: every pixel any
    object covers at all (what the background region excludes before its dilation); ``edge``: the pixels the true
    picture itself draws in a mixed colour (some objects of one colour cover them partly), left out of the IoU.
    """

    objects: list[np.ndarray]
    touched: np.ndarray
    edge: np.ndarray


def object_masks(scene: SceneLike, world: ShapeWorld, resolution: int, coverage: float = 0.5) -> SceneMasks:
    cov = visible_coverage(scene, world, resolution)
    zero = np.zeros((resolution, resolution), bool)
    touched = np.logical_or.reduce([c > 0 for c in cov]) if cov else zero
    groups: dict[str, np.ndarray] = {}  # per colour: what the objects of that colour cover together
    for (_s, color, _h, _p), c in zip(scene.objects, cov):
        groups[color] = groups.get(color, 0) + c
    edge = np.logical_or.reduce([(g > 0) & (g < 1) for g in groups.values()]) if cov else zero
    return SceneMasks([c >= coverage for c in cov], touched, edge)


# --------------------------------------------------------------------------- morphology (square element, numpy)


def _window_any(mask: np.ndarray, m: int, axis: int) -> np.ndarray:
    """True where any pixel within ``m`` along ``axis`` is True (a 1-D dilation by 2m+1, via a cumulative sum)."""
    if m <= 0:
        return mask.copy()
    a = np.moveaxis(mask, axis, 0).astype(np.int32)
    c = np.concatenate([np.zeros((1, *a.shape[1:]), np.int32), np.cumsum(a, axis=0)])
    n = a.shape[0]
    idx = np.arange(n)
    hi = np.minimum(idx + m + 1, n)
    lo = np.maximum(idx - m, 0)
    return np.moveaxis((c[hi] - c[lo]) > 0, 0, axis)


def dilate(mask: np.ndarray, m: int) -> np.ndarray:
    """Binary dilation by a (2m+1) x (2m+1) square."""
    return _window_any(_window_any(mask, m, 0), m, 1)


def erode(mask: np.ndarray, m: int) -> np.ndarray:
    """Binary erosion by a (2m+1) x (2m+1) square (outside the image counts as outside the mask)."""
    if m <= 0:
        return mask.copy()
    return ~dilate(np.pad(~mask, m, constant_values=True), m)[m:-m, m:-m]


# --------------------------------------------------------------------------- colours


def nearest_color(rgb: Sequence[float], world: ShapeWorld) -> str:
    """The palette colour nearest (Euclidean RGB) to one colour; ties go to the earlier palette entry."""
    names, pal = world.palette()
    d = ((pal - np.asarray(rgb, np.float64)[None, :]) ** 2).sum(axis=1)
    return names[int(np.argmin(d))]


def nearest_color_map(image: np.ndarray, world: ShapeWorld) -> tuple[list[str], np.ndarray]:
    """(palette names, int (H, W) index of each pixel's nearest palette colour)."""
    names, pal = world.palette()
    px = image.reshape(-1, 3).astype(np.float64)
    # |p - c|^2 without the |p|^2 term each colour shares; exact in float64 for 8-bit pixels and integer palettes
    d = (pal ** 2).sum(axis=1)[None, :] - 2.0 * (px @ pal.T)
    return names, np.argmin(d, axis=1).reshape(image.shape[:2])


def median_color(image: np.ndarray, region: np.ndarray) -> list[float]:
    """Per-channel median of the pixels in ``region`` (float, 0-255)."""
    return [float(v) for v in np.median(image[region].astype(np.float64), axis=0)]


# --------------------------------------------------------------------------- scoring one image


@dataclass(frozen=True)
class ObjectVerdict:
    size: str
    color: str
    shape: str
    place: str
    measured_color: str | None  # None: the object is not visible at all (never with scene()'s places)
    median_rgb: list[float] | None
    color_correct: bool
    iou: float
    color_pixels: int  # pixels the colour verdict used (the eroded mask, or the mask when erosion left too few)
    mask_pixels: int  # the object's true (visible) mask
    shares_color: bool  # another object has the same colour: the IoU is against the union of their masks


@dataclass(frozen=True)
class ImageScore:
    resolution: int
    background: str
    measured_background: str | None
    background_median_rgb: list[float] | None
    background_correct: bool
    background_pixels: int
    objects: list[ObjectVerdict] = field(default_factory=list)

    @property
    def all_correct(self) -> bool:
        return self.background_correct and all(o.color_correct for o in self.objects)

    def to_record(self) -> dict[str, Any]:
        return {"resolution": self.resolution, "all_correct": self.all_correct,
                "background": {"expected": self.background, "measured": self.measured_background,
                               "median_rgb": self.background_median_rgb, "correct": self.background_correct,
                               "pixels": self.background_pixels},
                "objects": [asdict(o) for o in self.objects]}


def check_image(image: Any) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise DataError(f"caption_following: expected a uint8 (H, W, 3) image, got {arr.dtype} {tuple(arr.shape)}")
    if arr.shape[0] != arr.shape[1]:
        raise DataError(f"caption_following: the scenes are square, got a {arr.shape[1]}x{arr.shape[0]} image")
    return arr


def score_image(image: Any, scene: SceneLike, world: ShapeWorld, params: ScoringParams = ScoringParams()) -> ImageScore:
    """Score one uint8 (R, R, 3) image against the scene its caption describes (rules: module docstring)."""
    img = check_image(image)
    res = int(img.shape[0])
    used = {scene.background, *(o[1] for o in scene.objects)}
    unknown = sorted(used - set(world.colors))
    if unknown:
        raise DataError(f"caption_following: colour {unknown[0]!r} of a scene is not in the palette {list(world.colors)}")
    sm = object_masks(scene, world, res, params.mask_coverage)
    masks, keep = sm.objects, ~sm.edge
    bg_region = ~dilate(sm.touched, params.pixels(params.background_margin, res))
    if not bg_region.any():  # cannot happen with 1-2 objects of the palette's sizes; kept total for other worlds
        bg_region = ~sm.touched
    bg_rgb = median_color(img, bg_region) if bg_region.any() else None
    bg_measured = nearest_color(bg_rgb, world) if bg_rgb is not None else None
    names, nearest = nearest_color_map(img, world)
    m = params.pixels(params.object_margin, res)
    verdicts = []
    for (size, color, shape, place), mask in zip(scene.objects, masks):
        region = erode(mask, m)
        if int(region.sum()) < params.min_pixels:
            region = mask
        if region.any():
            rgb = median_color(img, region)
            measured = nearest_color(rgb, world)
        else:  # fully covered by a later object: nothing to see, nothing right
            rgb, measured = None, None
        same = [j for j, o in enumerate(scene.objects) if o[1] == color]
        truth = np.logical_or.reduce([masks[j] for j in same]) & keep
        pred = (nearest == names.index(color)) & keep
        inter, uni = int((truth & pred).sum()), int((truth | pred).sum())
        if not uni:  # an object with no pixel off its edge (a few-pixel image): its edge pixels count after all
            truth = np.logical_or.reduce([masks[j] for j in same])
            pred = nearest == names.index(color)
            inter, uni = int((truth & pred).sum()), int((truth | pred).sum())
        verdicts.append(ObjectVerdict(size, color, shape, place, measured, rgb, measured == color,
                                      inter / uni if uni else 0.0, int(region.sum()), int(mask.sum()),
                                      len(same) > 1))
    return ImageScore(res, scene.background, bg_measured, bg_rgb, bg_measured == scene.background,
                      int(bg_region.sum()), verdicts)


# --------------------------------------------------------------------------- aggregates


def chance_levels(object_counts: Sequence[int], num_colors: int = 10) -> dict[str, float]:
    """Chance of a caption-blind image under ``scene()``'s colour draws (module docstring), for these scenes."""
    n = max(1, len(object_counts))
    return {
        "background_accuracy": 1.0 / num_colors,
        "object_color_accuracy": 1.0 / num_colors,
        "object_color_given_background": 1.0 / (num_colors - 1),
        "all_correct": sum(1.0 / num_colors / (num_colors - 1) ** k for k in object_counts) / n,
    }


def aggregate_scores(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The four aggregates over records shaped like :meth:`ImageScore.to_record` (plan order, any subset)."""
    objs = [o for r in records for o in r["objects"]]
    n = len(records)
    return {
        "background_accuracy": sum(bool(r["background"]["correct"]) for r in records) / n if n else 0.0,
        "object_color_accuracy": sum(bool(o["color_correct"]) for o in objs) / len(objs) if objs else 0.0,
        "mean_object_iou": sum(float(o["iou"]) for o in objs) / len(objs) if objs else 0.0,
        "all_correct": sum(bool(r["all_correct"]) for r in records) / n if n else 0.0,
        "num_items": n,
        "num_objects": len(objs),
    }


def metric_specs(params: ScoringParams = ScoringParams()) -> tuple[MetricSpec, ...]:
    """Name, direction and parameters of each aggregate (recorded in every manifest and summary).

    ``params`` are the rule's defaults; a run's own values are its manifest's ``protocol.scoring``.
    """
    p = {"default_scoring": params.to_dict(), "scoring": "the run's values: manifest protocol.scoring"}
    rule = "nearest palette colour (Euclidean RGB) of the per-channel median colour"
    ref = "exact on render_scene's own pictures (tests/harness/metrics/test_caption_following.py)"
    return (
        MetricSpec("background_accuracy", "higher", {**p, "region": "outside every object mask dilated by "
                   "background_margin x side (square element)", "rule": rule, "chance": 0.1}, reference=ref),
        MetricSpec("object_color_accuracy", "higher", {**p, "region": "object mask eroded by object_margin x side",
                   "rule": rule, "over": "all objects of all images", "chance": 0.1,
                   "chance_given_background": 1 / 9}, reference=ref),
        MetricSpec("mean_object_iou", "higher", {**p, "prediction": "pixels whose nearest palette colour is the "
                   "object's colour", "truth": "visible coverage >= mask_coverage (union of same-coloured objects)",
                   "ignored": "pixels the true picture draws in a mixed colour (partly covered edges)",
                   "over": "all objects of all images"}, reference=ref),
        MetricSpec("all_correct", "higher", {**p, "rule": "background and every object colour right, per image",
                   "chance": "mean over items of 1/10 x (1/9)^objects"}, reference=ref),
    )
