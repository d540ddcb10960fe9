"""Colour classification: mask -> grey fill -> crop on a synthetic image, templates, and a real open_clip model."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from harness.geneval.color import BGCOLOR, TEMPLATES, ColorClassifier, load_color_classifier, masked_crop
from harness.geneval.rules import COLORS

RED, BLUE = (230, 10, 10), (10, 20, 230)


def synthetic():
    """A 100x80 blue image with a red 20x20 square at x 30..49, y 40..59, its mask and a loose box."""
    arr = np.zeros((80, 100, 3), np.uint8)
    arr[:] = BLUE
    arr[40:60, 30:50] = RED
    mask = np.zeros((80, 100), bool)
    mask[40:60, 30:50] = True
    return Image.fromarray(arr), mask, (20.4, 30.6, 59.5, 69.5)


def test_masked_crop_fills_outside_the_mask_with_grey_and_crops_to_the_rounded_box():
    img, mask, box = synthetic()
    crop = np.asarray(masked_crop(img, box, mask))
    # PIL rounds the float box: (20, 31, 60, 70) -> 40 x 39
    assert crop.shape == (39, 40, 3)
    red = (crop == RED).all(-1)
    grey = (crop == (153, 153, 153)).all(-1)
    assert red.sum() == 20 * 20 and grey.sum() == 40 * 39 - 400
    assert not (crop == BLUE).all(-1).any()  # the blue background never reaches CLIP
    assert red[9:29, 10:30].all()  # square at y 40-59 -> 9..28 inside the crop, x 30-49 -> 10..29
    # bgcolor "original" keeps the background; crop=False keeps the whole image
    assert (np.asarray(masked_crop(img, box, mask, bgcolor="original")) == BLUE).all(-1).sum() == 40 * 39 - 400
    assert masked_crop(img, box, mask, crop=False).size == (100, 80)
    assert BGCOLOR == "#999"


def test_mask_of_wrong_size_is_rejected():
    img, mask, box = synthetic()
    with pytest.raises(ValueError, match="does not match image size"):
        masked_crop(img, box, mask[:-1])


class FakeTokenizer:
    """Text -> the index of the colour word it contains (checks the templates are filled with colours)."""

    def __init__(self):
        self.seen: list[str] = []

    def __call__(self, texts):
        self.seen += list(texts)
        idx = []
        for t in texts:
            hits = [i for i, c in enumerate(COLORS) if f" {c} " in f" {t.replace('-colored', ' ')} "]
            assert len(hits) == 1, t
            idx.append(hits[0])
        return torch.tensor(idx)


class FakeClip(torch.nn.Module):
    """encode_text: one-hot of the colour; encode_image: share of pixels near each reference colour."""

    PALETTE = {"red": RED, "blue": BLUE}

    def encode_text(self, idx):
        return torch.nn.functional.one_hot(idx, len(COLORS)).float()

    def encode_image(self, batch):
        out = torch.zeros(batch.shape[0], len(COLORS))
        for name, rgb in self.PALETTE.items():
            ref = torch.tensor(rgb).float().view(1, 3, 1, 1) / 255
            near = ((batch - ref).abs().amax(1) < 0.05).float().mean((1, 2))
            out[:, COLORS.index(name)] = near
        return out + 1e-3


def to_tensor(img):
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255


def test_classifier_sees_the_masked_object_not_the_background():
    img, mask, box = synthetic()
    tok = FakeTokenizer()
    clf = ColorClassifier(FakeClip(), to_tensor, tok)
    (color, probs), = clf.classify(img, [(box, mask)], "cup")
    assert color == "red" and len(probs) == 10 and sum(probs) == pytest.approx(1.0)
    # without the mask, the (larger) blue background wins: the mask is what makes the answer right
    (color_nomask, _), = clf.classify(img, [(box, None)], "cup")
    assert color_nomask == "blue"
    assert tok.seen[:3] == ["a photo of a red cup", "a photo of a red-colored cup", "a photo of a red object"]
    assert len(tok.seen) == 30  # 10 colours x 3 templates, cached per class after that
    clf.classify(img, [(box, mask)], "cup")
    assert len(tok.seen) == 30
    assert [t.format(c="red", cls="cup") for t in TEMPLATES] == tok.seen[:3]


def test_class_vectors_are_normalised_template_means():
    clf = ColorClassifier(FakeClip(), to_tensor, FakeTokenizer())
    w = clf.class_vectors("car")
    assert w.shape == (10, 10) and torch.allclose(w.norm(dim=0), torch.ones(10))
    assert torch.equal(w, torch.eye(10))  # one-hot per colour after normalise-mean-normalise


def test_random_small_open_clip_model_runs_end_to_end(tmp_path):
    import open_clip

    cfg = {"embed_dim": 32, "quick_gelu": True,
           "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "patch_size": 32, "head_width": 32},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
    (tmp_path / "dcar-test-tiny-clip.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "dcar-test-tiny-clip.json")
    clf = load_color_classifier(None, model_name="dcar-test-tiny-clip", random_init_seed=0)
    assert not clf.real_weights and clf.info()["random_init_seed"] == 0
    img, mask, box = synthetic()
    out = clf.classify(img, [(box, mask)] * 3, "cup")
    assert len(out) == 3 and all(c in COLORS for c, _ in out)
    # same crop, same answer: the colour is equal, the probabilities only to float tolerance (rows of one batch
    # may go through different GEMM blocking on some CPUs, ~2e-8 apart on AMD)
    assert out[0][0] == out[1][0] == out[2][0]
    for _, probs in out[1:]:
        assert probs == pytest.approx(out[0][1], abs=1e-6)
    again = load_color_classifier(None, model_name="dcar-test-tiny-clip", random_init_seed=0).classify(img, [(box, mask)], "cup")
    assert again[0][0] == out[0][0] and again[0][1] == pytest.approx(out[0][1], abs=1e-5)
    # the local-file path: weights saved by open_clip's naming load back (directory lookup by file name too)
    other = load_color_classifier(None, model_name="dcar-test-tiny-clip", random_init_seed=1)
    torch.save(other.model.state_dict(), tmp_path / "open_clip_pytorch_model.bin")
    loaded = load_color_classifier(tmp_path, model_name="dcar-test-tiny-clip")
    assert loaded.real_weights and loaded.weights == str(tmp_path / "open_clip_pytorch_model.bin")
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(), other.model.state_dict().values()))
    assert loaded.classify(img, [(box, mask)], "cup")[0][1] == pytest.approx(other.classify(img, [(box, mask)], "cup")[0][1],
                                                                             abs=1e-5)


def test_weights_required_unless_random_and_missing_file_is_clear(tmp_path):
    with pytest.raises(ValueError, match="random_init_seed"):
        load_color_classifier(None)
    with pytest.raises(FileNotFoundError, match="ViT-L-14.pt"):
        load_color_classifier(tmp_path / "nope.pt")
