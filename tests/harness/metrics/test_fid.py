"""FID / KID core: agreement with torch-fidelity and clean-fid, mergeability, protocol refusal, stats headers."""
from __future__ import annotations

import numpy as np
import pytest

from harness.api import DataError, MissingResourceError, UserError
from harness.metrics.fid import (
    FID,
    KID,
    FeatureStats,
    ProtocolMismatchError,
    cached_reference_stats,
    check_reference_stats,
    fid_from_features,
    fid_from_stats,
    frechet_distance,
    import_mu_sigma,
    kid_from_features,
)

PROTO = {"dataset": "x", "resolution": 64, "weights": "w1", "resize": "bilinear_pytorch"}


def _feature_sets(n1=400, n2=350, d=48, seed=0):
    """Two correlated, non-isotropic feature sets (well-conditioned covariances)."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    f1 = rng.normal(size=(n1, d)) @ mix + 0.5
    f2 = (rng.normal(size=(n2, d)) * 1.2) @ mix + 0.3 + 0.05 * rng.normal(size=d)
    return np.abs(f1), np.abs(f2)  # non-negative like pool3 features


def test_frechet_distance_equals_torch_fidelity_and_clean_fid():
    import torch
    from cleanfid.fid import fid_from_feats
    from cleanfid.fid import frechet_distance as cf_frechet
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    f1, f2 = _feature_sets()
    ours = fid_from_features(f1, f2)
    assert ours > 0.05
    tf_stats = [fid_features_to_statistics(torch.from_numpy(f)) for f in (f1, f2)]
    tf = fid_statistics_to_metric(tf_stats[0], tf_stats[1], verbose=False)["frechet_inception_distance"]
    assert ours == pytest.approx(tf, rel=1e-6)
    assert ours == pytest.approx(float(fid_from_feats(f1, f2)), rel=1e-6)
    s1, s2 = FeatureStats.from_features(f1), FeatureStats.from_features(f2)
    assert ours == pytest.approx(float(cf_frechet(s1.mean, s1.cov, s2.mean, s2.cov)), rel=1e-10)
    # the fast symmetric variant gives the same number on full-rank covariances
    assert fid_from_features(f1, f2, method="eigh") == pytest.approx(tf, rel=1e-6)
    with pytest.raises(ValueError, match="Fréchet method"):
        fid_from_features(f1, f2, method="svd")
    # our mean/cov are numpy's (float64, N-1)
    np.testing.assert_allclose(s1.cov, np.cov(f1, rowvar=False), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(s1.mean, f1.mean(0), rtol=1e-12)


@pytest.mark.slow
def test_fid_on_inception_features_equals_clean_fid(inception_kaiming, sample_crops):
    """2048-d (Kaiming-Inception) features: the full-size sqrtm, as in a real run (minutes on 2 busy cores)."""
    import torch
    from cleanfid.fid import fid_from_feats

    crops = torch.from_numpy(sample_crops(48)).permute(0, 3, 1, 2)
    feats = inception_kaiming(crops)
    darker = inception_kaiming((crops.float() * 0.6).round().to(torch.uint8))
    ours = fid_from_features(feats, darker)
    assert ours == pytest.approx(float(fid_from_feats(feats, darker)), rel=1e-6)
    assert ours > 0


def test_fid_of_a_set_with_itself_is_zero():
    f1, _ = _feature_sets()
    assert abs(fid_from_features(f1, f1)) < 1e-8
    assert abs(fid_from_features(f1, f1, method="eigh")) < 1e-8
    s = FeatureStats.from_features(f1, PROTO)
    assert abs(FID()(s, s)) < 1e-8


@pytest.mark.parametrize("chunks", [1, 3, 7, 50])
def test_stats_are_invariant_to_batching_and_shard_merging(chunks):
    f1, _ = _feature_sets()
    whole = FeatureStats.from_features(f1, PROTO)
    # batches of uneven size fed into one accumulator
    bounds = np.linspace(0, len(f1), chunks + 1).astype(int)
    batched = FeatureStats(f1.shape[1], PROTO)
    for a, b in zip(bounds[:-1], bounds[1:]):
        batched.update(f1[a:b])
    # shards accumulated separately (interleaved, like rank striding) and merged
    shards = [FeatureStats.from_features(f1[i::chunks], PROTO) for i in range(chunks)]
    merged = FeatureStats(f1.shape[1], PROTO)
    for s in shards:
        merged.merge(s)
    for s in (batched, merged):
        assert s.n == whole.n
        np.testing.assert_allclose(s.mean, whole.mean, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(s.cov, whole.cov, rtol=1e-10, atol=1e-13)
        _, f2 = _feature_sets()
        other = FeatureStats.from_features(f2, PROTO)
        assert fid_from_stats(s, other) == pytest.approx(fid_from_stats(whole, other), rel=1e-9)


def test_eps_retry_when_sqrtm_is_not_finite(monkeypatch):
    import scipy.linalg

    f1, f2 = _feature_sets()
    s1, s2 = FeatureStats.from_features(f1), FeatureStats.from_features(f2)
    clean, info = frechet_distance(s1.mean, s1.cov, s2.mean, s2.cov)
    assert info["eps_retry"] is False
    real_sqrtm, calls = scipy.linalg.sqrtm, []

    def flaky(a, *args, **kw):
        calls.append(a)
        out = real_sqrtm(a, *args, **kw)
        return out * np.nan if len(calls) == 1 else out

    monkeypatch.setattr(scipy.linalg, "sqrtm", flaky)
    retried, info = frechet_distance(s1.mean, s1.cov, s2.mean, s2.cov)
    assert info["eps_retry"] is True and len(calls) == 2
    expected_product = (s1.cov + 1e-6 * np.eye(48)) @ (s2.cov + 1e-6 * np.eye(48))
    np.testing.assert_allclose(calls[1], expected_product)
    assert retried == pytest.approx(clean, rel=1e-4)


def test_protocol_mismatch_is_refused_everywhere(tmp_path):
    from harness.cache import Cache

    f1, f2 = _feature_sets()
    a = FeatureStats.from_features(f1, PROTO)
    b = FeatureStats.from_features(f2, {**PROTO, "resize": "bilinear_tf1x"})
    with pytest.raises(ProtocolMismatchError, match="resize"):
        fid_from_stats(a, b)
    with pytest.raises(ProtocolMismatchError):
        a.merge(b)
    path = tmp_path / "ref.npz"
    a.save(path)
    loaded = FeatureStats.load(path, expected_protocol=PROTO)
    assert loaded.n == a.n and fid_from_stats(loaded, a) == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ProtocolMismatchError, match=r"resolution: 64 vs 512"):
        FeatureStats.load(path, expected_protocol={**PROTO, "resolution": 512})
    # a bare mu/sigma file (pytorch-fid / DC-AE style) has no protocol: refused unless imported explicitly
    bare = tmp_path / "bare.npz"
    np.savez(bare, mu=a.mean, sigma=a.cov)
    with pytest.raises(ValueError, match="import_mu_sigma"):
        FeatureStats.load(bare, expected_protocol=PROTO)
    imported = import_mu_sigma(bare, n=a.n, protocol=PROTO)
    np.testing.assert_allclose(imported.cov, a.cov)
    # the cache: computed once, then served; an entry whose protocol differs from its key is refused
    cache = Cache(tmp_path / "cache")
    stats, hit = cached_reference_stats(cache, "abc", PROTO, lambda: a)
    assert not hit
    stats2, hit = cached_reference_stats(cache, "abc", PROTO, lambda: pytest.fail("must come from the cache"))
    assert hit and stats2.n == a.n
    np.testing.assert_allclose(stats2.cov, a.cov)
    with pytest.raises(ProtocolMismatchError):
        cached_reference_stats(cache, "def", {**PROTO, "weights": "w2"}, lambda: a)


def test_bad_features_are_rejected():
    with pytest.raises(ValueError, match="2-D"):
        FeatureStats.from_features(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        FeatureStats.from_features(np.full((3, 2), np.nan))
    s = FeatureStats.from_features(np.ones((1, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        _ = s.cov
    with pytest.raises(ValueError, match="dimension"):
        s.update(np.ones((2, 5)))


def test_kid_equals_torch_fidelity_and_clean_fid():
    import torch
    from cleanfid.fid import kernel_distance
    from torch_fidelity.metric_kid import kid_features_to_metric

    f1, f2 = _feature_sets(n1=120, n2=120, d=32)
    # several random subsets: the same RandomState draw order as torch-fidelity
    mean, std = kid_from_features(f1, f2, subsets=5, subset_size=50, seed=3)
    tf = kid_features_to_metric(torch.from_numpy(f1), torch.from_numpy(f2), kid_subsets=5, kid_subset_size=50,
                                rng_seed=3, kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                                kid_kernel_poly_coef0=1, verbose=False)
    assert mean == pytest.approx(tf["kernel_inception_distance_mean"], rel=1e-9)
    assert std == pytest.approx(tf["kernel_inception_distance_std"], rel=1e-9)
    # one subset holding every sample: the estimator is permutation invariant, so clean-fid must agree exactly
    full, _ = KID(subsets=1, subset_size=10_000)(f1, f2)
    assert full == pytest.approx(kernel_distance(f1, f2, num_subsets=1, max_subset_size=10_000), rel=1e-9)
    same_dist, _ = KID(subsets=1, subset_size=10_000)(f1[:60], f1[60:])  # two halves of one distribution
    assert abs(same_dist) < 0.25 * full
    with pytest.raises(ValueError, match="subset_size"):
        kid_from_features(f1, f2, subset_size=1000)


def test_check_reference_stats_reads_only_the_header(tmp_path, monkeypatch):
    f1, _ = _feature_sets()
    path = tmp_path / "ref.npz"
    FeatureStats.from_features(f1, PROTO).save(path)
    meta = {"num_images": len(f1), "inputs_sha256": "ab" * 32}
    with_meta = tmp_path / "ref_meta.npz"
    s = FeatureStats.from_features(f1, PROTO)
    s.meta = meta
    s.save(with_meta)
    read: list[str] = []
    real_getitem = np.lib.npyio.NpzFile.__getitem__
    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", lambda self, k: read.append(k) or real_getitem(self, k))
    header = check_reference_stats(with_meta, PROTO)
    assert (header.n, header.dim, header.protocol, header.meta) == (len(f1), f1.shape[1], PROTO, meta)
    assert "scatter" not in read and "sigma" not in read  # the 2048x2048 matrices are not read at plan time
    assert check_reference_stats(path).meta == {}
    monkeypatch.undo()
    assert FeatureStats.load(with_meta, expected_protocol=PROTO).meta == meta  # meta survives a round trip
    with pytest.raises(ProtocolMismatchError, match=r"resize: 'bilinear_pytorch' vs 'bilinear_tf1x'"):
        check_reference_stats(path, {**PROTO, "resize": "bilinear_tf1x"})
    one = tmp_path / "one.npz"
    np.savez(one, mu=np.zeros(2), sigma=np.zeros((2, 2)), n=np.asarray(1), scatter=np.zeros((2, 2)),
             protocol_json=np.asarray('{"dataset": "x"}'))
    with pytest.raises(DataError, match="1 sample.*at least 2"):
        check_reference_stats(one)
    with pytest.raises(MissingResourceError, match="stats make"):
        check_reference_stats(tmp_path / "absent.npz", PROTO)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    bare = tmp_path / "bare.npz"
    np.savez(bare, mu=np.zeros(2), sigma=np.eye(2))
    for bad, pattern in ((junk, "cannot be read"), (bare, "import_mu_sigma")):
        with pytest.raises(DataError, match=pattern) as err:
            check_reference_stats(bad, PROTO)
        assert isinstance(err.value, UserError) and str(bad) in str(err.value)
