"""The full-size model reproduces the released checkpoint's state_dict exactly (built on the meta device)."""
from __future__ import annotations

from pathlib import Path

import torch

import baselines.dcar.tokenizer as tokenizer_pkg
from baselines.dcar.tokenizer import DCHT

MANIFEST = Path(tokenizer_pkg.__file__).parent / "state_dict_keys_tokenizer.txt"


def _manifest() -> dict[str, tuple[int, ...]]:
    out = {}
    for line in MANIFEST.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        key, shape, _kind = line.split("\t")
        out[key] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    return out


def test_full_size_state_dict_equals_manifest_and_param_count():
    with torch.device("meta"):
        model = DCHT()
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = _manifest()
    assert len(expected) == 339
    assert sorted(set(ours) - set(expected)) == []
    assert sorted(set(expected) - set(ours)) == []
    assert {k: v for k, v in ours.items() if expected[k] != v} == {}
    assert model.num_params == 323_880_748
    assert sum(p.numel() for p in model.encoder.parameters()) == 123_172_384
    assert sum(p.numel() for p in model.decoder.parameters()) == 200_184_076
    assert sum(p.numel() for p in model.quantize.parameters()) == 524_288
    assert sum(1 for k in ours if "running_" in k or "num_batches" in k) == 45
