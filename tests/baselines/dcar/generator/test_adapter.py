"""The registered DC-AR adapters on the tiny config: contract, per-item invariance, awkward prompts, missing files."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from harness.api import MissingResourceError, TextToImage
from harness.registry import resolve

PROMPTS = ["a photo of a cat", "a red car on the street", "", "two dogs playing in the park"]
SEEDS = [101, 202, 303, 404]


@pytest.fixture(scope="module")
def tiny_cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tiny-t5"))


@pytest.fixture(scope="module")
def adapter(tiny_cache_dir):
    cls = resolve("adapter", "dc-ar")
    return cls(config="tiny", random_init_seed=0, device="cpu", cache_dir=tiny_cache_dir)


def test_registry_names_resolve_to_text_to_image_adapters():
    from baselines.dcar.generator_adapter import DCARAdapter, DCARDiscreteOnlyAdapter

    assert resolve("adapter", "dc-ar") is DCARAdapter
    assert resolve("adapter", "dc-ar-discrete-only") is DCARDiscreteOnlyAdapter
    assert issubclass(DCARAdapter, TextToImage) and DCARAdapter.kind == "text_to_image"
    names = [r.name for r in DCARAdapter.requirements()]
    assert names == ["DC-AR generator weights", "DC-HT tokenizer weights", "T5-base text encoder"]


def test_images_follow_the_harness_convention(adapter):
    images = adapter.generate(PROMPTS[:2], SEEDS[:2])
    assert images.shape == (2, 3, 128, 128) and images.dtype == torch.float32 and images.device.type == "cpu"
    assert torch.isfinite(images).all() and images.min() >= 0 and images.max() <= 1
    assert images.std() > 0.01  # not a constant image
    info = adapter.info()
    assert info.real_weights is False and info.resolution == 128
    assert all(v.startswith("random-init:") for v in info.weights.values())
    defaults = info.extra["generate_defaults"]
    assert defaults["rng_mode"] == "per_item" and defaults["cfg_scale"] == 4.5
    assert defaults["num_steps"] == 4 and defaults["num_diffusion_steps"] == 4  # from DCARConfig.tiny()


def test_same_prompt_and_seed_give_the_same_image_at_batch_1_and_4_and_across_2_shards(adapter, tiny_cache_dir):
    batch4 = adapter.generate(PROMPTS, SEEDS)
    singles = torch.cat([adapter.generate([p], [s]) for p, s in zip(PROMPTS, SEEDS)])
    # a second process would build its own adapter: shard 0 takes items 0,2 and shard 1 items 1,3
    other = resolve("adapter", "dc-ar")(config="tiny", random_init_seed=0, device="cpu", cache_dir=tiny_cache_dir)
    shard0 = adapter.generate(PROMPTS[0::2], SEEDS[0::2])
    shard1 = other.generate(PROMPTS[1::2], SEEDS[1::2])
    sharded = torch.stack([shard0[0], shard1[0], shard0[1], shard1[1]])
    # equal up to float32 rounding of different GEMM batch sizes (token ids are identical)
    assert (batch4 - singles).abs().max() < 1e-4
    assert (batch4 - sharded).abs().max() < 1e-4
    different_seed = adapter.generate(PROMPTS[:1], [999])
    assert (different_seed[0] - batch4[0]).abs().max() > 0.05


def test_batch_invariant_option_gives_bit_identical_images_and_pngs(tiny_cache_dir):
    from harness.images import to_uint8

    exact = resolve("adapter", "dc-ar")(config="tiny", random_init_seed=0, device="cpu", cache_dir=tiny_cache_dir,
                                         batch_invariant=True)
    batch4 = exact.generate(PROMPTS, SEEDS)
    batch2 = torch.cat([exact.generate(PROMPTS[:2], SEEDS[:2]), exact.generate(PROMPTS[2:], SEEDS[2:])])
    assert torch.equal(batch4, batch2)
    assert torch.equal(to_uint8(batch4), to_uint8(batch2))
    assert exact.info().extra["batch_invariant"] is True
    with pytest.raises(ValueError, match="per_item"):
        exact.generate(PROMPTS[:2], SEEDS[:2], rng_mode="official")


def test_per_item_token_ids_are_exactly_batch_invariant(adapter):
    from baselines.dcar.generator.sampler import SamplingOptions

    opts = SamplingOptions(num_steps=4, num_diffusion_steps=4)
    batch = adapter.pipeline(PROMPTS, SEEDS, options=opts)
    for i in (0, 3):
        single = adapter.pipeline([PROMPTS[i]], [SEEDS[i]], options=opts)
        assert torch.equal(single.ids[0], batch.ids[i])


def test_official_rng_mode_reproduces_from_the_global_seed(adapter):
    torch.manual_seed(5)
    a = adapter.generate(PROMPTS[:2], SEEDS[:2], rng_mode="official")
    torch.manual_seed(5)
    b = adapter.generate(PROMPTS[:2], [0, 0], rng_mode="official")  # seeds are ignored in this mode
    assert torch.equal(a, b)


def test_discrete_only_decodes_the_same_ids_without_residuals(adapter, tiny_cache_dir, monkeypatch):
    from baselines.dcar.generator_adapter import DCARDiscreteOnlyAdapter

    discrete = DCARDiscreteOnlyAdapter(config="tiny", random_init_seed=0, device="cpu", cache_dir=tiny_cache_dir)

    def boom(*args, **kwargs):
        raise AssertionError("the discrete-only baseline must not call the diffusion head")

    monkeypatch.setattr(discrete.pipeline.generator.diffloss, "sample", boom)
    from baselines.dcar.generator.sampler import SamplingOptions

    result = discrete.pipeline(PROMPTS[:2], SEEDS[:2], options=SamplingOptions(num_steps=4, predict_residuals=False))
    hybrid = adapter.pipeline(PROMPTS[:2], SEEDS[:2], options=SamplingOptions(num_steps=4, num_diffusion_steps=4))
    assert result.residual is None and torch.equal(result.ids, hybrid.ids)
    expected = (discrete.pipeline.decoder.decode_tokens(result.ids, None) * 0.5 + 0.5).clamp(0, 1)
    assert torch.allclose(result.images, expected, atol=1e-6)
    assert not torch.allclose(result.images, hybrid.images, atol=1e-3)  # residuals change the image
    assert discrete.info().extra["residual_tokens"] is False
    images = discrete.generate(PROMPTS[:1], SEEDS[:1], num_diffusion_steps=20)  # accepted, unused
    assert images.shape == (1, 3, 128, 128)


def test_empty_prompt_is_accepted_and_long_prompts_are_truncated_with_a_warning(adapter):
    from baselines.dcar.generator.text_encoder import PromptTruncatedWarning

    before = adapter.info().extra["prompts_truncated"]
    long_prompt = "a cat sitting on a red chair next to a tall tree " * 10
    with pytest.warns(PromptTruncatedWarning, match="truncated"):
        images = adapter.generate([long_prompt, ""], [1, 2])
    assert images.shape[0] == 2 and torch.isfinite(images).all()
    assert adapter.info().extra["prompts_truncated"] == before + 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", PromptTruncatedWarning)
        adapter.generate([""], [3])  # empty prompt: just </s>, no warning


@pytest.mark.parametrize("call, error, match", [
    (lambda a: a.generate(["x", "y"], [1]), ValueError, "2 prompts but 1 seeds"),
    (lambda a: a.generate([], []), ValueError, "at least one prompt"),
    (lambda a: a.generate("a cat", [1]), TypeError, "not a single string"),
    (lambda a: a.generate([None], [1]), TypeError, "must be a str"),
    (lambda a: a.generate(["x"], [1], guidance=3), TypeError, "unknown generate"),
    (lambda a: a.generate(["x"], [1], rng_mode="global"), ValueError, "rng_mode"),
    (lambda a: a.generate(["x"], [1], num_steps=0), ValueError, "num_steps"),
])
def test_bad_generate_calls_fail_clearly(adapter, call, error, match):
    with pytest.raises(error, match=match):
        call(adapter)


def test_missing_weights_name_every_file_and_place(tmp_path, monkeypatch):
    from baselines.dcar.generator_adapter import DCARAdapter

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("DCAR_GENERATOR_PATH", str(tmp_path / "nowhere" / "dc-ar-512"))
    monkeypatch.delenv("DCAR_DCHT_PATH", raising=False)
    monkeypatch.delenv("DCAR_T5_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingResourceError) as info:
        DCARAdapter(config="full", device="cpu")
    text = str(info.value)
    for needle in ("DC-AR generator weights", "DC-HT tokenizer weights", "T5-base text encoder",
                   "DCAR_GENERATOR_PATH", "DCAR_DCHT_PATH", "DCAR_T5_PATH", "mit-han-lab/dc-ar-512",
                   "mit-han-lab/dc-ht", "google-t5/t5-base", str(tmp_path / "nowhere" / "dc-ar-512"),
                   "random_init_seed"):
        assert needle in text, needle


def test_incomplete_t5_directory_is_a_clear_error(tmp_path, monkeypatch):
    from baselines.dcar.generator_adapter import DCARAdapter

    t5 = tmp_path / "t5-base"
    t5.mkdir()
    (t5 / "model.safetensors").write_bytes(b"")  # weights present, tokenizer and config missing
    with pytest.raises(MissingResourceError, match="spiece.model or tokenizer.json"):
        DCARAdapter(config="tiny", random_init_seed=0, text_encoder=str(t5), device="cpu")
    with pytest.raises(MissingResourceError, match="T5-base text encoder"):
        DCARAdapter(config="tiny", random_init_seed=0, text_encoder=str(tmp_path / "absent"), device="cpu")


def test_constructor_option_errors(tiny_cache_dir):
    from baselines.dcar.generator_adapter import DCARAdapter

    with pytest.raises(ValueError, match="generates 128x128 images only"):
        DCARAdapter(config="tiny", random_init_seed=0, device="cpu", cache_dir=tiny_cache_dir, resolution=256)
    assert DCARAdapter(config="tiny", random_init_seed=0, device="cpu", cache_dir=tiny_cache_dir,
                       resolution=128).resolution == 128

    with pytest.raises(ValueError, match="config must be one of"):
        DCARAdapter(config="huge")
    with pytest.raises(TypeError, match="unknown dc-ar option"):
        DCARAdapter(config="tiny", random_init_seed=0, temprature=1.0)


def test_released_layout_in_the_hf_cache_is_found_and_loaded(tmp_path, monkeypatch, tiny_cache_dir):
    """Weights laid out as HF snapshots (dc-ar-512, dc-ht, t5-base) are found offline and marked real."""
    import shutil

    import yaml

    from baselines.dcar.generator.config import DCARConfig
    from baselines.dcar.generator.text_encoder import build_tiny_t5
    from baselines.dcar.generator.transformer import DCAR
    from baselines.dcar.generator_adapter import DCARAdapter
    from baselines.dcar.tokenizer import DCHT, DCHTConfig

    hub = tmp_path / "hub"

    def snapshot(repo: str) -> Path:
        folder = hub / f"models--{repo.replace('/', '--')}" / "snapshots" / "0123abcd"
        folder.mkdir(parents=True)
        (folder.parents[1] / "refs").mkdir()
        (folder.parents[1] / "refs" / "main").write_text("0123abcd")
        return folder

    gen_dir, dcht_dir, t5_dir = snapshot("mit-han-lab/dc-ar-512"), snapshot("mit-han-lab/dc-ht"), snapshot("google-t5/t5-base")
    cfg = DCARConfig.tiny(context_dim=32)
    cfg.text_token_length = 300  # the full adapter encodes 300 T5 tokens
    torch.save(DCAR(cfg).init_random(3).state_dict(), gen_dir / "pytorch_model.bin")
    (gen_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_official()))
    torch.manual_seed(0)
    DCHT(DCHTConfig.tiny()).save_pretrained(dcht_dir)
    for f in build_tiny_t5(d_model=32, seed=0, cache_dir=tiny_cache_dir).iterdir():
        shutil.copy(f, t5_dir / f.name)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    for var in ("DCAR_GENERATOR_PATH", "DCAR_DCHT_PATH", "DCAR_T5_PATH"):
        monkeypatch.delenv(var, raising=False)
    adapter = DCARAdapter(config="full", device="cpu")
    info = adapter.info()
    assert info.real_weights is True and info.resolution == 128
    assert str(gen_dir / "pytorch_model.bin") in info.weights
    assert all(len(h) == 64 for h in info.weights.values())  # sha256 of each weights file
    assert adapter.pipeline.text_encoder.max_length == 300
    images = adapter.generate(["a cat"], [0])
    assert images.shape == (1, 3, 128, 128) and torch.isfinite(images).all()


# --------------------------------------------------------------------------- batch padding (resume keeps its promise)

MORE_PROMPTS = ["a blue bird on a tree", "an astronaut riding a horse", "three cups on a table", "a city at night"]
MORE_SEEDS = [505, 606, 707, 808]


def test_set_batch_size_pads_short_calls_so_a_resumed_item_is_bit_identical(tiny_cache_dir):
    """Items [a,b,c,d] then [e] (the tail after a kill) vs. [e,f,g,h]: e's pixels are the same bits.

    Exact equality is promised here because padding makes every tensor of e's computation the same shape in
    both calls (and rows never read each other's values); without padding they differ in the last bits.
    """
    from harness.images import to_uint8

    padded = resolve("adapter", "dc-ar")(config="tiny", random_init_seed=0, device="cpu", cache_dir=tiny_cache_dir)
    padded.set_batch_size(4)
    first = padded.generate(PROMPTS, SEEDS)
    tail = padded.generate(MORE_PROMPTS[:1], MORE_SEEDS[:1])
    full = padded.generate(MORE_PROMPTS, MORE_SEEDS)
    assert first.shape[0] == 4 and tail.shape == (1, 3, 128, 128) and full.shape[0] == 4
    assert torch.equal(tail[0], full[0])
    assert torch.equal(to_uint8(tail), to_uint8(full[:1]))
    two = padded.generate(MORE_PROMPTS[:2], MORE_SEEDS[:2])  # any short call, not only a single item
    assert torch.equal(two, full[:2])
    result = padded.pipeline(MORE_PROMPTS[:1], MORE_SEEDS[:1], pad_to=4)
    assert result.images.shape[0] == 1 and result.ids.shape[0] == 1 and result.info["computed_rows"] == 4


def test_padding_counts_and_warns_about_the_real_prompts_only(tiny_cache_dir):
    from baselines.dcar.generator.text_encoder import PromptTruncatedWarning

    padded = resolve("adapter", "dc-ar")(config="tiny", random_init_seed=0, device="cpu", cache_dir=tiny_cache_dir)
    padded.set_batch_size(4)
    long_prompt = "a cat sitting on a red chair next to a tall tree " * 10
    with pytest.warns(PromptTruncatedWarning, match=r"^1 prompt\(s\)"):
        images = padded.generate(["a dog", long_prompt], [1, 2])  # padded with 2 copies of the long prompt
    assert images.shape[0] == 2
    assert padded.info().extra["prompts_truncated"] == 1


def test_batch_invariant_and_official_mode_are_not_padded(adapter, tiny_cache_dir, monkeypatch):
    from baselines.dcar.pipeline import DCARPipeline

    seen = []
    original = DCARPipeline.__call__

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("pad_to"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DCARPipeline, "__call__", spy)
    exact = resolve("adapter", "dc-ar")(config="tiny", random_init_seed=0, device="cpu", cache_dir=tiny_cache_dir,
                                         batch_invariant=True)
    exact.set_batch_size(4)
    exact.generate(PROMPTS[:2], SEEDS[:2])
    assert seen == [None, None]  # items alone: nothing to pad
    padded = resolve("adapter", "dc-ar")(config="tiny", random_init_seed=0, device="cpu", cache_dir=tiny_cache_dir)
    padded.set_batch_size(4)
    seen.clear()
    torch.manual_seed(5)
    a = padded.generate(PROMPTS[:2], SEEDS[:2], rng_mode="official")
    padded.generate(PROMPTS[:2], SEEDS[:2])
    assert seen == [None, 4]
    torch.manual_seed(5)
    assert torch.equal(a, adapter.generate(PROMPTS[:2], SEEDS[:2], rng_mode="official"))  # same as unpadded
    with pytest.raises(ValueError, match="per_item"):
        padded.pipeline(PROMPTS[:1], SEEDS[:1], rng_mode="official", pad_to=4)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_set_batch_size_refuses_non_positive_integers(adapter, bad):
    with pytest.raises(ValueError, match="positive integer"):
        adapter.set_batch_size(bad)


def test_nan_in_generated_images_names_the_prompt_index(tiny_cache_dir, monkeypatch):
    from harness.api import DataError

    model = resolve("adapter", "dc-ar")(config="tiny", random_init_seed=0, device="cpu", cache_dir=tiny_cache_dir)
    decoder = model.pipeline.decoder
    real = decoder.decode_tokens

    def poisoned(ids, residual=None):
        out = real(ids, residual)
        out[1, 0, 3, 3] = float("inf")  # clamping would hide an Inf: it must be caught before
        return out

    monkeypatch.setattr(decoder, "decode_tokens", poisoned)
    with pytest.raises(DataError, match=r"prompt index 1 \('a red car on the street', seed 202\)") as info:
        model.generate(PROMPTS[:3], SEEDS[:3])
    assert "1 of 3 prompt(s)" in str(info.value)
