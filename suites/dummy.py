"""A suite that measures nothing about a model and everything about the harness.

Why: the runner's guarantees (resume after SIGKILL, sharding, batch-size
invariance) are checked by comparing aggregated results across runs, so the
aggregate must be a real function of every record: it includes a sha256 over all
item image hashes in plan order and the mean/std of per-image pixel statistics.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from harness.api import Adapter, MetricSpec, RunContext, Suite, WorkItem
from harness.io import png_bytes
from harness.runner.config import fill_dataclass, suite_yaml


@dataclass(frozen=True)
class DummyConfig:
    """``suites/dummy.yaml`` as types; every default lives in the YAML."""

    num_items: int
    prompt_template: str
    save_images: bool
    generate: dict[str, Any]  # options passed to adapter.generate
    protocol: dict[str, Any]

    def __post_init__(self) -> None:
        if self.num_items < 1:
            raise ValueError(f"dummy suite: num_items must be >= 1, got {self.num_items}. Fix: --set num_items=12")


class DummySuite(Suite):
    name = "dummy"
    adapter_kind = "text_to_image"
    metrics = (
        MetricSpec("mean_pixel", "higher", {"range": "0-255"}, reference="numpy mean of uint8 pixels"),
        MetricSpec("images_sha256", "higher", {"note": "identity check, not a quality score"}),
    )

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        # the YAML under the given keys: a config stored by an older run still renders its report
        self.cfg = fill_dataclass(DummyConfig, {**self.default_config(), **dict(config)}, source="suite dummy",
                                  ignore=("model", "seed", "batch_size"))

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return suite_yaml(__file__)

    def protocol(self) -> dict[str, Any]:
        return dict(self.cfg.protocol)

    def plan(self) -> list[WorkItem]:
        template = self.cfg.prompt_template
        return [WorkItem(id=f"dummy-{i:05d}", payload={"prompt": template.format(i=i)})
                for i in range(self.cfg.num_items)]

    def run_batch(self, items: Sequence[WorkItem], adapter: Adapter | None, ctx: RunContext) -> list[dict[str, Any]]:
        from harness.images import check_batch, to_uint8

        prompts = [it.payload["prompt"] for it in items]
        seeds = [ctx.item_seed(it.id) for it in items]
        images = check_batch(adapter.generate(prompts, seeds, **self.cfg.generate),
                             name="dummy suite: adapter output")
        if images.shape[0] != len(items):
            raise ValueError(f"adapter returned {images.shape[0]} images for {len(items)} prompts")
        u8 = to_uint8(images)
        records = []
        for it, img in zip(items, u8):
            arr = img.numpy()
            rec = {
                "prompt": it.payload["prompt"],
                "shape": list(arr.shape),
                "mean": float(arr.mean()),
                "std": float(arr.std()),
                "sha256": hashlib.sha256(arr.tobytes()).hexdigest(),
            }
            if self.cfg.save_images:
                rec["image"] = f"images/{it.id}.png"
                rec["image_sha256"] = ctx.write_artifact(rec["image"], png_bytes(arr.transpose(1, 2, 0)),
                                                         item_id=it.id)
            records.append(rec)
        return records

    def aggregate(self, records: Iterable[Mapping[str, Any]], ctx: RunContext) -> dict[str, Any]:
        records = list(records)
        if not records:
            raise ValueError("dummy suite: no records to aggregate")
        means = [r["mean"] for r in records]
        h = hashlib.sha256()
        for r in records:  # the runner passes records in plan order
            h.update(f"{r['item_id']}:{r['sha256']}\n".encode())
        mu = sum(means) / len(means)
        return {
            "num_images": len(records),
            "mean_pixel": mu,
            "std_of_means": math.sqrt(sum((m - mu) ** 2 for m in means) / len(means)),
            "mean_std": sum(r["std"] for r in records) / len(records),
            "images_sha256": h.hexdigest(),
        }

    def render(self, summary: Mapping[str, Any]) -> str:
        from harness.markdown_table import markdown_table

        table = markdown_table(("statistic", "value"), [
            ("images", summary["num_images"]),
            ("mean pixel (0-255)", f"{summary['mean_pixel']:.4f}"),
            ("std of per-image means", f"{summary['std_of_means']:.4f}"),
            ("mean per-image std", f"{summary['mean_std']:.4f}"),
            ("sha256 of all images", f"`{summary['images_sha256'][:16]}…`"),
        ])
        return "Synthetic prompts through the adapter; checks the harness, not a model.\n\n" + table

