"""FID and KID from Inception features: mergeable statistics, the Fréchet distance, protocol-checked stats files.

Why the statistics are a mergeable (count, mean, scatter) triple: every rank/shard/batch
accumulates its own and they combine exactly (Chan et al.'s pairwise update), so the
result does not depend on batch size or shard count. Everything is float64 and the
covariance uses N-1, as pytorch-fid, torch-fidelity and the DC-AE evaluator.

Why stats carry a protocol: an rFID is only meaningful against reference statistics made
from *the same crop, resize path and weights*; another crop or resize path shifts FID by more
than the differences the paper reports. A stats file stores the protocol it was made with, and
:func:`fid_from_stats` refuses to compare two protocols that differ instead of returning a
silently wrong number. KID is torch-fidelity's estimator, called on our feature arrays.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from harness.api import DataError, MetricSpec, MissingResourceError, UserError

SQRTM_EPS = 1e-6  # pytorch-fid / clean-fid / DC-AE: offset added to both covariances if sqrtm is not finite
IMAG_TOL = 1e-3  # allowed imaginary part on the diagonal of sqrtm's result


class ProtocolMismatchError(UserError, ValueError):
    """Two sets of statistics were made with different preprocessing/extractor settings."""


def protocol_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Keys whose values differ between two protocol dicts (canonical JSON comparison)."""
    ja = json.loads(json.dumps(dict(a), sort_keys=True, default=str))
    jb = json.loads(json.dumps(dict(b), sort_keys=True, default=str))
    return {k: (ja.get(k), jb.get(k)) for k in sorted(set(ja) | set(jb)) if ja.get(k) != jb.get(k)}


def fid_protocol(extractor_description: Mapping[str, Any], *, dataset: str, crop: str, resolution: Any) -> dict[str, Any]:
    """The protocol of FID statistics: which images, cropped how, then the extractor's ``describe()``.

    Suites and ``dcar-bench stats make`` build it here so a reference file made by the command is
    accepted by a run of the same settings, and refused otherwise.
    """
    return {"dataset": dataset, "crop": crop, "resolution": resolution, **dict(extractor_description)}


def check_same_protocol(a: Mapping[str, Any], b: Mapping[str, Any], *, what: str = "statistics") -> None:
    diff = protocol_diff(a, b)
    if diff:
        lines = "; ".join(f"{k}: {va!r} vs {vb!r}" for k, va, vb in ((k, *v) for k, v in diff.items()))
        raise ProtocolMismatchError(
            f"refusing to compare {what} made with different protocols ({lines}). Recompute the reference "
            f"statistics with the same crop, resize path and Inception weights."
        )


@dataclass
class FeatureStats:
    """Mergeable float64 first/second moments of a feature set.

    ``scatter`` is sum((x - mean)(x - mean)^T); ``cov`` = scatter / (n - 1). ``protocol`` is what
    must match for two statistics to be compared; ``meta`` only says where they came from.
    """

    dim: int
    protocol: dict[str, Any] = field(default_factory=dict)
    n: int = 0
    mean: np.ndarray | None = None
    scatter: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # provenance (source, image count, input digest); not compared

    def __post_init__(self) -> None:
        if self.mean is None:
            self.mean = np.zeros(self.dim, dtype=np.float64)
        if self.scatter is None:
            self.scatter = np.zeros((self.dim, self.dim), dtype=np.float64)

    @classmethod
    def from_features(cls, features: np.ndarray, protocol: Mapping[str, Any] | None = None) -> "FeatureStats":
        features = _as_features(features)
        stats = cls(dim=features.shape[1], protocol=dict(protocol or {}))
        stats.update(features)
        return stats

    def update(self, features: np.ndarray) -> "FeatureStats":
        """Add a batch of features (N, D)."""
        features = _as_features(features, dim=self.dim)
        if features.shape[0] == 0:
            return self
        m = features.shape[0]
        bmean = features.mean(axis=0)
        centred = features - bmean
        batch = FeatureStats(self.dim, self.protocol, m, bmean, centred.T @ centred)
        return self._merge_in(batch)

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        """Combine with statistics of a disjoint set (another shard); protocols must match."""
        if other.dim != self.dim:
            raise ValueError(f"cannot merge statistics of dimension {self.dim} and {other.dim}")
        check_same_protocol(self.protocol, other.protocol, what="statistics to merge")
        return self._merge_in(other)

    def _merge_in(self, other: "FeatureStats") -> "FeatureStats":
        if other.n == 0:
            return self
        if self.n == 0:
            self.n, self.mean, self.scatter = other.n, other.mean.copy(), other.scatter.copy()
            return self
        n = self.n + other.n
        delta = other.mean - self.mean
        self.scatter = self.scatter + other.scatter + np.outer(delta, delta) * (self.n * other.n / n)
        self.mean = self.mean + delta * (other.n / n)
        self.n = n
        return self

    @property
    def cov(self) -> np.ndarray:
        if self.n < 2:
            raise ValueError(f"need at least 2 samples for a covariance, have {self.n}")
        return self.scatter / (self.n - 1)

    # ------------------------------------------------------------------ files

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "mu": self.mean,
            "sigma": self.cov,
            "n": np.asarray(self.n, dtype=np.int64),
            "scatter": self.scatter,
            "protocol_json": np.asarray(json.dumps(self.protocol, sort_keys=True, default=str)),
        }
        if self.meta:
            arrays["meta_json"] = np.asarray(json.dumps(self.meta, sort_keys=True, default=str))
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], *, source: str = "arrays") -> "FeatureStats":
        header = StatsHeader.from_arrays(arrays, source=source)
        return cls(dim=header.dim, protocol=header.protocol, n=header.n,
                   mean=np.asarray(arrays["mu"], dtype=np.float64),
                   scatter=np.asarray(arrays["scatter"], dtype=np.float64), meta=header.meta)

    def save(self, path: str | os.PathLike) -> str:
        """Write an ``.npz`` (mu, sigma, n, scatter, protocol_json[, meta_json]) atomically; returns its sha256."""
        from harness.io import atomic_write_bytes, npz_bytes

        return atomic_write_bytes(path, npz_bytes(**self.to_arrays()))

    @classmethod
    def load(cls, path: str | os.PathLike, *, expected_protocol: Mapping[str, Any] | None = None) -> "FeatureStats":
        """Read a stats file; if ``expected_protocol`` is given, refuse a file made with another one."""
        with _open_stats(path) as data:
            stats = cls.from_arrays({k: data[k] for k in data.files}, source=str(path))
        if expected_protocol is not None:
            check_same_protocol(stats.protocol, expected_protocol, what=f"reference statistics {path}")
        return stats


STATS_FILE_KEYS = ("mu", "n", "scatter", "protocol_json")


@dataclass(frozen=True)
class StatsHeader:
    """What a stats file says about itself (count, dimension, protocol, provenance), without its matrices."""

    n: int
    dim: int
    protocol: dict[str, Any]
    meta: dict[str, Any]

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any], *, source: str) -> "StatsHeader":
        """``arrays`` may be a lazy ``NpzFile``: only ``n``, ``protocol_json``, ``meta_json`` and ``mu`` are read."""
        keys = set(arrays.files if hasattr(arrays, "files") else arrays)
        missing = [k for k in STATS_FILE_KEYS if k not in keys]
        if missing:
            raise DataError(
                f"{source} is not a dcar-bench statistics file (missing {missing}); files without a recorded "
                f"protocol (e.g. a bare mu/sigma npz) must be imported with import_mu_sigma(..., protocol=...)"
            )
        try:
            protocol = json.loads(str(arrays["protocol_json"]))
            meta = json.loads(str(arrays["meta_json"])) if "meta_json" in keys else {}
            n, dim = int(arrays["n"]), int(np.shape(arrays["mu"])[0])
        except (ValueError, TypeError, IndexError) as exc:
            raise DataError(f"{source}: unreadable statistics header ({type(exc).__name__}: {exc})") from exc
        return cls(n=n, dim=dim, protocol=protocol, meta=meta)


def _open_stats(path: str | os.PathLike) -> Any:
    """``np.load`` of a stats file, with the user errors a wrong path or a non-npz file deserve."""
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise MissingResourceError(f"statistics file not found: {path} (make one with `dcar-bench stats make`)")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a dcar-bench statistics file (cannot be read as .npz: {exc})") from exc
    if not hasattr(data, "files"):
        raise DataError(f"{path} is not a dcar-bench statistics file (a bare .npy array, not an .npz)")
    return data


def check_reference_stats(path: str | os.PathLike, expected_protocol: Mapping[str, Any] | None = None, *,
                          min_n: int = 2) -> StatsHeader:
    """Cheap plan-time check of a reference stats file: header only, the matrices are not read.

    Refuses (as one-line user errors) a missing or non-stats file, a protocol other than
    ``expected_protocol``, and fewer than ``min_n`` samples (a covariance needs 2).
    """
    with _open_stats(path) as data:
        header = StatsHeader.from_arrays(data, source=str(path))
    if expected_protocol is not None:
        check_same_protocol(header.protocol, expected_protocol, what=f"reference statistics {path}")
    if header.n < min_n:
        raise DataError(f"reference statistics {path} hold {header.n} sample(s); need at least {min_n} "
                        f"for a covariance")
    return header


def import_mu_sigma(path: str | os.PathLike, n: int, protocol: Mapping[str, Any]) -> FeatureStats:
    """Wrap a foreign ``mu``/``sigma`` npz (pytorch-fid, DC-AE ``generate_reference.py``) with a declared protocol.

    The caller vouches for the protocol; ``n`` is needed to rebuild the scatter matrix.
    """
    with _open_stats(path) as data:
        if "mu" not in data.files or "sigma" not in data.files:
            raise DataError(f"{path}: expected arrays 'mu' and 'sigma', found {data.files}")
        mu = np.asarray(data["mu"], dtype=np.float64)
        sigma = np.asarray(data["sigma"], dtype=np.float64)
    return FeatureStats(mu.shape[0], dict(protocol), int(n), mu, sigma * (int(n) - 1))


def _as_features(features: Any, dim: int | None = None) -> np.ndarray:
    arr = np.asarray(features, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"features must be a 2-D array (N, D), got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"features have dimension {arr.shape[1]}, expected {dim}")
    if not np.isfinite(arr).all():
        raise ValueError("features contain NaN or Inf")
    return arr


# --------------------------------------------------------------------------- distances


FRECHET_METHODS = {
    "sqrtm": "scipy.linalg.sqrtm(S1 S2), retry with 1e-6*I if non-finite, drop imag if diag imag < 1e-3 "
             "(pytorch-fid, clean-fid, DC-AE evaluator)",
    "eigh": "Tr sqrtm(S1 S2) = sum sqrt(eigvalsh(S1^1/2 S2 S1^1/2)) (symmetric, ~5x faster; equal to sqrtm on "
            "full-rank covariances, more accurate on rank-deficient ones)",
}


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = SQRTM_EPS, method: str = "sqrtm") -> tuple[float, dict[str, Any]]:
    """||mu1-mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)).

    ``method="sqrtm"`` (default) is the reference convention: scipy ``sqrtm`` with the eps
    retry. ``"eigh"`` computes the same trace from two symmetric eigendecompositions; it is a
    named option for quick runs (a 2048-d ``sqrtm`` takes minutes on a busy 2-core machine).
    Returns (distance, info); ``info["eps_retry"]`` says whether the offset was needed and
    ``info["max_imag"]`` how large the discarded imaginary part was.
    """
    from scipy import linalg

    if method not in FRECHET_METHODS:
        raise ValueError(f"unknown Fréchet method {method!r}; choose one of {sorted(FRECHET_METHODS)}")
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0],) * 2:
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    info: dict[str, Any] = {"eps_retry": False, "max_imag": 0.0, "method": method}
    if method == "eigh":
        w, v = np.linalg.eigh((sigma1 + sigma1.T) / 2)
        root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
        inner = root1 @ sigma2 @ root1
        tr_covmean = float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum())
        return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean), info
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on near-singular products; we check finiteness ourselves
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
            info["eps_retry"] = True
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=IMAG_TOL):
            raise ValueError(f"sqrtm has a large imaginary component ({np.max(np.abs(covmean.imag)):.3g})")
        info["max_imag"] = float(np.max(np.abs(covmean.imag)))
        covmean = covmean.real
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))
    return value, info


def fid_from_stats(a: FeatureStats, b: FeatureStats, method: str = "sqrtm") -> float:
    """FID between two statistics of the same protocol (refuses different protocols)."""
    check_same_protocol(a.protocol, b.protocol)
    return frechet_distance(a.mean, a.cov, b.mean, b.cov, method=method)[0]


def fid_from_features(feats1: np.ndarray, feats2: np.ndarray, method: str = "sqrtm") -> float:
    return frechet_distance(*_mean_cov(feats1), *_mean_cov(feats2), method=method)[0]


def _mean_cov(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = FeatureStats.from_features(features)
    return s.mean, s.cov


def kid_from_features(feats1: np.ndarray, feats2: np.ndarray, *, subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0) -> tuple[float, float]:
    """KID (mean, std over subsets) by torch-fidelity's ``kid_features_to_metric``.

    Unbiased MMD^2 with the cubic polynomial kernel (x.y/d + 1)^3 on float64 features; subsets
    of ``subset_size`` are drawn without replacement from each set with
    ``numpy.random.RandomState(seed)``. Arguments are checked here so a bad one is named.
    """
    import torch
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    f1, f2 = _as_features(feats1), _as_features(feats2, dim=np.asarray(feats1).shape[1])
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    if subset_size < 2 or subset_size > min(len(f1), len(f2)):
        raise ValueError(f"KID subset_size {subset_size} must be in [2, min(N1, N2) = {min(len(f1), len(f2))}]")
    out = kid_features_to_metric(torch.from_numpy(f1), torch.from_numpy(f2), kid_subsets=int(subsets),
                                 kid_subset_size=int(subset_size), rng_seed=int(seed), kid_kernel="poly",
                                 kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1,
                                 verbose=False)
    return float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD])


# --------------------------------------------------------------------------- metric objects


class FID:
    """Fréchet Inception Distance between two :class:`FeatureStats` of one protocol."""

    def __init__(self, method: str = "sqrtm"):
        if method not in FRECHET_METHODS:
            raise ValueError(f"unknown Fréchet method {method!r}; choose one of {sorted(FRECHET_METHODS)}")
        self.method = method
        self.spec = MetricSpec(
            name="fid",
            direction="lower",
            params={"features": "FID-Inception pool3 (2048)", "covariance": "float64, N-1",
                    "method": method, "method_detail": FRECHET_METHODS[method], "eps": SQRTM_EPS,
                    "imag_tol": IMAG_TOL},
            reference="torch-fidelity 0.4.0 fid_statistics_to_metric; clean-fid 0.1.35 frechet_distance",
        )

    def __call__(self, a: FeatureStats, b: FeatureStats) -> float:
        return fid_from_stats(a, b, method=self.method)


class KID:
    """Kernel Inception Distance (extra metric; needs both feature sets, not only statistics)."""

    def __init__(self, subsets: int = 100, subset_size: int = 1000, seed: int = 0):
        self.subsets, self.subset_size, self.seed = subsets, subset_size, seed
        self.spec = MetricSpec(
            name="kid",
            direction="lower",
            params={"kernel": "polynomial (x.y/d + 1)^3", "estimator": "unbiased MMD^2", "subsets": subsets,
                    "subset_size": subset_size, "rng": f"numpy RandomState({seed})",
                    "implementation": "torch_fidelity.metric_kid.kid_features_to_metric"},
            reference="torch-fidelity 0.4.0 kid_features_to_metric (computes it); clean-fid 0.1.35 kernel_distance",
        )

    def __call__(self, feats1: np.ndarray, feats2: np.ndarray) -> tuple[float, float]:
        size = min(self.subset_size, len(feats1), len(feats2))
        return kid_from_features(feats1, feats2, subsets=self.subsets, subset_size=size, seed=self.seed)


# --------------------------------------------------------------------------- cached reference statistics


def reference_stats_key(inputs_sha256: str, protocol: Mapping[str, Any]) -> dict[str, Any]:
    """Cache key parts: what determines reference statistics (inputs, preprocessing, extractor, weights)."""
    return {"kind": "fid-reference-stats", "inputs_sha256": inputs_sha256, "protocol": dict(protocol)}


def cached_reference_stats(cache: Any, inputs_sha256: str, protocol: Mapping[str, Any],
                           compute: Any) -> tuple[FeatureStats, bool]:
    """Reference statistics from ``cache`` (a :class:`harness.cache.Cache`) or ``compute()`` and store.

    Returns (stats, was_cached). A cached entry whose recorded protocol differs is refused.
    """
    parts = reference_stats_key(inputs_sha256, protocol)
    hit = cache.get(parts) if cache is not None else None
    if hit is not None:
        stats = FeatureStats.from_arrays(hit, source="cached reference statistics")
        check_same_protocol(stats.protocol, protocol, what="cached reference statistics")
        return stats, True
    stats = compute()
    if not isinstance(stats, FeatureStats):
        raise TypeError("compute() must return FeatureStats")
    check_same_protocol(stats.protocol, protocol, what="computed reference statistics")
    if cache is not None:
        cache.put(parts, stats.to_arrays())
    return stats, False
