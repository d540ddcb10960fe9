"""Class-conditional ImageNet-256 gFID and Inception Score, as MAR evaluates (the protocol behind DC-AR Fig. 11).

Each item is one (class, index) sample: the adapter draws it from the item's own seed, the uint8 picture is
saved as ``artifacts/images/<index:05d>.png`` (MAR's file names: the folder is what MAR's evaluation hands
to torch-fidelity), and its torch-fidelity Inception pool3 features and ``logits_unbiased`` are saved as
``artifacts/inception/<index:05d>.npz``. Aggregation reads only those files: the Fréchet distance of the
features' float64 mean/covariance to the user's ADM/MAR reference ``mu``/``sigma`` (read by
:mod:`harness.data.adm_stats`) and torch-fidelity's Inception Score of the logits (10 splits).

Why features per item instead of one torch-fidelity call over the folder at the end: records must not depend
on batch composition, and a run killed at any point resumes without recomputing a single image; the number
is the same (the tests compare it with torch-fidelity over the saved PNGs). Why not ``calculate_metrics``
itself at aggregation: the ``fid_statistics_file`` argument MAR uses exists only in LTH14's fork of
torch-fidelity, and aggregation must not need a GPU or the Inception weights.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Literal, Mapping, Sequence

import numpy as np

from harness.api import Adapter, DataError, MetricSpec, Requirement, RunContext, Suite, WorkItem
from harness.io import bytes_sha256, canonical_json, npz_bytes
from harness.runner.config import ConfigError, fill_dataclass, suite_yaml

NUM_CLASSES = 1000
PROTOCOL_IMAGES_PER_CLASS = 50
ISC_RNG_SEED = 2020  # torch-fidelity's default rng_seed, used to shuffle before the ISC splits
EXTRACTOR_KEY = "extractor_json"
SUBSET_LABEL = "not the 50k protocol"
REFERENCE_ENV = "DCAR_IMAGENET256_FID_STATS"


def reference_requirement() -> Requirement:
    """The user's reference statistics (for ``doctor`` and the missing-file error)."""
    from harness.data.adm_stats import HOW_TO_GET

    return Requirement(
        name="ImageNet 256x256 gFID reference statistics",
        description=f"mu/sigma of FID-Inception pool3 over ImageNet train images: {HOW_TO_GET}",
        env_var=REFERENCE_ENV, config_key="reference.stats_path",
        default_paths=("fid_stats/adm_in256_stats.npz",))


# --------------------------------------------------------------------------- typed config (suites/imagenet_gfid.yaml)


@dataclass(frozen=True)
class InceptionConfig:
    weights_path: str | None
    random_init_seed: int | None
    batch_size: int

    def __post_init__(self) -> None:
        if self.weights_path and self.random_init_seed is not None:
            raise ValueError("metrics.inception: give weights_path or random_init_seed, not both. "
                             "Fix: --set metrics.inception.random_init_seed=null")
        if self.batch_size < 1:
            raise ValueError(f"metrics.inception.batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class MetricsConfig:
    device: str
    inception: InceptionConfig
    frechet: Literal["sqrtm", "eigh"]
    isc_splits: int

    def __post_init__(self) -> None:
        if self.isc_splits < 1:
            raise ValueError(f"metrics.isc_splits must be >= 1, got {self.isc_splits}. Fix: --set metrics.isc_splits=10")


@dataclass(frozen=True)
class ReferenceConfig:
    stats_path: str | None


@dataclass(frozen=True)
class GFIDConfig:
    """The whole suite config; every default lives in ``suites/imagenet_gfid.yaml``."""

    classes: str | list[int] | int
    images_per_class: int
    generate: dict[str, Any]
    save_images: bool
    metrics: MetricsConfig
    reference: ReferenceConfig
    protocol: dict[str, Any]

    def __post_init__(self) -> None:
        if self.images_per_class < 1:
            raise ValueError(f"images_per_class must be >= 1, got {self.images_per_class}. "
                             f"Fix: --set images_per_class={PROTOCOL_IMAGES_PER_CLASS}")
        parse_classes(self.classes)


def parse_classes(value: str | list[int] | int) -> list[int]:
    """``"A:B"`` -> [A, ..., B-1]; a list is sorted (the PNG names then sort in plan order, as torch-fidelity reads
    the folder, so its Inception Score shuffle sees the same order); every id must be a class of ImageNet-1k."""
    if isinstance(value, bool) or isinstance(value, int):
        raise ValueError(f"classes = {value!r}: write a range as a quoted string, --set 'classes=\"10:20\"' "
                         f"(YAML reads 10:20 unquoted as the base-60 number 620), or a list [3, 7]")
    if isinstance(value, str):
        start, sep, stop = value.partition(":")
        try:
            ids = list(range(int(start), int(stop))) if sep else [int(value)]
        except ValueError:
            raise ValueError(f"classes = {value!r}: expected 'A:B' (classes A..B-1) or a list of class ids. "
                             f"Fix: --set classes=0:1000") from None
    else:
        ids = [int(c) for c in value]
    ids = sorted(ids)
    if not ids:
        raise ValueError(f"classes = {value!r} selects no class. Fix: --set classes=0:1000")
    bad = [c for c in ids if not 0 <= c < NUM_CLASSES]
    if bad or len(set(ids)) != len(ids):
        what = f"ids outside 0..{NUM_CLASSES - 1}: {bad[:3]}" if bad else "repeated class ids"
        raise ValueError(f"classes = {value!r} has {what}. Fix: --set classes=0:1000")
    return ids


# --------------------------------------------------------------------------- the suite


class ImageNetGFIDSuite(Suite):
    name = "imagenet_gfid"
    adapter_kind = "class_to_image"
    metrics = (
        MetricSpec("gFID", "lower", {"features": "torch-fidelity inception-v3-compat pool3 (2048)",
                                     "reference": "user ADM/MAR mu/sigma npz", "covariance": "float64, N-1"},
                   reference="torch-fidelity 0.4.0 fid_statistics_to_metric over the saved PNGs (LTH14 fork: "
                             "calculate_metrics(fid_statistics_file=...))"),
        MetricSpec("IS", "higher", {"features": "logits_unbiased (1008)", "splits": 10, "shuffle_seed": ISC_RNG_SEED},
                   reference="torch-fidelity 0.4.0 calculate_metrics(isc=True) over the saved PNGs"),
    )
    libraries = ("torch-fidelity", "scipy", "pillow")
    aggregate_keys: ClassVar[tuple[str, ...]] = ("reference.stats_path", "metrics.frechet", "metrics.isc_splits")

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        self.cfg = self.typed_config(config)
        self._extractor = None

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return suite_yaml(__file__)

    @classmethod
    def typed_config(cls, config: Mapping[str, Any] | None = None) -> GFIDConfig:
        merged = {**cls.default_config(), **dict(config or {})}
        return fill_dataclass(GFIDConfig, merged, source="suite imagenet_gfid", ignore=("model", "seed", "batch_size"))

    @classmethod
    def requirements(cls, config: Mapping[str, Any] | None = None) -> list[Requirement]:
        from harness.metrics.inception import fid_inception_requirement

        cfg = cls.typed_config(config)
        reqs = [reference_requirement()]
        if cfg.metrics.inception.random_init_seed is None:
            reqs.append(fid_inception_requirement())
        return reqs

    def protocol(self) -> dict[str, Any]:
        return dict(self.cfg.protocol)

    def classes(self) -> list[int]:
        return parse_classes(self.cfg.classes)

    def is_full_protocol(self, num_items: int) -> bool:
        return num_items == NUM_CLASSES * PROTOCOL_IMAGES_PER_CLASS and self.classes() == list(range(NUM_CLASSES))

    # ------------------------------------------------------------------ plan and validate

    def plan(self) -> list[WorkItem]:
        """Class-major, as MAR (``np.arange(1000).repeat(50)``): item ``c*per_class + j`` is the j-th image of class c."""
        n = self.cfg.images_per_class
        return [WorkItem(id=f"class{c:04d}/{j:03d}", payload={"class_id": c, "index": c * n + j})
                for c in self.classes() for j in range(n)]

    def validate(self, items: Sequence[WorkItem]) -> None:
        """Enough images for a covariance and the ISC splits, the Inception weights and the reference file."""
        need = max(2, self.cfg.metrics.isc_splits)
        if len(items) < need:
            raise ConfigError(f"imagenet_gfid: {len(items)} image(s) planned, but gFID needs at least 2 and the "
                              f"Inception Score {self.cfg.metrics.isc_splits} (one per split). Fix: --set "
                              f"images_per_class={-(-need // max(1, len(self.classes())))} (or more classes)")
        if self.cfg.metrics.inception.random_init_seed is None:
            from harness.metrics.inception import resolve_weights_path

            resolve_weights_path(self.cfg.metrics.inception.weights_path)
        self.reference(check_sigma=False)

    def reference_path(self):
        from harness.resources import locate

        return locate(reference_requirement(), self.cfg.reference.stats_path)

    def reference(self, *, check_sigma: bool = True):
        from harness.data.adm_stats import read_reference_stats

        return read_reference_stats(self.reference_path(), check_sigma=check_sigma)

    # ------------------------------------------------------------------ run

    def extractor(self):
        if self._extractor is None:
            from harness.metrics.inception import InceptionFeatureExtractor

            icfg = self.cfg.metrics.inception
            self._extractor = InceptionFeatureExtractor(
                icfg.weights_path, random_init_seed=icfg.random_init_seed, resize="bilinear_tf1x",
                batch_size=icfg.batch_size, device=self.cfg.metrics.device, logits=True)
        return self._extractor

    def run_batch(self, items: Sequence[WorkItem], adapter: Adapter | None, ctx: RunContext) -> list[dict[str, Any]]:
        from harness.images import check_batch, to_uint8
        from harness.io import png_bytes

        if adapter is None:
            raise ConfigError("imagenet_gfid needs a class_to_image adapter: --model dummy-c2i (or a MAR adapter)")
        class_ids = [int(it.payload["class_id"]) for it in items]
        seeds = [ctx.item_seed(it.id) for it in items]
        images = check_batch(adapter.generate(class_ids, seeds, **self.cfg.generate), name="imagenet_gfid: adapter output")
        if images.shape[0] != len(items):
            raise DataError(f"imagenet_gfid: the adapter returned {images.shape[0]} images for {len(items)} class ids")
        u8 = to_uint8(images)
        extractor = self.extractor()
        pool, logits = extractor.features_and_logits(u8)
        finite = np.isfinite(pool).all(axis=1) & np.isfinite(logits).all(axis=1)
        if not finite.all():
            raise DataError(f"Inception features of item {items[int(np.flatnonzero(~finite)[0])].id} hold NaN or Inf; "
                            f"the Inception weights are broken")
        described = np.asarray(canonical_json(extractor.describe()))
        models = {"inception": extractor.weights_id, "inception_real": bool(extractor.real_weights)}
        records = []
        for j, it in enumerate(items):
            index = int(it.payload["index"])
            arr = u8[j].permute(1, 2, 0).contiguous().numpy()
            rec: dict[str, Any] = {"class_id": class_ids[j], "index": index, "image_sha256": bytes_sha256(arr.tobytes()),
                                   "models": models}
            if self.cfg.save_images:
                rec["image"] = f"images/{index:05d}.png"
                rec["png_sha256"] = ctx.write_artifact(rec["image"], png_bytes(arr), item_id=it.id)
            rec["features"] = f"inception/{index:05d}.npz"
            rec["features_sha256"] = ctx.write_artifact(
                rec["features"], npz_bytes(pool=pool[j].astype(np.float32), logits=logits[j].astype(np.float32),
                                           **{EXTRACTOR_KEY: described}), item_id=it.id)
            records.append(rec)
        return records

    # ------------------------------------------------------------------ aggregate (files only)

    def _read_features(self, records: Sequence[Mapping[str, Any]], ctx: RunContext):
        """(pool3 statistics, (N, 1008) float32 logits, the extractor's description), checking every artifact.

        Pool features are merged into float64 statistics in chunks, so 50,000 items never hold an (N, 2048)
        float64 array; the logits are kept (the Inception Score needs them all, in plan order).
        """
        from harness.metrics.fid import FeatureStats

        stats, pending, logits, first = None, [], [], None
        for rec in ctx.progress(records, desc="imagenet_gfid: reading features", unit="item"):
            blob = ctx.read_artifact(rec["features"], rec["features_sha256"], item_id=rec.get("item_id"))
            with np.load(io.BytesIO(blob), allow_pickle=False) as data:
                pending.append(data["pool"].astype(np.float64))
                logits.append(data["logits"])
                described = json.loads(str(data[EXTRACTOR_KEY]))
            if len(pending) >= 1024:
                stats = (stats or FeatureStats(pending[0].shape[0])).update(np.stack(pending))
                pending.clear()
            if first is None:
                first = described
            elif described != first:
                raise DataError(f"item {rec.get('item_id')}'s features were made by another Inception than item "
                                f"{records[0].get('item_id')}'s; one run must use one extractor: rerun into a new --out")
        if pending:
            stats = (stats or FeatureStats(pending[0].shape[0])).update(np.stack(pending))
        return stats, np.stack(logits), first or {}

    def aggregate(self, records: Iterable[Mapping[str, Any]], ctx: RunContext) -> dict[str, Any]:
        import torch
        from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

        from harness.io import file_sha256
        from harness.metrics.fid import FID, frechet_distance

        records = list(records)
        if len(records) < max(2, self.cfg.metrics.isc_splits):
            raise ConfigError(f"imagenet_gfid: {len(records)} images cannot give a covariance and "
                              f"{self.cfg.metrics.isc_splits} Inception Score splits. Fix: --set "
                              f"metrics.isc_splits={max(1, min(10, len(records)))}")
        gen, logits, extractor = self._read_features(records, ctx)
        ref = self.reference()
        method = self.cfg.metrics.frechet
        fid, info = frechet_distance(gen.mean, gen.cov, ref.mu, ref.sigma, method=method)
        isc = isc_features_to_metric(torch.from_numpy(logits.astype(np.float32)), splits=self.cfg.metrics.isc_splits, shuffle=True,
                                     rng_seed=ISC_RNG_SEED)
        full = self.is_full_protocol(len(records))
        models = records[0].get("models") or {}
        inception_real = bool(models.get("inception_real"))
        adapter_real = bool(ctx.manifest.real_weights) if ctx.manifest else False
        warnings = []
        if not full:
            warnings.append(f"{len(records)} images of {len(self.classes())} class(es) x {self.cfg.images_per_class}: "
                            f"{SUBSET_LABEL} (50 per class for all 1000 classes); numbers are NOT the paper's metric")
        if not inception_real:
            warnings.append("Inception weights are random: numbers are NOT the paper's metric")
        if not adapter_real:
            warnings.append(ctx.manifest.not_real_weights_warning("generator") if ctx.manifest is not None else
                            "generator weights are random/dummy: numbers are NOT the paper's metric")
        classes = self.classes()
        return {
            "fid": float(fid),
            "inception_score": {"mean": float(isc[KEY_METRIC_ISC_MEAN]), "std": float(isc[KEY_METRIC_ISC_STD]),
                                "splits": self.cfg.metrics.isc_splits},
            "num_images": len(records),
            "classes": {"first": classes[0], "last": classes[-1], "count": len(classes)},
            "images_per_class": self.cfg.images_per_class,
            "protocol_label": "50k protocol (1000 classes x 50)" if full else SUBSET_LABEL,
            "reference_stats": {"path": ref.path, "format": ref.format, "sha256": file_sha256(ref.path)},
            "frechet": {**FID(method).spec.to_dict(), "eps_retry": bool(info["eps_retry"])},
            "extractor": extractor,
            "weights": {"inception": models.get("inception"), "inception_real": inception_real,
                        "adapter": ctx.manifest.adapter if ctx.manifest else None, "adapter_real": adapter_real},
            "images_dir": "artifacts/images" if self.cfg.save_images else None,
            "is_paper_metric": bool(full and inception_real and adapter_real),
            "warnings": warnings,
        }

    def render(self, summary: Mapping[str, Any]) -> str:
        from harness.markdown_table import markdown_table

        isc = summary.get("inception_score") or {}
        cls = summary.get("classes") or {}
        rows = [
            ("gFID (lower is better)", f"{summary['fid']:.4f}"),
            ("Inception Score", f"{isc.get('mean', float('nan')):.4f} ± {isc.get('std', float('nan')):.4f} "
                                f"({isc.get('splits')} splits)"),
            ("images", f"{summary['num_images']:,} ({cls.get('count')} classes {cls.get('first')}..{cls.get('last')} "
                       f"x {summary.get('images_per_class')})"),
            ("protocol", summary.get("protocol_label", "")),
            ("reference statistics", f"`{summary['reference_stats']['path']}` ({summary['reference_stats']['format']})"),
        ]
        text = "Class-conditional ImageNet 256×256 generation, evaluated as MAR does (torch-fidelity Inception).\n\n"
        text += markdown_table(("quantity", "value"), rows)
        if summary.get("warnings"):
            text += "\n" + "\n".join(f"- ⚠ {w}" for w in summary["warnings"]) + "\n"
        return text
