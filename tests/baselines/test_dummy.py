"""Dummy adapters: output depends only on (input, seed); bad input is refused clearly."""
from __future__ import annotations

import pytest
import torch

from baselines.dummy import DummyClassToImage, DummyTextToImage, DummyTokenizer


def test_t2i_is_a_pure_function_of_prompt_and_seed():
    m = DummyTextToImage(resolution=16)
    batch = m.generate(["a", "b", "c"], [1, 2, 3])
    assert batch.shape == (3, 3, 16, 16) and batch.dtype == torch.float32
    assert 0 <= batch.min() and batch.max() <= 1
    alone = m.generate(["b"], [2])
    assert torch.equal(alone[0], batch[1])  # batch composition does not matter
    assert not torch.equal(m.generate(["b"], [3])[0], alone[0])  # the seed matters
    assert not torch.equal(m.generate(["x"], [2])[0], alone[0])  # the prompt matters
    assert m.info().real_weights is False and m.info().kind == "text_to_image"


def test_c2i_is_deterministic():
    m = DummyClassToImage(resolution=8)
    a = m.generate([1, 2], [5, 5])
    assert torch.equal(a, m.generate([1, 2], [5, 5])) and not torch.equal(a[0], a[1])


@pytest.mark.parametrize("bad", [dict(resolution=0), dict(delay_s=-1)])
def test_bad_constructor_options(bad):
    with pytest.raises(ValueError):
        DummyTextToImage(**bad)


def test_bad_generate_calls():
    m = DummyTextToImage(resolution=4)
    with pytest.raises(ValueError, match="2 prompts but 1 seeds"):
        m.generate(["a", "b"], [1])
    with pytest.raises(TypeError, match="unknown option"):
        m.generate(["a"], [1], cfg=3)
    assert m.generate([], []).shape == (0, 3, 4, 4)


def test_tokenizer_paths_are_lossy_and_ordered():
    from skimage import data

    img = torch.from_numpy(data.astronaut()[:64, :64]).permute(2, 0, 1)[None].float() / 255
    tok = DummyTokenizer()
    cont, disc = tok.reconstruct(img, "continuous"), tok.reconstruct(img, path="discrete")
    assert cont.shape == disc.shape == img.shape
    err_c, err_d = (cont - img).abs().mean(), (disc - img).abs().mean()
    assert 0 < err_c < err_d  # discrete is coarser, as in a real hybrid tokenizer
    assert torch.equal(tok.reconstruct(img), cont)  # default path is the first
    with pytest.raises(ValueError, match="unknown path"):
        tok.reconstruct(img, "hybrid")
    with pytest.raises(ValueError, match="multiples of 2"):
        tok.reconstruct(img[..., :63, :63])
    with pytest.raises(ValueError, match="3 RGB channels"):
        tok.reconstruct(img[:, :1])


def test_images_are_seeded_with_the_harness_item_seed():
    """The dummies derive each image's generator with harness.seeding.item_seed, not a hash of their own."""
    from baselines.dummy import _smooth_noise
    from harness.seeding import item_seed

    assert torch.equal(DummyTextToImage(resolution=8).generate(["b"], [2])[0], _smooth_noise(item_seed(2, "b"), 8))
    assert torch.equal(DummyClassToImage(resolution=8).generate([3], [4])[0], _smooth_noise(item_seed(4, "class:3"), 8))
    with pytest.raises(ValueError, match="2 class ids but 1 seeds"):
        DummyClassToImage().generate([1, 2], [1])


def test_tokenizer_refuses_non_finite_images_with_a_data_error():
    from harness.api import DataError

    x = torch.rand(2, 3, 4, 4)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(DataError, match=r"dummy-tokenizer input images: .*row\(s\) 0"):
        DummyTokenizer().reconstruct(x)


def test_num_steps_is_optional_and_changes_only_the_generators_given_it():
    """Unset, the dummies draw the images they always drew; with num_steps a sweep over them is not flat."""
    base = DummyTextToImage(resolution=8).generate(["a", "b"], [1, 2])
    assert torch.equal(base, DummyTextToImage(resolution=8, num_steps=None).generate(["a", "b"], [1, 2]))
    few, many = (DummyTextToImage(resolution=8, num_steps=n).generate(["a", "b"], [1, 2]) for n in (4, 32))
    assert not torch.equal(few, many) and not torch.equal(many, base)
    # fewer steps: further from the unset images (a larger share of per-pixel noise, 0.4 at 4 steps vs 0.225 at 32)
    assert float((few - base).abs().mean()) > 4 * float((many - base).abs().mean())
    assert DummyClassToImage(resolution=8, num_steps=12).info().steps == 12
    assert DummyClassToImage(resolution=8).info().steps == 1
    with pytest.raises(ValueError, match="num_steps"):
        DummyTextToImage(num_steps=0)
