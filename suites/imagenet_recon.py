"""ImageNet-val reconstruction suite: DC-AR Table 1 and the rFID columns of Tables 4 and 5.

For each image: ADM centre crop -> tokenizer reconstruction through every path (continuous,
discrete) -> per-image PSNR / SSIM / LPIPS as records, and Inception pool3 features of the real
crop and of each reconstruction as a run artifact. Aggregation reads only those files: it
averages the per-image metrics and computes rFID of each path against reference statistics of
the same cropped real images (cached by content hash, or a stats file of the same protocol).
Why features are artifacts, not statistics per batch: records must not depend on batch
composition, and any subset/shard/resume then gives exactly the same statistics.

Results made with random Inception, LPIPS or tokenizer weights, or on the scikit-image sample
pictures (``dataset.kind: skimage_samples``, for the smoke run), are labelled as such and never
presented as the paper's metric.
"""
from __future__ import annotations

import hashlib
import io
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from harness.api import Adapter, MetricSpec, Requirement, Suite, WorkItem
from harness.io import npz_bytes
from harness.runner.config import suite_yaml

#: scikit-image pictures bundled with the package (no download); several are not RGB on purpose
SKIMAGE_SAMPLES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry", "colorwheel",
                   "logo", "coins", "page", "cat", "hubble_deep_field")
SMOKE_LABEL = "scikit-image sample pictures (NOT ImageNet; smoke test only)"


def _skimage_picture(name: str):
    """A scikit-image sample as an RGB PIL image (grayscale and RGBA ones go through the same conversion)."""
    import skimage.data
    from PIL import Image

    from harness.data.image_io import to_rgb

    if name not in SKIMAGE_SAMPLES:
        raise ValueError(f"unknown scikit-image sample {name!r}; known: {', '.join(SKIMAGE_SAMPLES)}")
    arr = np.asarray(getattr(skimage.data, name)())
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    return to_rgb(Image.fromarray(arr))



def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


class ImageNetReconSuite(Suite):
    name = "imagenet_recon"
    adapter_kind = "image_tokenizer"
    metrics = (
        MetricSpec("rFID", "lower", {"reference": "same ADM-cropped real images", "features": "FID-Inception pool3"},
                   reference="torch-fidelity / clean-fid Fréchet distance on the same features"),
        MetricSpec("PSNR", "higher", {"data_range": 255, "reduction": "mean of per-image"},
                   reference="skimage.metrics.peak_signal_noise_ratio"),
        MetricSpec("SSIM", "higher", {"window": "gaussian 11 sigma 1.5", "per_channel": True},
                   reference="torchmetrics 1.9.0 / skimage structural_similarity"),
        MetricSpec("LPIPS", "lower", {"net": "alex", "version": "0.1"}, reference="lpips 0.1.4"),
    )
    libraries = ("torch-fidelity", "clean-fid", "lpips", "scikit-image", "torchmetrics", "scipy", "pillow")

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        self._dataset = None
        self._extractor = None
        self._lpips = None

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return suite_yaml(__file__)

    @classmethod
    def requirements(cls, config: Mapping[str, Any] | None = None) -> list[Requirement]:
        from harness.data.imagenet import IMAGENET_VAL_REQUIREMENT
        from harness.metrics.inception import fid_inception_requirement
        from harness.metrics.recon import lpips_alexnet_requirement

        cfg = dict(config or {})
        data, metrics = dict(cfg.get("dataset") or {}), dict(cfg.get("metrics") or {})
        reqs = []
        if data.get("kind", "imagenet") == "imagenet":
            reqs.append(IMAGENET_VAL_REQUIREMENT)
        if (metrics.get("inception") or {}).get("random_init_seed") is None:
            reqs.append(fid_inception_requirement())
        if (metrics.get("lpips") or {}).get("random_backbone_seed") is None:
            reqs.append(lpips_alexnet_requirement())
        return reqs

    # ------------------------------------------------------------------ config helpers

    def _dcfg(self) -> dict[str, Any]:
        return dict(self.config.get("dataset") or {})

    def _mcfg(self) -> dict[str, Any]:
        return dict(self.config.get("metrics") or {})

    @property
    def resolution(self) -> int:
        res = int(self._dcfg().get("resolution", 256))
        if res < 16:
            raise ValueError(f"dataset.resolution must be >= 16, got {res}")
        return res

    @property
    def dataset_kind(self) -> str:
        kind = self._dcfg().get("kind", "imagenet")
        if kind not in ("imagenet", "skimage_samples"):
            raise ValueError(f"dataset.kind must be 'imagenet' or 'skimage_samples', got {kind!r}")
        return kind

    def dataset(self):
        if self._dataset is None:
            from harness.data.imagenet import ImageNetVal

            self._dataset = ImageNetVal.from_config(self._dcfg())
        return self._dataset

    def dataset_description(self) -> dict[str, Any]:
        if self.dataset_kind == "skimage_samples":
            return {"dataset": "skimage-samples", "label": SMOKE_LABEL, "crop": "adm_center_crop",
                    "resolution": self.resolution}
        return {"dataset": "imagenet-val", "label": f"ImageNet val {self.resolution}x{self.resolution}",
                "crop": "adm_center_crop", "resolution": self.resolution}

    def extractor(self):
        if self._extractor is None:
            from harness.metrics.inception import InceptionFeatureExtractor

            icfg = dict(self._mcfg().get("inception") or {})
            self._extractor = InceptionFeatureExtractor(
                icfg.get("weights_path"), random_init_seed=icfg.get("random_init_seed"),
                resize=icfg.get("resize", "bilinear_pytorch"), batch_size=int(icfg.get("batch_size", 50)),
                device=self._mcfg().get("device", "cpu"))
        return self._extractor

    def lpips(self):
        if self._lpips is None:
            from harness.metrics.recon import LPIPS

            lcfg = dict(self._mcfg().get("lpips") or {})
            self._lpips = LPIPS(lcfg.get("backbone_path"), random_backbone_seed=lcfg.get("random_backbone_seed"),
                                device=self._mcfg().get("device", "cpu"))
        return self._lpips

    def fid_protocol(self) -> dict[str, Any]:
        """Everything that determines rFID statistics; stored in stats files and checked on comparison."""
        return {**{k: v for k, v in self.dataset_description().items() if k != "label"},
                **self.extractor().describe()}

    def _paths(self, adapter: Adapter) -> list[str]:
        wanted = self.config.get("paths", "auto")
        have = list(getattr(adapter, "paths", ("continuous",)))
        if wanted in (None, "auto"):
            return have
        wanted = [wanted] if isinstance(wanted, str) else list(wanted)
        unknown = [p for p in wanted if p not in have]
        if unknown:
            raise ValueError(f"imagenet_recon: paths {unknown} are not supported by the adapter (it has {have})")
        return wanted

    # ------------------------------------------------------------------ plan / run

    def plan(self) -> list[WorkItem]:
        self.resolution  # noqa: B018 - validate early
        if self.dataset_kind == "skimage_samples":
            names = list(SKIMAGE_SAMPLES)
            limit = self._dcfg().get("limit")
            if limit is not None:
                names = names[: int(limit)]
            return [WorkItem(id=f"skimage/{n}", payload={"sample": n}) for n in names]
        return [WorkItem(id=i, payload={"file": i}) for i in self.dataset().ids()]

    def _load(self, item: WorkItem) -> np.ndarray:
        from harness.data.imagenet import adm_center_crop

        if "sample" in item.payload:
            return adm_center_crop(_skimage_picture(item.payload["sample"]), self.resolution)
        return self.dataset().load(item.payload["file"])

    def run_batch(self, items: Sequence[WorkItem], adapter: Adapter | None, ctx: Any) -> list[dict[str, Any]]:
        import torch

        from harness.data.image_io import CorruptImageError
        from harness.images import check_batch, to_float
        from harness.metrics.recon import psnr_per_image, ssim_per_image

        if adapter is None:
            raise ValueError("imagenet_recon needs an image_tokenizer adapter (--model dc-ht)")
        skip_corrupt = bool(self._dcfg().get("skip_corrupt", False))
        records: list[dict[str, Any] | None] = [None] * len(items)
        crops, keep = [], []
        for i, it in enumerate(items):
            try:
                crops.append(self._load(it))
                keep.append(i)
            except CorruptImageError as exc:
                if not skip_corrupt:
                    raise
                records[i] = {"skipped": True, "error": str(exc)}
        if crops:
            u8 = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
            images = to_float(u8)
            check_batch(images, name="imagenet_recon input", multiple_of=int(getattr(adapter, "downsample", 1)))
            extractor, lpips = self.extractor(), self.lpips()
            border = self._mcfg().get("ssim_border", "full")
            feats = {"real": extractor(u8)}
            per: dict[str, dict[str, np.ndarray]] = {}
            for path in self._paths(adapter):
                recon = adapter.reconstruct(images, path=path)
                check_batch(recon, name=f"reconstruction ({path})")
                if recon.shape != images.shape:
                    raise ValueError(f"adapter returned {tuple(recon.shape)} for input {tuple(images.shape)} ({path})")
                recon = recon.detach().float().cpu()
                per[path] = {"psnr": psnr_per_image(u8, recon), "ssim": ssim_per_image(u8, recon, border=border),
                             "lpips": lpips(u8, recon)}
                feats[path] = extractor(recon)
            for j, i in enumerate(keep):
                it = items[i]
                rel = f"inception/{it.id}.npz"
                sha = ctx.write_artifact(rel, npz_bytes(**{k: v[j].astype(np.float32) for k, v in feats.items()}))
                records[i] = {
                    "input_sha256": hashlib.sha256(crops[j].tobytes()).hexdigest(),
                    "psnr": {p: float(m["psnr"][j]) for p, m in per.items()},
                    "ssim": {p: float(m["ssim"][j]) for p, m in per.items()},
                    "lpips": {p: float(m["lpips"][j]) for p, m in per.items()},
                    "features": rel,
                    "features_sha256": sha,
                }
        return records  # type: ignore[return-value]

    # ------------------------------------------------------------------ aggregate

    def aggregate(self, records: Iterable[Mapping[str, Any]], ctx: Any) -> dict[str, Any]:
        from harness.metrics.fid import FID, KID, FeatureStats, cached_reference_stats, fid_from_stats
        from harness.metrics.recon import SSIM

        records = list(records)
        valid = [r for r in records if not r.get("skipped")]
        skipped = [r for r in records if r.get("skipped")]
        if not valid:
            raise ValueError(f"imagenet_recon: no evaluated images ({len(skipped)} skipped as corrupt)")
        paths = sorted(valid[0]["psnr"], key=lambda p: (p != "continuous", p))
        protocol = self.fid_protocol()
        kinds = ["real", *paths]
        stats: dict[str, FeatureStats] = {}
        want_kid = bool(self._mcfg().get("kid", False))
        kept: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
        pending: dict[str, list[np.ndarray]] = {k: [] for k in kinds}

        def flush() -> None:  # rank-1 updates per item would cost O(N d^2) Python calls; update in chunks
            for k, rows in pending.items():
                if rows:
                    chunk = np.stack(rows)
                    stats.setdefault(k, FeatureStats(chunk.shape[1], protocol)).update(chunk)
                    rows.clear()

        for rec in ctx.progress(valid, desc="imagenet_recon: reading features", unit="item"):
            blob = ctx.artifact_path(rec["features"]).read_bytes()
            if hashlib.sha256(blob).hexdigest() != rec["features_sha256"]:
                raise ValueError(f"artifact {rec['features']} does not match the sha256 in its record "
                                 f"(item {rec.get('item_id')}); the run directory was modified")
            with np.load(io.BytesIO(blob), allow_pickle=False) as data:
                for k in kinds:
                    if k not in data.files:
                        raise ValueError(f"artifact {rec['features']} lacks features for {k!r}")
                    f = data[k].astype(np.float64)
                    pending[k].append(f)
                    if want_kid:
                        kept[k].append(f[None])
            if len(pending["real"]) >= 1024:
                flush()
        flush()

        # reference statistics: a user-given stats file of the same protocol, or this run's real crops (cached)
        h = hashlib.sha256()
        for rec in valid:
            h.update(f"{rec.get('item_id')}\x1f{rec['input_sha256']}\n".encode())
        inputs_sha = h.hexdigest()
        stats_path = (self.config.get("reference") or {}).get("stats_path")
        if stats_path:
            ref = FeatureStats.load(stats_path, expected_protocol=protocol)
            ref_source = {"source": "file", "path": str(stats_path), "n": ref.n}
        else:
            ref, was_cached = cached_reference_stats(ctx.cache, inputs_sha, protocol, lambda: stats["real"])
            ref_source = {"source": "cache" if was_cached else "computed from this run's real crops (now cached)",
                          "inputs_sha256": inputs_sha, "n": ref.n}

        frechet = self._mcfg().get("frechet", "sqrtm")
        per_path: dict[str, dict[str, Any]] = {}
        for p in paths:
            psnr = [r["psnr"][p] for r in valid]
            finite = [v for v in psnr if math.isfinite(v)]
            row = {
                "rFID": fid_from_stats(ref, stats[p], method=frechet) if ref.n > 1 and stats[p].n > 1 else None,
                "PSNR": _mean(finite),
                "PSNR_identical_images": len(psnr) - len(finite),
                "SSIM": _mean([r["ssim"][p] for r in valid]),
                "LPIPS": _mean([r["lpips"][p] for r in valid]),
                "num_images": len(valid),
            }
            if want_kid and len(valid) > 1:
                kid = KID(subsets=100, subset_size=1000)
                row["KID"], row["KID_std"] = kid(np.concatenate(kept["real"]), np.concatenate(kept[p]))
            per_path[p] = row

        manifest = _read_manifest(ctx)
        info = manifest.get("adapter_info") or {}
        ex = self.extractor()
        lp = self._lpips_identity()
        from harness.data.imagenet import NUM_VAL_IMAGES

        planned_all = self.dataset_kind == "imagenet" and self._dcfg().get("limit") is None
        # IMAGENET_RECON.md A "Data": the metric is over all 50,000 val images (a partial folder or skips is not it)
        full_split = planned_all and len(valid) == NUM_VAL_IMAGES
        weights = {
            "inception": ex.weights_id, "inception_real": ex.real_weights,
            "lpips_backbone": lp[0], "lpips_real": lp[1],
            "adapter": manifest.get("adapter"), "adapter_real": bool(info.get("real_weights", False)),
        }
        is_paper_metric = full_split and weights["inception_real"] and weights["lpips_real"] and weights["adapter_real"]
        warnings = []
        if self.dataset_kind != "imagenet":
            warnings.append(f"dataset: {SMOKE_LABEL}")
        elif not planned_all:
            warnings.append(f"only {len(records)} ImageNet val images (evenly spaced, dataset.limit) were planned")
        elif not full_split:
            warnings.append(f"{len(valid)} ImageNet val images were evaluated, not all {NUM_VAL_IMAGES:,}: "
                            f"numbers are NOT the paper's metric")
        for key, what in (("inception_real", "Inception"), ("lpips_real", "LPIPS AlexNet"), ("adapter_real", "tokenizer")):
            if not weights[key]:
                warnings.append(f"{what} weights are random/dummy: numbers are NOT the paper's metric")
        if skipped:
            warnings.append(f"{len(skipped)} corrupt images were skipped (dataset.skip_corrupt)")
        return {
            "dataset": self.dataset_description(),
            "num_images": len(valid),
            "num_skipped": len(skipped),
            "skipped": [r.get("item_id") for r in skipped],
            "paths": per_path,
            "reference_stats": ref_source,
            "fid_protocol": protocol,
            "fid": FID(frechet).spec.to_dict(),
            "ssim": SSIM(self._mcfg().get("ssim_border", "full")).spec.to_dict(),
            "weights": weights,
            "is_paper_metric": bool(is_paper_metric),
            "warnings": warnings,
            "report": {"model_label": (self.config.get("report") or {}).get("model_label") or manifest.get("adapter")
                       or "ours", "tokens": (self.config.get("report") or {}).get("tokens"),
                       "golden": (self.config.get("report") or {}).get("golden")},
        }

    def _lpips_identity(self) -> tuple[str, bool]:
        lcfg = dict(self._mcfg().get("lpips") or {})
        seed = lcfg.get("random_backbone_seed")
        if seed is not None:
            return f"random-init:torch.manual_seed({int(seed)})", False
        return self.lpips().weights_id, True

    def render(self, summary: Mapping[str, Any]) -> str:
        from harness.report.tables import imagenet_recon_section

        return imagenet_recon_section(summary)


def _read_manifest(ctx: Any) -> dict[str, Any]:
    try:
        from harness.store import RunStore

        return RunStore(ctx.run_dir).read_manifest() or {}
    except Exception:  # noqa: BLE001 - a bare RunContext in tests has no manifest
        return {}
