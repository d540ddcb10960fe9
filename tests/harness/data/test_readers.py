"""Image reading (RGB conversion, corrupt files) and the ImageNet val reader with the ADM centre crop."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from harness.api import DataError, MissingResourceError
from harness.data.image_io import CorruptImageError, load_images, open_rgb, probe_image, read_rgb_array
from harness.data.imagenet import ImageNetVal, adm_center_crop, list_val_images


def _rand_rgb(w, h, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


# --------------------------------------------------------------------------- ADM crop, by hand


def test_adm_crop_halves_with_box_then_bicubic_then_floor_offsets():
    img = _rand_rgb(257, 131)  # odd sides; min 131 >= 2*64 -> one BOX halving to (128, 65)
    out = adm_center_crop(img, 64)
    step = img.resize((128, 65), resample=Image.BOX)
    # s = 64/65: (round(128*64/65), round(65*64/65)) = (round(126.03), 64) = (126, 64)
    step = np.asarray(step.resize((126, 64), resample=Image.BICUBIC))
    expected = step[0:64, 31:95]  # offsets ((64-64)//2, (126-64)//2) = (0, 31)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


def test_adm_crop_upscales_small_odd_images_and_rounds_sizes():
    img = _rand_rgb(51, 37, seed=1)  # s = 64/37: (round(88.22), round(64.0)) = (88, 64); offsets (0, 12)
    expected = np.asarray(img.resize((88, 64), resample=Image.BICUBIC))[0:64, 12:76]
    np.testing.assert_array_equal(adm_center_crop(img, 64), expected)
    tall = _rand_rgb(33, 91, seed=2)  # s = 32/33: (32, round(88.24)) = (32, 88); offsets ((88-32)//2, 0) = (28, 0)
    expected = np.asarray(tall.resize((32, 88), resample=Image.BICUBIC))[28:60, 0:32]
    np.testing.assert_array_equal(adm_center_crop(tall, 32), expected)


def test_adm_crop_box_halving_is_2x2_mean_for_even_sides_and_keeps_exact_size():
    img = _rand_rgb(256, 256, seed=3)  # 256 >= 2*64 twice -> 128 -> 64, then already 64: no bicubic change
    a = np.asarray(img).astype(np.float64)
    half = (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) / 4
    boxed = np.asarray(img.resize((128, 128), Image.BOX)).astype(np.float64)
    assert np.abs(boxed - half).max() <= 1.0 and np.abs(boxed - half).mean() < 0.5  # PIL fixed-point rounding
    out = adm_center_crop(img, 64)
    expected = np.asarray(img.resize((128, 128), Image.BOX).resize((64, 64), Image.BOX))
    np.testing.assert_array_equal(out, expected)
    same = _rand_rgb(64, 64, seed=4)
    np.testing.assert_array_equal(adm_center_crop(same, 64), np.asarray(same))
    with pytest.raises(ValueError, match="RGB"):
        adm_center_crop(same.convert("L"), 32)


# --------------------------------------------------------------------------- conversion and corrupt files


def test_cmyk_gray_rgba_palette_and_16bit_are_converted_to_rgb(tmp_path):
    rgb = _rand_rgb(20, 12, seed=5)
    cmyk = tmp_path / "cmyk.jpg"
    rgb.convert("CMYK").save(cmyk, quality=95)
    gray = tmp_path / "gray.png"
    Image.fromarray(np.arange(240, dtype=np.uint8).reshape(12, 20)).save(gray)
    rgba = tmp_path / "rgba.png"
    arr = np.asarray(rgb)
    Image.fromarray(np.dstack([arr, np.full(arr.shape[:2], 7, np.uint8)])).save(rgba)
    pal = tmp_path / "pal.png"
    rgb.quantize(16).save(pal)
    g16 = tmp_path / "g16.png"
    Image.fromarray(np.full((12, 20), 65535, dtype=np.uint16)).save(g16)

    for p in (cmyk, gray, rgba, pal, g16):
        img = open_rgb(p)
        assert img.mode == "RGB" and img.size == (20, 12), p
    g = read_rgb_array(gray)
    np.testing.assert_array_equal(g[..., 0], g[..., 2])
    np.testing.assert_array_equal(g[..., 1], np.arange(240).reshape(12, 20))
    np.testing.assert_array_equal(read_rgb_array(rgba), arr)  # alpha dropped, colours kept (torchvision loader)
    np.testing.assert_array_equal(read_rgb_array(pal), np.asarray(rgb.quantize(16).convert("RGB")))
    assert (read_rgb_array(g16) == 255).all()  # 16-bit white is white, not clipped garbage
    assert np.abs(read_rgb_array(cmyk).astype(int) - arr).mean() < 20  # JPEG CMYK round trip ~ the picture


def test_corrupt_and_truncated_files_are_named_or_skipped_and_counted(tmp_path):
    good = tmp_path / "good.jpg"
    _rand_rgb(64, 48).save(good, quality=90)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image at all")
    for bad in (truncated, garbage):
        with pytest.raises(CorruptImageError) as err:
            open_rgb(bad)
        assert str(bad) in str(err.value) and err.value.path == str(bad)
    with pytest.raises(CorruptImageError, match="truncated.jpg"):
        load_images([good, truncated, garbage])
    images, report = load_images([good, truncated, garbage], skip_corrupt=True)
    assert len(images) == 1 and report.loaded == [str(good)]
    assert report.num_skipped == 2 and set(report.skipped) == {str(truncated), str(garbage)}
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        open_rgb(tmp_path / "nothere.png")


def test_empty_files_and_headers_are_probed_without_decoding(tmp_path):
    good = tmp_path / "good.jpg"
    _rand_rgb(64, 48).save(good, quality=90)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image at all")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    assert probe_image(good) is None
    assert probe_image(empty) == "empty file (0 bytes)"
    assert probe_image(garbage).startswith("UnidentifiedImageError")
    assert probe_image(tmp_path / "gone.jpg") == "file not found"
    assert probe_image(cut) is None  # the header is intact: only decoding finds it (open_rgb)
    with pytest.raises(CorruptImageError, match="truncated"):
        open_rgb(cut)
    # an empty file is named as such, and the error is a user-facing DataError that is still an OSError
    with pytest.raises(CorruptImageError, match=r"empty\.jpg: empty file \(0 bytes\)") as err:
        open_rgb(empty)
    assert isinstance(err.value, DataError) and isinstance(err.value, OSError)
    hinted = CorruptImageError(empty, "empty file (0 bytes)", hint="Fix: --set x=y")
    assert str(hinted) == f"cannot read image {empty}: empty file (0 bytes). Fix: --set x=y"


# --------------------------------------------------------------------------- ImageNet layouts


def _imagefolder(root, n_per_class=2):
    for c, wnid in enumerate(("n01440764", "n01443537")):
        d = root / wnid
        d.mkdir(parents=True)
        for i in range(n_per_class):
            _rand_rgb(70 + 3 * i, 50 + c, seed=10 * c + i).save(d / f"ILSVRC2012_val_{c}{i:07d}.JPEG", quality=95)


def test_imagefolder_tree_in_torchvision_order(tmp_path):
    _imagefolder(tmp_path / "val")
    ds = ImageNetVal(tmp_path, resolution=32)  # <root>/val/<wnid>/ is found too
    assert ds.layout == "imagefolder" and len(ds) == 4
    assert ds.ids()[0] == "n01440764/ILSVRC2012_val_00000000.JPEG"
    assert [im.label for im in ds.images] == ["n01440764"] * 2 + ["n01443537"] * 2
    crop = ds.load(ds.ids()[3])
    np.testing.assert_array_equal(crop, adm_center_crop(open_rgb(ds.images[3].path), 32))
    import torchvision

    tv = torchvision.datasets.ImageFolder(str(tmp_path / "val"))
    assert [p for p, _ in tv.samples] == [str(im.path) for im in ds.images]
    sub = ImageNetVal(tmp_path, resolution=32, limit=2)  # evenly spaced: one image of each class
    assert [im.label for im in sub.images] == ["n01440764", "n01443537"]
    assert sub.ids() == [ds.ids()[0], ds.ids()[2]]


def test_flat_layout_with_labels_file(tmp_path, monkeypatch):
    for i in range(3):
        _rand_rgb(40, 30, seed=i).save(tmp_path / f"ILSVRC2012_val_{i + 1:08d}.JPEG")
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00000001,n01751748 1 2 3 4\nILSVRC2012_val_00000003,n09193705 5 6 7 8\n")
    monkeypatch.setenv("DCAR_IMAGENET_VAL", str(tmp_path))
    ds = ImageNetVal(resolution=16)
    assert ds.layout == "flat" and ds.ids() == [f"ILSVRC2012_val_{i:08d}.JPEG" for i in (1, 2, 3)]
    assert [im.label for im in ds.images] == ["n01751748", None, "n09193705"]
    txt = tmp_path / "labels.txt"
    txt.write_text("ILSVRC2012_val_00000002.JPEG 65\n")
    items, _ = list_val_images(tmp_path, labels_file=txt)
    assert items[1].label == "65"
    assert ds.load(ds.ids()[0]).shape == (16, 16, 3)


def test_missing_or_empty_root_is_a_clear_error(tmp_path):
    with pytest.raises(MissingResourceError, match="DCAR_IMAGENET_VAL"):
        ImageNetVal()
    with pytest.raises(MissingResourceError, match="nowhere"):
        ImageNetVal(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingResourceError, match="no images"):
        ImageNetVal(tmp_path / "empty")
