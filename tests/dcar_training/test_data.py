import numpy as np

from dcar_training.data import COLORS, SHAPES, ShapesDataset, SkimageDataset, batch_images, scene


def test_scenes_are_deterministic_and_captions_describe_them():
    a, b = ShapesDataset(20, 64, seed=3), ShapesDataset(20, 64, seed=3)
    assert [a.caption(i) for i in range(20)] == [b.caption(i) for i in range(20)]
    assert np.array_equal(a.image(5), b.image(5))
    assert len({a.caption(i) for i in range(20)}) > 15  # varied
    for i in range(20):
        s = scene(3, i)
        for size, color, shape, place in s.objects:
            assert color in COLORS and shape in SHAPES and f"{size} {color} {shape}" in s.caption and place in s.caption
            assert color != s.background


def test_background_colour_is_what_the_caption_says():
    ds = ShapesDataset(10, 64, seed=0)
    for i in range(10):
        img = ds.image(i)
        assert tuple(img[0, 0]) == COLORS[scene(0, i).background]  # corners are always background


def test_same_scene_at_two_resolutions():
    lo, hi = ShapesDataset(4, 64), ShapesDataset(4, 128)
    for i in range(4):
        down = hi.image(i).reshape(64, 2, 64, 2, 3).mean(axis=(1, 3))
        assert np.abs(down - lo.image(i).astype(float)).mean() < 3.0  # grey levels


def test_batch_range_and_skimage():
    x = batch_images(ShapesDataset(3, 32), [0, 1, 2])
    assert x.shape == (3, 3, 32, 32) and float(x.min()) >= -1 and float(x.max()) <= 1
    sk = SkimageDataset(64, names=("astronaut", "camera"))
    assert sk.image(1).shape == (64, 64, 3) and "camera" in sk.caption(1)


def test_captions_use_an_before_a_vowel_colour():
    from dcar_training.data import Scene

    assert Scene("orange", (("big", "red", "circle", "left"),)).caption.endswith("on an orange background")
    assert Scene("red", (("big", "orange", "circle", "left"),)).caption.endswith("on a red background")


def test_unseen_indices_skip_every_scene_of_the_training_items():
    from dcar_training.data import scene, unseen_indices

    idx = unseen_indices(1, 20, train_seed=0, train_n=500)
    seen = {scene(0, i).caption for i in range(500)}
    assert len(idx) == 20 and idx == sorted(set(idx))
    assert not {scene(1, i).caption for i in idx} & seen
    skipped = [i for i in range(idx[-1]) if i not in idx]
    assert skipped and all(scene(1, i).caption in seen for i in skipped)
