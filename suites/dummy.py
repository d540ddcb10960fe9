"""A suite that measures nothing about a model and everything about the harness.

Why: the runner's guarantees (resume after SIGKILL, sharding, batch-size
invariance) are checked by comparing aggregated results across runs, so the
aggregate must be a real function of every record: it includes a sha256 over all
item image hashes in plan order and the mean/std of per-image pixel statistics.
"""
from __future__ import annotations

import hashlib
import io
import math
from typing import Any, Iterable, Mapping, Sequence

from harness.io import png_bytes
from harness.api import Adapter, MetricSpec, Suite, WorkItem
from harness.runner.config import suite_yaml


class DummySuite(Suite):
    name = "dummy"
    adapter_kind = "text_to_image"
    metrics = (
        MetricSpec("mean_pixel", "higher", {"range": "0-255"}, reference="numpy mean of uint8 pixels"),
        MetricSpec("images_sha256", "higher", {"note": "identity check, not a quality score"}),
    )

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return suite_yaml(__file__)

    def plan(self) -> list[WorkItem]:
        n = int(self.config.get("num_items", 0))
        if n < 1:
            raise ValueError(f"dummy suite: num_items must be >= 1, got {n}")
        template = str(self.config.get("prompt_template", "item {i}"))
        return [WorkItem(id=f"dummy-{i:05d}", payload={"prompt": template.format(i=i)}) for i in range(n)]

    def run_batch(self, items: Sequence[WorkItem], adapter: Adapter | None, ctx: Any) -> list[dict[str, Any]]:
        from harness.images import check_batch, to_uint8

        prompts = [it.payload["prompt"] for it in items]
        seeds = [ctx.item_seed(it.id) for it in items]
        images = check_batch(adapter.generate(prompts, seeds, **dict(self.config.get("generate") or {})),
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
            if self.config.get("save_images"):
                rec["image"] = f"images/{it.id}.png"
                rec["image_sha256"] = ctx.write_artifact(rec["image"], png_bytes(arr.transpose(1, 2, 0)))
            records.append(rec)
        return records

    def aggregate(self, records: Iterable[Mapping[str, Any]], ctx: Any) -> dict[str, Any]:
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
        rows = [
            "| statistic | value |",
            "|---|---|",
            f"| images | {summary['num_images']} |",
            f"| mean pixel (0-255) | {summary['mean_pixel']:.4f} |",
            f"| std of per-image means | {summary['std_of_means']:.4f} |",
            f"| mean per-image std | {summary['mean_std']:.4f} |",
            f"| sha256 of all images | `{summary['images_sha256'][:16]}…` |",
        ]
        return "Synthetic prompts through the adapter; checks the harness, not a model.\n\n" + "\n".join(rows) + "\n"

