"""Tokenizer training strategies (DC-AR Table 5): train DC-HT three ways, evaluate discrete-rFID and rFID.

One item per recipe. ``run_batch`` trains the recipe (``dcar_training.tokenizer.train_tokenizer``) into
``artifacts/train/<recipe>/`` -- a killed run resumes from the stage checkpoints there -- then reconstructs the
evaluation images through both paths and stores Inception features of the real images and of each path's
reconstructions (``artifacts/features/<recipe>.npz``). The record holds the stage lengths, the measured device
time, PSNR per path, the downsampled loss curves and the hashes of what it wrote. Aggregation computes every
Fréchet distance from those files only.

Results are the paper's metric only for the paper's scale (released DC-HT topology, ImageNet folders, real
Inception); anything else -- in particular the ``mini`` preset (tiny DC-HT, procedural pictures, random
Inception) -- is labelled so in the summary and the report.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Literal, Mapping, Sequence

from harness.api import Adapter, MetricSpec, RunContext, Suite, WorkItem
from harness.runner.config import ConfigError, fill_dataclass, suite_yaml

PAPER_TABLE = "Table5_tokenizer_training"


@dataclass(frozen=True)
class AblationConfig:
    preset: Literal["paper", "mini", "custom"]
    device: str
    recipes: list[str]
    resolution: int
    train_data: Any
    eval_data: Any
    training: dict
    inception: Any
    frechet: Literal["sqrtm", "eigh"]


class TokenizerAblationSuite(Suite):
    name: ClassVar[str] = "tokenizer_ablation"
    adapter_kind: ClassVar[str | None] = None
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("discrete_rFID", "lower", {"path": "discrete", "features": "FID-Inception pool3"},
                   reference="harness.metrics.fid (checked against pytorch-fid / clean-fid)"),
        MetricSpec("rFID", "lower", {"path": "continuous", "features": "FID-Inception pool3"},
                   reference="harness.metrics.fid (checked against pytorch-fid / clean-fid)"),
        MetricSpec("psnr", "higher", {"quantize": "uint8"}, reference="harness.metrics.recon.psnr_per_image"),
    )
    aggregate_keys: ClassVar[tuple[str, ...]] = ("frechet",)

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        self.cfg = self.typed_config(self.config)

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return suite_yaml(__file__)

    @classmethod
    def typed_config(cls, config: Mapping[str, Any]) -> AblationConfig:
        from dcar_training.suite_support import DataConfig, InceptionConfig

        c = dict(config)
        typed = {
            "train_data": fill_dataclass(DataConfig, c.get("train_data"), prefix="train_data."),
            "eval_data": fill_dataclass(DataConfig, c.get("eval_data"), prefix="eval_data."),
            "inception": fill_dataclass(InceptionConfig, c.get("inception"), prefix="inception."),
        }
        rest = {k: v for k, v in c.items() if k in {f.name for f in dataclasses.fields(AblationConfig)}
                and k not in typed}
        return AblationConfig(**{k: v for k, v in rest.items()}, **typed)

    @classmethod
    def requirements(cls, config: Mapping[str, Any] | None = None) -> list:
        """For ``doctor``: the FID-Inception and the LPIPS trunk of the perceptual loss, unless random ones are asked for."""
        from dataclasses import replace

        from harness.metrics.inception import fid_inception_requirement
        from harness.metrics.recon import lpips_alexnet_requirement

        cfg = cls.typed_config(config if config is not None else cls.default_config())
        loss = cfg.training.get("loss") or {}
        reqs = [] if cfg.inception.random_init_seed is not None else [
            replace(fid_inception_requirement(), config_key="inception.weights_path")]
        if loss.get("perceptual_weight", 1.0) and loss.get("lpips_random_backbone_seed") is None:
            reqs.append(replace(lpips_alexnet_requirement(), config_key="training.loss.lpips_backbone_path"))
        return reqs

    def train_config(self, recipe: str):
        from dcar_training.tokenizer import TokenizerTrainConfig

        return fill_dataclass(TokenizerTrainConfig, {**self.cfg.training, "recipe": recipe}, prefix="training.")

    def subject(self) -> str | None:
        return f"DC-HT trained by {len(self.cfg.recipes)} recipe(s) ({self.cfg.preset} preset)"

    def plan(self) -> list[WorkItem]:
        from dcar_training.tokenizer import RECIPE_LABELS, RECIPES

        for r in self.cfg.recipes:
            if r not in RECIPES:
                raise ConfigError(f"recipes: unknown tokenizer recipe {r!r}. Fix: choose from {', '.join(RECIPES)}")
        return [WorkItem(r, {"recipe": r, "label": RECIPE_LABELS[r]}) for r in self.cfg.recipes]

    def validate(self, items: Sequence[WorkItem]) -> None:
        for it in items:
            self.train_config(it.id)  # every training key type-checked before anything trains
        if self.cfg.resolution % 32:
            raise ConfigError(f"resolution must be a multiple of 32 (DC-HT's compression), got {self.cfg.resolution}")
        for section in ("train_data", "eval_data"):
            d = getattr(self.cfg, section)
            if d.kind == "folder":
                from pathlib import Path

                from harness.api import MissingResourceError

                if not d.root or not Path(d.root).is_dir():
                    raise MissingResourceError(f"{section}.root {d.root!r} is not a folder of images. Fix: "
                                               f"--set {section}.root=/path/to/images (e.g. ImageNet train / val), "
                                               f"or use the mini preset (procedural shapes)")
        loss = self.train_config(items[0].id).loss if items else None
        if loss is not None and loss.perceptual_weight and loss.lpips_random_backbone_seed is None:
            from harness.metrics.recon import resolve_alexnet_path

            resolve_alexnet_path(loss.lpips_backbone_path)  # the perceptual loss's trunk, before anything trains
        inc = self.cfg.inception
        if inc.random_init_seed is None:
            from harness.metrics.inception import resolve_weights_path

            resolve_weights_path(inc.weights_path)  # one line naming the file and how to get it

    # ------------------------------------------------------------------ run

    def run_batch(self, items: Sequence[WorkItem], adapter: Adapter | None, ctx: RunContext) -> list[dict[str, Any]]:
        return [self._run_one(it, ctx) for it in items]

    def _run_one(self, item: WorkItem, ctx: RunContext) -> dict[str, Any]:
        import torch

        from baselines.dcar.tokenizer import DCHT
        from dcar_training.evaluate import recon_features
        from dcar_training.loop import device_name, read_loss_log
        from dcar_training.suite_support import downsample_curve, resolve_device
        from dcar_training.tokenizer import train_tokenizer
        from harness.io import canonical_json, file_sha256, npz_bytes

        device = resolve_device(self.cfg.device)
        cfg = self.train_config(item.id)
        train_ds = self.cfg.train_data.build(self.cfg.resolution)
        out = ctx.artifacts_dir / "train" / item.id
        result = train_tokenizer(cfg, train_ds, out, device=device,
                                 progress=lambda it: ctx.progress(it, desc=f"train {item.id}", unit="step",
                                                                  leave=False))
        model = DCHT.from_pretrained(out / "final", device=device)
        extractor = self.cfg.inception.extractor(device)
        key = canonical_json([self.cfg.eval_data.__dict__, self.cfg.resolution, extractor.describe()])
        cache = self.__dict__.setdefault("_real_features", {})  # same images for every recipe: extract once
        ev = recon_features(model, self.cfg.eval_data.build(self.cfg.resolution), extractor, device=device,
                            real=cache.get(key),
                            progress=lambda it: ctx.progress(it, desc=f"evaluate {item.id}", leave=False))
        cache[key] = ev["features"]["real"]
        rel = f"features/{item.id}.npz"
        sha = ctx.write_artifact(rel, npz_bytes(**ev["features"]), item_id=item.id)
        stages = [{k: s[k] for k in ("stage", "epochs", "steps", "device_seconds")} for s in result["stages"]]
        curves = {s["stage"]: downsample_curve(read_loss_log(out / s["loss_log"])) for s in result["stages"]}
        return {
            "item_id": item.id, "recipe": item.id, "label": item.payload["label"],
            "stages": stages, "total_steps": sum(s["steps"] for s in stages),
            "device_seconds": result["device_seconds"], "device_hours": result["device_seconds"] / 3600.0,
            "device": device_name(torch.device(device)),
            "psnr": {p: float(sum(v) / len(v)) for p, v in ev["psnr"].items()},
            "num_eval_images": len(ev["features"]["real"]),
            "features": {"path": rel, "sha256": sha}, "extractor": extractor.describe(),
            "lpips_weights": result["lpips_weights"],
            "tokenizer_sha256": file_sha256(out / "final" / "model.safetensors"),
            "tokenizer_dir": f"train/{item.id}/final",
            "loss_curves": curves, "train_dataset": train_ds.describe(),
        }

    # ------------------------------------------------------------------ aggregate

    def aggregate(self, records: Iterable[Mapping[str, Any]], ctx: RunContext) -> dict[str, Any]:
        from dcar_training.suite_support import fid, load_features

        rows: dict[str, dict[str, Any]] = {}
        real_inception = True
        order = {r: i for i, r in enumerate(self.cfg.recipes)}
        for rec in sorted(records, key=lambda r: order.get(r["recipe"], len(order))):  # the config's order
            f = load_features(ctx, rec["features"], rec.get("item_id"))
            rows[rec["recipe"]] = {
                "label": rec["label"], "discrete_rFID": fid(f["real"], f["discrete"], self.cfg.frechet),
                "rFID": fid(f["real"], f["continuous"], self.cfg.frechet),
                "psnr_discrete": rec["psnr"]["discrete"], "psnr_continuous": rec["psnr"]["continuous"],
                "total_steps": rec["total_steps"], "device_hours": rec["device_hours"], "device": rec["device"],
                "stages": rec["stages"], "num_eval_images": rec["num_eval_images"],
            }
            real_inception = real_inception and bool(rec["extractor"].get("real_weights"))
        warnings = []
        if self.cfg.preset == "mini":
            warnings.append("miniature reproduction (mini preset): tiny DC-HT, toy data, short training")
        if not real_inception:
            warnings.append("random-weight Inception: rFID values are not the paper's metric")
        if self.cfg.training.get("model_config") != "full":
            warnings.append(f"`{self.cfg.training.get('model_config')}` DC-HT, not the paper's model size")
        if self.cfg.eval_data.kind != "folder" or self.cfg.resolution != 256:
            warnings.append("not evaluated on ImageNet 256x256 (Table 5's protocol)")
        lpips_random = self.cfg.training.get("loss", {}).get("lpips_random_backbone_seed") is not None
        if lpips_random:
            warnings.append("random LPIPS trunk in the perceptual loss")
        return {
            "preset": self.cfg.preset, "recipes": rows, "recipe_order": list(rows),  # (JSON sorts the keys)
            "frechet": self.cfg.frechet,
            "paper_table": {rows[r]["label"]: {"discrete_rFID": rows[r]["discrete_rFID"], "rFID": rows[r]["rFID"]}
                            for r in rows},
            "is_paper_metric": not warnings, "warnings": warnings,
        }

    def render(self, summary: Mapping[str, Any]) -> str:
        from dcar_training.suite_support import MINI_NOTE
        from harness.markdown_table import markdown_table
        from harness.report.paper_tables import paper_cells

        res = summary.get("results", summary)
        paper = paper_cells().get(PAPER_TABLE, {})
        out = ["### Tokenizer training strategies (Table 5)\n"]
        if res.get("preset") == "mini":
            out.append(MINI_NOTE + "\n")
        for w in res.get("warnings") or []:
            out.append(f"- {w}")
        out.append("")
        body = []
        recipes = res.get("recipes", {})
        for r in (recipes[k] for k in res.get("recipe_order", recipes) if k in recipes):
            p = paper.get(r["label"], {})
            steps = " + ".join(f"{s['steps']} ({s['stage']})" for s in r["stages"])
            body.append([r["label"], _f(r["discrete_rFID"]), p.get("discrete_rFID"), _f(r["rFID"]), p.get("rFID"),
                         _f(r["psnr_discrete"]), _f(r["psnr_continuous"]), steps, f"{r['device_hours']:.4f}",
                         r["device"]])
        out.append(markdown_table(["Strategy", "Discrete-rFID↓ (ours)", "paper", "rFID↓ (ours)", "paper",
                                   "PSNR discrete", "PSNR continuous", "steps per stage", "device-hours", "device"],
                                  body))
        return "\n".join(out) + "\n"


def _f(v: Any) -> str | None:
    return None if v is None else f"{float(v):.2f}"
