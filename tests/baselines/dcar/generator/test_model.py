"""Model structure: the full-size module tree equals the official state-dict manifest; config parsing; embeddings."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from baselines.dcar.checkpoint import StateDictMismatchError
from baselines.dcar.generator.config import DCARConfig, packaged_config_path
from baselines.dcar.generator.transformer import DCAR, sincos_pos_embed_2d
from tests.paths import PARITY_FIXTURES, REPO_ROOT

MANIFEST = REPO_ROOT / "baselines" / "dcar" / "generator" / "data" / "state_dict_keys_generator.txt"
FIXTURE_DIR = PARITY_FIXTURES



def test_full_size_meta_build_has_exactly_the_official_keys_and_shapes(state_dict_manifest):
    with torch.device("meta"):
        model = DCAR(DCARConfig.full())
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    manifest = state_dict_manifest(MANIFEST)
    assert len(manifest) == 573
    assert set(ours) == set(manifest), (sorted(set(ours) - set(manifest))[:5], sorted(set(manifest) - set(ours))[:5])
    assert ours == manifest
    assert model.num_transformer_parameters() == 635_366_272
    assert model.num_head_parameters() == 36_192_320
    # pos_embed is a frozen parameter, y_embedding a persistent buffer (both in the checkpoint)
    assert not model.pos_embed.requires_grad
    assert "y_embedder.y_embedding" in dict(model.named_buffers())


def test_packaged_official_yaml_parses_to_the_full_config():
    assert DCARConfig.from_official(packaged_config_path()) == DCARConfig.full()
    cfg = DCARConfig.full()
    assert cfg.default_num_diffusion_steps == 32 and cfg.guidance_scale == 4.5 and cfg.randomize_temperature == 1.5
    assert DCARConfig.from_official(cfg.to_official()) == cfg


def test_fixture_config_json_parses_to_the_small_model():
    cfg = DCARConfig.from_official(FIXTURE_DIR / "generator_small_config.json")
    assert (cfg.codebook_size, cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (1024, 64, 2, 4)
    assert (cfg.image_seq_len, cfg.text_token_length, cfg.context_dim) == (16, 8, 32)
    assert (cfg.diffusion_width, cfg.diffusion_depth, cfg.diffusion_num_sampling_steps) == (32, 2, "4")
    assert cfg.mask_token_id == 1024


@pytest.mark.parametrize("bad, match", [
    ({"model": {"vq_model": {}}}, "model.generator"),
    ({"model": {"generator": {"model_type": "MAR"}}}, "only 'DCAR'"),
    ({"model": {"generator": {"attn_type": "linear"}}}, "attn_type"),
    ({"model": {"generator": {"hidden_size": 100, "num_attention_heads": 16}}}, "divisible"),
    ({"model": {"generator": {"image_seq_len": 250}}}, "square"),
])
def test_bad_configs_are_rejected_with_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        DCARConfig.from_official(bad)


def test_config_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        DCARConfig.from_official(tmp_path / "nope.yaml")
    (tmp_path / "c.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="mapping"):
        DCARConfig.from_official(tmp_path / "c.json")


def test_pos_embed_is_the_pixart_sincos_table(fixture_model):
    model, _ = fixture_model
    # the fixture's pos_embed was left at the official deterministic value: ours must equal it
    ours = torch.from_numpy(sincos_pos_embed_2d(64, 4, 16)).float()
    assert torch.allclose(ours, model.pos_embed[0], atol=1e-7)
    # full size: token n = row*16 + col; first half encodes the column, second half the row
    table = sincos_pos_embed_2d(1152, 16, 16)
    col, row = 5, 3
    n = row * 16 + col
    assert np.isclose(table[n, 0], np.sin(col)) and np.isclose(table[n, 288], np.cos(col))
    assert np.isclose(table[n, 576], np.sin(row)) and np.isclose(table[n, 576 + 288], np.cos(row))
    assert np.isclose(table[n, 1], np.sin(col * 10000 ** (-1 / 288)))


def test_cached_context_and_masked_logits_equal_the_plain_forward(fixture_model):
    model, io = fixture_model
    ids, text, mask = io["input_ids"], io["text_hidden"], io["text_mask"]
    with torch.no_grad():
        logits, hidden = model(ids, text, mask)
        ctx = model.text_context(text, mask)
        select = ids == model.config.mask_token_id
        part, hidden2 = model.forward_tokens(ids, ctx, logits_at=select)
    assert torch.equal(hidden, hidden2)
    assert torch.allclose(part, logits[select], atol=1e-6)


def test_cross_attention_ignores_padded_text(fixture_model):
    """Changing the text features at padded positions must not change anything (block-diagonal attention)."""
    model, io = fixture_model
    ids, text, mask = io["input_ids"], io["text_hidden"].clone(), io["text_mask"]
    with torch.no_grad():
        ref, _ = model(ids, text, mask)
        text[~mask] = 100.0
        out, _ = model(ids, text, mask)
        text[0, 0] += 1.0  # a valid position does matter
        changed, _ = model(ids, text, mask)
    assert torch.equal(ref, out)
    assert not torch.allclose(ref[0], changed[0])
    assert torch.equal(ref[1], changed[1])  # other samples are unaffected


def test_forward_input_errors(fixture_model):
    model, io = fixture_model
    ids, text, mask = io["input_ids"], io["text_hidden"], io["text_mask"]
    with pytest.raises(ValueError, match="at least one valid text token"):
        model(ids, text, torch.zeros_like(mask))
    with pytest.raises(ValueError, match="ids must be"):
        model(ids[:, :5], text, mask)
    with pytest.raises(ValueError, match="text_hidden must be"):
        model(ids, text[..., :7], mask)


def test_from_pretrained_loads_raw_bin_strictly(tmp_path, fixture_model):
    model, io = fixture_model
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    cfg = model.config
    loaded = DCAR.from_pretrained(tmp_path / "pytorch_model.bin", cfg)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    # a half-precision checkpoint is loaded as float32 (reduced precision comes from autocast)
    torch.save({k: v.half() for k, v in model.state_dict().items()}, tmp_path / "half.bin")
    assert DCAR.from_pretrained(tmp_path / "half.bin", cfg).x_embedder.weight.dtype == torch.float32
    # a directory with the official YAML beside the weights works too
    import yaml

    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg.to_official()))
    assert DCAR.from_pretrained(tmp_path).config == cfg
    bad = dict(model.state_dict())
    bad["extra.weight"] = torch.zeros(1)
    torch.save(bad, tmp_path / "pytorch_model.bin")
    with pytest.raises(StateDictMismatchError, match="extra.weight"):  # named, with the file, not torch's traceback
        DCAR.from_pretrained(tmp_path / "pytorch_model.bin", cfg)
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        DCAR.from_pretrained(tmp_path / "missing.bin", cfg)
