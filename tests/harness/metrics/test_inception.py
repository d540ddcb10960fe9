"""FID-Inception: each path is its library's network on our weights, the two libraries agree, offline weight lookup."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.api import DataError, MissingResourceError
from harness.metrics.inception import (
    WEIGHTS_FILENAMES,
    DownloadRefused,
    InceptionFeatureExtractor,
    build_library_network,
    random_state_dict,
)


def _u8(shape, seed):
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_tf1x_path_is_torch_fidelity_loading_the_same_file(tmp_path):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    weights = tmp_path / "kaiming.pth"
    torch.save(random_state_dict(5), weights)
    ours = InceptionFeatureExtractor(weights, resize="bilinear_tf1x")
    # torch-fidelity's own file loading (its documented feature_extractor_weights_path)
    theirs = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights))
    u8 = _u8((2, 3, 40, 56), 2)
    with torch.no_grad():
        expected = theirs(u8)[0].double().numpy()
    np.testing.assert_array_equal(ours(u8), expected)
    assert expected.std(axis=0).mean() > 0  # non-degenerate
    assert ours.library.startswith("torch-fidelity 0.4.0")


def test_pytorch_path_is_pytorch_fid_fed_as_its_fid_score_does(monkeypatch):
    import pytorch_fid.inception as pfid

    state = random_state_dict(5)
    ours = InceptionFeatureExtractor(random_init_seed=5)  # bilinear_pytorch is the default
    monkeypatch.setattr(pfid, "load_state_dict_from_url", lambda url, **kw: state)
    theirs = pfid.InceptionV3([3]).eval()
    u8 = _u8((2, 3, 40, 56), 3)
    with torch.no_grad():  # pytorch_fid.fid_score: ToTensor() (u8/255) -> model(batch)[0] -> squeeze
        expected = theirs(u8.float() / 255.0)[0].squeeze(3).squeeze(2).double().numpy()
    np.testing.assert_array_equal(ours(u8), expected)
    assert ours.library.startswith("pytorch-fid 0.3.0")


def test_the_two_libraries_are_one_network_on_one_input():
    """Same weights, same normalised 299x299 input: torch-fidelity's and pytorch-fid's networks agree."""
    state = random_state_dict(7)
    tf1x = build_library_network("bilinear_tf1x", state)
    bare = build_library_network("bilinear_pytorch", state, resize_input=False, normalize_input=False)
    u8 = _u8((2, 3, 299, 299), 4)  # TF1.x resize to the same size is the identity
    with torch.no_grad():
        a = tf1x(u8)[0].double().numpy()
        b = bare((u8.float() - 128.0) / 128.0)[0].flatten(1).double().numpy()
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_pytorch_path_matches_the_dcae_order_normalise_then_resize():
    """DC-AE normalises to [-1, 1] first, then resizes; bilinear is linear, so only rounding differs."""
    state = random_state_dict(1)
    ours = InceptionFeatureExtractor(random_init_seed=1)
    bare = build_library_network("bilinear_pytorch", state, resize_input=False, normalize_input=False)
    u8 = _u8((2, 3, 64, 80), 1)
    dcae_input = torch.nn.functional.interpolate(u8.float() / 255.0 * 2 - 1, size=(299, 299), mode="bilinear",
                                                 align_corners=False)
    with torch.no_grad():
        dcae = bare(dcae_input)[0].flatten(1).double().numpy()
    np.testing.assert_allclose(ours(u8), dcae, rtol=1e-5, atol=1e-5)


def test_features_do_not_depend_on_batch_size_or_input_dtype(inception_kaiming, sample_crops):
    u8 = torch.from_numpy(sample_crops(40, names=("astronaut", "coffee", "chelsea"))).permute(0, 3, 1, 2)
    batched = inception_kaiming(u8.contiguous())  # batch_size 8: one batch
    one_by_one = InceptionFeatureExtractor(random_init_seed=0, batch_size=1)(u8.float() / 255.0)
    assert batched.shape == (3, 2048) and batched.dtype == np.float64
    np.testing.assert_allclose(one_by_one, batched, rtol=1e-5, atol=1e-6)
    # the seeded network is reproducible and the images are told apart
    assert np.abs(batched[0] - batched[1]).max() > 100 * np.abs(one_by_one - batched).max()


def test_missing_weights_name_the_file_and_never_download(tmp_path, monkeypatch):
    with pytest.raises(MissingResourceError) as err:
        InceptionFeatureExtractor()
    msg = str(err.value)
    assert WEIGHTS_FILENAMES[0] in msg and "DCAR_FID_INCEPTION" in msg and "torch_home" in msg
    monkeypatch.setenv("DCAR_FID_INCEPTION", str(tmp_path / "missing.pth"))
    with pytest.raises(MissingResourceError, match="missing.pth"):
        InceptionFeatureExtractor()
    with pytest.raises(MissingResourceError, match="given.pth"):
        InceptionFeatureExtractor(tmp_path / "given.pth")


def test_a_library_download_call_is_refused_not_fetched():
    import pytorch_fid.inception as pfid
    import torch_fidelity.feature_extractor_inceptionv3 as tfid

    from harness.metrics.inception import _weights_handed_over

    state = {"x": torch.zeros(1)}
    for lib, url in ((pfid, pfid.FID_WEIGHTS_URL), (tfid, tfid.URL_INCEPTION_V3)):
        with _weights_handed_over(lib, url, state):
            assert lib.load_state_dict_from_url(url) is state
            with pytest.raises(DownloadRefused, match="refusing to download"):
                lib.load_state_dict_from_url("https://example.invalid/other.pth")


def test_building_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    InceptionFeatureExtractor(random_init_seed=2, resize="bilinear_tf1x")
    InceptionFeatureExtractor(random_init_seed=2)
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)


def test_weights_load_from_hub_cache_env_and_path(tmp_path, monkeypatch):
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(random_state_dict(9), hub / WEIGHTS_FILENAMES[1])  # pytorch-fid's file name
    from_hub = InceptionFeatureExtractor()
    assert from_hub.real_weights and from_hub.weights_id.startswith("sha256:")
    assert from_hub.describe()["weights"] == from_hub.weights_id
    u8 = _u8((1, 3, 32, 32), 5)
    np.testing.assert_array_equal(from_hub(u8), InceptionFeatureExtractor(random_init_seed=9)(u8))
    other = tmp_path / "other.pth"
    torch.save(random_state_dict(10), other)
    monkeypatch.setenv("DCAR_FID_INCEPTION", str(other))
    assert InceptionFeatureExtractor().weights_id != from_hub.weights_id  # env var wins over the hub cache
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(3)}, bad)
    for resize in ("bilinear_pytorch", "bilinear_tf1x"):
        with pytest.raises(DataError, match="bad.pth is not an FID-Inception state dict"):
            InceptionFeatureExtractor(bad, resize=resize)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(DataError, match="junk.pth is not an FID-Inception state dict") as err:
        InceptionFeatureExtractor(junk)
    assert "\n" not in str(err.value)


def test_options_are_validated():
    with pytest.raises(ValueError, match="resize path"):
        InceptionFeatureExtractor(random_init_seed=0, resize="clean")
    with pytest.raises(ValueError, match="either"):
        InceptionFeatureExtractor("x.pth", random_init_seed=0)
    ex = InceptionFeatureExtractor(random_init_seed=0)
    assert ex.describe()["real_weights"] is False and "random-init" in ex.weights_id
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        ex(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    assert ex(torch.zeros(0, 3, 8, 8)).shape == (0, 2048)
