"""Our mmdet 3 detector equals the official mmdet 2.x one on the same weights (opt-in: needs an mmdet 2 install).

Set ``DCAR_MMDET2_PATH`` to a folder made with
``pip install --no-deps --no-build-isolation --target DIR mmcv==1.7.2 mmdet==2.28.2``
(build env with ``setuptools<81``); the official GenEval config ships in that mmdet wheel.
The 2.x model is built from GenEval's config in a subprocess (mmcv 1.7.2 and mmcv-lite 2.1.0
cannot share a process), given random weights, saved as a 2.x checkpoint and run on one image;
our loader reads that checkpoint (key renaming) and must return identical boxes, scores and masks.
Measured on the dev machine: max difference 0 on a 512x512 and a 333x517 image. The transformers
backend reads the same 2.x file (converted) and is compared too (full-size Swin-S): same per-class
counts and boxes, scores within 7.5e-7, 3 and 2 of the 100 masks' 26M / 17M pixels differ (float
rounding of mask logits near 0). Both processes use the same torch thread count: CPU float sums,
hence these outputs, depend on it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = [pytest.mark.geneval, pytest.mark.slow]
pytest.importorskip("mmdet", reason="needs the geneval-mmdet extra: pip install 'dcar-bench[geneval-mmdet]' (mmdet 3.3.0)")
MMDET2 = os.environ.get("DCAR_MMDET2_PATH")

SCRIPT = textwrap.dedent('''
    import os, sys
    sys.path.insert(0, sys.argv[1])
    from harness.geneval.mmcv_ops import ensure_mmcv_ops
    ensure_mmcv_ops()
    import mmdet, numpy as np, torch
    torch.set_num_threads(int(sys.argv[5]))  # as the test process: CPU float sums depend on the thread count
    assert mmdet.__version__.startswith("2."), mmdet.__version__
    from mmdet.apis import init_detector, inference_detector
    cfg = os.path.join(os.path.dirname(mmdet.__file__), ".mim/configs/mask2former/mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco.py")
    torch.manual_seed(1)
    m = init_detector(cfg, None, device="cpu")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    torch.save({"meta": {"mmdet_version": mmdet.__version__}, "state_dict": m.state_dict()}, sys.argv[2])
    for k, img in enumerate(sys.argv[3].split(",")):
        bbox, segm = inference_detector(m, img)
        np.savez(f"{sys.argv[4]}{k}.npz", **{f"b{c}": bbox[c] for c in range(80)},
                 **{f"m{c}": (np.stack(segm[c]) if len(segm[c]) else np.zeros((0, 1, 1), bool)) for c in range(80)})
''')


@pytest.mark.skipif(not MMDET2, reason="set DCAR_MMDET2_PATH to a --target install of mmcv 1.7.2 + mmdet 2.28.2")
def test_mmdet3_detector_equals_official_mmdet2_on_the_same_checkpoint(tmp_path):
    from PIL import Image

    from harness.geneval.detector import detect, load_detector
    from harness.geneval.hf_mask2former import detect as detect_hf

    rs = np.random.RandomState(0)
    images = [tmp_path / "square.png", tmp_path / "wide.png"]  # 512x512 and 333x517 (resized size not /32)
    Image.fromarray((rs.rand(512, 512, 3) * 255).astype(np.uint8)).save(images[0])
    Image.fromarray((rs.rand(333, 517, 3) * 255).astype(np.uint8)).save(images[1])
    ckpt, out = tmp_path / "m2f_2x.pth", tmp_path / "out2x_"
    import torch

    subprocess.run([sys.executable, "-c", SCRIPT, MMDET2, str(ckpt), ",".join(map(str, images)), str(out),
                    str(torch.get_num_threads())], check=True)
    det = load_detector(checkpoint=ckpt)
    assert det.checkpoint_format == "mmdet2"
    for k, path in enumerate(images):
        ref = np.load(f"{out}{k}.npz")
        raw, = detect(det, [path])
        n = 0
        for c in range(80):
            assert np.array_equal(raw.boxes[c], ref[f"b{c}"]), (path.name, c)
            if len(raw.boxes[c]):
                assert np.array_equal(raw.masks[c], ref[f"m{c}"]), (path.name, c)
                n += len(raw.boxes[c])
        assert n == 100
    # the transformers backend on the same 2.x file (converted on load) against mmdet 2.28.2 itself
    from harness.geneval.hf_mask2former import load_hf_detector
    from harness.geneval.parity import compare_raw

    hf = load_hf_detector(ckpt)
    assert hf.checkpoint_format == "mmdet2"
    for k, path in enumerate(images):
        ref = np.load(f"{out}{k}.npz")
        raw, = detect_hf(hf, [path])
        official = type(raw)([ref[f"b{c}"] for c in range(80)],
                             [ref[f"m{c}"] if len(ref[f"b{c}"]) else np.zeros((0,) + raw.masks[c].shape[1:], bool)
                              for c in range(80)], raw.height, raw.width)
        diff = compare_raw(official, raw)
        print(f"transformers vs mmdet 2.28.2, {path.name}: {diff}")
        assert diff["same_counts"] and diff["max_score_diff"] < 1e-5 and diff["max_box_diff"] <= 1.0
        assert diff["mask_pixels_differing"] <= 1e-6 * 100 * raw.height * raw.width  # float rounding at logit 0
