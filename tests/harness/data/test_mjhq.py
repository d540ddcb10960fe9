"""MJHQ-30K reader: key order, both layouts, and one precise error per kind of damage."""
from __future__ import annotations

import json

import pytest

from harness.data.image_io import CorruptImageError
from harness.data.mjhq import CATEGORIES, MJHQ30K, MJHQLayoutError, decode_rgb, read_meta
from tests.harness.data.fake_mjhq import jpeg_bytes, make_tree, picture


def test_entries_follow_meta_data_key_order(tmp_path):
    root = make_tree(tmp_path / "mjhq")
    ds = MJHQ30K(root, require_full=False)
    keys = list(json.loads((root / "meta_data.json").read_text()))
    assert [e.id for e in ds.entries] == keys
    assert [e.category for e in ds.entries[:3]] == list(CATEGORIES[:3])  # interleaved, not sorted by category
    assert ds.layout == "folder"
    ds.validate()
    ds.check_headers()
    blob = ds.read_bytes(ds.entries[0])
    assert decode_rgb(blob, "x").mode == "RGB"


def test_category_folders_under_an_images_subfolder_are_found(tmp_path):
    root = make_tree(tmp_path / "unzipped" / "mjhq30k_imgs")
    (tmp_path / "unzipped" / "meta_data.json").write_text((root / "meta_data.json").read_text())
    ds = MJHQ30K(tmp_path / "unzipped", require_full=False)
    assert ds.images_dir == root
    ds.validate()


def test_the_full_dataset_is_required_by_default(tmp_path):
    root = make_tree(tmp_path / "mjhq")
    with pytest.raises(MJHQLayoutError, match=r"holds 20 prompts .*30,000 = 10 x 3,000.*require_full=false"):
        MJHQ30K(root).validate()


def test_root_from_env_var_and_missing_root(tmp_path, monkeypatch):
    from harness.api import MissingResourceError

    with pytest.raises(MissingResourceError, match="DCAR_MJHQ_ROOT"):
        MJHQ30K(None)
    root = make_tree(tmp_path / "mjhq")
    monkeypatch.setenv("DCAR_MJHQ_ROOT", str(root))
    assert MJHQ30K(None, require_full=False).root == root


def test_wrong_layout_is_named(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    (root / "meta_data.json").write_text(json.dumps({"a": {"category": "art", "prompt": "p"}}))
    (root / "a.jpg").write_bytes(jpeg_bytes(picture(0)))
    with pytest.raises(MJHQLayoutError, match=r"no category folders .*<root>/<category>/<image id>.jpg"):
        MJHQ30K(root, require_full=False)


def test_a_missing_category_is_named(tmp_path):
    root = make_tree(tmp_path / "mjhq")
    import shutil

    shutil.rmtree(root / "logo")
    with pytest.raises(MJHQLayoutError, match=r"category folder logo missing"):
        MJHQ30K(root, require_full=False).validate()


def test_a_category_without_prompts_is_named(tmp_path):
    root = make_tree(tmp_path / "mjhq", categories=CATEGORIES[:9])
    with pytest.raises(MJHQLayoutError, match=r"no prompts of category vehicles"):
        MJHQ30K(root, require_full=False).validate()


def test_prompt_image_count_mismatch_names_category_and_count(tmp_path):
    root = make_tree(tmp_path / "mjhq", per_category=3)
    victim = next(p for p in (root / "food").iterdir())
    victim.unlink()
    with pytest.raises(MJHQLayoutError, match=r"food: 1 of the 3 images meta_data.json lists for category food are "
                                              r"missing \(e.g. " + victim.name):
        MJHQ30K(root, require_full=False).validate()


def test_grayscale_and_corrupt_jpegs_are_named(tmp_path):
    root = make_tree(tmp_path / "mjhq")
    ds = MJHQ30K(root, require_full=False)
    gray = ds.image_path(ds.entries[4])
    picture(1).convert("L").save(gray, format="JPEG")
    with pytest.raises(MJHQLayoutError, match=rf"image {gray} is mode L, not RGB"):
        ds.check_headers()
    with pytest.raises(MJHQLayoutError, match="mode L, not RGB"):
        decode_rgb(gray.read_bytes(), gray)
    picture(1).save(gray, format="JPEG")
    bad = ds.image_path(ds.entries[7])
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # header intact, data truncated
    ds.check_headers()  # a truncated body passes the header check ...
    with pytest.raises(CorruptImageError, match=rf"cannot read image {bad}"):
        decode_rgb(bad.read_bytes(), bad)  # ... and is named when decoded
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(MJHQLayoutError, match=rf"cannot read image {bad}"):
        ds.check_headers()


def test_malformed_meta_data_is_named(tmp_path):
    (tmp_path / "meta_data.json").write_text(json.dumps({"x": {"category": "dogs", "prompt": "p"}}))
    with pytest.raises(MJHQLayoutError, match=r"entry 'x' has category 'dogs'"):
        read_meta(tmp_path / "meta_data.json")
    (tmp_path / "meta_data.json").write_text("[1, 2]")
    with pytest.raises(MJHQLayoutError, match="expected a JSON object keyed by image id"):
        read_meta(tmp_path / "meta_data.json")


def test_parquet_layout(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    tree = make_tree(tmp_path / "tree")
    root = tmp_path / "parquet"
    (root / "data").mkdir(parents=True)
    (root / "meta_data.json").write_text((tree / "meta_data.json").read_text())
    meta = json.loads((tree / "meta_data.json").read_text())
    rows = [{"bytes": (tree / v["category"] / f"{k}.jpg").read_bytes(), "path": f"{k}.jpg"} for k, v in meta.items()]
    labels = [CATEGORIES.index(v["category"]) for v in meta.values()]
    half = len(rows) // 2
    for i, sl in enumerate((slice(0, half), slice(half, None))):
        pq.write_table(pa.table({"image": rows[sl], "label": labels[sl]}), root / "data" / f"test-{i}.parquet")
    ds = MJHQ30K(root, require_full=False)
    assert ds.layout == "parquet"
    ds.validate()
    folder = MJHQ30K(tree, require_full=False)
    got = dict(ds.iter_bytes(ds.entries[::3]))
    assert all(got[e] == folder.read_bytes(e) for e in ds.entries[::3])
    pq.write_table(pa.table({"image": rows[:half], "label": labels[:half]}), root / "data" / "test-1.parquet")
    with pytest.raises(MJHQLayoutError, match=r"10 of 20 images in meta_data.json are not in the parquet files"):
        MJHQ30K(root, require_full=False).validate()
