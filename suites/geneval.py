"""GenEval (paper Table 3, and the GenEval column of Table 4) as two runner suites.

* ``geneval`` (:class:`GenEvalSuite`): the generate stage. Items are (prompt index,
  sample index) pairs of the official 553-prompt file; each item's seed is
  ``ctx.item_seed(item id)``; images go to ``<run>/artifacts/geneval/`` in the official
  folder layout (``00012/metadata.jsonl``, ``00012/samples/0003.png``), so the official
  scorer could read them too. Sharded and resumable by the runner.
* ``geneval_detect`` (:class:`GenEvalDetectSuite`): the detect + score stages over any
  GenEval folder (ours or another tool's). Items are the sanity-gate images, then one
  per PNG sample; each record is the image's compact detections (boxes, scores, RLE
  masks and CLIP colours where the prompt asks a colour). The aggregate applies the
  ported rules (:mod:`harness.metrics.geneval_rules`): gate first, then completeness,
  then per-tag accuracy and overall, rendered as Table 3 beside the paper's numbers.

``dcar-bench geneval run`` chains both (see :mod:`harness.geneval.cli`).
"""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from harness.io import png_bytes
from harness.api import Adapter, MetricSpec, Requirement, Suite, WorkItem
from harness.metrics.geneval_rules import GENEVAL_METRIC
from harness.runner.config import suite_yaml

IMAGES_SUBDIR = "geneval"  # under the generate run's artifacts/


def _select_prompts(spec: Any, n: int) -> list[int]:
    """``null`` = all; a list of indices; or ``"a:b"`` slice text."""
    if spec is None or spec == "all":
        return list(range(n))
    if isinstance(spec, str) and ":" in spec:
        a, _, b = spec.partition(":")
        return list(range(n))[slice(int(a) if a else None, int(b) if b else None)]
    idx = [int(i) for i in (spec if isinstance(spec, (list, tuple)) else [spec])]
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise ValueError(f"geneval: prompt indices {bad} are outside 0..{n - 1}")
    return idx



def _env_config() -> str | None:
    import os

    from harness.geneval.detector import DETECTOR_CONFIG

    return os.environ.get(DETECTOR_CONFIG.env_var or "") or None


class GenEvalSuite(Suite):
    """Generate the official GenEval folder with a text-to-image adapter."""

    name = "geneval"
    adapter_kind = "text_to_image"
    metrics = ()  # scoring happens in geneval_detect

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return suite_yaml(__file__)

    def plan(self) -> list[WorkItem]:
        from harness.data.geneval import load_prompts

        prompts = load_prompts()
        n = int(self.config.get("samples_per_prompt", 4))
        if n < 1:
            raise ValueError(f"geneval: samples_per_prompt must be >= 1, got {n}")
        items = []
        for p in _select_prompts(self.config.get("prompts"), len(prompts)):
            for s in range(n):
                items.append(WorkItem(id=f"{p:05d}/{s:04d}",
                                      payload={"prompt_index": p, "sample_index": s, "prompt": prompts[p]["prompt"]}))
        return items

    def run_batch(self, items: Sequence[WorkItem], adapter: Adapter | None, ctx: Any) -> list[dict[str, Any]]:
        from harness.data.geneval import METADATA_NAME, load_prompts, metadata_bytes, sample_relpath
        from harness.images import check_batch, to_uint8

        prompts = load_prompts()
        seeds = [ctx.item_seed(it.id) for it in items]
        images = check_batch(adapter.generate([it.payload["prompt"] for it in items], seeds,  # type: ignore[union-attr]
                                              **dict(self.config.get("generate") or {})), name="geneval: adapter output")
        if images.shape[0] != len(items):
            raise ValueError(f"geneval: adapter returned {images.shape[0]} images for {len(items)} prompts")
        u8 = to_uint8(images).permute(0, 2, 3, 1).contiguous().numpy()
        records = []
        for it, img in zip(items, u8):
            p, s = it.payload["prompt_index"], it.payload["sample_index"]
            meta = prompts[p]
            ctx.write_artifact(f"{IMAGES_SUBDIR}/{p:05d}/{METADATA_NAME}", metadata_bytes(meta))
            rel = sample_relpath(p, s)
            digest = ctx.write_artifact(f"{IMAGES_SUBDIR}/{rel}", png_bytes(img))
            records.append({"prompt_index": p, "sample_index": s, "tag": meta["tag"], "file": rel,
                            "image_sha256": digest, "height": int(img.shape[0]), "width": int(img.shape[1])})
        return records

    def aggregate(self, records: Iterable[Mapping[str, Any]], ctx: Any) -> dict[str, Any]:
        from harness.metrics.geneval_rules import TAGS, Expected

        records = list(records)
        per_tag = {t: sum(r["tag"] == t for r in records) for t in TAGS}
        folder = Path(ctx.run_dir) / "artifacts" / IMAGES_SUBDIR
        return {"images_dir": str(folder), "num_images": len(records), "images_per_tag": per_tag,
                "expected_images": Expected().total_images,  # the protocol's 553 x 4, whatever this run planned
                "samples_per_prompt": int(self.config.get("samples_per_prompt", 4)),
                "next": f"dcar-bench geneval detect --images {folder} --out <detect run dir>"}

    def render(self, summary: Mapping[str, Any]) -> str:
        counts = ", ".join(f"{t} {v}" for t, v in summary["images_per_tag"].items())
        partial = "" if summary["num_images"] >= summary["expected_images"] else " (a partial GenEval run)"
        return (f"GenEval images generated: {summary['num_images']} of {summary['expected_images']}{partial} "
                f"({counts}) in `{summary['images_dir']}` (official folder layout, PNG).\n\n"
                f"Scored by the `geneval_detect` suite: `{summary['next']}`.\n")


class GenEvalDetectSuite(Suite):
    """Detect objects (Mask2Former) and colours (CLIP) in a GenEval folder; aggregate = the GenEval score."""

    name = "geneval_detect"
    adapter_kind = None
    libraries = ("mmdet", "mmcv", "mmcv-lite", "mmengine", "open-clip-torch", "pycocotools")
    metrics: tuple[MetricSpec, ...] = (GENEVAL_METRIC,)

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        self._models: tuple[Any, Any] | None = None
        self._scan = None

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return suite_yaml(Path(__file__).with_name("geneval_detect.yaml"))

    @classmethod
    def requirements(cls, config: Mapping[str, Any] | None = None) -> list[Requirement]:
        from harness.geneval.color import CLIP_WEIGHTS
        from harness.geneval.detector import DETECTOR_CHECKPOINT

        return [DETECTOR_CHECKPOINT, CLIP_WEIGHTS]

    def protocol(self) -> dict[str, Any]:
        from harness.geneval.scoring import rules_from_config

        proto = dict(self.config.get("protocol", {}))
        proto["rules"] = rules_from_config(self.config).to_dict()
        return proto

    # ---------------------------------------------------------------- plan

    def scan(self):
        from harness.data.geneval import scan_folder

        if self._scan is None:
            images = self.config.get("images_dir")
            if not images:
                raise ValueError("geneval_detect needs images_dir: the GenEval folder to score "
                                 "(--set images_dir=/path, or `dcar-bench geneval detect --images /path`)")
            self._scan = scan_folder(images, strict_metadata=bool(self.config.get("strict_metadata", False)))
            for w in self._scan.warnings():
                print(f"geneval: warning: {w}", file=sys.stderr)
        return self._scan

    def plan(self) -> list[WorkItem]:
        from harness.geneval.gate import gate_item_ids
        from harness.metrics.geneval_rules import check_complete, summarize

        scan = self.scan()
        # refuse an incomplete folder before hours of detection, not after (same counts as the score)
        rows = [{"tag": pf.metadata["tag"], "prompt_index": pf.index, "correct": False}
                for pf in scan.prompts for _ in pf.samples]
        check_complete(summarize(rows), allow_partial=bool(self.config.get("allow_partial", False)))
        items = [WorkItem(id=i, payload={"gate": True}) for i in gate_item_ids()] if self.config.get("sanity_gate", True) else []
        for pf in scan.prompts:
            for path in pf.samples:
                rel = f"{path.parent.parent.name}/{path.parent.name}/{path.name}"
                items.append(WorkItem(id=f"img/{rel}", payload={"file": rel, "prompt_index": pf.index}))
        return items

    # ---------------------------------------------------------------- detect

    def models(self):
        """(detector, colour classifier), loaded once per process from the config's local paths."""
        if self._models is None:
            from harness import resources
            from harness.geneval.color import CLIP_WEIGHTS, load_color_classifier
            from harness.geneval.detector import DETECTOR_CHECKPOINT, load_detector

            cfg = self.config
            device = str(cfg.get("device", "cpu"))
            if device == "auto":  # CUDA only with compiled mmcv ops; the CPU path gives identical detections
                import torch

                from harness.geneval.mmcv_ops import mmcv_status

                device = "cuda" if torch.cuda.is_available() and mmcv_status().compiled_ops else "cpu"
                if device == "cpu" and torch.cuda.is_available():
                    print("geneval: a GPU is present but mmcv has no compiled ops: detecting on CPU "
                          "(see docs/geneval.md 'GPU install')", file=sys.stderr)
            if cfg.get("random_weights"):
                seed = int(cfg.get("random_init_seed", 0))
                det = load_detector(cfg.get("detector_config") or _env_config(), None, device=device, random_init_seed=seed)
                clf = load_color_classifier(None, model_name=str(cfg.get("clip_model", "ViT-L-14")), device=device,
                                            random_init_seed=seed)
            else:
                ckpt = resources.locate(DETECTOR_CHECKPOINT, cfg.get("detector_checkpoint"))
                clip = resources.locate(CLIP_WEIGHTS, cfg.get("clip_weights"))
                det = load_detector(cfg.get("detector_config") or _env_config(), ckpt, device=device)
                clf = load_color_classifier(clip, model_name=str(cfg.get("clip_model", "ViT-L-14")), device=device)
            self._models = (det, clf)
        return self._models

    def run_batch(self, items: Sequence[WorkItem], adapter: Adapter | None, ctx: Any) -> list[dict[str, Any]]:
        return [self._detect_one(it) for it in items]

    def _detect_one(self, item: WorkItem) -> dict[str, Any]:
        from PIL import Image, ImageOps

        from harness.data.geneval import load_class_names, load_prompts
        from harness.geneval.detector import detect
        from harness.geneval.gate import GATE_COLOR_CLASS, gate_color_image, gate_object_image, gate_object_metadata
        from harness.geneval.records import colour_targets, make_record

        det, clf = self.models()
        names = load_class_names()
        thr = float(self.config.get("record_threshold", 0.3))
        cap = int((self.config.get("rules") or {}).get("max_objects", 16))
        if item.payload.get("gate"):
            _, kind, name = item.id.split("/")
            if kind == "color":
                (color, probs), = clf.classify(gate_color_image(name), [((0, 0, 224, 224), None)], GATE_COLOR_CLASS)
                return {"gate": {"kind": "color", "expected": name}, "color": color, "color_probs": probs}
            arr = gate_object_image(name)
            meta = gate_object_metadata(name)
            raw = detect(det, [arr])[0]
            rec = make_record(raw, meta, names, record_threshold=thr, max_objects=cap)
            rec["gate"] = {"kind": "object", "expected": meta["include"][0]["class"]}
            rec["models"] = {"detector": det.info(), "color_classifier": clf.info()}
            return rec
        scan = self.scan()
        path = Path(scan.root) / item.payload["file"]
        folder = next(pf for pf in scan.prompts if pf.index == item.payload["prompt_index"])
        raw = detect(det, [path])[0]
        targets = colour_targets(raw, folder.metadata, names, record_threshold=thr, max_objects=cap)
        colors = {}
        if targets:
            image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
            by_class: dict[int, list[int]] = {}
            for c, i in targets:
                by_class.setdefault(c, []).append(i)
            for c, idx in by_class.items():
                preds = clf.classify(image, [(raw.boxes[c][i, :4], raw.masks[c][i]) for i in idx], names[c])
                colors.update({(c, i): p for i, p in zip(idx, preds)})
        rec = make_record(raw, folder.metadata, names, record_threshold=thr, max_objects=cap, colors=colors)
        rec.update({"file": item.payload["file"], "prompt_index": folder.index,
                    "shipped_metadata": folder.index < len(load_prompts()) and folder.metadata == load_prompts()[folder.index]})
        return rec

    # ---------------------------------------------------------------- score

    def model_info(self, records: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
        """What produced the detections and the images.

        Detector and CLIP: what the detecting process loaded (checkpoint path and sha256, versions),
        recorded with the gate items; else the config. Generator: the generate run's manifest.
        """
        cfg = self.config
        random = bool(cfg.get("random_weights"))
        info: dict[str, Any] = {
            "detector": {"real_weights": not random, "checkpoint": cfg.get("detector_checkpoint")},
            "color_classifier": {"real_weights": not random, "weights": cfg.get("clip_weights")},
        }
        loaded = next((r["models"] for r in records if r.get("gate") and r.get("models")), None)
        if loaded:
            info.update(loaded)
        images = Path(str(cfg.get("images_dir", "")))
        manifest = images.parent.parent / "manifest.json"  # <gen run>/artifacts/geneval
        if images.parent.name == "artifacts" and manifest.is_file():
            m = json.loads(manifest.read_text())
            ai = m.get("adapter_info") or {}
            info["generator"] = {"name": m.get("adapter"), "real_weights": bool(ai.get("real_weights")),
                                 "run_dir": str(images.parent.parent)}
        return info

    def aggregate(self, records: Iterable[Mapping[str, Any]], ctx: Any) -> dict[str, Any]:
        from harness.geneval.scoring import rules_from_config, score_records

        cfg = self.config
        records = list(records)
        summary = score_records(
            records,
            rules=rules_from_config(cfg),
            allow_partial=bool(cfg.get("allow_partial", False)),
            require_gate=bool(cfg.get("sanity_gate", True)) and not cfg.get("random_weights"),
            models=self.model_info(records),
        )
        summary["images_dir"] = str(cfg.get("images_dir"))
        summary["folder_warnings"] = self.scan().warnings()
        summary["per_image"] = [{k: r[k] for k in ("file", "tag", "correct", "reason")} for r in summary["per_image"]]
        return summary

    def render(self, summary: Mapping[str, Any]) -> str:
        from harness.geneval.scoring import render_table3

        gen = (summary.get("models") or {}).get("generator") or {}
        text = render_table3(summary, our_label=gen.get("name") or "ours")
        if summary.get("folder_warnings"):
            text += "\nFolder warnings:\n" + "\n".join(f"- {w}" for w in summary["folder_warnings"]) + "\n"
        return text
