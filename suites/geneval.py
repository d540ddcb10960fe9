"""GenEval generate stage (paper Table 3, and the GenEval column of Table 4): write the official image folder.

Items are (prompt index, sample index) pairs of the official 553-prompt file; each item's seed is
``ctx.item_seed(item id)``; images go to ``<run>/artifacts/geneval/`` in the official layout
(``00012/metadata.jsonl``, ``00012/samples/0003.png``), so the official scorer could read them too.
Scoring is the ``geneval_detect`` suite (``suites/geneval_detect.py``); ``dcar-bench geneval run``
chains both. The GenEval logic lives in :mod:`harness.geneval`.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from harness.api import Adapter, RunContext, Suite, WorkItem
from harness.geneval.config import GenerateConfig
from harness.geneval.folder import ARTIFACTS_SUBDIR, RUN_SUBDIR, metadata_bytes, metadata_relpath
from harness.runner.config import suite_yaml


class GenEvalSuite(Suite):
    """Generate the official GenEval folder with a text-to-image adapter."""

    name = "geneval"
    adapter_kind = "text_to_image"
    metrics = ()  # scoring happens in geneval_detect

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        self.cfg = GenerateConfig.from_mapping(self.config)

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return suite_yaml(__file__)

    def plan(self) -> list[WorkItem]:
        from harness.geneval.plan import generate_items

        return generate_items(self.cfg.prompts, self.cfg.samples_per_prompt)

    def run_batch(self, items: Sequence[WorkItem], adapter: Adapter | None, ctx: RunContext) -> list[dict[str, Any]]:
        from harness.geneval.prompts import load_prompts
        from harness.images import check_batch, to_uint8
        from harness.io import png_bytes

        seeds = [ctx.item_seed(it.id) for it in items]
        images = check_batch(adapter.generate([it.payload["prompt"] for it in items], seeds,  # type: ignore[union-attr]
                                              **self.cfg.generate), name="geneval: adapter output")
        if images.shape[0] != len(items):
            raise ValueError(f"geneval: adapter returned {images.shape[0]} images for {len(items)} prompts")
        records = []
        for it, img in zip(items, to_uint8(images).permute(0, 2, 3, 1).contiguous().numpy()):
            p, meta = it.payload["prompt_index"], load_prompts()[it.payload["prompt_index"]]
            ctx.write_artifact(f"{ARTIFACTS_SUBDIR}/{metadata_relpath(p)}", metadata_bytes(meta))
            digest = ctx.write_artifact(f"{ARTIFACTS_SUBDIR}/{it.payload['file']}", png_bytes(img), item_id=it.id)
            records.append({"prompt_index": p, "sample_index": it.payload["sample_index"], "tag": meta["tag"],
                            "file": it.payload["file"], "image_sha256": digest,
                            "height": int(img.shape[0]), "width": int(img.shape[1])})
        return records

    def aggregate(self, records: Iterable[Mapping[str, Any]], ctx: RunContext) -> dict[str, Any]:
        from harness.geneval.rules import TAGS, Expected

        records = list(records)
        m = ctx.manifest
        return {"images_dir": RUN_SUBDIR,  # relative to the run directory
                "generator": {"name": m.adapter if m else None, "real_weights": m.real_weights if m else False},
                "num_images": len(records), "images_per_tag": {t: sum(r["tag"] == t for r in records) for t in TAGS},
                "expected_images": Expected().total_images,  # the protocol's 553 x 4, whatever this run planned
                "samples_per_prompt": self.cfg.samples_per_prompt,
                "next": f"dcar-bench geneval detect --images <this run>/{RUN_SUBDIR} --out <detect run dir>"}

    def render(self, summary: Mapping[str, Any]) -> str:
        from harness.geneval.rules import TAGS

        counts = ", ".join(f"{t} {summary['images_per_tag'][t]}" for t in TAGS)  # the official order
        partial = "" if summary["num_images"] >= summary["expected_images"] else " (a partial GenEval run)"
        return (f"GenEval images generated: {summary['num_images']} of {summary['expected_images']}{partial} "
                f"({counts}) in `{summary['images_dir']}` of this run (official folder layout, PNG).\n\n"
                f"Scored by the `geneval_detect` suite: `{summary['next']}`.\n")
