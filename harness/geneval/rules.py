"""GenEval's scoring rules, ported to pure Python, applied to *recorded* detections.

Why a port instead of calling the official ``evaluate_images.py``: the official scorer
runs the detector and the rules in one pass, so a rule question can only be answered
by re-running Mask2Former on a GPU. Here the detector's per-class output (boxes,
scores and, where a prompt asks for a colour, the colour CLIP predicted) is recorded
once as JSON (:mod:`harness.geneval.records`) and these rules re-score it on any CPU,
with every constant recorded beside the result.

Every rule and constant follows ``djghosh13/geneval`` at ``af4902f``
(``evaluation/evaluate_images.py`` and ``evaluation/summary_scores.py``; Sana's vendored
copy scores identically):

* per class: sort by score (descending), keep score **strictly greater** than 0.3
  (0.9 for ``counting`` prompts), keep the first 16, optional greedy per-class NMS
  (disabled at the default ``max_overlap = 1.0``) with the inclusive-pixel IoU;
* ``include`` groups take the ``count`` most confident detections of their class,
  optionally check colour (at least ``count`` of them have the requested colour) and
  position (every object against every object of the target group, c = 0.1);
* ``exclude`` groups fail when ``len(detected[class]) >= count``;
* the score of a tag is the image-level accuracy, overall = unweighted mean of the 6 tags.

Importable without numpy or torch.
"""
from __future__ import annotations

import math
import struct
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from harness.api import IncompleteRunError, MetricSpec, UserError

# ---------------------------------------------------------------- protocol constants

#: the tags, in the order the official ``summary_scores.py`` prints them
TAGS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")

#: colour names CLIP chooses from, in the official order (index = classifier output)
COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")

#: prompts and images per tag in the official prompt file at 4 images per prompt
PROMPTS_PER_TAG: Mapping[str, int] = {
    "single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100, "color_attr": 100,
}
NUM_PROMPTS = 553
SAMPLES_PER_PROMPT = 4


@dataclass(frozen=True)
class RuleConfig:
    """The scorer's constants (official defaults; each is an ``--options`` key of the official script)."""

    threshold: float = 0.3  # score threshold for every tag but counting
    counting_threshold: float = 0.9  # score threshold for counting prompts
    max_objects: int = 16  # at most this many detections per class
    max_overlap: float = 1.0  # per-class NMS IoU; 1.0 disables NMS (official default)
    position_threshold: float = 0.1  # the "c" of the position rule

    def __post_init__(self) -> None:
        for name in ("threshold", "counting_threshold", "max_overlap", "position_threshold"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or math.isnan(value):
                raise ValueError(f"RuleConfig.{name} must be a number, got {value!r}")
        if not isinstance(self.max_objects, int) or self.max_objects < 1:
            raise ValueError(f"RuleConfig.max_objects must be a positive integer, got {self.max_objects!r}")

    def score_threshold(self, tag: str) -> float:
        return self.counting_threshold if tag == "counting" else self.threshold

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_RULES = RuleConfig()

GENEVAL_METRIC = MetricSpec(
    name="geneval_overall",
    direction="higher",
    params={
        **DEFAULT_RULES.to_dict(),
        "colors": list(COLORS),
        "tags": list(TAGS),
        "aggregation": "overall = unweighted mean of the 6 per-tag image accuracies",
        "samples_per_prompt": SAMPLES_PER_PROMPT,
        "num_prompts": NUM_PROMPTS,
        "detector": "Mask2Former Swin-S COCO instance segmentation, GenEval's mmdet weights (transformers or mmdet backend)",
        "color_classifier": "open_clip ViT-L-14 openai, 3 templates, grey #999 fill, crop to box",
    },
    reference="djghosh13/geneval af4902f evaluation/evaluate_images.py + summary_scores.py (rules ported; "
    "checked on hand-made detections in tests/harness/geneval/test_rules.py)",
)


# ---------------------------------------------------------------- detections


@dataclass(frozen=True)
class Detection:
    """One detected object: box ``[x1, y1, x2, y2]`` in pixels, score, and CLIP's colour if it was classified."""

    box: tuple[float, float, float, float]
    score: float
    color: str | None = None

    @classmethod
    def from_record(cls, obj: Mapping[str, Any]) -> "Detection":
        try:
            box = tuple(float(v) for v in obj["box"])
            score = float(obj["score"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed detection {obj!r}: needs 'box' (4 numbers) and 'score' ({exc})") from exc
        if len(box) != 4:
            raise ValueError(f"malformed detection {obj!r}: 'box' must have 4 numbers, got {len(box)}")
        color = obj.get("color")
        if color is not None and color not in COLORS:
            raise ValueError(f"detection colour {color!r} is not one of the GenEval colours {COLORS}")
        return cls(box=box, score=score, color=color)  # type: ignore[arg-type]


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU with the official inclusive-pixel convention: area = max(x2-x1+1, 0) * max(y2-y1+1, 0)."""

    def area(x1: float, y1: float, x2: float, y2: float) -> float:
        return max(x2 - x1 + 1, 0) * max(y2 - y1 + 1, 0)

    inter = area(max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    union = area(*a[:4]) + area(*b[:4]) - inter
    return inter / union if union > 0 else 0.0


def float32(value: float) -> float:
    """``value`` rounded to float32, as a Python float.

    The official scorer compares the detector's float32 score array with a Python float threshold; numpy does that
    comparison in float32 (value-based casting in numpy 1.x, NEP 50 weak scalars in 2.x). So a score stored as the
    float64 image of float32(0.3) = 0.30000001192... is *not* above 0.3 there, and must not be here either.
    """
    return struct.unpack("f", struct.pack("f", float(value)))[0]


def above_threshold(score: float, threshold: float) -> bool:
    """The official ``score > threshold`` comparison, carried out in float32."""
    return float32(score) > float32(threshold)


def descending_order(scores: Sequence[float]) -> list[int]:
    # The official code uses np.argsort(scores)[::-1]; for the <= 16 items per class the
    # threshold usually leaves, numpy's sort is stable, so ties come out later-index first.
    # A stable ascending sort reversed reproduces that.
    return list(reversed(sorted(range(len(scores)), key=lambda i: scores[i])))


def filter_class(detections: Sequence[Detection], threshold: float, rules: RuleConfig = DEFAULT_RULES) -> list[Detection]:
    """One class's post-processing: sort, keep score > threshold, cap at ``max_objects``, optional NMS.

    ``detections`` of a record are already in the official order (:func:`descending_order`
    applied once to the detector's array), so equal scores keep their given order here: a
    second reversed sort would swap tied detections and change which one is top-1.
    """
    order = sorted(range(len(detections)), key=lambda i: -detections[i].score)
    order = [i for i in order if above_threshold(detections[i].score, threshold)][: rules.max_objects]
    kept: list[Detection] = []
    while order:
        best = order.pop(0)
        kept.append(detections[best])
        if rules.max_overlap != 1:
            order = [i for i in order if box_iou(detections[best].box, detections[i].box) < rules.max_overlap]
    return kept


def filter_detections(
    raw: Mapping[str, Sequence[Detection]], tag: str, rules: RuleConfig = DEFAULT_RULES
) -> dict[str, list[Detection]]:
    """Per-class post-processing for an image of ``tag``; classes left empty are absent (no cross-class NMS)."""
    threshold = rules.score_threshold(tag)
    out: dict[str, list[Detection]] = {}
    for cls, dets in raw.items():
        kept = filter_class(list(dets), threshold, rules)
        if kept:
            out[cls] = kept
    return out


# ---------------------------------------------------------------- position


def relative_position(a: Sequence[float], b: Sequence[float], c: float = DEFAULT_RULES.position_threshold) -> set[str]:
    """Relations of box A to box B (``left of``/``right of``/``above``/``below``; y grows downward).

    The centre offset is shrunk by ``c`` times the summed box sizes per axis (so touching
    or overlapping boxes relate only along the axis where they are clearly apart), then
    divided by the length of the *unshrunk* offset; a relation holds beyond 0.5.
    """
    centre_a = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2)
    centre_b = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    dim_a = (abs(a[2] - a[0]), abs(a[3] - a[1]))
    dim_b = (abs(b[2] - b[0]), abs(b[3] - b[1]))
    offset = (centre_a[0] - centre_b[0], centre_a[1] - centre_b[1])
    revised = [
        math.copysign(max(abs(offset[k]) - c * (dim_a[k] + dim_b[k]), 0.0), offset[k]) if offset[k] != 0 else 0.0
        for k in range(2)
    ]
    if all(abs(r) < 1e-3 for r in revised):
        return set()
    norm = math.hypot(*offset)
    dx, dy = revised[0] / norm, revised[1] / norm
    rels = set()
    if dx < -0.5:
        rels.add("left of")
    if dx > 0.5:
        rels.add("right of")
    if dy < -0.5:
        rels.add("above")
    if dy > 0.5:
        rels.add("below")
    return rels


# ---------------------------------------------------------------- judging one image


class MissingColorError(UserError, ValueError):
    """A prompt asks for a colour but the record has no colour for a detection the rule needs."""


@dataclass
class Judgement:
    correct: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return "\n".join(self.reasons)


def judge(metadata: Mapping[str, Any], detected: Mapping[str, Sequence[Detection]],
          rules: RuleConfig = DEFAULT_RULES) -> Judgement:
    """Is one image correct for its prompt? ``detected`` is the output of :func:`filter_detections`."""
    if "include" not in metadata and "exclude" not in metadata:
        raise ValueError(f"GenEval metadata needs 'include' and/or 'exclude' requirements, got keys {sorted(metadata)}")
    correct = True
    reasons: list[str] = []
    matched_groups: list[list[Detection] | None] = []
    for req in metadata.get("include", []):
        cls, count = req["class"], int(req["count"])
        matched = True
        found = list(detected.get(cls, []))[:count]
        if len(found) < count:
            correct = matched = False
            reasons.append(f"expected {cls}>={count}, found {len(found)}")
        else:
            if "color" in req:
                colors = []
                for obj in found:
                    if obj.color is None:
                        raise MissingColorError(
                            f"the prompt asks for a {req['color']} {cls} but a detection of {cls} "
                            f"(score {obj.score:.4f}) has no recorded colour; re-run `geneval detect` "
                            "with the same or a lower threshold"
                        )
                    colors.append(obj.color)
                n_ok = colors.count(req["color"])
                if n_ok < count:
                    correct = matched = False
                    others = ", ".join(f"{colors.count(c)} {c}" for c in COLORS if c in colors)
                    reasons.append(f"expected {req['color']} {cls}>={count}, found {n_ok} {req['color']}; and {others}")
            if "position" in req and matched:
                rel, group = req["position"][0], int(req["position"][1])
                if group >= len(matched_groups):
                    raise ValueError(f"position requirement of {cls} refers to include group {group}, "
                                     f"which comes after it (only {len(matched_groups)} earlier groups)")
                targets = matched_groups[group]
                if targets is None:
                    correct = matched = False
                    reasons.append(f"no target for {cls} to be {rel}")
                else:
                    for obj in found:
                        for target in targets:
                            true_rels = relative_position(obj.box, target.box, rules.position_threshold)
                            if rel not in true_rels:
                                correct = matched = False
                                reasons.append(f"expected {cls} {rel} target, found {' and '.join(sorted(true_rels))} target")
                                break
                        if not matched:
                            break
        matched_groups.append(found if matched else None)
    for req in metadata.get("exclude", []):
        cls, count = req["class"], int(req["count"])
        n = len(detected.get(cls, []))
        if n >= count:
            correct = False
            reasons.append(f"expected {cls}<{count}, found {n}")
    return Judgement(correct, reasons)


def judge_record(record: Mapping[str, Any], rules: RuleConfig = DEFAULT_RULES) -> Judgement:
    """Judge one detection record (``{"metadata": ..., "detections": {class: [{box, score, color?}]}}``)."""
    metadata = record["metadata"]
    raw = {cls: [Detection.from_record(o) for o in objs] for cls, objs in record.get("detections", {}).items()}
    return judge(metadata, filter_detections(raw, metadata["tag"], rules), rules)


# ---------------------------------------------------------------- aggregation


@dataclass
class Expected:
    """How many images a complete run has (553 prompts x 4 by default)."""

    prompts_per_tag: Mapping[str, int] = field(default_factory=lambda: dict(PROMPTS_PER_TAG))
    samples_per_prompt: int = SAMPLES_PER_PROMPT

    @property
    def images_per_tag(self) -> dict[str, int]:
        return {t: n * self.samples_per_prompt for t, n in self.prompts_per_tag.items()}

    @property
    def total_images(self) -> int:
        return sum(self.images_per_tag.values())

    @property
    def total_prompts(self) -> int:
        return sum(self.prompts_per_tag.values())


def summarize(results: Iterable[Mapping[str, Any]], expected: Expected | None = None) -> dict[str, Any]:
    """Per-tag image accuracy, overall = mean of the tag accuracies, counts and completeness.

    ``results``: one row per image with ``tag``, ``correct`` and ``prompt_index``.
    ``overall`` is None unless all 6 tags have images (a mean over fewer tags is not GenEval).
    """
    expected = expected or Expected()
    per_tag: dict[str, list[bool]] = {}
    prompts_ok: dict[int, bool] = {}
    prompts_by_tag: dict[str, set[int]] = {}
    for r in results:
        tag = r["tag"]
        if tag not in TAGS:
            raise ValueError(f"unknown GenEval tag {tag!r}; tags are {TAGS}")
        per_tag.setdefault(tag, []).append(bool(r["correct"]))
        p = int(r["prompt_index"])
        prompts_ok[p] = prompts_ok.get(p, False) or bool(r["correct"])
        prompts_by_tag.setdefault(tag, set()).add(p)
    tag_scores = {t: (sum(v) / len(v)) for t, v in per_tag.items() if v}
    overall = sum(tag_scores[t] for t in TAGS) / len(TAGS) if all(t in tag_scores for t in TAGS) else None
    n_images = sum(len(v) for v in per_tag.values())
    images_per_tag = {t: len(per_tag.get(t, [])) for t in TAGS}
    exp_images = expected.images_per_tag
    complete = all(images_per_tag[t] >= exp_images.get(t, 0) for t in TAGS) and n_images >= expected.total_images
    return {
        "tag_scores": {t: tag_scores.get(t) for t in TAGS},
        "overall": overall,
        "images_per_tag": images_per_tag,
        "prompts_per_tag": {t: len(prompts_by_tag.get(t, ())) for t in TAGS},
        "expected_images_per_tag": exp_images,
        "total_images": n_images,
        "total_prompts": len(prompts_ok),
        "expected_total_images": expected.total_images,
        "expected_total_prompts": expected.total_prompts,
        "complete": complete,
        "percent_correct_images": (sum(sum(v) for v in per_tag.values()) / n_images) if n_images else None,
        "percent_correct_prompts": (sum(prompts_ok.values()) / len(prompts_ok)) if prompts_ok else None,
    }


def completeness_message(summary: Mapping[str, Any]) -> str:
    rows = ", ".join(
        f"{t} {summary['images_per_tag'][t]}/{summary['expected_images_per_tag'][t]}" for t in TAGS
    )
    return (
        f"incomplete GenEval run: {summary['total_images']} of {summary['expected_total_images']} images, "
        f"{summary['total_prompts']} of {summary['expected_total_prompts']} prompts (per tag: {rows})"
    )


def check_complete(summary: Mapping[str, Any], allow_partial: bool = False) -> None:
    """Raise :class:`IncompleteRunError` with counts unless the run is complete or ``allow_partial``."""
    if not summary["complete"] and not allow_partial:
        raise IncompleteRunError(
            completeness_message(summary) + ". A partial run is not a GenEval score; to report it anyway "
            "(labelled incomplete) pass --allow-partial to `dcar-bench geneval detect|score`, or "
            "--set allow_partial=true"
        )
