"""ADM/MAR-format reference statistics: read mu/sigma only, refuse anything else in one line naming the key."""
from __future__ import annotations

import numpy as np
import pytest

from harness.api import MissingResourceError
from harness.data.adm_stats import ReferenceStatsError, read_reference_stats

DIM = 8


def _spd(dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4 * dim, dim))
    return x.mean(0), np.cov(x, rowvar=False)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and "reference.stats_path" in text
    return text


def test_mar_mu_sigma_file_is_read_as_float64(tmp_path):
    mu, sigma = _spd(DIM)
    np.savez(tmp_path / "adm_in256_stats.npz", mu=mu.astype(np.float32), sigma=sigma)
    ref = read_reference_stats(tmp_path / "adm_in256_stats.npz", dim=DIM)
    assert ref.format == "mu-sigma" and ref.mu.dtype == np.float64 and ref.sigma.dtype == np.float64
    np.testing.assert_array_equal(ref.mu, mu.astype(np.float32).astype(np.float64))
    np.testing.assert_array_equal(ref.sigma, sigma)


def test_adm_reference_batch_reads_mu_sigma_and_not_the_images(tmp_path, monkeypatch):
    """VIRTUAL_imagenet256_labeled.npz holds arr_0 (the images) beside mu/sigma; only mu/sigma are loaded."""
    mu, sigma = _spd(DIM)
    path = tmp_path / "VIRTUAL_imagenet256_labeled.npz"
    np.savez(path, arr_0=np.zeros((3, 4, 4, 3), np.uint8), mu=mu, sigma=sigma, mu_s=mu[:4], sigma_s=sigma[:4, :4])
    loaded = []
    real_getitem = np.lib.npyio.NpzFile.__getitem__
    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", lambda self, k: loaded.append(k) or real_getitem(self, k))
    ref = read_reference_stats(path, dim=DIM)
    assert ref.format == "adm-reference-batch" and sorted(loaded) == ["mu", "sigma"]
    np.testing.assert_array_equal(ref.mu, mu)


def test_header_only_check_reads_sigma_shape_without_its_data(tmp_path):
    mu, sigma = _spd(DIM)
    np.savez(tmp_path / "s.npz", mu=mu, sigma=sigma)
    assert read_reference_stats(tmp_path / "s.npz", dim=DIM, check_sigma=False).sigma.size == 0
    np.savez(tmp_path / "bad.npz", mu=mu, sigma=sigma[:4])
    with pytest.raises(ReferenceStatsError):
        read_reference_stats(tmp_path / "bad.npz", dim=DIM, check_sigma=False)


def test_missing_file_names_the_key_and_where_to_get_it(tmp_path):
    with pytest.raises(MissingResourceError, match="adm_in256_stats.npz") as exc:
        read_reference_stats(tmp_path / "nope.npz")
    assert "reference.stats_path" in str(exc.value)


@pytest.mark.parametrize("write, words", [
    (lambda p: p.write_bytes(b"not a zip archive at all"), "not an .npz archive"),
    (lambda p: np.savez(p, mu=np.zeros(DIM), sigma=np.eye(DIM)) or p.write_bytes(p.read_bytes()[:-40]),
     "truncated or another format"),
    (lambda p: np.save(p.with_suffix(".npy"), np.zeros(3)) or p.with_suffix(".npy").rename(p), "bare .npy"),
    (lambda p: np.savez(p, mu=np.zeros(DIM)), "'sigma'"),
    (lambda p: np.savez(p, arr_0=np.zeros((2, 4, 4, 3), np.uint8)), "'mu' or 'sigma'"),
    (lambda p: np.savez(p, mu=np.zeros(DIM + 1), sigma=np.eye(DIM + 1)), f"expected ({DIM},)"),
    (lambda p: np.savez(p, mu=np.zeros(DIM), sigma=np.eye(DIM)[:, :3]), "'sigma' (8, 3)"),
    (lambda p: np.savez(p, mu=np.zeros(DIM, np.int64), sigma=np.eye(DIM, dtype=np.int64)), "not floating point"),
    (lambda p: np.savez(p, mu=np.full(DIM, np.nan), sigma=np.eye(DIM)), "'mu' holds NaN"),
    (lambda p: np.savez(p, mu=np.zeros(DIM), sigma=np.triu(np.ones((DIM, DIM)))), "not symmetric"),
], ids=["not-zip", "truncated", "npy", "no-sigma", "images-only", "wrong-dim", "wrong-sigma-shape", "ints", "nan", "asymmetric"])
def test_malformed_files_give_one_line_errors(tmp_path, write, words):
    path = tmp_path / "ref.npz"
    write(path)
    with pytest.raises(ReferenceStatsError) as exc:
        read_reference_stats(path, dim=DIM)
    assert words in _one_line(exc)


def test_default_dimension_is_inception_pool3(tmp_path):
    mu, sigma = _spd(DIM)
    np.savez(tmp_path / "small.npz", mu=mu, sigma=sigma)
    with pytest.raises(ReferenceStatsError, match=r"expected \(2048,\) and \(2048, 2048\)"):
        read_reference_stats(tmp_path / "small.npz")
