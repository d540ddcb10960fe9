"""MJHQ-30K gFID (DC-AR Table 2, the gFID column of Table 4) with every common protocol side by side.

One image per ``meta_data.json`` prompt (key order, per-item seeds) from any text-to-image adapter,
written as PNG (or JPEG q75, Sana's writer); the written file is decoded once and every protocol of
:mod:`harness.metrics.protocols` computes its features from that one decoded picture. Per-item
features are artifacts, so any subset/shard/resume gives the same statistics; aggregation reads
files only. The reference (all real images, whatever ``dataset.limit``) is computed once per
protocol, cached by content hash (file list + sha256 of every file, preprocessing, backbone
weights hash) and copied into the run (``artifacts/reference/<protocol>.npz``), so the run stays
reportable without the dataset. A cache hit is reported.

Why every protocol and not only Sana's: users get 15.3 with clean-fid where Sana reports 5.8 on
the same images, so the report shows each protocol's number under its name instead of one
"FID" whose protocol is implicit. Only the default ``sana`` over all 30,000 prompts with real
weights is called "MJHQ-30K FID"; everything else says what it is (N of 30,000, random weights).
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Literal, Mapping, Sequence

import numpy as np

from harness.api import Adapter, DataError, MetricSpec, Requirement, RunContext, Suite, WorkItem
from harness.io import bytes_sha256, canonical_json, npz_bytes
from harness.metrics.protocols import BackboneConfig
from harness.runner.config import ConfigError, fill_dataclass, suite_yaml

MIN_IMAGES = 2  # a covariance (N-1) needs two samples
PROTOCOLS_KEY = "protocols_json"
IMAGE_FORMATS = {"png": ("png", "PNG, lossless uint8"),
                 "jpeg_q75": ("jpg", "JPEG, PIL default quality 75 (torchvision save_image to .jpg, as Sana)")}
LABEL_FULL = "MJHQ-30K FID"


# --------------------------------------------------------------------------- typed config (suites/mjhq_fid.yaml)


@dataclass(frozen=True)
class DatasetConfig:
    root: str | None
    limit: int | None
    require_full: bool

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"dataset.limit must be a positive number of prompts or null (all), got {self.limit}. "
                             f"Fix: --set dataset.limit=100")


@dataclass(frozen=True)
class ClipScoreConfig:
    enabled: bool
    weights_path: str | None
    random_init_seed: int | None
    size: Literal["full", "tiny"]


@dataclass(frozen=True)
class MetricsConfig:
    device: str
    batch_size: int
    protocols: list[str]
    frechet: Literal["sqrtm", "eigh"]
    per_category: bool
    inception: BackboneConfig
    dinov2: BackboneConfig
    clip_vision: BackboneConfig
    clip_score: ClipScoreConfig

    def __post_init__(self) -> None:
        from harness.metrics.protocols import check_names

        if not self.protocols:
            raise ValueError("metrics.protocols is empty. Fix: --set metrics.protocols=[sana]")
        check_names(self.protocols)
        if self.batch_size < 1:
            raise ValueError(f"metrics.batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class ReferenceConfig:
    stats: dict[str, str]


@dataclass(frozen=True)
class ReportConfig:
    model_label: str | None


@dataclass(frozen=True)
class MJHQConfig:
    dataset: DatasetConfig
    image_format: Literal["png", "jpeg_q75"]
    generate: dict[str, Any]
    metrics: MetricsConfig
    reference: ReferenceConfig
    report: ReportConfig
    protocol: dict[str, Any]


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = (_deep_merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
                    else value)
    return out


# --------------------------------------------------------------------------- image files


def encode_image(u8: np.ndarray, fmt: str) -> bytes:
    """uint8 (H, W, 3) -> file bytes: PNG, or JPEG exactly as torchvision ``save_image(..., "x.jpg")`` writes it."""
    from PIL import Image

    from harness.io import png_bytes

    if fmt == "png":
        return png_bytes(np.ascontiguousarray(u8))
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(u8)).save(buf, format="JPEG")  # PIL default quality 75, as save_image
    return buf.getvalue()


# --------------------------------------------------------------------------- reference statistics


def _scopes(categories: Sequence[str], per_category: bool) -> list[str]:
    return ["all", *categories] if per_category else ["all"]


def reference_arrays(protocol: Any, feats: np.ndarray, cats: np.ndarray) -> dict[str, Any]:
    """The arrays of a reference entry: FeatureStats per scope (Fréchet) or embeddings + k(x,x) (CMMD).

    Every category's share is always kept (it costs one pass over the same features), so
    ``metrics.per_category`` stays an aggregation-only switch.
    """
    from harness.data.mjhq import CATEGORIES
    from harness.metrics.fid import FeatureStats
    from harness.metrics.protocols import rbf_kernel_mean

    desc = protocol.describe()
    out: dict[str, Any] = {"protocol_json": np.asarray(canonical_json(desc)), "n": np.asarray(len(feats))}
    for scope in _scopes(CATEGORIES, True):
        sel = feats if scope == "all" else feats[cats == CATEGORIES.index(scope)]
        if protocol.kind == "frechet":
            st = FeatureStats.from_features(sel, desc) if len(sel) else FeatureStats(feats.shape[1], desc)
            out[f"{scope}/mu"], out[f"{scope}/scatter"], out[f"{scope}/n"] = st.mean, st.scatter, np.asarray(st.n)
        else:
            out[f"{scope}/kxx"] = np.asarray(rbf_kernel_mean(sel, sel) if len(sel) else np.nan)
            out[f"{scope}/n"] = np.asarray(len(sel))
    if protocol.kind == "mmd":
        out["embeddings"], out["categories"] = feats.astype(np.float32), cats.astype(np.int16)
    return out


@dataclass
class Reference:
    """A protocol's reference, read back from a file (run artifact, cache entry or user file)."""

    protocol: dict[str, Any]
    arrays: dict[str, np.ndarray]
    source: dict[str, Any]

    def stats(self, scope: str):
        from harness.metrics.fid import FeatureStats

        key = f"{scope}/mu"
        if key not in self.arrays:
            return None
        return FeatureStats(int(self.arrays[key].shape[0]), self.protocol, int(self.arrays[f"{scope}/n"]),
                            np.asarray(self.arrays[key], np.float64),
                            np.asarray(self.arrays[f"{scope}/scatter"], np.float64))

    def n(self, scope: str) -> int:
        key = f"{scope}/n"
        return int(self.arrays[key]) if key in self.arrays else 0


class ReferenceProtocolError(DataError):
    """Reference statistics of another protocol than the one they are given for."""


def open_reference(path: str | os.PathLike, expected: Mapping[str, Any], *, key: str) -> Reference:
    """A reference file of the expected protocol, or a one-line refusal naming both protocols and the fix."""
    from harness.metrics.fid import protocol_diff

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{key} = {path}: no such file. Fix: --set {key}=/path/to/reference.npz (or remove the key "
                        f"to compute it from the real images)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        protocol = json.loads(str(arrays["protocol_json"]))
    except Exception as exc:  # not an npz, or not ours
        raise DataError(f"{key} = {path} is not an mjhq_fid reference file ({type(exc).__name__}: {exc}); use "
                        f"artifacts/reference/<protocol>.npz of an earlier mjhq_fid run") from None
    diff = protocol_diff(protocol, expected)
    if diff:
        got, want = protocol.get("protocol"), expected.get("protocol")
        what = (f"protocol {got!r}, not {want!r}" if got != want else
                "protocol " + repr(want) + " with other settings (" +
                "; ".join(f"{k}: {a!r} vs {b!r}" for k, (a, b) in diff.items()) + ")")
        raise ReferenceProtocolError(f"{key} = {path} holds reference statistics of {what}; statistics of another "
                                     f"protocol give an incomparable number. Fix: give the {want} reference file "
                                     f"or remove the key")
    return Reference(protocol, arrays, {"source": "file", "path": str(path)})


# --------------------------------------------------------------------------- the suite


class MJHQFIDSuite(Suite):
    name = "mjhq_fid"
    adapter_kind = "text_to_image"
    metrics = (
        MetricSpec("fid", "lower", {"protocols": "sana (default), clean_fid, torch_fidelity", "features":
                                    "FID-Inception pool3", "reference": "all 30,000 real MJHQ-30K images"},
                   reference="pytorch-fid 0.3.0 (Sana pipeline); clean-fid 0.1.35 compute_fid"),
        MetricSpec("fd_dinov2", "lower", {"features": "DINOv2 ViT-L/14 CLS", "distance": "Fréchet"},
                   reference="dgm-eval DINOv2Encoder (transformers Dinov2Model)"),
        MetricSpec("cmmd", "lower", {"features": "CLIP ViT-L/14-336", "kernel": "RBF sigma 10", "scale": 1000},
                   reference="google-research cmmd distance.mmd"),
        MetricSpec("clip_score", "higher", {"model": "ViT-L/14 OpenAI", "score": "100 * cosine", "clamp": "none"},
                   reference="Sana tools/metrics/clip-score"),
    )
    libraries = ("pytorch-fid", "clean-fid", "torch-fidelity", "transformers", "open-clip-torch", "scipy", "pillow",
                 "torchvision")
    aggregate_keys: ClassVar[tuple[str, ...]] = ("reference.stats", "metrics.frechet", "metrics.per_category",
                                                 "report.model_label")

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        self.cfg = self.typed_config(config)
        self._dataset = None
        self._protocols = None
        self._clip = None
        self._reference_ready = False

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return suite_yaml(__file__)

    @classmethod
    def typed_config(cls, config: Mapping[str, Any] | None = None) -> MJHQConfig:
        return fill_dataclass(MJHQConfig, _deep_merge(cls.default_config(), config or {}),
                              source="suite mjhq_fid", ignore=("model", "seed", "batch_size"))

    def _protocols_config(self):
        from harness.metrics.protocols import ProtocolsConfig

        m = self.cfg.metrics
        return ProtocolsConfig(tuple(m.protocols), m.inception, m.dinov2, m.clip_vision, m.device)

    @classmethod
    def requirements(cls, config: Mapping[str, Any] | None = None) -> list[Requirement]:
        from harness.data.mjhq import MJHQ_REQUIREMENT
        from harness.metrics import protocols
        from harness.metrics.clip_score import CLIP_SCORE_REQUIREMENT

        suite_cfg = cls.typed_config(config)
        m = suite_cfg.metrics
        reqs = [MJHQ_REQUIREMENT, *protocols.requirements(protocols.ProtocolsConfig(
            tuple(m.protocols), m.inception, m.dinov2, m.clip_vision, m.device))]
        if m.clip_score.random_init_seed is None:  # listed by doctor even when off (then as optional)
            reqs.append(CLIP_SCORE_REQUIREMENT if m.clip_score.enabled else
                        dataclasses.replace(CLIP_SCORE_REQUIREMENT, optional=True))
        return reqs

    def protocol(self) -> dict[str, Any]:
        return {**self.cfg.protocol, "protocols": list(self.cfg.metrics.protocols), "image_format":
                IMAGE_FORMATS[self.cfg.image_format][1]}

    # ------------------------------------------------------------------ plan / validate

    def dataset(self):
        if self._dataset is None:
            from harness.data.mjhq import MJHQ30K

            self._dataset = MJHQ30K(self.cfg.dataset.root, require_full=self.cfg.dataset.require_full)
        return self._dataset

    def plan(self) -> list[WorkItem]:
        ds = self.dataset()
        entries = ds.entries[: self.cfg.dataset.limit] if self.cfg.dataset.limit else ds.entries
        return [WorkItem(e.id, {"prompt": e.prompt, "category": e.category, "index": e.index}) for e in entries]

    def validate(self, items: Sequence[WorkItem]) -> None:
        """Layout, counts, every real image's header (RGB), weights files, given reference files: before any model."""
        from harness.resources import locate

        ds = self.dataset()
        ds.validate()
        ds.check_headers()
        for req in self.requirements(self.config):
            if req.name.startswith("MJHQ") or req.optional:
                continue
            locate(req, _config_value(self.config, req.config_key))
        unknown = [p for p in self.cfg.reference.stats if p not in self.cfg.metrics.protocols]
        if unknown:
            raise ConfigError(f"reference.stats.{unknown[0]}: {unknown[0]!r} is not one of this run's "
                              f"metrics.protocols ({', '.join(self.cfg.metrics.protocols)})")
        for p, path in self.cfg.reference.stats.items():
            _check_reference_name(p, Path(os.path.expandvars(path)).expanduser())
        if len(items) < MIN_IMAGES:
            raise ConfigError(f"dataset.limit={self.cfg.dataset.limit}: a Fréchet distance needs at least "
                              f"{MIN_IMAGES} images. Fix: --set dataset.limit={MIN_IMAGES}")

    # ------------------------------------------------------------------ models

    def protocols(self):
        if self._protocols is None:
            from harness.metrics.protocols import build_protocols

            self._protocols = build_protocols(self._protocols_config())
        return self._protocols

    def clip_scorer(self):
        c = self.cfg.metrics.clip_score
        if c.enabled and self._clip is None:
            from harness.metrics.clip_score import CLIPScorer

            self._clip = CLIPScorer(c.weights_path, random_init_seed=c.random_init_seed, size=c.size,
                                    device=self.cfg.metrics.device)
        return self._clip

    # ------------------------------------------------------------------ reference pass

    def ensure_reference(self, ctx: RunContext) -> dict[str, str]:
        """Each protocol's reference in ``artifacts/reference/<protocol>.npz`` (from the cache or one pass).

        Returns protocol -> "cache" | "computed" | "run" (already in the run) | "file" (user-given).
        """
        from harness.data.mjhq import CATEGORIES, decode_rgb

        out: dict[str, str] = {}
        todo = []
        for prot in self.protocols():
            if prot.name in self.cfg.reference.stats:
                out[prot.name] = "file"
            elif ctx.artifact_path(f"reference/{prot.name}.npz").is_file():
                out[prot.name] = "run"
            else:
                todo.append(prot)
        if not todo:
            return out
        ds = self.dataset()
        entries = ds.entries
        rows = []
        for e, blob in ctx.progress(ds.iter_bytes(entries), total=len(entries), desc="mjhq_fid: hashing real images",
                                    unit="img"):
            rows.append(f"{ds.relpath(e)}\x1f{bytes_sha256(blob)}\n")
        inputs_sha = bytes_sha256("".join(rows).encode())
        missing = []
        for prot in todo:
            parts = _reference_key(inputs_sha, prot.describe(), len(entries))
            hit = ctx.cache.get(parts) if ctx.cache is not None else None
            if hit is not None:
                self._write_reference(ctx, prot.name, hit, {"source": "cache", "inputs_sha256": inputs_sha})
                out[prot.name] = "cache"
            else:
                missing.append(prot)
        if missing:
            feats: dict[str, list[np.ndarray]] = {p.name: [] for p in missing}
            cats: list[int] = []
            bs = self.cfg.metrics.batch_size
            batch: list[Any] = []

            def flush() -> None:
                for p in missing:
                    feats[p.name].append(p.features(batch, pad_to=bs))
                batch.clear()

            for e, blob in ctx.progress(ds.iter_bytes(entries), total=len(entries),
                                        desc=f"mjhq_fid: reference features ({', '.join(p.name for p in missing)})",
                                        unit="img"):
                batch.append(decode_rgb(blob, ds.image_path(e)))
                cats.append(CATEGORIES.index(e.category))
                if len(batch) >= bs:
                    flush()
            if batch:
                flush()
            cat_arr = np.asarray(cats)
            for p in missing:
                arrays = reference_arrays(p, np.concatenate(feats[p.name]), cat_arr)
                if ctx.cache is not None:
                    ctx.cache.put(_reference_key(inputs_sha, p.describe(), len(entries)), arrays)
                self._write_reference(ctx, p.name, arrays, {"source": "computed", "inputs_sha256": inputs_sha})
                out[p.name] = "computed"
        return out

    @staticmethod
    def _write_reference(ctx: RunContext, name: str, arrays: Mapping[str, Any], source: Mapping[str, Any]) -> None:
        data = {k: np.asarray(v) for k, v in arrays.items() if k != "source_json"}
        data["source_json"] = np.asarray(canonical_json(dict(source)))
        ctx.write_artifact(f"reference/{name}.npz", npz_bytes(**data))

    # ------------------------------------------------------------------ run

    def run_batch(self, items: Sequence[WorkItem], adapter: Adapter | None, ctx: RunContext) -> list[dict[str, Any]]:
        from PIL import Image

        from harness.images import check_batch, to_uint8

        if not self._reference_ready:
            self.ensure_reference(ctx)
            self._reference_ready = True
        prompts = [it.payload["prompt"] for it in items]
        seeds = [ctx.item_seed(it.id) for it in items]
        images = check_batch(adapter.generate(prompts, seeds, **self.cfg.generate),  # type: ignore[union-attr]
                             name="mjhq_fid: adapter output")
        if images.shape[0] != len(items):
            raise ValueError(f"mjhq_fid: adapter returned {images.shape[0]} images for {len(items)} prompts")
        ext = IMAGE_FORMATS[self.cfg.image_format][0]
        pictures, files = [], []
        for it, u8 in zip(items, to_uint8(images).permute(0, 2, 3, 1).contiguous().numpy()):
            blob = encode_image(u8, self.cfg.image_format)
            rel = f"images/{it.id}.{ext}"
            files.append((rel, ctx.write_artifact(rel, blob, item_id=it.id), u8.shape))
            with Image.open(io.BytesIO(blob)) as img:  # decoded once, from the bytes on disk
                pictures.append(img.convert("RGB"))
        n = max(ctx.batch_size, len(items))
        feats = {p.name: p.features(pictures, pad_to=n) for p in self.protocols()}
        described = np.asarray(canonical_json({p.name: p.describe() for p in self.protocols()}))
        clip = self.clip_scorer()
        scores = clip(pictures, prompts) if clip is not None else None
        records = []
        for j, it in enumerate(items):
            rel = f"features/{it.id}.npz"
            arrays = {name: f[j].astype(np.float32) for name, f in feats.items()}
            sha = ctx.write_artifact(rel, npz_bytes(**arrays, **{PROTOCOLS_KEY: described}), item_id=it.id)
            image_rel, image_sha, shape = files[j]
            rec = {"category": it.payload["category"], "image": image_rel, "image_sha256": image_sha,
                   "height": int(shape[0]), "width": int(shape[1]), "features": rel, "features_sha256": sha}
            if scores is not None:
                rec["clip_score"] = float(scores[j])
                rec["clip_model"] = clip.weights_id
            records.append(rec)
        return records

    # ------------------------------------------------------------------ aggregate (files only)

    def aggregate(self, records: Iterable[Mapping[str, Any]], ctx: RunContext) -> dict[str, Any]:
        from harness.data.mjhq import CATEGORIES, NUM_IMAGES

        records = list(records)
        if not records:
            raise DataError("mjhq_fid: no records to aggregate")
        protocols, gen = _read_features(records, ctx)
        cats = np.asarray([CATEGORIES.index(r["category"]) for r in records])
        scopes = _scopes(CATEGORIES, self.cfg.metrics.per_category)
        fid: dict[str, float | None] = {}
        per_category: dict[str, dict[str, float | None]] = {c: {} for c in scopes if c != "all"}
        references: dict[str, Any] = {}
        for name, desc in protocols.items():
            ref = self._reference(name, desc, ctx)
            references[name] = {**ref.source, "n": ref.n("all"), "protocol": desc.get("protocol")}
            for scope in scopes:
                sel = gen[name] if scope == "all" else gen[name][cats == CATEGORIES.index(scope)]
                value = self._distance(desc, ref, scope, sel)
                if scope == "all":
                    fid[name] = value
                else:
                    per_category[scope][name] = value
        clip_scores = [r["clip_score"] for r in records if "clip_score" in r]
        planned = ctx.manifest.num_items if ctx.manifest else len(records)
        real = _all_real(protocols, ctx)
        full = (planned == NUM_IMAGES and len(records) == NUM_IMAGES and self.cfg.dataset.require_full
                and self.cfg.dataset.limit is None and all(r.get("n") == NUM_IMAGES for r in references.values()))
        warnings = []
        if not full:
            warnings.append(f"{len(records)} of {NUM_IMAGES:,} MJHQ-30K prompts (reference n="
                            f"{references.get(next(iter(references)), {}).get('n')}): NOT MJHQ-30K FID")
        for name, desc in protocols.items():
            if not desc.get("real_weights"):
                warnings.append(f"{name}: random backbone weights ({desc.get('weights')}): numbers are NOT the metric")
        if ctx.manifest is not None and not ctx.manifest.real_weights:
            warnings.append(ctx.manifest.not_real_weights_warning("generator"))
        is_paper = bool(full and real and (ctx.manifest.real_weights if ctx.manifest else False)
                        and "sana" in protocols)
        label = LABEL_FULL if full else (f"subset: {len(records)} of {NUM_IMAGES:,} MJHQ-30K prompts (not the "
                                         f"MJHQ-30K benchmark number)")
        out: dict[str, Any] = {
            "label": label,
            "num_images": len(records),
            "num_planned": planned,
            "image_format": self.cfg.image_format,
            "resolution": sorted({(r["height"], r["width"]) for r in records}),
            "fid": fid,
            "per_category": per_category,
            "default_protocol": "sana",
            "protocols": protocols,
            "reference_stats": references,
            "frechet": self.cfg.metrics.frechet,
            "is_full_mjhq": bool(full),
            "is_paper_metric": is_paper,
            "warnings": warnings,
            "report": {"model_label": self.cfg.report.model_label or (ctx.manifest.adapter if ctx.manifest else None)
                       or "ours"},
        }
        if clip_scores:
            out["clip_score"] = float(np.mean(clip_scores))
            out["clip_score_n"] = len(clip_scores)
        return out

    def _reference(self, name: str, desc: Mapping[str, Any], ctx: RunContext) -> Reference:
        given = self.cfg.reference.stats.get(name)
        if given:
            return open_reference(Path(os.path.expandvars(given)).expanduser(), desc, key=f"reference.stats.{name}")
        path = ctx.artifact_path(f"reference/{name}.npz")
        if not path.is_file():
            raise DataError(f"artifacts/reference/{name}.npz is missing from {ctx.run_dir}: the run's reference "
                            f"statistics were never written (rerun the same command to resume, or give "
                            f"--set reference.stats.{name}=FILE)")
        ref = open_reference(path, desc, key=f"artifacts/reference/{name}.npz")
        ref.source = json.loads(str(ref.arrays["source_json"])) if "source_json" in ref.arrays else {"source": "run"}
        return ref

    def _distance(self, desc: Mapping[str, Any], ref: Reference, scope: str, gen: np.ndarray) -> float | None:
        from harness.metrics.fid import FeatureStats, fid_from_stats
        from harness.metrics.protocols import cmmd

        if len(gen) < MIN_IMAGES or ref.n(scope) < MIN_IMAGES:
            return None
        if desc.get("distance") == "mmd":
            emb = ref.arrays["embeddings"]
            sel = emb if scope == "all" else emb[ref.arrays["categories"] == _category_index(scope)]
            return float(cmmd(sel, gen, kxx=float(ref.arrays[f"{scope}/kxx"])))
        return float(fid_from_stats(ref.stats(scope), FeatureStats.from_features(gen, dict(desc)),
                                    method=self.cfg.metrics.frechet))

    def render(self, summary: Mapping[str, Any]) -> str:
        return render_section(summary)


def _check_reference_name(name: str, path: Path) -> None:
    """Plan-time check of a given reference file: it exists and holds statistics of the protocol it is given for.

    Only the protocol's name is compared here (the backbone is not loaded yet); aggregation compares every setting.
    """
    key = f"reference.stats.{name}"
    if not path.is_file():
        raise DataError(f"{key} = {path}: no such file. Fix: --set {key}=/path (an artifacts/reference/{name}.npz "
                        f"of an earlier mjhq_fid run), or remove the key")
    try:
        with np.load(path, allow_pickle=False) as data:
            got = json.loads(str(data["protocol_json"])).get("protocol")
    except Exception as exc:  # not an npz, or not ours
        raise DataError(f"{key} = {path} is not an mjhq_fid reference file ({type(exc).__name__}: {exc}); use "
                        f"artifacts/reference/{name}.npz of an earlier mjhq_fid run") from None
    if got != name:
        raise ReferenceProtocolError(f"{key} = {path} holds reference statistics of protocol {got!r}, not {name!r}; "
                                     f"statistics of another protocol give an incomparable number. Fix: give the "
                                     f"{name} reference file (artifacts/reference/{name}.npz) or remove the key")


def _category_index(scope: str) -> int:
    from harness.data.mjhq import CATEGORIES

    return CATEGORIES.index(scope)


def _config_value(config: Mapping[str, Any], dotted: str | None) -> Any:
    node: Any = config
    for part in (dotted or "").split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _reference_key(inputs_sha: str, protocol: Mapping[str, Any], n: int) -> dict[str, Any]:
    """Cache key parts: which files (list + sha256), how many, and the protocol (preprocessing + backbone weights)."""
    return {"kind": "mjhq-reference", "inputs_sha256": inputs_sha, "n": n, "protocol": dict(protocol),
            "format": 1}


def _read_features(records: Sequence[Mapping[str, Any]], ctx: RunContext):
    """(protocol descriptions, protocol -> (N, D) float64 features) from the per-item artifacts, sha256-checked."""
    first: dict[str, Any] | None = None
    rows: dict[str, list[np.ndarray]] = {}
    for rec in ctx.progress(records, desc="mjhq_fid: reading features", unit="item"):
        blob = ctx.read_artifact(rec["features"], rec["features_sha256"], item_id=rec.get("item_id"))
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            described = json.loads(str(data[PROTOCOLS_KEY]))
            if first is None:
                first = described
                rows = {k: [] for k in first}
            elif described != first:
                raise DataError(f"item {rec.get('item_id')}'s features were made with other protocol settings than "
                                f"item {records[0].get('item_id')}'s; one run uses one setup: rerun into a new --out")
            for k in first:
                rows[k].append(data[k].astype(np.float64))
    return first or {}, {k: np.stack(v) for k, v in rows.items()}


def _all_real(protocols: Mapping[str, Mapping[str, Any]], ctx: RunContext) -> bool:
    return all(bool(d.get("real_weights")) for d in protocols.values())


# --------------------------------------------------------------------------- report


def _fmt(v: Any, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def render_section(summary: Mapping[str, Any]) -> str:
    """Every protocol's number under its name, the ratio to Sana's, per category, and what the numbers are."""
    from harness.markdown_table import markdown_table
    from harness.metrics.protocols import PROTOCOLS

    given = summary.get("fid") or {}
    fid = {n: given[n] for n in (*PROTOCOLS, *sorted(given)) if n in given}  # the protocols' own order
    base = fid.get("sana")
    refs = summary.get("reference_stats") or {}
    lines = [f"**{summary.get('label')}**: {summary.get('num_images')} generated images "
             f"({summary.get('image_format')}), {summary.get('report', {}).get('model_label')}.", ""]
    rows = []
    for name, value in fid.items():
        desc = (summary.get("protocols") or {}).get(name) or {}
        inception_fid = name in ("sana", "clean_fid", "torch_fidelity")  # same units: the ratio is the gap
        ratio = f"{value / base:.2f}×" if inception_fid and value is not None and base else "–"
        ref = refs.get(name) or {}
        rows.append([name + (" (default, the paper's)" if name == "sana" else ""), _fmt(value, 3), ratio,
                     "MMD×1000" if desc.get("distance") == "mmd" else "Fréchet",
                     f"n={ref.get('n')} ({ref.get('source')})", desc.get("weights", "")[:19]])
    lines.append(markdown_table(["Protocol", "Value↓", "÷ sana (FID only)", "Distance", "Reference",
                                 "Backbone weights"], rows))
    lines.append("")
    lines.append("The same images give different numbers under different protocols (resize filter, crop, backbone); "
                 "compare a number only with numbers of the same protocol. DC-AR's Table 2 uses `sana`.")
    per = summary.get("per_category") or {}
    if per:
        names = list(fid)
        lines += ["", "Per category:", ""]
        lines.append(markdown_table(["Category", *names], [[c, *(_fmt(v.get(n), 3) for n in names)]
                                                           for c, v in per.items()]))
    if "clip_score" in summary:
        lines += ["", f"CLIP score (ViT-L/14, 100 × cosine, mean over {summary.get('clip_score_n')} images): "
                      f"{summary['clip_score']:.2f}"]
    for w in summary.get("warnings") or []:
        lines += ["", f"⚠ {w}"]
    return "\n".join(lines) + "\n"
