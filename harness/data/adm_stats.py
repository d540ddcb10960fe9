"""Reading class-conditional ImageNet gFID reference statistics in the ADM / MAR ``.npz`` format.

Why a reader of its own: the reference of ImageNet-256 gFID is a file the user brings, made elsewhere:
MAR's ``fid_stats/adm_in256_stats.npz`` (``mu``, ``sigma``, as LTH14's torch-fidelity fork reads it through
``calculate_metrics(fid_statistics_file=...)``) or the reference batch of OpenAI's ADM evaluator
(``VIRTUAL_imagenet256_labeled.npz``: ``arr_0`` images plus precomputed ``mu``/``sigma`` and the spatial
``mu_s``/``sigma_s``). Neither records how it was made, so unlike a dcar-bench statistics file
(:mod:`harness.metrics.fid`) there is no protocol to check; what can be checked is that the file is an
``.npz`` with float ``mu`` (2048) and ``sigma`` (2048 x 2048), finite and symmetric. Only those two arrays
are read (``np.load`` of an ``.npz`` is lazy), so ADM's 10,000 reference images are never loaded.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.api import DataError, MissingResourceError

#: FID-Inception pool3 width: the dimension every ADM/MAR reference file has
FEATURE_DIM = 2048
#: how to get the files (for error messages and doctor)
HOW_TO_GET = ("MAR's fid_stats/adm_in256_stats.npz (github.com/LTH14/mar) or ADM's reference batch "
              "VIRTUAL_imagenet256_labeled.npz (github.com/openai/guided-diffusion, evaluations/README.md)")


class ReferenceStatsError(DataError):
    """A reference ``.npz`` is unreadable, lacks ``mu``/``sigma`` or has the wrong shapes; the message names it."""


@dataclass(frozen=True)
class ReferenceStats:
    """``mu`` / ``sigma`` of a user-supplied reference file, float64, and where they came from."""

    path: str
    mu: np.ndarray
    sigma: np.ndarray
    keys: tuple[str, ...]  # every array name in the file (says which format it was)

    @property
    def format(self) -> str:
        return "adm-reference-batch" if "arr_0" in self.keys else "mu-sigma"


def _fail(key: str, path: Path, problem: str) -> ReferenceStatsError:
    return ReferenceStatsError(f"{key} = {path}: {problem}. Fix: point {key} at {HOW_TO_GET}")


def read_reference_stats(path: str | os.PathLike, *, key: str = "reference.stats_path",
                         dim: int = FEATURE_DIM, check_sigma: bool = True) -> ReferenceStats:
    """``mu`` and ``sigma`` of an ADM/MAR-format ``.npz``, or a one-line error naming ``key``, the file and the fix.

    ``check_sigma=False`` reads only the shape of ``sigma`` from the archive header (cheap plan-time check).
    """
    path = Path(os.path.expandvars(str(path))).expanduser()
    if not path.is_file():
        raise MissingResourceError(f"{key} = {path}: no such file. Fix: download {HOW_TO_GET} and set "
                                   f"--set {key}=/path/to/file.npz")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            npy = f.read(6) == b"\x93NUMPY"
        raise _fail(key, path, "a bare .npy array, not an .npz holding 'mu' and 'sigma'" if npy else
                    "not an .npz archive (not a zip file; truncated or another format)")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise _fail(key, path, f"not a readable .npz ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") \
            from None
    if not hasattr(data, "files"):
        raise _fail(key, path, "a bare .npy array, not an .npz holding 'mu' and 'sigma'")
    with data:
        keys = tuple(data.files)
        missing = [k for k in ("mu", "sigma") if k not in keys]
        if missing:
            raise _fail(key, path, f"no array {' or '.join(repr(m) for m in missing)} (it holds {list(keys)}); "
                                   f"expected ADM/MAR reference statistics with 'mu' and 'sigma'")
        try:
            mu = np.asarray(data["mu"])
            sigma = np.asarray(data["sigma"]) if check_sigma else None
            sigma_shape = sigma.shape if sigma is not None else _shape_of(data, "sigma")
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise _fail(key, path, f"'mu'/'sigma' cannot be read ({type(exc).__name__}: {exc})") from None
    if mu.shape != (dim,) or tuple(sigma_shape) != (dim, dim):
        raise _fail(key, path, f"'mu' has shape {tuple(mu.shape)} and 'sigma' {tuple(sigma_shape)}, expected ({dim},) "
                               f"and ({dim}, {dim}) (FID-Inception pool3 statistics)")
    if not np.issubdtype(mu.dtype, np.floating) or (sigma is not None and not np.issubdtype(sigma.dtype, np.floating)):
        raise _fail(key, path, f"'mu'/'sigma' are {mu.dtype}/{getattr(sigma, 'dtype', '?')}, not floating point")
    mu = mu.astype(np.float64)
    if not np.isfinite(mu).all():
        raise _fail(key, path, "'mu' holds NaN or Inf")
    if sigma is not None:
        sigma = sigma.astype(np.float64)
        if not np.isfinite(sigma).all():
            raise _fail(key, path, "'sigma' holds NaN or Inf")
        if not np.allclose(sigma, sigma.T, rtol=1e-5, atol=1e-8 * max(1.0, float(np.abs(sigma).max()))):
            raise _fail(key, path, "'sigma' is not symmetric, so it is not a covariance matrix")
    return ReferenceStats(str(path), mu, sigma if sigma is not None else np.zeros((0, 0)), keys)


def _shape_of(npz: np.lib.npyio.NpzFile, name: str) -> tuple[int, ...]:
    """The shape of one array of an ``.npz`` from its ``.npy`` header, without reading its data."""
    with npz.zip.open(f"{name}.npy") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, _ = read(f)
    return tuple(shape)
