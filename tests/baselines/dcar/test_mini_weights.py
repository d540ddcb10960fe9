"""The shipped mini-trained defaults (``baselines/dcar/mini_weights``): intact, loaded by the official-format loaders,
labelled as not the released weights, and trained enough to matter (reconstructions far above random weights,
generations that follow their captions)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from baselines.dcar.mini import COMPONENT_DIRS, MINI_ROOT, mini_component, read_sums, weights_kind
from harness.api import MissingResourceError


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_every_shipped_file_is_listed_and_matches_its_sha256():
    sums = read_sums()
    files = sorted(str(p.relative_to(MINI_ROOT)) for d in COMPONENT_DIRS.values()
                   for p in (MINI_ROOT / d).rglob("*") if p.is_file())
    assert files == sorted(sums)
    for component in COMPONENT_DIRS:
        assert mini_component(component).is_dir()


def test_a_modified_or_missing_file_is_refused_in_one_line_naming_it(tmp_path):
    root = tmp_path / "mini"
    shutil.copytree(MINI_ROOT, root)
    target = root / "dc-ar" / "config.json"
    target.write_text(target.read_text() + " ")
    with pytest.raises(MissingResourceError, match=r"dc-ar/config\.json does not match its sha256") as exc:
        mini_component("generator", root)
    assert "\n" not in str(exc.value)
    (root / "dc-ht" / "model.safetensors").unlink()
    with pytest.raises(MissingResourceError, match=r"dc-ht/model\.safetensors is missing"):
        mini_component("dcht", root)
    target.write_text(target.read_text()[:-1])  # restored
    (root / "dc-ar" / "config.yaml").write_text("model: {}\n")  # a file a loader would read, not in the sums
    with pytest.raises(MissingResourceError, match=r"dc-ar/config\.yaml is not listed"):
        mini_component("generator", root)
    (root / "SHA256SUMS").write_text("not a sums line\n")
    with pytest.raises(MissingResourceError, match=r"SHA256SUMS:1 is not a `sha256  path` line"):
        mini_component("t5", root)
    (root / "SHA256SUMS").unlink()
    with pytest.raises(MissingResourceError, match="SHA256SUMS is missing"):
        mini_component("t5", root)


def test_weights_kind_tells_mini_random_and_checkpoint_apart(tmp_path):
    assert weights_kind({"dcht": str(MINI_ROOT / "dc-ht")}) == "mini-trained"
    assert weights_kind({"dcht": str(MINI_ROOT / "dc-ht"), "t5": "random-init:0"}) == "random-init"
    assert weights_kind({"dcht": str(tmp_path)}) == "checkpoint"


@pytest.fixture(scope="module")
def mini_dcar():
    from harness import registry

    return registry.resolve("adapter", "dc-ar")(config="mini", device="cpu")


def test_dcar_mini_is_labelled_not_the_released_weights(mini_dcar):
    info = mini_dcar.info()
    assert info.real_weights is False
    assert info.extra["weights_kind"] == "mini-trained"
    assert "not the released weights" in info.extra["weights_note"]
    assert info.resolution == 128
    files = {k: v for k, v in info.weights.items() if k != "SHA256SUMS"}
    assert len(files) == 3 and all(str(MINI_ROOT) in k for k in files)  # every component a shipped, hashed file
    from baselines.dcar.mini import sums_digest

    assert info.weights["SHA256SUMS"] == sums_digest()  # pins the configs and tokenizer files too


def test_config_mini_refuses_a_random_seed():
    from harness import registry

    with pytest.raises(ValueError, match="config='mini' loads the shipped"):
        registry.resolve("adapter", "dc-ar")(config="mini", random_init_seed=0)
    with pytest.raises(ValueError, match="config='mini' loads the shipped"):
        registry.resolve("adapter", "dc-ht")(config="mini", random_init_seed=0)


def _heldout(n: int) -> list[int]:
    """Indices of seed-1 scenes that occur nowhere in the mini models' training items (as their training.json says)."""
    import json

    from dcar_training.data import unseen_indices

    cfg = json.loads((MINI_ROOT / "training.json").read_text())["config"]
    return unseen_indices(1, n, train_seed=cfg["data_seed"], train_n=max(cfg["tokenizer_n"], cfg["generator_n"]))


def test_mini_dcht_reconstructs_heldout_pictures_far_better_than_random_weights():
    from dcar_training.data import ShapesDataset
    from harness import registry
    from harness.metrics.recon import psnr_per_image

    idx = _heldout(16)
    ds = ShapesDataset(max(idx) + 1, 128, seed=1)
    x = torch.from_numpy(np.stack([ds.image(i) for i in idx])).permute(0, 3, 1, 2).float() / 255
    psnr = {}
    for name, opts in (("mini", {"config": "mini"}), ("random", {"config": "tiny", "random_init_seed": 0})):
        adapter = registry.resolve("adapter", "dc-ht")(**opts)
        assert adapter.info().real_weights is False
        psnr[name] = float(np.mean(psnr_per_image(x, adapter.reconstruct(x))))
    assert psnr["mini"] > 20.0, psnr
    assert psnr["mini"] > psnr["random"] + 10.0, psnr


def test_mini_dcar_generations_follow_their_captions(mini_dcar):
    """Background colour right for most held-out captions (chance: 1 in 10), via the caption_following scorer."""
    from dcar_training.data import scene
    from harness.images import to_uint8
    from harness.metrics.caption_following import score_image
    from suites.caption_following import shape_world

    scenes = [scene(1, i) for i in _heldout(16)]
    images = to_uint8(mini_dcar.generate([s.caption for s in scenes], list(range(len(scenes))))).permute(0, 2, 3, 1)
    images = images.numpy()
    verdicts = [score_image(img, s, shape_world()) for img, s in zip(images, scenes)]
    background = np.mean([v.background_correct for v in verdicts])
    assert background >= 0.6, background
