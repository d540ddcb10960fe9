"""``dcar-bench stats make/show``: a file the suite's protocol check accepts, refused under another protocol, user errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.cli import main as cli_main
from harness.metrics.fid import FeatureStats, ProtocolMismatchError, check_reference_stats

SEED = ["--random-init-seed", "0"]


def _write_images(root, sizes=((40, 52), (48, 48), (36, 60)), seed=0):
    """Generated pictures (gradients + noise) in three formats and a subfolder, plus a file that is not an image."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "sub").mkdir(parents=True)
    names = ["b.png", "a.jpg", "sub/c.webp"]
    for name, (h, w) in zip(names, sizes):
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], -1) + rng.integers(0, 40, (h, w, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / name, quality=95, lossless=True)
    (root / "notes.txt").write_text("not an image")
    return sorted(names)


def _make(tmp_path, *extra):
    out = tmp_path / "ref.npz"
    rc = cli_main(["stats", "make", str(tmp_path / "imgs"), "--protocol", "imagenet_recon", "--resolution", "32",
                   "--out", str(out), *SEED, *extra])
    return rc, out


def test_make_writes_stats_the_suite_protocol_accepts(tmp_path, capsys):
    from harness.data.image_io import open_rgb
    from harness.data.imagenet import adm_center_crop
    from harness.metrics.inception import InceptionFeatureExtractor

    names = _write_images(tmp_path / "imgs")
    rc, out = _make(tmp_path)
    assert rc == 0 and "wrote" in capsys.readouterr().out
    ex = InceptionFeatureExtractor(random_init_seed=0)
    protocol = {"dataset": "imagenet-val", "crop": "adm_center_crop", "resolution": 32, **ex.describe()}
    stats = FeatureStats.load(out, expected_protocol=protocol)
    assert stats.n == 3 and stats.dim == 2048
    assert stats.meta["num_images"] == 3 and len(stats.meta["inputs_sha256"]) == 64
    # the same numbers as extracting the sorted crops directly
    crops = np.stack([adm_center_crop(open_rgb(tmp_path / "imgs" / n), 32) for n in names])
    direct = FeatureStats.from_features(ex(torch.from_numpy(crops).permute(0, 3, 1, 2)), protocol)
    np.testing.assert_allclose(stats.mean, direct.mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(stats.cov, direct.cov, rtol=1e-5, atol=1e-7)
    # another protocol (resize path, resolution, weights) is refused, by the loader and by the plan-time check
    for key, value in (("resize", "bilinear_tf1x"), ("resolution", 256), ("weights", "sha256:abc")):
        with pytest.raises(ProtocolMismatchError, match=key):
            FeatureStats.load(out, expected_protocol={**protocol, key: value})
        with pytest.raises(ProtocolMismatchError, match=key):
            check_reference_stats(out, {**protocol, key: value})
    # the digest covers the inputs: changing one file changes it
    first = stats.meta["inputs_sha256"]
    (tmp_path / "imgs" / "notes.txt").write_text("ignored")  # not an image: no effect
    assert _make(tmp_path, "--force")[0] == 0
    assert FeatureStats.load(out).meta["inputs_sha256"] == first
    from PIL import Image

    Image.new("RGB", (40, 40), (10, 20, 30)).save(tmp_path / "imgs" / "b.png")
    assert _make(tmp_path, "--force")[0] == 0
    assert FeatureStats.load(out).meta["inputs_sha256"] != first


def test_protocol_equals_the_imagenet_recon_suite_protocol(tmp_path):
    """A file made by the command for imagenet_recon settings carries exactly the suite's fid_protocol()."""
    from harness.runner.config import merge_config
    from suites.imagenet_recon import ImageNetReconSuite

    _write_images(tmp_path / "imgs")
    rc, out = _make(tmp_path, "--resize", "bilinear_tf1x")
    assert rc == 0
    cfg = merge_config(ImageNetReconSuite.default_config(), None, {
        "dataset.resolution": 32, "metrics.inception.random_init_seed": 0,
        "metrics.inception.resize": "bilinear_tf1x", "metrics.lpips.random_backbone_seed": 0})
    suite_protocol = ImageNetReconSuite(cfg).fid_protocol()
    assert check_reference_stats(out, suite_protocol).protocol == suite_protocol


def test_show_prints_n_dim_and_protocol(tmp_path, capsys):
    _write_images(tmp_path / "imgs")
    rc, out = _make(tmp_path)
    capsys.readouterr()
    assert cli_main(["stats", "show", str(out)]) == 0
    text = capsys.readouterr().out
    assert "n: 3" in text and "dim: 2048" in text and 'resize: "bilinear_pytorch"' in text
    assert 'crop: "adm_center_crop"' in text and "inputs_sha256" in text


def test_whole_image_protocol_groups_sizes_and_labels_the_folder(tmp_path):
    _write_images(tmp_path / "imgs", sizes=((40, 40), (40, 40), (36, 60)))
    out = tmp_path / "whole.npz"
    assert cli_main(["stats", "make", str(tmp_path / "imgs"), "--protocol", "whole_image", "--out", str(out),
                     *SEED, "--batch-size", "2"]) == 0
    header = check_reference_stats(out)
    assert header.n == 3 and header.protocol["crop"] == "none" and header.protocol["dataset"] == "imgs"


@pytest.mark.parametrize("case,expected", [
    ("empty", "no images"),
    ("unreadable", "cannot read image"),
    ("protocol", "unknown protocol 'imagenet_rcon'. Did you mean 'imagenet_recon'?"),
    ("resize", "unknown --resize"),
    ("one", "a covariance needs at least 2"),
    ("exists", "pass --force"),
    ("show_missing", "statistics file not found"),
])
def test_user_errors_are_one_line_exit_1(tmp_path, capsys, case, expected):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    out = tmp_path / "ref.npz"
    args = ["stats", "make", str(imgs), "--protocol", "imagenet_recon", "--out", str(out), *SEED]
    if case == "unreadable":
        _write_images(tmp_path / "x")
        imgs = tmp_path / "x"
        (imgs / "broken.png").write_bytes(b"")
        args[2] = str(imgs)
    elif case == "protocol":
        args[4] = "imagenet_rcon"
    elif case == "resize":
        args += ["--resize", "bicubic"]
    elif case == "one":
        from PIL import Image

        Image.new("RGB", (32, 32)).save(imgs / "only.png")
    elif case == "exists":
        out.write_bytes(b"x")
    elif case == "show_missing":
        args = ["stats", "show", str(out)]
    assert cli_main(args) == 1
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err and "Traceback" not in err
    if case == "unreadable":
        assert "broken.png" in err
