"""The real detector code path: Mask2Former Swin-S from its mmdet config, random weights, one CPU inference.

Needs the ``geneval-mmdet`` extra (mmdet 3.3.0 + mmcv-lite 2.1.0 + mmengine); run with
``pytest -m geneval tests/harness/geneval`` or ``tox -e geneval``. Skips cleanly elsewhere.
Measured on the 2-core dev machine: building the model ~8 s, one 512x512 inference
(resized to 800x800 by the test pipeline) ~20 s.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.geneval
pytest.importorskip("mmdet", reason="needs the geneval-mmdet extra: pip install 'dcar-bench[geneval-mmdet]' (mmdet 3.3.0)")

from harness.geneval.checkpoint import convert_mmdet2_state_dict, is_mmdet2_state_dict  # noqa: E402
from harness.geneval.detector import RawDetections, detect, load_detector  # noqa: E402
from harness.geneval.mmcv_ops import STUB_MARKER, check_device_support, ensure_mmcv_ops, mmcv_status  # noqa: E402
from harness.geneval.prompts import load_class_names  # noqa: E402
from harness.geneval.records import make_record, rle_decode  # noqa: E402

KEYS_2X = Path(__file__).parent / "data" / "mmdet2_mask2former_swin-s_state_dict_keys.txt"


@pytest.fixture(scope="module")
def detector():
    t = time.perf_counter()
    det = load_detector(random_init_seed=0)
    print(f"\nMask2Former Swin-S built with random weights in {time.perf_counter() - t:.1f} s")
    return det


def test_mmcv_stub_is_used_only_without_compiled_ops_and_fails_loudly():
    import sys

    status = ensure_mmcv_ops()
    assert status.installed
    if status.compiled_ops:
        pytest.skip("a compiled mmcv is installed: no stub needed")
    ext = sys.modules["mmcv._ext"]
    assert getattr(ext, STUB_MARKER) and mmcv_status().stub_active
    with pytest.raises(NotImplementedError, match="ms_deform_attn_forward.*no compiled ops"):
        ext.ms_deform_attn_forward(1, 2)
    import torch

    if not torch.cuda.is_available():  # CUDA itself no longer needs compiled ops (test_backend_parity.py)
        with pytest.raises(RuntimeError, match="torch sees no CUDA device"):
            check_device_support("cuda:0")
    check_device_support("cpu")  # fine


def test_model_is_the_official_architecture(detector):
    model = detector.model
    assert type(model).__name__ == "Mask2Former"
    assert sum(p.numel() for p in model.parameters()) == 68_739_547
    assert model.panoptic_head.num_things_classes == 80 and model.panoptic_head.num_queries == 100
    assert type(model.backbone).__name__ == "SwinTransformer"
    steps = [t["type"] for t in model.cfg.test_dataloader.dataset.pipeline]
    assert steps[0] == "LoadImageFromFile" and "DcarBenchPadKeepImgShape" in steps and "LoadAnnotations" not in steps
    assert model.cfg.test_dataloader.dataset.pipeline[0]["to_float32"] is False  # uint8 resize, as mmdet 2.x
    assert not detector.real_weights and detector.info()["random_init_seed"] == 0
    assert detector.info()["backend"] == "mmdet" and detector.info()["ops"]["ms_deform_attn"].startswith("pytorch")


def test_one_cpu_inference_on_512_image_gives_records(detector, tmp_path):
    rs = np.random.RandomState(0)
    img = (rs.rand(512, 512, 3) * 255).astype(np.uint8)
    img[100:300, 150:400] = (200, 30, 30)
    path = tmp_path / "0000.png"
    from PIL import Image

    Image.fromarray(img).save(path)
    t = time.perf_counter()
    raw, = detect(detector, [path])
    print(f"one CPU inference on 512x512: {time.perf_counter() - t:.1f} s")
    assert isinstance(raw, RawDetections) and (raw.height, raw.width) == (512, 512)
    assert len(raw.boxes) == 80 and len(raw.masks) == 80
    n = sum(len(b) for b in raw.boxes)
    assert n == 100  # max_per_image of the test_cfg
    for b, m in zip(raw.boxes, raw.masks):
        assert b.shape[1] == 5 and m.shape == (len(b), 512, 512) and m.dtype == bool
        if len(b):
            assert (b[:, 4] >= 0).all() and (b[:, 4] <= 1).all()
            assert (b[:, :4] >= 0).all() and (b[:, [0, 2]] <= 512).all() and (b[:, [1, 3]] <= 512).all()
    # the same image as an RGB array (the gate path) gives the same detections
    raw2, = detect(detector, [img])
    assert all(np.array_equal(a, b) for a, b in zip(raw.boxes, raw2.boxes))
    # records from the real output: ask a colour of the best class so its masks are recorded
    names = load_class_names()
    best = int(np.argmax([b[:, 4].max() if len(b) else -1 for b in raw.boxes]))
    meta = {"tag": "colors", "include": [{"class": names[best], "count": 1, "color": "red"}]}
    rec = make_record(raw, meta, names, record_threshold=0.0, max_objects=16)
    json.dumps(rec)
    objs = rec["detections"][names[best]]
    top = np.argsort(raw.boxes[best][:, 4], kind="stable")[::-1]
    assert objs[0]["score"] == pytest.approx(float(raw.boxes[best][top[0], 4]))
    assert np.array_equal(rle_decode(objs[0]["mask"]), raw.masks[best][top[0]])
    assert len(objs) == min(16, len(raw.boxes[best]))


def test_mmdet2_keys_map_exactly_onto_the_mmdet3_model(detector):
    rows = [line.split(" ", 1) for line in KEYS_2X.read_text().splitlines()]
    shapes_2x = {k: tuple(json.loads(s.replace("(", "[").replace(",)", "]").replace(")", "]"))) for k, s in rows}
    assert len(shapes_2x) == 649 and is_mmdet2_state_dict(shapes_2x)
    mapped = convert_mmdet2_state_dict(shapes_2x)
    sd3 = detector.model.state_dict()
    assert set(mapped) == set(sd3)
    assert all(tuple(sd3[k].shape) == mapped[k] for k in mapped)
    assert not is_mmdet2_state_dict(sd3)


def test_loading_a_2x_checkpoint_and_rejecting_a_wrong_one(detector, tmp_path):
    import torch

    sd3 = detector.model.state_dict()
    keys_2x = [line.split(" ")[0] for line in KEYS_2X.read_text().splitlines()]
    inverse = convert_mmdet2_state_dict({k: k for k in keys_2x})  # mmdet 3 key -> its mmdet 2 name
    g = torch.Generator().manual_seed(1)
    sd2 = {inverse[k]: torch.randn(v.shape, generator=g) if v.is_floating_point() else v for k, v in sd3.items()}
    # OpenMMLab checkpoints carry numpy objects in meta: torch.load(weights_only=True) would refuse them
    ckpt = tmp_path / "mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco.pth"
    torch.save({"meta": {"mmdet_version": "2.28.2", "CLASSES": np.array(load_class_names())}, "state_dict": sd2}, ckpt)
    det = load_detector(checkpoint=tmp_path)  # a directory holding a known checkpoint name works too
    assert det.checkpoint_format == "mmdet2" and det.real_weights and det.checkpoint == str(ckpt)
    loaded = det.model.state_dict()
    assert all(torch.equal(loaded[k], sd2[inverse[k]]) for k in sd3)
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {"backbone.nope": torch.zeros(1)}}, bad)
    with pytest.raises(ValueError, match="does not fit Mask2Former Swin-S COCO"):
        load_detector(checkpoint=bad)
    from harness.api import DataError

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"<html>not a checkpoint</html>")  # e.g. a download that saved an error page
    with pytest.raises(DataError, match=f"{junk} is not a PyTorch checkpoint"):
        load_detector(checkpoint=junk)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_detector(checkpoint=tmp_path / "missing.pth")
