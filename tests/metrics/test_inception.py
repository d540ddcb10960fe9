"""FID-Inception: same features as torch-fidelity on the same weights, batch invariance, offline weight lookup."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.api import MissingResourceError
from harness.metrics.inception import (
    WEIGHTS_FILENAMES,
    InceptionFeatureExtractor,
    prepare_input,
    resize_bilinear_tf1x,
)


@pytest.mark.parametrize("shape", [(2, 3, 37, 53), (1, 3, 299, 299), (1, 3, 301, 640), (1, 3, 8, 5)])
def test_tf1x_resize_equals_torch_fidelity(shape):
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    x = torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(0)).float()
    ref = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
    torch.testing.assert_close(resize_bilinear_tf1x(x, 299), ref, rtol=0, atol=0)


def test_pytorch_bilinear_path_is_dcae_convention():
    u8 = torch.randint(0, 256, (1, 3, 64, 80), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    x = prepare_input(u8, "bilinear_pytorch")
    # DC-AE normalises first, then resizes; bilinear is linear, so the order does not matter beyond rounding
    dcae = torch.nn.functional.interpolate(u8.float() / 255.0 * 2 - 1, size=(299, 299), mode="bilinear",
                                           align_corners=False)
    torch.testing.assert_close(x, dcae, rtol=0, atol=1e-6)
    assert x.shape == (1, 3, 299, 299) and x.min() >= -1 and x.max() <= 1
    with pytest.raises(ValueError, match="resize path"):
        prepare_input(u8, "bicubic")


def test_tf1x_features_equal_torch_fidelity_on_the_same_weights(tmp_path):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    ours = InceptionFeatureExtractor(random_init_seed=5, resize="bilinear_tf1x")
    weights = tmp_path / "kaiming.pth"
    torch.save(ours.net.state_dict(), weights)
    theirs = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights))
    u8 = torch.randint(0, 256, (2, 3, 40, 56), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = theirs(u8)[0].double().numpy()
    np.testing.assert_allclose(ours(u8), expected, rtol=1e-5, atol=1e-6)
    assert expected.std(axis=0).mean() > 0  # non-degenerate


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


def test_weights_load_from_hub_cache_env_and_path(tmp_path, monkeypatch):
    src = InceptionFeatureExtractor(random_init_seed=9)
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(src.net.state_dict(), hub / WEIGHTS_FILENAMES[1])  # pytorch-fid's file name
    from_hub = InceptionFeatureExtractor()
    assert from_hub.real_weights and from_hub.weights_id.startswith("sha256:")
    assert from_hub.describe()["weights"] == from_hub.weights_id
    for k, v in src.net.state_dict().items():
        torch.testing.assert_close(from_hub.net.state_dict()[k], v, rtol=0, atol=0)
    other = tmp_path / "other.pth"
    torch.save(InceptionFeatureExtractor(random_init_seed=10).net.state_dict(), other)
    monkeypatch.setenv("DCAR_FID_INCEPTION", str(other))
    assert InceptionFeatureExtractor().weights_id != from_hub.weights_id  # env var wins over the hub cache
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(3)}, bad)
    with pytest.raises(ValueError, match="not an FID-Inception state dict"):
        InceptionFeatureExtractor(bad)


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
