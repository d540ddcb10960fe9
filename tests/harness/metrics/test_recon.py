"""PSNR / SSIM / LPIPS agree with scikit-image, torchmetrics and the lpips package on the same inputs."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from harness.api import MissingResourceError
from harness.metrics.recon import LPIPS, PSNR, SSIM, psnr_per_image, ssim_per_image

SAMPLES = ("astronaut", "coffee", "chelsea")


def _distort(img: np.ndarray, kind: str) -> np.ndarray:
    from PIL import Image, ImageFilter

    if kind == "blur":
        return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(2.0)))
    if kind == "noise":
        rng = np.random.default_rng(0)
        return np.clip(img.astype(np.float64) + rng.normal(0, 12, img.shape), 0, 255).round().astype(np.uint8)
    if kind == "jpeg":
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=20)
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    raise ValueError(kind)


def _batches():
    """One batch per distortion: astronaut, coffee and chelsea (same-size crops) and their distorted copies."""
    import skimage.data

    refs = [getattr(skimage.data, n)()[:120, :152] for n in SAMPLES]  # non-square, keeps the test fast
    for kind in ("blur", "noise", "jpeg"):
        yield kind, np.stack(refs), np.stack([_distort(r, kind) for r in refs])


def _t(bhwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(bhwc, copy=True)).permute(0, 3, 1, 2)


@pytest.mark.parametrize("kind,refs,dists", list(_batches()), ids=lambda v: v if isinstance(v, str) else "")
def test_psnr_ssim_equal_skimage_and_torchmetrics(kind, refs, dists):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    a, b = _t(refs), _t(dists)
    psnr = psnr_per_image(a, b)
    ssim_valid = ssim_per_image(a, b, border="valid", precision="float64")
    ssim_full = ssim_per_image(a, b, precision="float64")
    sk_psnr = [peak_signal_noise_ratio(r, d, data_range=255) for r, d in zip(refs, dists)]
    sk_ssim = [structural_similarity(r, d, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255, channel_axis=-1) for r, d in zip(refs, dists)]
    np.testing.assert_allclose(psnr, sk_psnr, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ssim_valid, sk_ssim, rtol=0, atol=1e-6)
    # torchmetrics keeps log(data_range) in float32, so its PSNR agrees to ~1e-8 relative, not to the last bit
    tm_p = tm_psnr(b.double(), a.double(), data_range=255.0, reduction="none", dim=(1, 2, 3)).numpy()
    np.testing.assert_allclose(psnr, tm_p, rtol=1e-6, atol=0)
    # torchmetrics 1.9 (>= 1.5 border behaviour) on the same values in float64
    tm_s = tm_ssim(b.double(), a.double(), data_range=(0.0, 255.0), reduction="none").numpy()
    np.testing.assert_allclose(ssim_full, tm_s, rtol=0, atol=1e-12)
    # the distortion is real, and the two border conventions really differ (why the choice is recorded)
    assert (ssim_full < 0.99).all() and (psnr < 45).all()
    assert (np.abs(ssim_full - ssim_valid) > 1e-5).all()


@pytest.mark.parametrize("kind,refs,dists", list(_batches()), ids=lambda v: v if isinstance(v, str) else "")
def test_default_ssim_is_the_dcae_evaluator_call(kind, refs, dists):
    """DC-AE's evaluator: StructuralSimilarityIndexMeasure(data_range=(0.0, 255.0)).update(ref_u8, rec_u8)."""
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim
    from torchmetrics.image import StructuralSimilarityIndexMeasure

    a, b = _t(refs), _t(dists)
    ours = SSIM()(a, b)
    assert SSIM().spec.params["ssim_precision"] == "float32"
    evaluator = tm_ssim(a, b, data_range=(0.0, 255.0), reduction="none")  # the uint8 batch, as fed there
    assert evaluator.dtype == torch.float32  # the clamp promoted the uint8 batch
    # one image per call here, a batch there: float32 rounding of one convolution (measured <= 6e-8)
    np.testing.assert_allclose(ours, evaluator.double().numpy(), rtol=0, atol=2e-7)
    metric = StructuralSimilarityIndexMeasure(data_range=(0.0, 255.0))
    metric.update(a, b)
    assert ours.mean() == pytest.approx(metric.compute().item(), abs=2e-7)
    # float64 is a different number (up to ~2e-5 on these pictures), hence a named, recorded option
    f64 = SSIM(precision="float64")
    assert f64.spec.params["ssim_precision"] == "float64"
    gap = np.abs(f64(a, b) - ours)
    assert gap.max() > 1e-6 and gap.max() < 1e-4
    np.testing.assert_allclose(SSIM(border="valid")(a, b), ssim_per_image(a, b, border="valid"), rtol=0, atol=0)


def test_psnr_is_mean_of_per_image_values_and_quantises_first():
    rng = np.random.default_rng(1)
    ref = torch.from_numpy(rng.random((3, 3, 32, 48)).astype(np.float32))
    rec = (ref + torch.from_numpy(rng.normal(0, 0.03, ref.shape).astype(np.float32))).clamp(0, 1)
    vals = PSNR()(ref, rec)
    assert vals.shape == (3,)
    # by hand: quantise with floor(255x+0.5), MSE over RGB, 10 log10(255^2/MSE)
    f255, half = np.float32(255), np.float32(0.5)  # the harness quantises float32 images in float32
    qa = np.floor(ref.numpy() * f255 + half).astype(np.float64)
    qb = np.floor(rec.numpy() * f255 + half).astype(np.float64)
    mse = ((qa - qb) ** 2).reshape(3, -1).mean(1)
    np.testing.assert_allclose(vals, 10 * np.log10(255.0 ** 2 / mse), rtol=0, atol=1e-9)
    # float input and its uint8 quantisation give identical values
    from harness.images import to_uint8

    np.testing.assert_array_equal(PSNR()(to_uint8(ref), to_uint8(rec)), vals)
    np.testing.assert_array_equal(SSIM()(to_uint8(ref), to_uint8(rec)), SSIM()(ref, rec))
    assert np.isinf(PSNR()(ref, ref)).all()
    np.testing.assert_allclose(SSIM()(ref, ref), 1.0, atol=1e-6)
    np.testing.assert_allclose(SSIM(precision="float64")(ref, ref), 1.0, atol=1e-12)


def test_bad_inputs_are_rejected_clearly():
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match="shape mismatch"):
        psnr_per_image(x, torch.rand(1, 3, 32, 30))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        ssim_per_image(x[:, :1], x[:, :1])
    with pytest.raises(ValueError, match="NaN"):
        psnr_per_image(x, torch.full_like(x, float("nan")))
    with pytest.raises(ValueError, match="border"):
        SSIM(border="crop")
    with pytest.raises(ValueError, match="precision"):
        SSIM(precision="float16")
    with pytest.raises(ValueError, match="too small"):
        ssim_per_image(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4))


def test_lpips_equals_lpips_package_with_seeded_random_backbone():
    import lpips

    rng = np.random.default_rng(2)
    ref = torch.from_numpy(rng.random((3, 3, 64, 64)).astype(np.float32))
    rec = (ref + 0.1 * torch.from_numpy(rng.standard_normal(ref.shape).astype(np.float32))).clamp(0, 1)
    ours = LPIPS(random_backbone_seed=123, batch_size=2)
    assert not ours.real_weights and ours.spec.params["real_weights"] is False
    values = ours(ref, rec)

    torch.manual_seed(123)
    theirs = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False).eval()
    from harness.images import to_uint8

    a = to_uint8(ref).float() / 255.0 * 2 - 1
    b = to_uint8(rec).float() / 255.0 * 2 - 1
    with torch.no_grad():
        expected = theirs(a, b).flatten().double().numpy()
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-7)
    assert (values > 0).all()
    np.testing.assert_allclose(ours(ref, ref), 0.0, atol=1e-7)
    # a different seed is a different backbone
    assert not np.allclose(LPIPS(random_backbone_seed=124)(ref, rec), values)


def test_lpips_loads_backbone_from_torch_hub_cache_and_env(tmp_path, monkeypatch):
    import torchvision

    torch.manual_seed(7)
    alex = torchvision.models.alexnet(weights=None)
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(alex.state_dict(), hub / "alexnet-owt-7be5be79.pth")
    m = LPIPS()
    assert m.real_weights and m.weights_id.startswith("sha256:")
    # the trunk now holds exactly the file's weights
    torch.testing.assert_close(m.model.net.slice1[0].weight, alex.features[0].weight, rtol=0, atol=0)
    torch.testing.assert_close(getattr(m.model.net.slice5, "10").bias, alex.features[10].bias, rtol=0, atol=0)
    other = tmp_path / "elsewhere.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), other)
    monkeypatch.setenv("DCAR_LPIPS_ALEXNET", str(other))
    assert LPIPS().weights_id != m.weights_id  # env var wins over the hub cache


def test_lpips_missing_backbone_names_the_file(tmp_path):
    with pytest.raises(MissingResourceError) as err:
        LPIPS()
    msg = str(err.value)
    assert "alexnet-owt-7be5be79.pth" in msg and "DCAR_LPIPS_ALEXNET" in msg
    with pytest.raises(MissingResourceError, match="nope.pth"):
        LPIPS(tmp_path / "nope.pth")
