"""The transformers GenEval detector without mmdet: weight conversion, pre/post-processing, backend selection.

Runs in the default test env (transformers; OpenCV for the tests that resize). Equality with mmdet
itself is in ``test_backend_parity.py`` (geneval env).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.geneval import convert
from harness.geneval.convert import HF_ONLY_KEYS, SWIN_S_COCO, ConversionError, layout_of, mmdet3_to_hf

KEYS_2X = Path(__file__).parent / "data" / "mmdet2_mask2former_swin-s_state_dict_keys.txt"


def _meta_2x_state_dict():
    rows = [line.split(" ", 1) for line in KEYS_2X.read_text().splitlines()]
    return {k: torch.empty(json.loads(s.replace("(", "[").replace(",)", "]").replace(")", "]")), device="meta")
            for k, s in rows}


@pytest.fixture(scope="module")
def hf_full_meta():
    from harness.geneval.hf_mask2former import build_model

    return build_model(SWIN_S_COCO, meta=True).state_dict()


def test_geneval_2x_checkpoint_keys_map_onto_hf_full_model_every_key_used(hf_full_meta):
    from harness.geneval.checkpoint import convert_mmdet2_state_dict

    sd3 = convert_mmdet2_state_dict(_meta_2x_state_dict())  # the 649 keys of GenEval's 743b7d99 file
    assert len(sd3) == 649 and layout_of(sd3) == SWIN_S_COCO
    out = mmdet3_to_hf(sd3, hf_full_meta)  # strict: every key of both sides accounted for, shapes equal
    assert set(out) == set(hf_full_meta) - set(HF_ONLY_KEYS) and len(out) == 757
    mmdet_numel = sum(v.numel() for k, v in sd3.items() if not k.endswith("relative_position_index"))
    assert sum(v.numel() for v in out.values()) == mmdet_numel == 68_739_547


def test_conversion_refuses_unknown_missing_and_misshaped_keys(hf_full_meta):
    from harness.geneval.checkpoint import convert_mmdet2_state_dict

    sd3 = convert_mmdet2_state_dict(_meta_2x_state_dict())
    with pytest.raises(ConversionError, match="no transformers counterpart.*backbone.extra"):
        mmdet3_to_hf({**sd3, "backbone.extra.weight": torch.empty(1, device="meta")}, hf_full_meta)
    dropped = {k: v for k, v in sd3.items() if k != "panoptic_head.query_feat.weight"}
    with pytest.raises(ConversionError, match="1 keys missing.*queries_features"):
        mmdet3_to_hf(dropped, hf_full_meta)
    bad = dict(sd3, **{"panoptic_head.cls_embed.weight": torch.empty(134, 256, device="meta")})
    with pytest.raises(ConversionError, match="wrong shape.*class_predictor"):
        mmdet3_to_hf(bad, hf_full_meta)


def test_patch_merging_permutation_matches_mmdets_unfold():
    """mmdet merges 2x2 patches with nn.Unfold; HF concatenates slices: the permuted weights give the same output."""
    from transformers import SwinConfig
    from transformers.models.swin.modeling_swin import SwinPatchMerging

    torch.manual_seed(0)
    c, h, w = 6, 6, 10
    x = torch.randn(2, h * w, c)
    norm, red = torch.nn.LayerNorm(4 * c), torch.nn.Linear(4 * c, 2 * c, bias=False)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    unfolded = torch.nn.Unfold(kernel_size=2, stride=2)(x.view(2, h, w, c).permute(0, 3, 1, 2)).transpose(1, 2)
    expected = red(norm(unfolded))  # mmdet PatchMerging
    hf = SwinPatchMerging(dim=c) if "config" not in SwinPatchMerging.__init__.__code__.co_varnames else \
        SwinPatchMerging(SwinConfig(), dim=c)
    sd = {"norm.weight": norm.weight, "norm.bias": norm.bias, "reduction.weight": red.weight}
    hf.load_state_dict({k: convert._merge_cols(k)(v.detach())[k] for k, v in sd.items()})
    assert torch.allclose(hf(x, (h, w)), expected, atol=1e-5)


def test_relative_position_index_is_hfs():
    from transformers.models.swin.modeling_swin import SwinRelativePositionBias

    rel = SwinRelativePositionBias.__new__(SwinRelativePositionBias)
    rel.window_size = (7, 7)
    assert torch.equal(convert.swin_relative_position_index(7).view(-1), rel._create_relative_position_index().view(-1))


def test_decoder_self_attention_split_matches_multihead_attention():
    """mmcv's nn.MultiheadAttention (fused in_proj) == HF's Mask2FormerAttention with the split q/k/v weights."""
    from transformers.models.mask2former.modeling_mask2former import Mask2FormerAttention

    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(16, 4).eval()
    hf = Mask2FormerAttention(16, 4).eval()
    sd = convert._split3("", "weight")(mha.in_proj_weight.detach())
    sd.update(convert._split3("", "bias")(mha.in_proj_bias.detach()))
    sd.update({"out_proj.weight": mha.out_proj.weight, "out_proj.bias": mha.out_proj.bias})
    hf.load_state_dict(sd)
    q, pos = torch.randn(5, 2, 16), torch.randn(5, 2, 16)  # (queries, batch, dim)
    with torch.no_grad():
        expected = mha(q + pos, q + pos, q)[0]  # mmcv: query/key get the position, value does not
        ours = hf(hidden_states=q, position_embeddings=pos)[0]
    assert torch.allclose(ours, expected, atol=1e-6)


# ------------------------------------------------------------------ post-processing (mmdet's, known values)

def test_mask2bbox_known_boxes():
    from harness.geneval.postprocess import mask2bbox

    m = torch.zeros(3, 8, 10, dtype=torch.bool)
    m[0, 2:5, 3:7] = True
    m[1, 7, 9] = True
    assert mask2bbox(m).tolist() == [[3, 2, 7, 5], [9, 7, 10, 8], [0, 0, 0, 0]]


def test_instance_postprocess_scores_crop_and_rescale():
    from harness.geneval.postprocess import instance_postprocess
    from harness.geneval.preprocess import Batch

    # 2 queries x 3 classes (+ no-object); padded input 16x16 (mask logits 4x4), image 12x8 resized, original 24x16
    cls = torch.tensor([[4.0, 0.0, 0.0, 0.0], [0.0, 0.0, 3.0, 1.0]])
    masks = torch.full((2, 4, 4), -5.0)
    masks[0, :2, :2] = 5.0  # query 0: top-left
    masks[1, :, 3] = 5.0  # query 1: the right column, which lies in the padding
    batch = Batch(pixel_values=None, img_shape=(12, 8), ori_shape=(24, 16), pad_shape=(16, 16))
    inst = instance_postprocess(cls, masks, batch, num_classes=3, max_per_image=2)
    assert inst.masks.shape == (2, 24, 16)
    order = torch.argsort(inst.scores, descending=True)
    p = torch.softmax(cls, -1)
    assert inst.labels[order].tolist() == [0, 2]
    # query 0: positive on rows 0-7 of the 16x16 padded map (bilinear edge between 7 and 8), all 8 cropped
    # columns; the 12x8 crop rescaled to 24x16 keeps rows 0-15
    m0 = inst.masks[order[0]]
    assert m0[:14].all() and m0[:16].any(dim=1).all() and not m0[16:].any()
    assert inst.bboxes[order[0]].tolist() == [0, 0, 16, 16]
    assert not inst.masks[order[1]].any()  # query 1's mask was all in the padding: cropped away
    assert inst.scores[order[1]].item() == pytest.approx(0.0, abs=1e-5)  # empty mask -> mask score 0
    assert inst.bboxes[order[1]].tolist() == [0, 0, 0, 0]
    assert inst.scores[order[0]].item() < p[0, 0].item()  # class score x mean sigmoid inside the mask (< 1)


def test_rescale_size_is_mmcvs():
    from harness.geneval.preprocess import rescale_size

    assert rescale_size(512, 512) == (800, 800)
    assert rescale_size(333, 517) == (800, 1242)
    assert rescale_size(60, 2000) == (40, 1333)
    assert rescale_size(1024, 1024) == (800, 800)


def test_preprocess_pads_with_128_after_resize_and_normalises_rgb():
    pytest.importorskip("cv2", reason="needs the geneval extra (opencv-python-headless)")
    from harness.geneval.preprocess import MEAN, STD, preprocess

    img = np.zeros((333, 517, 3), np.uint8)
    img[..., 0] = 200  # red
    b = preprocess(img)
    assert b.img_shape == (800, 1242) and b.pad_shape == (800, 1248) and b.ori_shape == (333, 517)
    x = b.pixel_values[0]
    assert x.shape == (3, 800, 1248)
    assert x[0, 10, 10].item() == pytest.approx((200 - MEAN[0]) / STD[0], abs=1e-5)
    assert x[1, 10, 10].item() == pytest.approx((0 - MEAN[1]) / STD[1], abs=1e-5)
    assert x[0, 10, 1245].item() == pytest.approx((128 - MEAN[0]) / STD[0], abs=1e-5)  # padding: 128 before normalising


# ------------------------------------------------------------------ the backend end to end (random tiny model)

@pytest.fixture(scope="module")
def tiny_hf():
    from harness.geneval.hf_mask2former import load_hf_detector
    from tests.harness.geneval.tiny_mask2former import tiny_layout

    return load_hf_detector(random_init_seed=0, layout=tiny_layout())


def test_transformers_detector_gives_official_per_class_output(tiny_hf):
    pytest.importorskip("cv2", reason="needs the geneval extra (opencv-python-headless)")
    from harness.geneval.detection import run_detector

    rs = np.random.RandomState(0)
    img = (rs.rand(96, 160, 3) * 255).astype(np.uint8)
    raw = run_detector(tiny_hf, img)
    assert (raw.height, raw.width) == (96, 160) and len(raw.boxes) == 80 == len(raw.masks)
    assert sum(len(b) for b in raw.boxes) == 100
    for b, m in zip(raw.boxes, raw.masks):
        assert b.shape[1] == 5 and m.shape == (len(b), 96, 160) and m.dtype == bool
    again = run_detector(tiny_hf, img)  # one image at a time, no state kept between images
    assert all(np.array_equal(a, b) for a, b in zip(raw.boxes, again.boxes))
    info = tiny_hf.info()
    assert info["backend"] == "transformers" and info["real_weights"] is False and info["random_init_seed"] == 0
    assert len(info["converted_sha256"]) == 64 and info["transformers"]


def test_converted_weights_hash_changes_with_the_weights(tiny_hf):
    from harness.geneval.hf_mask2former import converted_sha256

    before = converted_sha256(tiny_hf.model)
    p = next(tiny_hf.model.parameters())
    with torch.no_grad():
        p.view(-1)[0] += 1
        assert converted_sha256(tiny_hf.model) != before
        p.view(-1)[0] -= 1


# ------------------------------------------------------------------ selection, routing, reporting

def test_backend_key_default_and_refusals():
    from harness.geneval.config import DetectConfig
    from harness.runner.config import ConfigError
    from suites.geneval_detect import GenEvalDetectSuite

    cfg = DetectConfig.from_mapping(GenEvalDetectSuite.default_config())
    assert cfg.detector_backend == "transformers"
    with pytest.raises(ConfigError, match="detector_backend must be one of transformers, mmdet"):
        DetectConfig.from_mapping({**GenEvalDetectSuite.default_config(), "detector_backend": "detectron2"})


def test_mmdet_config_with_transformers_backend_is_refused(monkeypatch):
    from harness.geneval import detection
    from harness.geneval.config import DetectConfig
    from harness.runner.config import ConfigError
    from suites.geneval_detect import GenEvalDetectSuite

    monkeypatch.setattr(detection, "missing_packages", lambda backend="transformers": [])
    cfg = DetectConfig.from_mapping({**GenEvalDetectSuite.default_config(), "detector_config": "/x/m2f.py"})
    with pytest.raises(ConfigError, match="detector_config=/x/m2f.py is an mmdet config.*--detector-backend mmdet"):
        detection.check_ready(cfg)


def test_missing_backend_packages_name_the_extra(monkeypatch):
    import importlib.util

    from harness.geneval import detection

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("cv2", "mmdet") else real(name))
    assert detection.missing_packages("transformers") == ["opencv-python-headless"]
    assert "mmdet" in detection.missing_packages("mmdet")
    assert detection.EXTRA["mmdet"] == "geneval,geneval-mmdet"


def test_op_router_chooses_pytorch_on_cuda_without_compiled_ops():
    from harness.geneval.mmcv_ops import COMPILED_IMPL, PYTORCH_IMPL, ms_deform_attn_impl

    assert ms_deform_attn_impl("cuda", compiled_ops=False) == PYTORCH_IMPL
    assert ms_deform_attn_impl("cuda", compiled_ops=True) == COMPILED_IMPL
    assert ms_deform_attn_impl("cpu", compiled_ops=True) == PYTORCH_IMPL  # mmcv itself uses PyTorch on CPU


def test_compare_raw_reports_largest_differences():
    from harness.geneval.detector import RawDetections
    from harness.geneval.parity import compare_raw

    def raw(score, pixel):
        boxes = [np.zeros((0, 5), np.float32) for _ in range(80)]
        masks = [np.zeros((0, 4, 4), bool) for _ in range(80)]
        boxes[3] = np.array([[0, 0, 2, 2, 0.9], [1, 1, 3, 3, score]], np.float32)
        masks[3] = np.zeros((2, 4, 4), bool)
        masks[3][0, 0, 0] = pixel
        return RawDetections(boxes, masks, 4, 4)

    assert compare_raw(raw(0.5, True), raw(0.5, True))["identical"]
    d = compare_raw(raw(0.5, True), raw(0.25, False))
    assert not d["identical"] and d["same_counts"] and d["max_score_diff"] == pytest.approx(0.25)
    assert d["mask_pixels_differing"] == 1


def test_report_names_the_backend_and_weights():
    from harness.geneval.scoring import detector_line

    line = detector_line({"backend": "transformers", "transformers": "5.24.0", "torch": "2.14.1",
                          "converted_sha256": "ab" * 32, "checkpoint_sha256": "cd" * 32, "checkpoint_format": "mmdet2",
                          "device": "cuda"})
    assert line == ("Detector: Mask2Former Swin-S COCO, backend transformers (transformers 5.24.0, torch 2.14.1); "
                    "checkpoint sha256 cdcdcdcdcdcd (mmdet2), converted weights sha256 abababababab; device cuda.")


def test_load_models_dispatches_on_the_backend(monkeypatch):
    from harness.geneval import color, detection, detector, hf_mask2former
    from harness.geneval.config import DetectConfig
    from suites.geneval_detect import GenEvalDetectSuite

    calls = []
    monkeypatch.setattr(hf_mask2former, "load_hf_detector", lambda ckpt, **kw: calls.append(("transformers", kw)))
    monkeypatch.setattr(detector, "load_detector", lambda cfg, ckpt, **kw: calls.append(("mmdet", kw)))
    monkeypatch.setattr(color, "load_color_classifier", lambda *a, **kw: None)
    base = {**GenEvalDetectSuite.default_config(), "random_weights": True, "random_init_seed": 3}
    for backend in ("transformers", "mmdet"):
        detection.load_models(DetectConfig.from_mapping({**base, "detector_backend": backend}))
    assert calls == [("transformers", {"device": "cpu", "random_init_seed": 3}),
                     ("mmdet", {"device": "cpu", "random_init_seed": 3})]
