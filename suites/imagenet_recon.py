"""ImageNet-val reconstruction suite: DC-AR Table 1 and the rFID columns of Tables 4 and 5.

For each image: ADM centre crop -> tokenizer reconstruction through every path (continuous,
discrete) -> per-image PSNR / SSIM / LPIPS as records, and Inception pool3 features of the real
crop and of each reconstruction as a run artifact. Aggregation reads only those files: it
averages the per-image metrics and computes rFID of each path against reference statistics of
the same cropped real images (cached by content hash, or a stats file of the same protocol).
Why features are artifacts, not statistics per batch: records must not depend on batch
composition, and any subset/shard/resume then gives exactly the same statistics.

The first ``report.examples`` planned items also save their crop and each reconstruction as PNG
(``artifacts/examples/<item id>/``, sha256 in the record's ``examples``) so that a report can show
what was measured without the dataset or the tokenizer.

Why aggregation never builds a network or opens the dataset: a run must stay reportable after
ImageNet or the metric weights are gone (another machine, months later). So ``run_batch`` writes
everything aggregation needs: each record names the Inception and LPIPS weights it was made
with, and each feature file carries the extractor's self-description (the rFID protocol).

Results made with random Inception, LPIPS or tokenizer weights, on the scikit-image sample
pictures (``dataset.kind: skimage_samples``, for the smoke run) or on procedural pictures
(``dataset.kind: shapes``: ``dcar_training.data.ShapesDataset``, rendered at the resolution, for
the mini-trained tokenizer on a seed it was not trained on) are labelled as such and never
presented as the paper's metric.
"""
from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Literal, Mapping, Sequence

import numpy as np

from harness.api import (
    Adapter,
    DataError,
    MetricSpec,
    MissingResourceError,
    Requirement,
    RunContext,
    RunManifest,
    Suite,
    WorkItem,
)
from harness.io import bytes_sha256, canonical_json, npz_bytes
from harness.runner.config import ConfigError, fill_dataclass, suite_yaml

#: scikit-image pictures bundled with the package (no download); several are not RGB on purpose
SKIMAGE_SAMPLES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry", "colorwheel",
                   "logo", "coins", "page", "cat", "hubble_deep_field")
SMOKE_LABEL = "scikit-image sample pictures (NOT ImageNet; smoke test only)"
#: the seed the mini-trained models were trained on (``dcar_training.data.ShapesDataset(n, res, seed=0)``)
SHAPES_TRAINING_SEED = 0
#: a Fréchet distance needs two covariances, and a covariance (N-1 normalised) needs two samples
MIN_IMAGES = 2
SKIP_HINT = ("Fix: remove or replace the file, or rerun with --set dataset.skip_corrupt=true to record unreadable "
             "images as skipped (counted in the summary)")
#: key of the extractor's self-description inside each feature artifact (not a reconstruction path name)
EXTRACTOR_KEY = "extractor_json"


# --------------------------------------------------------------------------- typed config (suites/imagenet_recon.yaml)


@dataclass(frozen=True)
class DatasetConfig:
    """``dataset.*``: which pictures, at which resolution, and what to do with unreadable ones."""

    kind: Literal["imagenet", "skimage_samples", "shapes"]
    root: str | None
    labels_file: str | None
    resolution: int
    limit: int | None
    seed: int  # kind shapes only: ShapesDataset(limit, resolution, seed)
    skip_corrupt: bool

    def __post_init__(self) -> None:
        if self.resolution < 16:
            raise ValueError(f"dataset.resolution must be >= 16, got {self.resolution}. "
                             f"Fix: --set dataset.resolution=256")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"dataset.limit must be a positive number of images or null (all), got {self.limit}. "
                             f"Fix: --set dataset.limit={MIN_IMAGES}")
        if self.kind == "shapes" and self.limit is None:
            raise ValueError("dataset.limit is required with dataset.kind=shapes (the number of procedural "
                             "pictures to render; null means all, and there is no all of them). "
                             "Fix: --set dataset.limit=1000")


@dataclass(frozen=True)
class InceptionConfig:
    """``metrics.inception.*``: the FID-Inception that makes the rFID features."""

    weights_path: str | None
    random_init_seed: int | None
    resize: Literal["bilinear_pytorch", "bilinear_tf1x"]
    batch_size: int

    def __post_init__(self) -> None:
        if self.weights_path and self.random_init_seed is not None:
            raise ValueError("metrics.inception: give weights_path or random_init_seed, not both. "
                             "Fix: --set metrics.inception.random_init_seed=null")
        if self.batch_size < 1:
            raise ValueError(f"metrics.inception.batch_size must be >= 1, got {self.batch_size}. "
                             f"Fix: --set metrics.inception.batch_size=50")


@dataclass(frozen=True)
class LPIPSConfig:
    """``metrics.lpips.*``: the AlexNet trunk of LPIPS."""

    backbone_path: str | None
    random_backbone_seed: int | None

    def __post_init__(self) -> None:
        if self.backbone_path and self.random_backbone_seed is not None:
            raise ValueError("metrics.lpips: give backbone_path or random_backbone_seed, not both. "
                             "Fix: --set metrics.lpips.random_backbone_seed=null")


@dataclass(frozen=True)
class MetricsConfig:
    device: str
    inception: InceptionConfig
    lpips: LPIPSConfig
    ssim_border: Literal["full", "valid"]
    ssim_precision: Literal["float32", "float64"]
    frechet: Literal["sqrtm", "eigh"]
    kid: bool


@dataclass(frozen=True)
class ReferenceConfig:
    stats_path: str | None


@dataclass(frozen=True)
class ReportConfig:
    """``report.*``: labels of the Table-1 row (aggregate-only) and how many example images to save."""

    model_label: str | None
    tokens: int | None
    golden: str | None
    examples: int  # the first N planned items save input + reconstruction PNGs (changes their records)

    def __post_init__(self) -> None:
        if self.examples < 0:
            raise ValueError(f"report.examples must be >= 0 (0 = no example images), got {self.examples}. "
                             f"Fix: --set report.examples=8")


@dataclass(frozen=True)
class ReconConfig:
    """The whole suite config; every default lives in ``suites/imagenet_recon.yaml``."""

    dataset: DatasetConfig
    paths: str | list[str]  # "auto" = every path the adapter has, else path name(s)
    metrics: MetricsConfig
    reference: ReferenceConfig
    report: ReportConfig
    protocol: dict[str, Any]


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid onto ``base`` section by section (a partial config, e.g. doctor's, keeps the YAML's rest)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = (_deep_merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
                    else value)
    return out


def _explicit_path(value: str) -> Path:
    return Path(os.path.expandvars(value)).expanduser()


def _display_path(path: Path, run_dir: Path | None) -> str:
    """A path as the summary shows it: relative when it lies inside the run directory (runs stay relocatable)."""
    if run_dir is not None:
        try:
            return Path(os.path.abspath(path)).relative_to(os.path.abspath(run_dir)).as_posix()
        except ValueError:
            pass
    return str(path)


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


def _shapes_picture(seed: int, index: int, resolution: int) -> np.ndarray:
    """Procedural picture ``index`` of ``seed`` (``ShapesDataset``), uint8 (H, W, 3), already square at ``resolution``."""
    from dcar_training.data import ShapesDataset

    return ShapesDataset(index + 1, resolution, seed).image(index)


def shapes_label(seed: int) -> str:
    """The plain-words label of a ``dataset.kind: shapes`` run (summary, warnings, report)."""
    if seed == SHAPES_TRAINING_SEED:
        return f"procedural shapes (seed {seed}: the mini models' TRAINING seed, NOT held out), NOT ImageNet"
    return f"procedural shapes (held-out seed {seed}), NOT ImageNet"


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


# --------------------------------------------------------------------------- reading a run's files


@dataclass
class _Features:
    """What aggregation reads from the feature artifacts."""

    extractor: dict[str, Any]  # the extractor's describe() (identical for every item)
    stats: dict[str, Any]  # kind ("real" or a path) -> FeatureStats
    every: dict[str, np.ndarray] | None  # kind -> (N, D) features, only when KID needs them


def _load_feature_artifact(rec: Mapping[str, Any], ctx: RunContext, kinds: Sequence[str]):
    """One item's features by kind and its extractor description, after checking the record's sha256."""
    blob = ctx.read_artifact(rec["features"], rec["features_sha256"], item_id=rec.get("item_id"))
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        missing = [k for k in (*kinds, EXTRACTOR_KEY) if k not in data.files]
        if missing:
            raise DataError(f"artifact artifacts/{rec['features']} (item {rec.get('item_id')}) lacks {missing}")
        feats = {k: data[k].astype(np.float64) for k in kinds}
        extractor = json.loads(str(data[EXTRACTOR_KEY]))
    return feats, extractor


def read_features(valid: Sequence[Mapping[str, Any]], kinds: Sequence[str], base_protocol: Mapping[str, Any],
                  ctx: RunContext, *, keep_all: bool) -> _Features:
    """Streaming statistics of every kind's features (and the features themselves for KID).

    Rank-1 updates per item would cost O(N d^2) Python calls, so features are merged in chunks.
    The protocol of the statistics is ``base_protocol`` plus the extractor's description, which
    must be the same for every item (a changed Inception between resumes would mix two metrics).
    """
    from harness.metrics.fid import FeatureStats

    first: dict[str, Any] | None = None
    stats: dict[str, FeatureStats] = {}
    pending: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
    every: dict[str, list[np.ndarray]] = {k: [] for k in kinds}

    def flush() -> None:
        for k, rows in pending.items():
            if rows:
                chunk = np.stack(rows)
                stats.setdefault(k, FeatureStats(chunk.shape[1], {**base_protocol, **(first or {})})).update(chunk)
                rows.clear()

    for rec in ctx.progress(valid, desc="imagenet_recon: reading features", unit="item"):
        feats, extractor = _load_feature_artifact(rec, ctx, kinds)
        if first is None:
            first = extractor
        elif extractor != first:
            raise DataError(f"item {rec.get('item_id')}'s features were made by another Inception setup than item "
                            f"{valid[0].get('item_id')}'s ({canonical_json(extractor)} vs {canonical_json(first)}); "
                            f"one run must use one extractor: rerun into a new --out")
        for k in kinds:
            pending[k].append(feats[k])
            if keep_all:
                every[k].append(feats[k][None])
        if len(pending[kinds[0]]) >= 1024:
            flush()
    flush()
    return _Features(first or {}, stats, {k: np.concatenate(v) for k, v in every.items()} if keep_all else None)


def _inputs_digest(valid: Sequence[Mapping[str, Any]]) -> str:
    """sha256 over (item id, crop sha256) in plan order: what the cached reference statistics were made from."""
    return bytes_sha256("".join(f"{r.get('item_id')}\x1f{r['input_sha256']}\n" for r in valid).encode())


def _metric_models(valid: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The Inception/LPIPS identity every record states; all records must state the same one."""
    models = valid[0].get("models")
    if models is None:
        raise DataError(f"record of item {valid[0].get('item_id')} does not name the metric models ('models'); it "
                        f"was written by an older dcar-bench: rerun the suite into a new --out")
    for rec in valid:
        if rec.get("models") != models:
            raise DataError(f"items {valid[0].get('item_id')} and {rec.get('item_id')} were measured with different "
                            f"Inception/LPIPS weights ({models} vs {rec.get('models')}); rerun into a new --out")
    return dict(models)


def _open_reference_stats(path: Path, protocol: Mapping[str, Any]):
    """A user's statistics file of the run's protocol, or a one-line error naming the key and the fix."""
    from harness.metrics import fid

    if not path.is_file():
        raise MissingResourceError(f"reference.stats_path = {path}: no such file. "
                                   f"Fix: --set reference.stats_path=/path/to/stats.npz (or null to compute "
                                   f"them from this run's real crops)")
    try:
        return fid.FeatureStats.load(path, expected_protocol=protocol)
    except fid.ProtocolMismatchError:
        raise
    except (ValueError, OSError, KeyError) as exc:
        raise DataError(f"reference.stats_path = {path} is not a dcar-bench statistics file ({exc})") from None


# --------------------------------------------------------------------------- the suite


def _padded_call(fn, n: int, *batches):
    """``fn(*batches)`` on batches padded to ``n`` rows (copies of the last row), the padding dropped.

    Inception and LPIPS results move in the last float digits with the batch's GEMM shapes; padding
    every call (a short last batch, a resumed tail, skipped corrupt files) to the run's batch size
    keeps an item's features and LPIPS byte-identical however many items were left.
    """
    import torch

    b = batches[0].shape[0]
    if b >= n:
        return fn(*batches)
    padded = [torch.cat([x, x[-1:].expand(n - b, *x.shape[1:])]) for x in batches]
    return fn(*padded)[:b]


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
    libraries = ("torch-fidelity", "pytorch-fid", "clean-fid", "lpips", "scikit-image", "torchmetrics", "scipy", "pillow")
    #: keys that change no record, only the aggregate: `dcar-bench aggregate DIR --set KEY=...` may change them
    #: (not report.examples: it decides which items save example PNGs, so it is part of their records)
    aggregate_keys: ClassVar[tuple[str, ...]] = ("reference.stats_path", "metrics.frechet", "metrics.kid",
                                                 "report.model_label", "report.tokens", "report.golden")
    # skipping a corrupt file decides only what happens to items without a record: may change on resume
    resume_keys: ClassVar[tuple[str, ...]] = ("dataset.skip_corrupt",)

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        self.cfg = self.typed_config(config)
        self._dataset = None
        self._extractor = None
        self._lpips = None

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return suite_yaml(__file__)

    @classmethod
    def typed_config(cls, config: Mapping[str, Any] | None = None) -> ReconConfig:
        """``config`` (full, or partial like doctor's) over the YAML, as a type-checked :class:`ReconConfig`."""
        return fill_dataclass(ReconConfig, _deep_merge(cls.default_config(), config or {}),
                              source="suite imagenet_recon", ignore=("model", "seed", "batch_size"))

    @classmethod
    def requirements(cls, config: Mapping[str, Any] | None = None) -> list[Requirement]:
        from harness.data.imagenet import IMAGENET_VAL_REQUIREMENT
        from harness.metrics.inception import fid_inception_requirement
        from harness.metrics.recon import lpips_alexnet_requirement

        cfg = cls.typed_config(config)
        reqs = []
        if cfg.dataset.kind == "imagenet":
            reqs.append(IMAGENET_VAL_REQUIREMENT)
        if cfg.metrics.inception.random_init_seed is None:
            reqs.append(fid_inception_requirement())
        if cfg.metrics.lpips.random_backbone_seed is None:
            reqs.append(lpips_alexnet_requirement())
        return reqs

    def protocol(self) -> dict[str, Any]:
        return dict(self.cfg.protocol)

    # ------------------------------------------------------------------ data and metric models

    def dataset(self):
        if self._dataset is None:
            from harness.data.imagenet import ImageNetVal

            d = self.cfg.dataset
            self._dataset = ImageNetVal(d.root, resolution=d.resolution, labels_file=d.labels_file, limit=d.limit)
        return self._dataset

    def dataset_description(self) -> dict[str, Any]:
        """What the summary says about the data; from the config alone, so aggregation needs no dataset."""
        res = self.cfg.dataset.resolution
        if self.cfg.dataset.kind == "skimage_samples":
            return {"dataset": "skimage-samples", "label": SMOKE_LABEL, "crop": "adm_center_crop", "resolution": res}
        if self.cfg.dataset.kind == "shapes":
            return {"dataset": "procedural-shapes", "label": shapes_label(self.cfg.dataset.seed),
                    "crop": "none (rendered at resolution)", "resolution": res, "seed": self.cfg.dataset.seed}
        return {"dataset": "imagenet-val", "label": f"ImageNet val {res}x{res}", "crop": "adm_center_crop",
                "resolution": res}

    def dataset_protocol(self) -> dict[str, Any]:
        """The data part of the rFID protocol (the extractor adds its own description)."""
        return {k: v for k, v in self.dataset_description().items() if k != "label"}

    def extractor(self):
        if self._extractor is None:
            from harness.metrics.inception import InceptionFeatureExtractor

            icfg = self.cfg.metrics.inception
            self._extractor = InceptionFeatureExtractor(
                icfg.weights_path, random_init_seed=icfg.random_init_seed, resize=icfg.resize,
                batch_size=icfg.batch_size, device=self.cfg.metrics.device)
        return self._extractor

    def lpips(self):
        if self._lpips is None:
            from harness.metrics.recon import LPIPS

            lcfg = self.cfg.metrics.lpips
            self._lpips = LPIPS(lcfg.backbone_path, random_backbone_seed=lcfg.random_backbone_seed,
                                device=self.cfg.metrics.device)
        return self._lpips

    def fid_protocol(self) -> dict[str, Any]:
        """Everything that determines rFID statistics (builds the extractor; aggregation reads it from files)."""
        return {**self.dataset_protocol(), **self.extractor().describe()}

    def _paths(self, adapter: Adapter) -> list[str]:
        have = list(getattr(adapter, "paths", ("continuous",)))
        if self.cfg.paths == "auto":
            return have
        wanted = [self.cfg.paths] if isinstance(self.cfg.paths, str) else list(self.cfg.paths)
        unknown = [p for p in wanted if p not in have]
        if unknown:
            raise ConfigError(f"imagenet_recon: paths {unknown} are not supported by the adapter (it has {have}). "
                              f"Fix: --set paths=auto (every path the adapter has)")
        return wanted

    # ------------------------------------------------------------------ plan and validate

    def plan(self) -> list[WorkItem]:
        """Every image of the split (or the samples, or the procedural pictures), the first ``report.examples``
        marked to save PNGs.

        Why the mark lives in the payload: ``run_batch`` sees only its batch, not the item's place in
        the plan, and a shard, a resume or another batch size must save exactly the same examples.
        """
        self._check_explicit_paths()  # a mistyped dataset.root is named with its key before the folder is listed
        d = self.cfg.dataset
        if d.kind == "skimage_samples":
            names = SKIMAGE_SAMPLES[: d.limit] if d.limit is not None else SKIMAGE_SAMPLES
            items = [WorkItem(id=f"skimage/{n}", payload={"sample": n}) for n in names]
        elif d.kind == "shapes":  # rendered from (seed, index) in run_batch: no files
            items = [WorkItem(id=f"shapes/s{d.seed}/{i:05d}", payload={"shapes_seed": d.seed, "index": i})
                     for i in range(d.limit or 0)]  # a null limit is refused by DatasetConfig
        else:
            items = [WorkItem(id=i, payload={"file": i}) for i in self.dataset().ids()]
        shown = self.cfg.report.examples
        return [WorkItem(it.id, {**it.payload, "example": True}) for it in items[:shown]] + items[shown:]

    def validate(self, items: Sequence[WorkItem]) -> None:
        """Everything a run would otherwise find out after loading the tokenizer (or after the last image)."""
        self._check_sample_count(len(items), len(items))
        self._check_explicit_paths()
        self._check_metric_weights_exist()
        unreadable = self._unreadable_images(items)
        self._check_sample_count(len(items), len(items) - unreadable)
        self._check_reference_stats()

    def _check_sample_count(self, planned: int, usable: int) -> None:
        if usable >= MIN_IMAGES:
            return
        d = self.cfg.dataset
        if usable < planned:
            fix = (f"only {usable} of them are readable. Fix: replace the unreadable files or add readable ones "
                   f"under dataset.root")
        elif d.limit is not None and d.limit < MIN_IMAGES:
            fix = f"Fix: --set dataset.limit={MIN_IMAGES} (or more)"
        else:
            fix = f"Fix: --set dataset.root=DIR with at least {MIN_IMAGES} images"
        raise ConfigError(f"imagenet_recon: {planned} image(s) planned, but rFID needs at least {MIN_IMAGES} "
                          f"(need at least {MIN_IMAGES} samples for a covariance); {fix}")

    def _check_explicit_paths(self) -> None:
        """Every path the config names must exist (a typo would otherwise surface after the model loaded)."""
        d, m = self.cfg.dataset, self.cfg.metrics
        imagenet = d.kind == "imagenet"
        checks = [
            ("dataset.root", d.root if imagenet else None, "directory", "/path/to/imagenet/val"),
            ("dataset.labels_file", d.labels_file if imagenet else None, "file", "/path/to/LOC_val_solution.csv"),
            ("metrics.inception.weights_path", m.inception.weights_path, "file", "/path/to/pt_inception.pth"),
            ("metrics.lpips.backbone_path", m.lpips.backbone_path, "file", "/path/to/alexnet-owt-7be5be79.pth"),
            ("reference.stats_path", self.cfg.reference.stats_path, "file", "/path/to/stats.npz"),
        ]
        for key, value, what, example in checks:
            if not value:
                continue
            p = _explicit_path(value)
            ok = p.is_dir() if what == "directory" else p.is_file()
            if not ok:
                state = "is not a directory" if what == "directory" and p.exists() else f"no such {what}"
                raise MissingResourceError(f"{key} = {value}: {state}. Fix: --set {key}={example}")

    def _check_metric_weights_exist(self) -> None:
        """Inception and LPIPS weights are located (config, env var, torch hub) now, not after the tokenizer."""
        m = self.cfg.metrics
        if m.inception.random_init_seed is None:
            from harness.metrics.inception import resolve_weights_path

            resolve_weights_path(m.inception.weights_path)
        if m.lpips.random_backbone_seed is None:
            from harness.metrics.recon import resolve_alexnet_path

            resolve_alexnet_path(m.lpips.backbone_path)

    def _unreadable_images(self, items: Sequence[WorkItem]) -> int:
        """Count files that cannot be images (empty, unidentifiable header); refuse them unless skip_corrupt.

        Only headers are read (seconds for 50,000 files); a file truncated after its header is still
        found, and named, when its item runs.
        """
        if self.cfg.dataset.kind != "imagenet":
            return 0
        from harness.data.image_io import CorruptImageError, probe_image

        bad = []
        for it in items:
            path = self.dataset().path(it.payload["file"])
            reason = probe_image(path)
            if reason is not None:
                bad.append((path, reason))
        if bad and not self.cfg.dataset.skip_corrupt:
            more = f"{len(bad) - 1} more of the {len(items)} planned images are unreadable too. " if len(bad) > 1 else ""
            raise CorruptImageError(bad[0][0], bad[0][1], hint=more + SKIP_HINT)
        return len(bad)

    def _check_reference_stats(self) -> None:
        """A supplied statistics file must be of this run's protocol (checked again at aggregation).

        The protocol includes the Inception weights' identity, so this builds the Inception (a metric
        network of ~100 MB that the run needs anyway), never the tokenizer.
        """
        if not self.cfg.reference.stats_path:
            return
        from harness.metrics import fid

        path = _explicit_path(self.cfg.reference.stats_path)
        check = getattr(fid, "check_reference_stats", None)
        if check is not None:
            check(path, self.fid_protocol())
        else:
            _open_reference_stats(path, self.fid_protocol())

    # ------------------------------------------------------------------ run

    def _load(self, item: WorkItem) -> np.ndarray:
        from harness.data.imagenet import adm_center_crop

        if "sample" in item.payload:
            return adm_center_crop(_skimage_picture(item.payload["sample"]), self.cfg.dataset.resolution)
        if "shapes_seed" in item.payload:
            return _shapes_picture(int(item.payload["shapes_seed"]), int(item.payload["index"]),
                                   self.cfg.dataset.resolution)
        return self.dataset().load(item.payload["file"])

    def _load_or_skip(self, item: WorkItem) -> tuple[np.ndarray | None, dict[str, Any] | None]:
        """(crop, None), or (None, skipped record) for an unreadable file when ``dataset.skip_corrupt`` is on."""
        from harness.data.image_io import CorruptImageError

        try:
            return self._load(item), None
        except CorruptImageError as exc:
            if not self.cfg.dataset.skip_corrupt:
                raise CorruptImageError(exc.path, f"{exc.reason} (item {item.id})", hint=SKIP_HINT) from None
            return None, {"skipped": True, "error": exc.reason}

    def run_batch(self, items: Sequence[WorkItem], adapter: Adapter | None, ctx: RunContext) -> list[dict[str, Any]]:
        if adapter is None:
            raise ConfigError("imagenet_recon needs an image_tokenizer adapter: --model dc-ht")
        paths = self._paths(adapter)
        loaded = [self._load_or_skip(it) for it in items]
        records: list[dict[str, Any] | None] = [skip for _, skip in loaded]
        keep = [i for i, (crop, _) in enumerate(loaded) if crop is not None]
        if keep:
            crops = np.stack([loaded[i][0] for i in keep])
            measured = self._measure([items[i] for i in keep], crops, adapter, paths, ctx)
            for i, rec in zip(keep, measured):
                records[i] = rec
        return records  # type: ignore[return-value]

    def _measure(self, items: Sequence[WorkItem], crops: np.ndarray, adapter: Adapter, paths: Sequence[str],
                 ctx: RunContext) -> list[dict[str, Any]]:
        """Per-image metrics and the feature artifact of every item whose crop loaded."""
        import torch

        from harness.images import check_batch, to_float, to_uint8
        from harness.metrics.recon import psnr_per_image, ssim_per_image

        u8 = torch.from_numpy(crops).permute(0, 3, 1, 2).contiguous()
        images = to_float(u8)
        check_batch(images, name="imagenet_recon input", multiple_of=int(getattr(adapter, "downsample", 1)))
        extractor, lpips = self.extractor(), self.lpips()
        border, precision = self.cfg.metrics.ssim_border, self.cfg.metrics.ssim_precision
        n = max(ctx.batch_size, len(items))
        feats = {"real": _padded_call(extractor, n, u8)}
        per: dict[str, dict[str, np.ndarray]] = {}
        shown = [j for j, it in enumerate(items) if it.payload.get("example")]
        examples: dict[int, dict[str, Any]] = {j: {"input": self._save_example(ctx, items[j], "input", crops[j])}
                                               for j in shown}
        for path in paths:
            recon = self._reconstruct(adapter, images, path, items)
            per[path] = {"psnr": psnr_per_image(u8, recon),
                         "ssim": ssim_per_image(u8, recon, border=border, precision=precision),
                         "lpips": _padded_call(lpips, n, u8, recon)}
            feats[path] = _padded_call(extractor, n, recon)
            if shown:
                recon_u8 = to_uint8(recon[shown]).permute(0, 2, 3, 1).contiguous().numpy()
                for j, img in zip(shown, recon_u8):
                    examples[j][path] = self._save_example(ctx, items[j], path, img)
        _check_finite_features(feats, items)
        models = {"inception": extractor.weights_id, "inception_real": bool(extractor.real_weights),
                  "lpips": lpips.weights_id, "lpips_real": bool(lpips.real_weights)}
        described = np.asarray(canonical_json(extractor.describe()))
        records = []
        for j, it in enumerate(items):
            rel = f"inception/{it.id}.npz"
            arrays = {k: v[j].astype(np.float32) for k, v in feats.items()}
            sha = ctx.write_artifact(rel, npz_bytes(**arrays, **{EXTRACTOR_KEY: described}), item_id=it.id)
            rec = {
                "input_sha256": bytes_sha256(crops[j].tobytes()),
                "psnr": {p: float(m["psnr"][j]) for p, m in per.items()},
                "ssim": {p: float(m["ssim"][j]) for p, m in per.items()},
                "lpips": {p: float(m["lpips"][j]) for p, m in per.items()},
                "features": rel,
                "features_sha256": sha,
                "models": models,
            }
            if j in examples:
                rec["examples"] = examples[j]
            records.append(rec)
        return records

    @staticmethod
    def _save_example(ctx: RunContext, item: WorkItem, name: str, image_u8: np.ndarray) -> dict[str, str]:
        """``artifacts/examples/<item id>/<name>.png`` (the uint8 pixels every metric saw) and its sha256.

        Why PNG of the quantised pixels: the report's grid then shows exactly what PSNR/SSIM/LPIPS
        measured, and aggregation and reports stay file-only (no tokenizer is needed to show them).
        """
        from harness.io import png_bytes

        rel = f"examples/{item.id}/{name}.png"
        return {"file": rel, "sha256": ctx.write_artifact(rel, png_bytes(np.ascontiguousarray(image_u8)),
                                                         item_id=item.id)}

    @staticmethod
    def _reconstruct(adapter: Adapter, images, path: str, items: Sequence[WorkItem]):
        """The adapter's reconstruction, refused with the item's name if it is not finite."""
        import torch

        from harness.images import check_batch

        recon = adapter.reconstruct(images, path=path)
        if not torch.is_tensor(recon) or tuple(recon.shape) != tuple(images.shape):
            shape = tuple(recon.shape) if torch.is_tensor(recon) else type(recon).__name__
            raise ValueError(f"adapter returned {shape} for input {tuple(images.shape)} ({path})")
        finite = torch.isfinite(recon.detach().float()).flatten(1).all(dim=1)
        if not bool(finite.all()):
            bad = [items[i].id for i in torch.nonzero(~finite).flatten().tolist()]
            raise DataError(f"the tokenizer's {path!r} reconstruction of item {bad[0]} holds NaN or Inf values"
                            + (f" (and of {len(bad) - 1} more items of its batch)" if len(bad) > 1 else "")
                            + "; its weights or settings are broken")
        check_batch(recon, name=f"reconstruction ({path})")
        return recon.detach().float().cpu()

    # ------------------------------------------------------------------ aggregate (files only)

    def aggregate(self, records: Iterable[Mapping[str, Any]], ctx: RunContext) -> dict[str, Any]:
        from harness.metrics.fid import FID
        from harness.metrics.recon import SSIM

        records = list(records)
        valid = [r for r in records if not r.get("skipped")]
        skipped = [r for r in records if r.get("skipped")]
        if not valid:
            raise DataError(f"imagenet_recon: no evaluated images ({len(skipped)} skipped as corrupt)")
        paths = sorted(valid[0]["psnr"], key=lambda p: (p != "continuous", p))
        features = read_features(valid, ["real", *paths], self.dataset_protocol(), ctx,
                                 keep_all=self.cfg.metrics.kid)
        protocol = {**self.dataset_protocol(), **features.extractor}
        ref, ref_source = self._reference_stats(valid, protocol, features, ctx)
        weights = self._weights(valid, ctx.manifest)
        is_paper_metric, warnings = self._labels(len(records), len(valid), len(skipped), weights)
        if ref.n < MIN_IMAGES or len(valid) < MIN_IMAGES:
            warnings.append(f"rFID needs at least {MIN_IMAGES} images in both sets (have {len(valid)} evaluated, "
                            f"{ref.n} reference): left empty")
        frechet = self.cfg.metrics.frechet
        return {
            "dataset": self.dataset_description(),
            "num_images": len(valid),
            "num_skipped": len(skipped),
            "skipped": [r.get("item_id") for r in skipped],
            "paths": {p: self._path_row(p, valid, ref, features) for p in paths},
            "reference_stats": ref_source,
            "fid_protocol": protocol,
            "fid": FID(frechet).spec.to_dict(),
            "ssim": SSIM(self.cfg.metrics.ssim_border, self.cfg.metrics.ssim_precision).spec.to_dict(),
            "weights": weights,
            "is_paper_metric": bool(is_paper_metric),
            "warnings": warnings,
            "report": self._report_block(ctx.manifest),
        }

    def _reference_stats(self, valid: Sequence[Mapping[str, Any]], protocol: Mapping[str, Any], features: _Features,
                         ctx: RunContext):
        """A user-given stats file of the same protocol, or this run's real crops (cached by content hash)."""
        from harness.metrics.fid import cached_reference_stats

        if self.cfg.reference.stats_path:
            path = _explicit_path(self.cfg.reference.stats_path)
            ref = _open_reference_stats(path, protocol)
            return ref, {"source": "file", "path": _display_path(path, ctx.run_dir), "n": ref.n}
        inputs_sha = _inputs_digest(valid)
        ref, was_cached = cached_reference_stats(ctx.cache, inputs_sha, protocol, lambda: features.stats["real"])
        return ref, {"source": "cache" if was_cached else "computed from this run's real crops (now cached)",
                     "inputs_sha256": inputs_sha, "n": ref.n}

    def _path_row(self, path: str, valid: Sequence[Mapping[str, Any]], ref, features: _Features) -> dict[str, Any]:
        """One reconstruction path's Table-1 numbers: mean per-image metrics, rFID (and KID) from the features."""
        from harness.metrics.fid import KID, fid_from_stats

        psnr = [r["psnr"][path] for r in valid]
        finite = [v for v in psnr if math.isfinite(v)]
        recon = features.stats[path]
        enough = ref.n >= MIN_IMAGES and recon.n >= MIN_IMAGES
        row = {
            "rFID": fid_from_stats(ref, recon, method=self.cfg.metrics.frechet) if enough else None,
            "PSNR": _mean(finite),
            "PSNR_identical_images": len(psnr) - len(finite),
            "SSIM": _mean([r["ssim"][path] for r in valid]),
            "LPIPS": _mean([r["lpips"][path] for r in valid]),
            "num_images": len(valid),
        }
        if features.every is not None and len(valid) >= MIN_IMAGES:
            row["KID"], row["KID_std"] = KID(subsets=100, subset_size=1000)(features.every["real"],
                                                                           features.every[path])
        return row

    @staticmethod
    def _weights(valid: Sequence[Mapping[str, Any]], manifest: RunManifest | None) -> dict[str, Any]:
        """Which weights made the numbers: metric models from the records, the tokenizer from the manifest."""
        models = _metric_models(valid)
        return {
            "inception": models["inception"], "inception_real": bool(models["inception_real"]),
            "lpips_backbone": models["lpips"], "lpips_real": bool(models["lpips_real"]),
            "adapter": manifest.adapter if manifest else None,
            "adapter_real": bool(manifest.real_weights) if manifest else False,
            "adapter_weights_kind": manifest.weights_kind if manifest else None,
        }

    def _labels(self, planned: int, evaluated: int, skipped: int, weights: Mapping[str, Any]) -> tuple[bool, list[str]]:
        """(is the paper's metric, warnings): the paper's numbers are over all 50,000 val images with real weights."""
        from harness.data.imagenet import NUM_VAL_IMAGES

        d = self.cfg.dataset
        planned_all = d.kind == "imagenet" and d.limit is None
        full_split = planned_all and evaluated == NUM_VAL_IMAGES
        real = weights["inception_real"] and weights["lpips_real"] and weights["adapter_real"]
        warnings = []
        if d.kind != "imagenet":
            warnings.append(f"dataset: {self.dataset_description()['label']}")
        elif not planned_all:
            warnings.append(f"only {planned} ImageNet val images (evenly spaced, dataset.limit) were planned")
        elif not full_split:
            warnings.append(f"{evaluated} ImageNet val images were evaluated, not all {NUM_VAL_IMAGES:,}: "
                            f"numbers are NOT the paper's metric")
        for key, what in (("inception_real", "Inception"), ("lpips_real", "LPIPS AlexNet")):
            if not weights[key]:
                warnings.append(f"{what} weights are random/dummy: numbers are NOT the paper's metric")
        if not weights["adapter_real"]:
            warnings.append("tokenizer weights are the mini-trained defaults (baselines/dcar/mini_weights, not the "
                            "released weights): numbers are NOT the paper's metric"
                            if weights.get("adapter_weights_kind") == "mini-trained" else
                            "tokenizer weights are random/dummy: numbers are NOT the paper's metric")
        if skipped:
            warnings.append(f"{skipped} corrupt images were skipped (dataset.skip_corrupt)")
        return bool(full_split and real), warnings

    def _report_block(self, manifest: RunManifest | None) -> dict[str, Any]:
        rep = self.cfg.report
        return {"model_label": rep.model_label or (manifest.adapter if manifest else None) or "ours",
                "tokens": rep.tokens, "golden": rep.golden}

    def render(self, summary: Mapping[str, Any]) -> str:
        from harness.report.tables import imagenet_recon_section

        return imagenet_recon_section(summary)


def _check_finite_features(feats: Mapping[str, np.ndarray], items: Sequence[WorkItem]) -> None:
    """NaN/Inf features would poison the covariance of the whole run; name the first item instead."""
    for kind, arr in feats.items():
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        if bad.size:
            raise DataError(f"Inception features of item {items[int(bad[0])].id} ({kind}) hold NaN or Inf values; "
                            f"the Inception weights are broken")
