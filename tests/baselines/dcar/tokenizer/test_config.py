"""DCHTConfig: released defaults, official formats in and out, clear errors."""
from __future__ import annotations

import json

import pytest

from baselines.dcar.tokenizer import DCHTConfig
from tests.paths import PARITY_FIXTURES

PARITY_DIR = PARITY_FIXTURES


def test_defaults_are_the_released_f32c32_hybrid_model():
    cfg = DCHTConfig()
    assert cfg.encoder_width_list == (128, 256, 512, 512, 1024, 1024)
    assert cfg.encoder_depth_list == (0, 4, 8, 2, 2, 2)
    assert cfg.decoder_depth_list == (0, 5, 10, 2, 2, 2)
    assert (cfg.codebook_size, cfg.codebook_embed_dim, cfg.quantizer_type) == (16384, 32, "hybrid_vq")
    assert cfg.codebook_l2_norm and cfg.commit_loss_beta == 0.25
    assert cfg.spatial_compression == 32
    assert cfg.is_released_architecture()


def test_tiny_keeps_f32_downsampling():
    tiny = DCHTConfig.tiny()
    assert tiny.spatial_compression == 32
    assert tiny.codebook_size == 1024 and tiny.codebook_embed_dim == 32
    assert not tiny.is_released_architecture()


def test_reads_fixture_format():
    cfg = DCHTConfig.from_official(PARITY_DIR / "tokenizer_small_config.json")
    assert cfg.encoder_width_list == (8, 16, 32, 32, 64, 64)
    assert cfg.decoder_depth_list == (0, 1, 2, 1, 1, 1)
    assert cfg.decoder_norm == ("bn2d", "bn2d", "bn2d", "ln2d", "ln2d", "ln2d")
    assert cfg.encoder_norm == ("ln2d",) * 6  # scalar defaults broadcast to every stage
    assert cfg.codebook_size == 1024 and cfg.hybrid


@pytest.mark.parametrize("name", ["dc-ae-f32-in-1.0", "dc-ae-f32-mix-1.0"])
def test_reads_hf_config_json(tmp_path, name):
    hf = {"model_type": "dc_ht", "model_name": name, "codebook_size": 16384, "codebook_embed_dim": 32,
          "codebook_l2_norm": True, "codebook_show_usage": True, "commit_loss_beta": 0.25,
          "entropy_loss_ratio": 0.0, "quantizer_type": "hybrid_vq", "disc_updated": True,
          "pretrained_path": None, "architectures": ["DCHT"], "transformers_version": "4.42.2"}
    (tmp_path / "config.json").write_text(json.dumps(hf))
    cfg = DCHTConfig.from_official(tmp_path)  # a directory means its config.json
    assert cfg == DCHTConfig(model_name=name)


def test_official_round_trip_of_small_architecture():
    tiny = DCHTConfig.tiny(codebook_size=256)
    assert DCHTConfig.from_official(tiny.to_official()) == tiny
    assert "dc_ae_dotlist" not in DCHTConfig().to_official()


@pytest.mark.parametrize("update,message", [
    ({"model_type": "dc_ar"}, "model_type"),
    ({"model_name": "dc-ae-f16-in-1.0"}, "f16"),
    ({"model_name": "dc-ae-f32-proxy-in-1.0"}, "not supported"),
    ({"model_name": "my-ae"}, "unknown model_name"),
    ({"quantizer_type": "lfq"}, "quantizer_type"),
])
def test_bad_official_configs_are_rejected_clearly(update, message):
    data = {"model_type": "dc_ht", "model_name": "dc-ae-f32-in-1.0", **update}
    with pytest.raises(ValueError, match=message):
        DCHTConfig.from_official(data)


def test_bad_dotlists_are_rejected_clearly():
    fields = {"codebook_size": 16}
    with pytest.raises(ValueError, match="downsample_block_type"):
        DCHTConfig.from_official({"dc_ae_dotlist": "encoder.downsample_block_type=Conv", "DCHTConfig": fields})
    with pytest.raises(ValueError, match="per-stage"):
        DCHTConfig.from_official({"dc_ae_dotlist": "encoder.width_list=[8,16] encoder.depth_list=[0,1,1]",
                                  "DCHTConfig": fields})
    with pytest.raises(FileNotFoundError, match="config"):
        DCHTConfig.from_official(PARITY_DIR / "no_such_config.json")
