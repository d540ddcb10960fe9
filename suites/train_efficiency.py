"""Training efficiency (DC-AR Table 6, Fig. 10): pre-train at 256 + fine-tune at 512 vs train at 512 from scratch.

One item per recipe. ``run_batch`` trains the recipe (``dcar_training.generator.train_generator``) into
``artifacts/train/<recipe>/`` (resumable from its stage checkpoints), then generates one image per evaluation
caption at the high resolution (per-item seeds shared by the recipes, so both models get the same captions and
noise) and stores Inception features of the generated and the real evaluation images. The record holds the
stage steps, the measured device-hours (optimizer steps only, summed over ranks) and the downsampled loss curve
of every stage. Aggregation computes gFID from the stored features and the Fig. 10 series (loss of the
high-resolution stage against its step, first ``fig10_steps``) from the records, so the report's ``fig10``
plot and Table 6 are filled from files only.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Literal, Mapping, Sequence

from harness.api import Adapter, MetricSpec, RunContext, Suite, WorkItem
from harness.runner.config import ConfigError, fill_dataclass, suite_yaml

PAPER_TABLE = "Table6_training_cost"


@dataclass(frozen=True)
class EfficiencyConfig:
    preset: Literal["paper", "mini", "custom"]
    device: str
    recipes: list[str]
    tokenizer: str | None
    text_encoder: str | None
    text_max_length: int
    train_data: Any
    eval_data: Any
    training: dict
    sampling: dict
    inception: Any
    frechet: Literal["sqrtm", "eigh"]
    fig10_steps: int


class TrainEfficiencySuite(Suite):
    name: ClassVar[str] = "train_efficiency"
    adapter_kind: ClassVar[str | None] = None
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("gFID", "lower", {"features": "FID-Inception pool3", "images": "one per evaluation caption"},
                   reference="harness.metrics.fid (checked against pytorch-fid / clean-fid)"),
        MetricSpec("device_hours", "lower", {"what": "optimizer steps, summed over ranks"}),
    )
    aggregate_keys: ClassVar[tuple[str, ...]] = ("frechet", "fig10_steps")

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        from dcar_training.suite_support import DataConfig, InceptionConfig

        c = dict(self.config)
        typed = {"train_data": fill_dataclass(DataConfig, c.get("train_data"), prefix="train_data."),
                 "eval_data": fill_dataclass(DataConfig, c.get("eval_data"), prefix="eval_data."),
                 "inception": fill_dataclass(InceptionConfig, c.get("inception"), prefix="inception.")}
        names = {f.name for f in dataclasses.fields(EfficiencyConfig)}
        self.cfg = EfficiencyConfig(**{k: v for k, v in c.items() if k in names and k not in typed}, **typed)

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return suite_yaml(__file__)

    @classmethod
    def requirements(cls, config: Mapping[str, Any] | None = None) -> list:
        """For ``doctor``: DC-HT and T5-base unless given or random/tiny, and the FID-Inception unless random."""
        import dataclasses as dc

        from baselines.dcar.tokenizer_adapter import DCHT_WEIGHTS
        from harness.api import Requirement
        from harness.metrics.inception import fid_inception_requirement

        c = dict(config if config is not None else cls.default_config())
        reqs = []
        if c.get("tokenizer") is None:
            reqs.append(dc.replace(DCHT_WEIGHTS, config_key="tokenizer"))
        if c.get("text_encoder") is None:
            reqs.append(Requirement(name="T5-base text encoder", env_var="DCAR_T5_PATH", config_key="text_encoder",
                                    hf_repo="google-t5/t5-base", must_contain=("model.safetensors", "pytorch_model.bin"),
                                    description="google-t5/t5-base; `huggingface-cli download google-t5/t5-base`"))
        if (c.get("inception") or {}).get("random_init_seed") is None:
            reqs.append(dc.replace(fid_inception_requirement(), config_key="inception.weights_path"))
        return reqs

    def train_config(self, recipe: str):
        from dcar_training.generator import GeneratorTrainConfig

        return fill_dataclass(GeneratorTrainConfig, {**self.cfg.training, "recipe": recipe}, prefix="training.")

    def sampling_options(self):
        from baselines.dcar.generator.sampler import SamplingOptions

        try:
            return SamplingOptions(**self.cfg.sampling)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"sampling: {exc}. Fix: --set sampling.num_steps=12 (keys: num_steps, cfg_scale, "
                              f"randomize_temperature, num_diffusion_steps, ...)") from None

    def subject(self) -> str | None:
        kind = "discrete-only DC-AR" if self.cfg.training.get("discrete_only") else "DC-AR"
        return f"{kind} trained by {len(self.cfg.recipes)} recipe(s) ({self.cfg.preset} preset)"

    def plan(self) -> list[WorkItem]:
        from dcar_training.generator import RECIPE_LABELS, RECIPES

        for r in self.cfg.recipes:
            if r not in RECIPES:
                raise ConfigError(f"recipes: unknown generator recipe {r!r}. Fix: choose from {', '.join(RECIPES)}")
        return [WorkItem(r, {"recipe": r, "label": RECIPE_LABELS[r]}) for r in self.cfg.recipes]

    def validate(self, items: Sequence[WorkItem]) -> None:
        from pathlib import Path

        from dcar_training.models import is_random, text_encoder_path, tokenizer_path
        from harness.api import MissingResourceError

        for it in items:
            self.train_config(it.id)
        self.sampling_options()
        for section in ("train_data", "eval_data"):
            d = getattr(self.cfg, section)
            if d.kind == "folder" and (not d.root or not Path(d.root).is_dir()):
                raise MissingResourceError(f"{section}.root {d.root!r} is not a folder of images (captions in .txt "
                                           f"files beside them). Fix: --set {section}.root=/path, or use the mini "
                                           f"preset (procedural captioned shapes)")
        if not is_random(self.cfg.tokenizer):
            p = tokenizer_path(self.cfg.tokenizer)
            if not p.exists():
                raise MissingResourceError(f"tokenizer {p} does not exist. Fix: --set tokenizer=DIR (a DC-HT "
                                           f"save_pretrained folder, e.g. a tokenizer_ablation run's "
                                           f"artifacts/train/three_stage/final) or tokenizer=random:0")
        if self.cfg.text_encoder != "tiny":
            p = text_encoder_path(self.cfg.text_encoder)
            if not p.exists():
                raise MissingResourceError(f"text_encoder {p} does not exist. Fix: --set text_encoder=DIR or tiny")
        if self.cfg.inception.random_init_seed is None:
            from harness.metrics.inception import resolve_weights_path

            resolve_weights_path(self.cfg.inception.weights_path)

    # ------------------------------------------------------------------ run

    def run_batch(self, items: Sequence[WorkItem], adapter: Adapter | None, ctx: RunContext) -> list[dict[str, Any]]:
        return [self._run_one(it, ctx) for it in items]

    def _run_one(self, item: WorkItem, ctx: RunContext) -> dict[str, Any]:
        import dataclasses as dc

        import torch

        from baselines.dcar.generator import DCAR
        from dcar_training.evaluate import generation_features
        from dcar_training.generator import train_generator
        from dcar_training.loop import device_name, read_loss_log
        from dcar_training.models import load_text_encoder, load_tokenizer, state_digest
        from dcar_training.suite_support import downsample_curve, resolve_device
        from harness.io import canonical_json, file_sha256, npz_bytes

        device = resolve_device(self.cfg.device)
        cfg = self.train_config(item.id)
        tokenizer = load_tokenizer(self.cfg.tokenizer)
        text = load_text_encoder(self.cfg.text_encoder, max_length=self.cfg.text_max_length,
                                 cache_dir=ctx.run_dir / "artifacts" / "text_encoder")
        datasets = {"low": self.cfg.train_data.build(cfg.low_resolution),
                    "high": self.cfg.train_data.build(cfg.high_resolution)}
        out = ctx.artifacts_dir / "train" / item.id
        ident = {"tokenizer": str(self.cfg.tokenizer), "text_encoder": str(self.cfg.text_encoder),
                 "tokenizer_state_sha256": state_digest(tokenizer)}  # a checkpoint of other weights is refused
        result = train_generator(cfg, datasets, tokenizer, text, out, device=device, identity=ident,
                                 progress=lambda it: ctx.progress(it, desc=f"train {item.id}", unit="step",
                                                                  leave=False))
        generator = DCAR.from_pretrained(out / "final", device=device)
        extractor = self.cfg.inception.extractor(device)
        eval_ds = self.cfg.eval_data.build(cfg.high_resolution)
        seeds = [ctx.item_seed(f"eval/{i}") for i in range(len(eval_ds))]  # the same for every recipe
        sampling = {f.name: getattr(self.sampling_options(), f.name) for f in dc.fields(self.sampling_options())}
        key = canonical_json([self.cfg.eval_data.__dict__, cfg.high_resolution, extractor.describe()])
        cache = self.__dict__.setdefault("_real_features", {})  # same images for every recipe: extract once
        feats = generation_features(generator, tokenizer, text, eval_ds, seeds, extractor,
                                    discrete_only=cfg.discrete_only, sampling=sampling, device=device,
                                    real_features=cache.get(key),
                                    progress=lambda it: ctx.progress(it, desc=f"generate {item.id}", leave=False))
        cache[key] = feats["real"]
        rel = f"features/{item.id}.npz"
        sha = ctx.write_artifact(rel, npz_bytes(**feats), item_id=item.id)
        stages = [{k: s[k] for k in ("stage", "resolution", "steps", "device_seconds")} for s in result["stages"]]
        curves = {f"{s['stage']}_{s['resolution']}": downsample_curve(read_loss_log(out / s["loss_log"]))
                  for s in result["stages"]}
        return {
            "item_id": item.id, "recipe": item.id, "label": item.payload["label"], "stages": stages,
            "device_seconds": result["device_seconds"], "device_hours": result["device_seconds"] / 3600.0,
            "device": device_name(torch.device(device)), "discrete_only": cfg.discrete_only,
            "num_eval_images": len(eval_ds), "features": {"path": rel, "sha256": sha},
            "extractor": extractor.describe(), "generator_sha256": file_sha256(out / "final" / "pytorch_model.bin"),
            "generator_dir": f"train/{item.id}/final", "loss_curves": curves, "high_resolution": cfg.high_resolution,
            "low_resolution": cfg.low_resolution, "train_dataset": datasets["high"].describe(),
        }

    # ------------------------------------------------------------------ aggregate

    def aggregate(self, records: Iterable[Mapping[str, Any]], ctx: RunContext) -> dict[str, Any]:
        from dcar_training.suite_support import fid, load_features

        rows: dict[str, dict[str, Any]] = {}
        series = []
        real_inception = True
        order = {r: i for i, r in enumerate(self.cfg.recipes)}
        for rec in sorted(records, key=lambda r: order.get(r["recipe"], len(order))):  # the config's order
            f = load_features(ctx, rec["features"], rec.get("item_id"))
            steps = " + ".join(f"{s['steps']} ({s['resolution']})" for s in rec["stages"])
            rows[rec["recipe"]] = {"label": rec["label"], "steps": steps,
                                   "total_steps": sum(s["steps"] for s in rec["stages"]),
                                   "device_hours": rec["device_hours"], "device": rec["device"],
                                   "gFID": fid(f["real"], f["generated"], self.cfg.frechet),
                                   "stages": rec["stages"], "num_eval_images": rec["num_eval_images"]}
            real_inception = real_inception and bool(rec["extractor"].get("real_weights"))
            last = rec["stages"][-1]
            curve = rec["loss_curves"][f"{last['stage']}_{last['resolution']}"]
            keep = [i for i, s in enumerate(curve["step"]) if s <= self.cfg.fig10_steps]
            what = (f"fine-tuned from {rec['low_resolution']}×{rec['low_resolution']}" if rec["recipe"] ==
                    "pretrain_finetune" else "from scratch")
            series.append({"label": f"{rec['high_resolution']}×{rec['high_resolution']} {what} (ours)",
                           "x": [curve["step"][i] for i in keep], "y": [curve["loss"][i] for i in keep]})
        speedup = None
        if "pretrain_finetune" in rows and "scratch" in rows and rows["pretrain_finetune"]["device_hours"] > 0:
            speedup = rows["scratch"]["device_hours"] / rows["pretrain_finetune"]["device_hours"]
        warnings = []
        if self.cfg.preset == "mini":
            warnings.append("miniature reproduction (mini preset): tiny DC-AR, toy data, a few hundred steps")
        if not real_inception:
            warnings.append("random-weight Inception: gFID values are not the paper's metric")
        if self.cfg.training.get("model_config") != "full":
            warnings.append(f"`{self.cfg.training.get('model_config')}` DC-AR, not the paper's model size")
        if str(self.cfg.tokenizer).startswith("random:") or self.cfg.text_encoder == "tiny":
            warnings.append("random tokenizer and/or tiny random T5")
        devices = sorted({r["device"] for r in rows.values()})
        return {
            "preset": self.cfg.preset, "recipes": rows, "recipe_order": list(rows),
            "speedup_device_hours": speedup, "devices": devices,
            "paper_table": {rows[r]["label"]: {"steps": rows[r]["total_steps"], "GPU_hours": rows[r]["device_hours"],
                                               "gFID": rows[r]["gFID"]} for r in rows},
            "figure_series": {"fig10": series}, "fig10_steps": self.cfg.fig10_steps,
            "is_paper_metric": not warnings, "warnings": warnings,
        }

    def render(self, summary: Mapping[str, Any]) -> str:
        from dcar_training.suite_support import MINI_NOTE
        from harness.markdown_table import markdown_table
        from harness.report.paper_tables import paper_cells

        res = summary.get("results", summary)
        paper = paper_cells().get(PAPER_TABLE, {})
        out = ["### Training efficiency (Table 6, Fig. 10)\n"]
        if res.get("preset") == "mini":
            out.append(MINI_NOTE + "\n")
        out += [f"- {w}" for w in res.get("warnings") or []]
        out.append("")
        body = []
        recipes = res.get("recipes", {})
        for r in (recipes[k] for k in res.get("recipe_order", recipes) if k in recipes):
            p = paper.get(r["label"], {})
            body.append([r["label"], r["steps"], p.get("steps"), f"{r['device_hours']:.4f}", p.get("GPU_hours"),
                         None if r["gFID"] is None else f"{r['gFID']:.2f}", p.get("gFID"), r["device"]])
        out.append(markdown_table(["Strategy", "steps (ours)", "paper", "device-hours (ours)", "paper GPU hours",
                                   "gFID↓ (ours)", "paper", "device"], body))
        if res.get("speedup_device_hours"):
            out.append(f"\nScratch ÷ pre-train+fine-tune device-hours: {res['speedup_device_hours']:.2f}× "
                       f"(the paper: 1440 ÷ 760 = 1.89×).")
        return "\n".join(out) + "\n"
