"""from_pretrained round trips in every official format, and strict loading that names the offending keys."""
from __future__ import annotations

import json

import pytest
import torch

from baselines.dcar.tokenizer import DCHT, DCHTConfig, StateDictMismatchError


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("safe", [True, False])
def test_hf_directory_round_trip(tmp_path, tiny_model, safe):
    target = tiny_model.save_pretrained(tmp_path, safe_serialization=safe)
    assert target.name == ("model.safetensors" if safe else "pytorch_model.bin")
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "dc_ht" and config["codebook_size"] == 1024
    loaded = DCHT.from_pretrained(tmp_path)
    assert not loaded.training  # ready for inference: BatchNorm uses running statistics
    assert loaded.config == tiny_model.config
    assert _same_weights(loaded, tiny_model)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.decode(loaded.encode(x)), tiny_model.decode(tiny_model.encode(x)))


def test_raw_state_dict_with_config_object_dict_and_file(tmp_path, tiny_model):
    path = tmp_path / "weights.pt"
    torch.save(tiny_model.state_dict(), path)
    cfg_file = tmp_path / "tok_config.json"
    cfg_file.write_text(json.dumps(tiny_model.config.to_official()))
    for config in (DCHTConfig.tiny(), tiny_model.config.to_official(), cfg_file):
        assert _same_weights(DCHT.from_pretrained(path, config), tiny_model)


def test_raw_state_dict_uses_sibling_config_json_and_unwraps_state_dict(tmp_path, tiny_model):
    (tmp_path / "config.json").write_text(json.dumps(tiny_model.config.to_official()))
    path = tmp_path / "checkpoint.bin"
    torch.save({"state_dict": tiny_model.state_dict()}, path)
    assert _same_weights(DCHT.from_pretrained(path), tiny_model)


def test_parity_fixture_state_dict_loads_strictly(parity_dir):
    model = DCHT.from_pretrained(parity_dir / "tokenizer_small_state_dict.pt",
                                 parity_dir / "tokenizer_small_config.json")
    assert model.config.encoder_width_list == (8, 16, 32, 32, 64, 64)


def test_float_dtype_is_applied_and_integer_buffers_kept(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    model = DCHT.from_pretrained(tmp_path, torch_dtype=torch.float64)
    sd = model.state_dict()
    assert sd["quantize.embedding.weight"].dtype == torch.float64
    assert sd["decoder.stages.1.op_list.1.main.conv2.norm.num_batches_tracked"].dtype == torch.long


def _mismatch(tmp_path, tiny_model, edit):
    sd = dict(tiny_model.state_dict())
    edit(sd)
    path = tmp_path / "bad.pt"
    torch.save(sd, path)
    with pytest.raises(StateDictMismatchError) as info:
        DCHT.from_pretrained(path, DCHTConfig.tiny())
    return str(info.value), info.value


def test_missing_key_is_named(tmp_path, tiny_model):
    key = "encoder.stages.3.op_list.0.context_module.main.qkv.conv.weight"
    msg, err = _mismatch(tmp_path, tiny_model, lambda sd: sd.pop(key))
    assert key in msg and "missing keys (1)" in msg and err.missing == [key]


def test_unexpected_key_is_named(tmp_path, tiny_model):
    msg, err = _mismatch(tmp_path, tiny_model, lambda sd: sd.__setitem__("quantize.ema_count", torch.zeros(3)))
    assert "quantize.ema_count" in msg and "unexpected keys (1)" in msg and not err.missing


def test_shape_mismatch_is_named_with_both_shapes(tmp_path, tiny_model):
    key = "quantize.embedding.weight"
    msg, err = _mismatch(tmp_path, tiny_model, lambda sd: sd.__setitem__(key, torch.zeros(2048, 32)))
    assert key in msg and "(2048, 32)" in msg and "(1024, 32)" in msg and err.mismatched[0][0] == key


def test_full_config_against_small_checkpoint_lists_many_mismatches(parity_dir):
    with pytest.raises(StateDictMismatchError, match="shape mismatches"):
        DCHT.from_pretrained(parity_dir / "tokenizer_small_state_dict.pt", DCHTConfig())


def test_missing_files_are_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.safetensors, pytorch_model.bin"):
        DCHT.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        DCHT.from_pretrained(tmp_path / "nope.safetensors")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="config"):
        DCHT.from_pretrained(tmp_path)  # a directory needs its config.json


def test_non_state_dict_file_is_rejected(tmp_path):
    path = tmp_path / "odd.pt"
    torch.save({"weights": [1, 2, 3]}, path)
    with pytest.raises(ValueError, match="flat state dict"):
        DCHT.from_pretrained(path, DCHTConfig.tiny())
