"""Parity of every generator output with the official model classes (tests/fixtures/parity, generator_small_*)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from baselines.dcar.checkpoint import StateDictMismatchError
from baselines.dcar.generator.parity import check_generator
from tests.paths import PARITY_FIXTURES

FIXTURE_DIR = PARITY_FIXTURES
EXPECTED = {
    "cond_logits", "cond_hidden", "cfg_batch_logits", "cfg_batch_hidden", "diffhead_out", "diffhead_cfg_out",
    "respace_4_timestep_map", "respace_4_betas", "respace_20_timestep_map", "respace_20_betas",
    "respace_32_timestep_map", "respace_32_betas", "generate_ids", "generate_residual",
}


def _run(directory: Path):
    return check_generator(directory / "generator_small_config.json", directory / "generator_small_state_dict.pt",
                           directory / "generator_small_io.pt")


def test_every_generator_output_matches_the_official_model():
    results = _run(FIXTURE_DIR)
    by_name = {r.name: r for r in results}
    assert set(by_name) == EXPECTED
    failed = [f"{r.name}: {r.max_abs_diff:.3g} > {r.tolerance:.3g}" for r in results if not r.passed]
    assert not failed, failed
    # ids and respaced timestep maps are exact; float outputs within 1e-5 (guided head output 1e-5 x (1 + 2s))
    assert by_name["generate_ids"].exact and by_name["generate_ids"].max_abs_diff == 0.0
    assert by_name["generate_residual"].tolerance == 1e-5
    assert by_name["cond_logits"].tolerance == 1e-5
    assert all(r.group == "generator" for r in results)


def test_parity_detects_a_wrong_weight(tmp_path):
    """The check must be able to fail: perturb one weight of the state dict and some outputs must fail."""
    for name in ("generator_small_config.json", "generator_small_io.pt"):
        shutil.copy(FIXTURE_DIR / name, tmp_path / name)
    state = torch.load(FIXTURE_DIR / "generator_small_state_dict.pt", weights_only=True)
    bias = state["blocks.1.mlp.fc2.bias"]
    state["blocks.1.mlp.fc2.bias"] = bias + 1e-3 * torch.randn(bias.shape, generator=torch.Generator().manual_seed(0))
    torch.save(state, tmp_path / "generator_small_state_dict.pt")
    by_name = {r.name: r for r in _run(tmp_path)}
    assert not by_name["cond_logits"].passed and not by_name["cond_hidden"].passed
    assert by_name["diffhead_out"].passed  # the head's weights were untouched


def test_parity_refuses_a_state_dict_with_missing_keys(tmp_path):
    for name in ("generator_small_config.json", "generator_small_io.pt"):
        shutil.copy(FIXTURE_DIR / name, tmp_path / name)
    state = torch.load(FIXTURE_DIR / "generator_small_state_dict.pt", weights_only=True)
    del state["y_embedder.y_embedding"]
    torch.save(state, tmp_path / "generator_small_state_dict.pt")
    with pytest.raises(StateDictMismatchError, match="y_embedder.y_embedding") as info:
        _run(tmp_path)
    assert "generator_small_state_dict.pt" in str(info.value)
