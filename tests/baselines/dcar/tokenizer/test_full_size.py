"""The full-size model reproduces the released checkpoint's state_dict exactly (built on the meta device)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import baselines.dcar.tokenizer as tokenizer_pkg
from baselines.dcar.tokenizer import DCHT

MANIFEST = Path(tokenizer_pkg.__file__).parent / "state_dict_keys_tokenizer.txt"



def test_full_size_state_dict_equals_manifest_and_param_count(state_dict_manifest):
    with torch.device("meta"):
        model = DCHT()
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = state_dict_manifest(MANIFEST)
    assert len(expected) == 339
    assert sorted(set(ours) - set(expected)) == []
    assert sorted(set(expected) - set(ours)) == []
    assert {k: v for k, v in ours.items() if expected[k] != v} == {}
    assert model.num_params == 323_880_748
    assert sum(p.numel() for p in model.encoder.parameters()) == 123_172_384
    assert sum(p.numel() for p in model.decoder.parameters()) == 200_184_076
    assert sum(p.numel() for p in model.quantize.parameters()) == 524_288
    assert sum(1 for k in ours if "running_" in k or "num_batches" in k) == 45


@pytest.mark.slow
def test_full_size_random_model_runs_every_path_on_a_small_image():
    """Builds the real 324M-parameter model (random weights) and runs it at 64 px, where the EViT stages
    use the linear (8x8) and quadratic (4x4, 2x2) attention branches."""
    torch.manual_seed(0)
    model = DCHT().eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        z = model.encode(x)
        assert z.shape == (1, 32, 2, 2)
        tokens = model.tokenize(x)
        hybrid = model.decode_tokens(tokens["ids"], tokens["residual"])
        continuous = model.decode(model.latent_features(z))
    assert hybrid.shape == x.shape and torch.isfinite(hybrid).all()
    torch.testing.assert_close(hybrid, continuous, atol=1e-4, rtol=0)
