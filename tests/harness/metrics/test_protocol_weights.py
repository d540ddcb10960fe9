"""Every protocol backbone loads from an explicit path, its environment variable or the HF / torch hub cache,
never from the network, and a missing one is a one-line error naming every place searched."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.api import MissingResourceError
from harness.metrics.protocols import BackboneConfig, ProtocolsConfig, build_protocols, requirements
from tests.harness.data.fake_mjhq import picture

TINY = BackboneConfig(random_init_seed=0, size="tiny")


def _hf_snapshot(hf_home, repo: str, model) -> str:
    """A Hugging Face cache entry (refs/main -> snapshot with config.json + model.safetensors) of ``model``."""
    org, name = repo.split("/")
    root = hf_home / "hub" / f"models--{org}--{name}"
    snap = root / "snapshots" / ("ab" * 20)
    model.save_pretrained(snap)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text("ab" * 20)
    return str(snap)


@pytest.mark.parametrize("name, config_fn, cls_name, repo, env", [
    ("fd_dinov2", "dinov2_config", "Dinov2Model", "facebook/dinov2-large", "DCAR_DINOV2"),
    ("cmmd", "clip_vision_config", "CLIPVisionModelWithProjection", "openai/clip-vit-large-patch14-336",
     "DCAR_CMMD_CLIP"),
])
def test_hf_backbones_load_from_the_cache_the_env_var_or_a_path(tmp_path, monkeypatch, name, config_fn, cls_name,
                                                                 repo, env):
    import transformers

    import harness.metrics.protocols as P

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv(env, raising=False)
    cfg = ProtocolsConfig((name,), BackboneConfig(), BackboneConfig(), BackboneConfig())
    with pytest.raises(MissingResourceError, match=rf"(?s)not found.*env:{env}.*{repo.split('/')[1]}"):
        build_protocols(cfg)
    assert [r.hf_repo for r in requirements(cfg)] == [repo]  # what doctor lists
    model = getattr(transformers, cls_name)(getattr(P, config_fn)("tiny"))
    snap = _hf_snapshot(tmp_path / "hf", repo, model)
    img = [picture(0, 64), picture(1, 64)]
    from_cache = build_protocols(cfg)[0]
    assert from_cache.real_weights and from_cache.describe()["weights"].startswith("sha256:")
    model.eval()
    with torch.no_grad():
        x = torch.stack([from_cache.prepare(p) for p in img])
        direct = model(pixel_values=x).pooler_output if name == "fd_dinov2" else None
    got = from_cache.features(img)
    if direct is not None:
        np.testing.assert_allclose(got, direct.double().numpy(), rtol=1e-6, atol=1e-6)
    monkeypatch.setenv(env, snap)
    assert build_protocols(cfg)[0].describe()["weights"] == from_cache.describe()["weights"]
    monkeypatch.delenv(env)
    explicit = BackboneConfig(weights_path=str(tmp_path / "nowhere"))
    cfg_x = ProtocolsConfig((name,), explicit, explicit, explicit)
    with pytest.raises(MissingResourceError, match="nowhere"):  # an absent explicit path is an error, no fallback
        build_protocols(cfg_x)


def test_inception_protocols_load_one_local_weights_file(tmp_path, monkeypatch):
    from harness.metrics.inception import random_state_dict

    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(random_state_dict(0), path)
    cfg = ProtocolsConfig(("sana", "torch_fidelity"), BackboneConfig(weights_path=str(path)), TINY, TINY)
    prots = build_protocols(cfg)
    assert {p.describe()["weights"] for p in prots} == {p.describe()["weights"] for p in prots[:1]}
    assert all(p.real_weights for p in prots)
    with pytest.raises(MissingResourceError, match="DCAR_FID_INCEPTION"):
        build_protocols(ProtocolsConfig(("clean_fid",), BackboneConfig(), TINY, TINY))


def test_clip_score_weights_missing_names_the_places(tmp_path, monkeypatch):
    from harness.metrics.clip_score import CLIPScorer

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(MissingResourceError, match=r"(?s)DCAR_CLIPSCORE_WEIGHTS.*vit_large_patch14_clip_224.openai"):
        CLIPScorer()
