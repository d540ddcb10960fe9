"""The T5 text path: official tokenisation and the no-attention-mask quirk, on the tiny offline T5."""
from __future__ import annotations

import pytest
import torch

from baselines.dcar.generator.text_encoder import PromptTruncatedWarning, T5TextEncoder


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return T5TextEncoder.tiny(cache_dir=tmp_path_factory.mktemp("t5"), max_length=16)


def test_prompts_are_padded_to_max_length_with_eos_and_pad_mask(encoder):
    out = encoder.encode(["a photo of a cat", ""])
    assert out.hidden.shape == (2, 16, 32) and out.mask.shape == (2, 16)
    ids = encoder.tokenizer(["a photo of a cat"])["input_ids"][0]
    assert ids[-1] == encoder.tokenizer.eos_token_id == 1  # T5 appends </s>
    assert out.mask[0].sum() == len(ids) and out.mask[0, : len(ids)].all()
    assert out.mask[1].tolist() == [True] + [False] * 15  # the empty prompt is just </s>


def test_encoder_runs_without_attention_mask_like_the_official_code(encoder):
    out = encoder.encode(["a red car"])
    ids = encoder.tokenizer(["a red car"], padding="max_length", max_length=16, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        unmasked = encoder.encoder(input_ids=ids).last_hidden_state
        masked = encoder.encoder(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state
    assert torch.equal(out.hidden, unmasked)
    n = int(out.mask.sum())
    assert not torch.allclose(out.hidden[0, :n], masked[0, :n], atol=1e-4)  # pads do influence real tokens


def test_long_prompt_is_truncated_and_recorded(encoder):
    with pytest.warns(PromptTruncatedWarning, match="exceed 16 T5 tokens"):
        out = encoder.encode(["a cat " * 20, "a dog"])
    assert out.truncated == [0] and out.num_tokens[0] == 41
    assert out.mask[0].all()
    ids = encoder.tokenizer(["a cat " * 20], padding="max_length", max_length=16, truncation=True)["input_ids"][0]
    assert ids[-1] == 1  # still ends with </s>


def test_missing_t5_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="T5 directory not found"):
        T5TextEncoder.from_pretrained(tmp_path / "absent")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="model.safetensors or pytorch_model.bin, spiece.model or tokenizer.json"):
        T5TextEncoder.from_pretrained(tmp_path)


def test_official_length_300_truncation(tmp_path):
    enc = T5TextEncoder.tiny(cache_dir=tmp_path, max_length=300)
    words = ("a red car next to a tall tree on the street " * 40).strip()  # 400 words -> > 300 tokens
    with pytest.warns(PromptTruncatedWarning, match="exceed 300 T5 tokens"):
        out = enc.encode([words, "a cat"])
    assert out.hidden.shape[:2] == (2, 300) and out.mask[0].sum() == 300 and out.truncated == [0]
    assert out.num_tokens[0] > 300 and out.mask[1].sum() == out.num_tokens[1]


def test_a_damaged_t5_directory_is_one_user_error_naming_it(tmp_path):
    import shutil

    from baselines.dcar.checkpoint import CheckpointFormatError
    from baselines.dcar.generator.text_encoder import T5TextEncoder, build_tiny_t5

    folder = tmp_path / "t5"
    shutil.copytree(build_tiny_t5(cache_dir=tmp_path / "cache"), folder)
    weights = next(p for p in (folder / "model.safetensors", folder / "pytorch_model.bin") if p.exists())
    weights.write_bytes(b"not a weights file")
    with pytest.raises(CheckpointFormatError, match=f"T5 directory {folder} could not be loaded"):
        T5TextEncoder.from_pretrained(folder)


def test_tiny_t5_built_on_a_rank_that_save_pretrained_skips_is_complete(tmp_path, monkeypatch):
    """Under torchrun, transformers saves only on rank 0; a tiny T5 built on another rank must still load (and be
    the same model as one saved normally)."""
    import torch

    from baselines.dcar.generator.text_encoder import T5TextEncoder, build_tiny_t5

    normal = T5TextEncoder.from_pretrained(build_tiny_t5(cache_dir=tmp_path / "a"), max_length=32)
    monkeypatch.setattr("transformers.modeling_utils.PreTrainedModel.should_save_on_this_rank",
                        lambda self, is_main_process: False)
    folder = build_tiny_t5(cache_dir=tmp_path / "b")
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    other = T5TextEncoder.from_pretrained(folder, max_length=32)
    a, b = normal.encode(["a red cube"]), other.encode(["a red cube"])
    assert torch.equal(a.hidden, b.hidden) and torch.equal(a.mask, b.mask)
