"""Caption following in the procedural world: does a text-to-image model draw what its caption says?

Items are the scenes ``dcar_training.data.scene(scene_seed, i)``; each item's prompt is the scene's caption and its
seed ``ctx.item_seed(item id)``. ``run_batch`` generates the images, scores each against its scene
(:mod:`harness.metrics.caption_following`: background colour, each object's colour, each object's mask IoU) and
records the verdicts, the scene and (``save_images``) the PNG with its sha256. ``aggregate`` reads the records only:
the four accuracies, their chance levels, the same numbers over the captions that the training set does not
contain, and an image grid of the first items with their verdicts (``figures/caption_following_grid.png``, which
the run's report embeds).

Why this suite exists: no public dataset can be downloaded here, so GenEval cannot score the mini models; but a
procedural caption fixes the whole picture, so following it can be checked automatically. It measures colour and
placement (through the IoU) in that world only: not a paper metric, not a replacement for GenEval
(docs/caption_following.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, Sequence

from harness.api import Adapter, RunContext, Suite, WorkItem
from harness.metrics.caption_following import ScoringParams, ShapeWorld, aggregate_scores, chance_levels, metric_specs
from harness.runner.config import fill_dataclass, suite_yaml

GRID_FILE = "figures/caption_following_grid.png"


@dataclass(frozen=True)
class TrainCaptions:
    """``train_captions.*``: the training set (``ShapesDataset(n, seed=seed)``) whose captions are compared."""

    seed: int
    n: int

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"train_captions.n must be >= 0 (0: no comparison), got {self.n}")


@dataclass(frozen=True)
class CaptionFollowingConfig:
    """``suites/caption_following.yaml`` as types; every default lives in the YAML."""

    num_items: int
    scene_seed: int
    save_images: bool
    scoring: ScoringParams
    train_captions: TrainCaptions
    generate: dict[str, Any]  # options passed to adapter.generate
    protocol: dict[str, Any]

    def __post_init__(self) -> None:
        if self.num_items < 1:
            raise ValueError(f"caption_following: num_items must be >= 1, got {self.num_items}. "
                             f"Fix: --set num_items=64")


def shape_world() -> ShapeWorld:
    """The palette and geometry of ``dcar_training.data`` (the world the mini models are trained in)."""
    from dcar_training.data import COLORS, PLACES, SIZES

    return ShapeWorld(COLORS, PLACES, SIZES)


def scene_of(payload: Mapping[str, Any]):
    """The planned item's scene (stored in its payload, so records and reports never re-derive it)."""
    from dcar_training.data import Scene

    s = payload["scene"]
    return Scene(s["background"], tuple(tuple(o) for o in s["objects"]))


class CaptionFollowingSuite(Suite):
    name = "caption_following"
    adapter_kind = "text_to_image"
    metrics = metric_specs()
    #: which training captions count as seen changes no record: `dcar-bench aggregate DIR --set train_captions.n=...`
    aggregate_keys: ClassVar[tuple[str, ...]] = ("train_captions",)

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        from harness.runner.config import merge_config
        from harness.store import flatten

        # key by key over the YAML, so a partial config (a test's, a sweep's) keeps the rest of every section
        merged = merge_config(self.default_config(), None, flatten(dict(config)))
        self.cfg = fill_dataclass(CaptionFollowingConfig, merged, source="suite caption_following",
                                  ignore=("model", "seed", "batch_size"))

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return suite_yaml(__file__)

    def protocol(self) -> dict[str, Any]:
        return {**dict(self.cfg.protocol), "scoring": self.cfg.scoring.to_dict()}

    def plan(self) -> list[WorkItem]:
        from dcar_training.data import scene

        items = []
        for i in range(self.cfg.num_items):
            s = scene(self.cfg.scene_seed, i)
            items.append(WorkItem(id=f"{i:05d}", payload={
                "index": i, "caption": s.caption,
                "scene": {"background": s.background, "objects": [list(o) for o in s.objects]}}))
        return items

    def run_batch(self, items: Sequence[WorkItem], adapter: Adapter | None, ctx: RunContext) -> list[dict[str, Any]]:
        from harness.images import check_batch, to_uint8
        from harness.io import png_bytes
        from harness.metrics.caption_following import score_image

        prompts = [it.payload["caption"] for it in items]
        seeds = [ctx.item_seed(it.id) for it in items]
        images = check_batch(adapter.generate(prompts, seeds, **self.cfg.generate),  # type: ignore[union-attr]
                             name="caption_following: adapter output")
        if images.shape[0] != len(items):
            raise ValueError(f"caption_following: adapter returned {images.shape[0]} images for {len(items)} prompts")
        world = shape_world()
        records = []
        for it, seed, img in zip(items, seeds, to_uint8(images).permute(0, 2, 3, 1).contiguous().numpy()):
            score = score_image(img, scene_of(it.payload), world, self.cfg.scoring)
            rec = {"index": it.payload["index"], "caption": it.payload["caption"], "scene": it.payload["scene"],
                   "seed": seed, **score.to_record()}
            if self.cfg.save_images:
                rec["image"] = f"images/{it.id}.png"
                rec["image_sha256"] = ctx.write_artifact(rec["image"], png_bytes(img), item_id=it.id)
            records.append(rec)
        return records

    # ------------------------------------------------------------------ aggregate (records only)

    def training_captions(self) -> set[str]:
        from dcar_training.data import scene

        tc = self.cfg.train_captions
        return {scene(tc.seed, i).caption for i in range(tc.n)}

    def aggregate(self, records: Iterable[Mapping[str, Any]], ctx: RunContext) -> dict[str, Any]:
        records = list(records)
        if not records:
            raise ValueError("caption_following: no records to aggregate")
        seen = self.training_captions()
        unseen = [r for r in records if r["caption"] not in seen]
        summary: dict[str, Any] = {
            **aggregate_scores(records),
            "scene_seed": self.cfg.scene_seed,
            "resolutions": sorted({int(r["resolution"]) for r in records}),
            "chance": chance_levels([len(r["objects"]) for r in records], len(shape_world().colors)),
            "train_captions": {"seed": self.cfg.train_captions.seed, "n": self.cfg.train_captions.n,
                               "planned_captions_in_training": len(records) - len(unseen)},
            "unseen_captions": aggregate_scores(unseen),
            "is_paper_metric": False,  # the procedural world's check, not a metric of the paper
        }
        summary["grid"] = self._draw_grid(ctx)
        return summary

    def _draw_grid(self, ctx: RunContext) -> dict[str, Any]:
        """The first items' images with their verdicts, ``figures/caption_following_grid.png`` in the run directory."""
        if not self.cfg.save_images:
            return {"png": None, "reason": "not drawn: save_images is false"}
        if ctx.manifest is None:
            return {"png": None, "reason": "not drawn: no manifest (a bare context)"}
        try:
            from harness.report.collect import RunView
            from harness.report.grids import caption_following_grid
        except ImportError as exc:  # matplotlib belongs to the report extra
            return {"png": None, "reason": f"not drawn: {exc}"}
        run = RunView(Path(ctx.run_dir), ctx.manifest, {})  # {}: being aggregated now, every record is there
        try:
            fig = caption_following_grid([run], Path(ctx.run_dir), Path(GRID_FILE).stem)
        except ImportError as exc:
            return {"png": None, "reason": f"not drawn: {exc}"}
        return {"png": fig.path, "title": fig.title, "caption": fig.caption, "items": fig.data["items"]}

    def render(self, summary: Mapping[str, Any]) -> str:
        from harness.markdown_table import markdown_table

        chance = summary.get("chance") or {}
        unseen = summary.get("unseen_captions") or {}

        def pct(v: Any) -> str:
            return "-" if v is None else f"{100 * float(v):.1f}%"

        rows = [
            ("background colour right", pct(summary["background_accuracy"]), pct(unseen.get("background_accuracy")),
             pct(chance.get("background_accuracy"))),
            ("object colour right (per object)", pct(summary["object_color_accuracy"]),
             pct(unseen.get("object_color_accuracy")),
             f"{pct(chance.get('object_color_accuracy'))} ({pct(chance.get('object_color_given_background'))} "
             f"given the background)"),
            ("mean object mask IoU", f"{float(summary['mean_object_iou']):.3f}",
             f"{float(unseen['mean_object_iou']):.3f}" if unseen.get("num_objects") else "-", "-"),
            ("all correct (per image)", pct(summary["all_correct"]), pct(unseen.get("all_correct")),
             pct(chance.get("all_correct"))),
        ]
        tc = summary.get("train_captions") or {}
        parts = [f"{summary['num_items']} procedural scenes (seed {summary.get('scene_seed')}, "
                 f"{summary.get('num_objects')} objects, images at {', '.join(map(str, summary.get('resolutions', [])))}"
                 f" px) through the adapter, each image scored against the scene its caption describes "
                 f"(docs/caption_following.md). Not a paper metric: the procedural world's analogue of GenEval's "
                 f"colour and position checks.\n",
                 markdown_table(("check", "all items", f"captions not in training ({unseen.get('num_items', 0)})",
                                 "chance (caption-blind)"), rows),
                 f"\n{tc.get('planned_captions_in_training', 0)} of the {summary['num_items']} captions also occur "
                 f"among the {tc.get('n')} training scenes of seed {tc.get('seed')} (a 1-object scene space is small); "
                 f"the middle column leaves them out.\n"]
        grid = summary.get("grid") or {}
        if grid.get("png"):
            parts.append(f"![{grid.get('title')}]({grid['png']})\n\n{grid.get('caption', '')}\n")
        else:
            parts.append(f"*Image grid {grid.get('reason', 'not drawn')}.*\n")
        return "\n".join(parts)
