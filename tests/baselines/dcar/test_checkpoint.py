"""One checkpoint reader for DC-HT and DC-AR: the same signature, the same strict errors, naming the file.

Each case runs for both models, because the promise is that a user gets the same kind of message whichever
checkpoint is wrong: a mismatch lists the keys (first few + counts) and says what to do, a file that is no
checkpoint is one UserError naming it, NaN/Inf weights name the file and the tensor.
"""
from __future__ import annotations

import inspect
import io
import zipfile

import pytest
import torch

from baselines.common import seeded
from baselines.dcar.checkpoint import (
    CheckpointFormatError,
    StateDictMismatchError,
    find_weights_file,
    read_state_dict,
)
from baselines.dcar.generator.config import DCARConfig
from baselines.dcar.generator.transformer import DCAR
from baselines.dcar.tokenizer import DCHT, DCHTConfig
from baselines.dcar.tokenizer import StateDictMismatchError as ExportedMismatchError
from harness.api import DataError, MissingResourceError, UserError


def _dcht():
    with seeded(0):
        return DCHT(DCHTConfig.tiny()).eval()


def _dcar():
    return DCAR(DCARConfig.tiny()).init_random(0).eval()


MODELS = {
    # name: (class, build, config, a key to remove, a key to reshape)
    "dc-ht": (DCHT, _dcht, DCHTConfig.tiny, "quantize.embedding.weight", "encoder.project_in.conv.conv.weight"),
    "dc-ar": (DCAR, _dcar, DCARConfig.tiny, "y_embedder.y_embedding", "blocks.0.mlp.fc1.weight"),
}


@pytest.fixture(params=sorted(MODELS))
def model_case(request):
    cls, build, config, drop_key, shape_key = MODELS[request.param]
    return request.param, cls, build(), config(), drop_key, shape_key


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_both_models_have_the_same_from_pretrained_signature():
    sigs = {name: inspect.signature(cls.from_pretrained) for name, (cls, *_rest) in MODELS.items()}
    for sig in sigs.values():
        params = sig.parameters
        assert list(params)[:2] == ["path", "config"]
        for name in ("torch_dtype", "device"):
            assert params[name].kind is inspect.Parameter.KEYWORD_ONLY and params[name].default is None
    assert ExportedMismatchError is StateDictMismatchError
    assert issubclass(StateDictMismatchError, UserError) and issubclass(CheckpointFormatError, DataError)


def test_round_trip_in_every_file_format_with_dtype_and_device(model_case, tmp_path):
    _, cls, model, cfg, *_ = model_case
    sd = model.state_dict()
    torch.save(sd, tmp_path / "raw.pt")
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "training.ckpt")  # wrapped with other entries
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "weights.safetensors"))
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "misnamed.bin"))  # format from content
    torch.save(sd, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    for name in ("raw.pt", "training.ckpt", "weights.safetensors", "misnamed.bin", "legacy.pt"):
        loaded = cls.from_pretrained(tmp_path / name, cfg)
        assert _same_weights(loaded, model), name
        assert not loaded.training
    wide = cls.from_pretrained(tmp_path / "raw.pt", cfg, torch_dtype=torch.float64, device="cpu")
    assert all(v.dtype == torch.float64 for v in wide.state_dict().values() if v.is_floating_point())
    half = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    torch.save(half, tmp_path / "half.pt")
    assert next(cls.from_pretrained(tmp_path / "half.pt", cfg).parameters()).dtype == torch.float32  # default


def test_dcar_keeps_its_frozen_pos_embed_frozen(tmp_path):
    model = _dcar()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    loaded = DCAR.from_pretrained(tmp_path, DCARConfig.tiny())  # a directory works too
    assert loaded.pos_embed.requires_grad is False and loaded.x_embedder.weight.requires_grad is True


def _mismatch(tmp_path, model_case, edit) -> StateDictMismatchError:
    _, cls, model, cfg, *_ = model_case
    sd = dict(model.state_dict())
    edit(sd)
    path = tmp_path / "pytorch_model.bin"
    torch.save(sd, path)
    with pytest.raises(StateDictMismatchError) as info:
        cls.from_pretrained(path, cfg)
    msg = str(info.value)
    assert str(path) in msg and "fix: check that the file is" in msg  # names the file, says what to do
    return info.value


def test_missing_key_is_named_with_the_file(model_case, tmp_path):
    name, *_rest, drop_key, _ = model_case
    err = _mismatch(tmp_path, model_case, lambda sd: sd.pop(drop_key))
    assert err.missing == [drop_key] and "missing keys (1): " + drop_key in str(err)
    assert ("DC-HT" if name == "dc-ht" else "DC-AR generator") in str(err)


def test_wrong_shape_names_both_shapes(model_case, tmp_path):
    *_rest, shape_key = model_case
    model = model_case[2]
    good = tuple(model.state_dict()[shape_key].shape)
    bad = (good[0] + 1,) + good[1:]
    err = _mismatch(tmp_path, model_case, lambda sd: sd.__setitem__(shape_key, torch.zeros(bad)))
    assert err.mismatched == [(shape_key, bad, good)]
    assert f"{shape_key} (checkpoint {bad} vs model {good})" in str(err)


def test_unexpected_keys_are_listed_first_few_with_the_count(model_case, tmp_path):
    def add(sd):
        for i in range(25):
            sd[f"extra.{i:02d}.weight"] = torch.zeros(1)

    err = _mismatch(tmp_path, model_case, add)
    msg = str(err)
    assert "unexpected keys (25): extra.00.weight" in msg and "... and 15 more" in msg
    assert "extra.24.weight" not in msg and len(err.unexpected) == 25


def test_config_of_another_size_lists_many_mismatches(tmp_path):
    torch.save(_dcar().state_dict(), tmp_path / "pytorch_model.bin")
    # the full-size model is built on the meta device before the check: no 2 GB allocation
    with pytest.raises(StateDictMismatchError, match="shape mismatches"):
        DCAR.from_pretrained(tmp_path / "pytorch_model.bin", DCARConfig.full())


def _not_checkpoints(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", "not torch")
    files = {
        "random.bin": (torch.Generator().manual_seed(0), None),
        "notes.bin": b"these are my notes, not weights\n",
        "archive.bin": buf.getvalue(),
        "empty.bin": b"",
        "truncated.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":",
    }
    out = {}
    for name, data in files.items():
        if isinstance(data, tuple):
            data = bytes(torch.randint(0, 256, (4096,), generator=data[0], dtype=torch.uint8).tolist())
        (tmp_path / name).write_bytes(data)
        out[name] = tmp_path / name
    return out


def test_a_file_that_is_not_a_checkpoint_is_one_user_error_naming_it(model_case, tmp_path):
    _, cls, _model, cfg, *_ = model_case
    messages = {}
    for name, path in _not_checkpoints(tmp_path).items():
        with pytest.raises(CheckpointFormatError) as info:
            cls.from_pretrained(path, cfg)
        assert isinstance(info.value, UserError) and str(path) in str(info.value), name
        messages[name] = str(info.value)
    assert "is empty" in messages["empty.bin"]
    assert "zip archive but not a readable torch.save file" in messages["archive.bin"]
    assert "not a readable safetensors file" in messages["truncated.safetensors"]
    assert "neither a torch.save file nor safetensors" in messages["notes.bin"]
    odd = tmp_path / "odd.pt"
    torch.save({"weights": [1, 2, 3]}, odd)
    with pytest.raises(CheckpointFormatError, match=r"flat state dict of tensors \(key 'weights' holds a list\)"):
        cls.from_pretrained(odd, cfg)


def test_non_finite_weights_name_the_file_and_the_tensor(model_case, tmp_path):
    _, cls, model, cfg, drop_key, shape_key = model_case
    sd = dict(model.state_dict())
    sd[shape_key] = sd[shape_key].clone()
    sd[shape_key].view(-1)[:2] = float("nan")
    sd[drop_key] = sd[drop_key].clone()
    sd[drop_key].view(-1)[0] = float("-inf")
    path = tmp_path / "diverged.pt"
    torch.save(sd, path)
    with pytest.raises(CheckpointFormatError) as info:
        cls.from_pretrained(path, cfg)
    msg = str(info.value)
    assert str(path) in msg and "2 tensor(s)" in msg
    assert f"{shape_key} (2 NaN, 0 Inf)" in msg and f"{drop_key} (0 NaN, 1 Inf)" in msg


def test_missing_files_and_directories(tmp_path):
    with pytest.raises(MissingResourceError, match="model.safetensors, pytorch_model.bin"):
        find_weights_file(tmp_path, "DC-AR generator")
    with pytest.raises(MissingResourceError, match="DC-AR generator weights not found"):
        DCAR.from_pretrained(tmp_path / "absent.bin", DCARConfig.tiny())
    with pytest.raises(MissingResourceError, match="not found"):
        read_state_dict(tmp_path / "absent.bin")
