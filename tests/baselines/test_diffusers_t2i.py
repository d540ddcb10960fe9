"""The diffusers text-to-image adapters: parity with the pipelines, full-size architectures, offline tokens, errors.

Tiny pipelines are assembled offline from the component configs (seeded random weights); full-size ones are
built on the ``meta`` device only (no memory), so the T5-XXL / Gemma text encoders are never materialised.
"""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from baselines.diffusers_t2i import (  # noqa: E402
    ADAPTERS,
    DiffusersTextToImage,
    UnknownModelError,
    WrongWeightsError,
    build_components,
    model_names,
    num_params,
    published_params,
)
from harness.api import MissingResourceError, TextToImage, UserError  # noqa: E402
from harness.registry import resolve  # noqa: E402

PROMPTS = ["a red cat sitting on a table", "two dogs on the beach"]
SEEDS = [7, 123]
STEPS = 2  # tiny pipelines: two denoising steps are enough for a parity check

#: what each named config must hand to its pipeline besides prompt/size/steps/CFG/generator (tiny variant:
#: resolution binning off, since the binning tables exist only for the real sample sizes)
FIXED_CALL = {
    "pixart-alpha-512": dict(clean_caption=False, use_resolution_binning=False, max_sequence_length=120),
    "pixart-sigma-512": dict(clean_caption=False, use_resolution_binning=False, max_sequence_length=300),
    "sana-0.6b-512": dict(clean_caption=False, use_resolution_binning=False, max_sequence_length=300),
    "sdxl-1024": {}, "sdxl-512": {}, "playground-v2.5-1024": {},
    "sd3-medium-1024": dict(max_sequence_length=256),
}

#: Table 2 settings (DC-AR paper Table 2: resolution, steps) and each pipeline's / model card's default CFG
TABLE2 = {
    "pixart-alpha-512": (512, 20, 4.5), "pixart-sigma-512": (512, 20, 4.5), "sana-0.6b-512": (512, 20, 4.5),
    "sdxl-1024": (1024, 20, 5.0), "sdxl-512": (512, 20, 5.0), "sd3-medium-1024": (1024, 28, 7.0),
    "playground-v2.5-1024": (1024, 20, 3.0),
}


@pytest.fixture(scope="module")
def tiny():
    """One tiny random adapter per model, built once for the module."""
    cache: dict[str, DiffusersTextToImage] = {}

    def get(name: str) -> DiffusersTextToImage:
        if name not in cache:
            cache[name] = resolve("adapter", name)(config="tiny", num_inference_steps=STEPS)
        return cache[name]

    return get


@pytest.fixture(scope="module")
def meta_parts():
    """The full-size components of each model on the meta device (no memory), built once for the module."""
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            cache[name] = build_components(name, "full", device="meta")
        return cache[name]

    return get


def _pipeline_images(adapter, prompts, seeds):
    """What the diffusers pipeline itself returns for these prompts and seeds (one CPU generator per image)."""
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    res, _, cfg = TABLE2[adapter.name]
    with torch.inference_mode():
        return adapter.pipe(prompt=list(prompts), height=32, width=32, num_inference_steps=STEPS, guidance_scale=cfg,
                            generator=gens[0] if len(gens) == 1 else gens, output_type="pt",
                            **FIXED_CALL[adapter.name]).images.float().cpu()


def test_every_named_config_is_registered():
    assert sorted(ADAPTERS) == model_names() == sorted(TABLE2)
    for name, cls in ADAPTERS.items():
        assert resolve("adapter", name) is cls and cls.requirements()


@pytest.mark.parametrize("name", sorted(TABLE2))
def test_image_equals_the_diffusers_pipeline_at_batch_sizes_1_and_2(tiny, name):
    adapter = tiny(name)
    assert isinstance(adapter, TextToImage)
    one = adapter.generate(PROMPTS[:1], SEEDS[:1])
    two = adapter.generate(PROMPTS, SEEDS)
    assert one.shape == (1, 3, 32, 32) and two.shape == (2, 3, 32, 32) and two.dtype == torch.float32
    assert 0 <= float(two.min()) and float(two.max()) <= 1
    assert torch.equal(one, _pipeline_images(adapter, PROMPTS[:1], SEEDS[:1]))  # generator=Generator().manual_seed
    assert torch.equal(two, _pipeline_images(adapter, PROMPTS, SEEDS))  # a list of generators, one per image
    # an image depends on its own (prompt, seed) only: the same in a batch of 2 as alone (float rounding aside)
    assert (two[0] - one[0]).abs().max() < 1e-4
    assert not torch.equal(adapter.generate(PROMPTS[:1], [SEEDS[0] + 1]), one)


@pytest.mark.parametrize("name", sorted(TABLE2))
def test_defaults_are_the_table_2_settings(name):
    cls = ADAPTERS[name]
    res, steps, cfg = TABLE2[name]
    from baselines.diffusers_t2i import model_config

    defaults = model_config(name)["defaults"]
    assert (defaults["resolution"], defaults["num_inference_steps"], defaults["guidance_scale"]) == (res, steps, cfg)
    assert cls.model == name


@pytest.mark.parametrize("name", sorted(TABLE2))
def test_full_size_architecture_has_the_published_parameter_count(name, meta_parts):
    parts = meta_parts(name)
    pub = published_params(name)
    counted = sum(num_params(parts[k]) for k in pub["covers"])
    assert abs(counted / pub["value"] - 1) <= pub["tolerance"], (name, counted, pub)
    assert all(p.is_meta for k in pub["covers"] for p in parts[k].parameters())


def test_full_size_components_match_their_published_shapes(meta_parts):
    """Golden counts of the shared text encoders / VAEs built from the shipped configs (meta device).

    T5-v1.1-XXL encoder 4.76B, CLIP ViT-L/14 text 123.1M, OpenCLIP ViT-bigG/14 text + projection 694.7M,
    Gemma-2-2B (decoder, no LM head) 2.61B, SD/SDXL KL VAE 83.65M, DC-AE f32c32 (Sana) 312.3M.
    """
    sd3 = meta_parts("sd3-medium-1024")
    assert num_params(sd3["text_encoder_3"]) == 4_762_310_656
    assert num_params(sd3["text_encoder"]) == 123_060_480 + 768 * 768  # CLIP-L text + its projection
    assert num_params(sd3["text_encoder_2"]) == 694_659_840
    assert sd3["vae"].config.latent_channels == 16
    sdxl = meta_parts("sdxl-1024")
    assert num_params(sdxl["text_encoder"]) == 123_060_480 and num_params(sdxl["vae"]) == 83_653_863
    sana = meta_parts("sana-0.6b-512")
    assert num_params(sana["text_encoder"]) == 2_614_341_888 and num_params(sana["vae"]) == 312_250_275
    pixart = meta_parts("pixart-alpha-512")
    assert num_params(pixart["text_encoder"]) == 4_762_310_656


@pytest.mark.parametrize("name, lengths", [
    ("pixart-alpha-512", [120]), ("pixart-sigma-512", [300]), ("sdxl-1024", [77, 77]),
    ("sd3-medium-1024", [77, 77, 256]), ("sana-0.6b-512", [300]),
])
def test_offline_tokenizers_give_the_real_sequence_lengths(name, lengths, meta_parts):
    parts = meta_parts(name)
    toks = [parts[k] for k in ("tokenizer", "tokenizer_2", "tokenizer_3") if k in parts]
    assert [t.model_max_length for t in toks] == lengths
    for tok, n in zip(toks, lengths):
        ids = tok([PROMPTS[0]], padding="max_length", max_length=n, truncation=True, return_tensors="pt").input_ids
        assert ids.shape == (1, n)
        again = tok([PROMPTS[0]], padding="max_length", max_length=n, truncation=True, return_tensors="pt").input_ids
        assert torch.equal(ids, again)


def test_tiny_pipeline_encodes_the_real_token_counts(tiny):
    pixart = tiny("pixart-alpha-512")
    emb, mask, _, _ = pixart.pipe.encode_prompt(PROMPTS[:1], do_classifier_free_guidance=False, max_sequence_length=120,
                                                device="cpu")
    assert emb.shape[:2] == (1, 120) and int(mask.sum()) == len(PROMPTS[0].split()) + 1  # words + </s>
    sd3 = tiny("sd3-medium-1024")
    emb = sd3.pipe.encode_prompt(PROMPTS[:1], None, None, do_classifier_free_guidance=False, device="cpu")[0]
    assert emb.shape[1] == 77 + 256  # CLIP tokens + T5 tokens


def test_info_records_random_weights_tokenizers_and_no_safety_checker(tiny):
    info = tiny("sdxl-512").info()
    assert info.real_weights is False and info.kind == "text_to_image" and info.resolution == 32
    assert set(info.weights.values()) == {"random-init:0"} and "unet" in info.weights
    assert info.extra["safety_checker"].startswith("none") and info.extra["watermark"] is False
    assert "offline" in info.extra["tokenizers"] and info.extra["scheduler"] == "EulerDiscreteScheduler"
    assert info.extra["published_params"]["covers"] == ["unet"]
    assert tiny("playground-v2.5-1024").info().extra["scheduler"] == "EDMDPMSolverMultistepScheduler"
    assert info.steps == STEPS and info.num_params == sum(info.extra["component_params"].values())


def test_set_batch_size_pads_a_short_call_to_the_same_bits(tiny):
    adapter = resolve("adapter", "pixart-alpha-512")(config="tiny", num_inference_steps=STEPS)
    adapter.set_batch_size(2)
    alone = adapter.generate(PROMPTS[1:], SEEDS[1:])
    assert alone.shape[0] == 1
    assert torch.equal(alone[0], adapter.generate(PROMPTS, SEEDS)[1])


def test_options_and_seeds_are_checked(tiny):
    adapter = tiny("sana-0.6b-512")
    with pytest.raises(TypeError, match="num_steps"):
        adapter.generate(PROMPTS, SEEDS, num_steps=3)
    with pytest.raises(ValueError, match="one seed per prompt"):
        adapter.generate(PROMPTS, SEEDS[:1])
    with pytest.raises(TypeError, match="unknown"):
        resolve("adapter", "sana-0.6b-512")(config="tiny", cfg=3)
    with pytest.raises(ValueError, match="either weights or random_init_seed"):
        resolve("adapter", "sana-0.6b-512")(weights="x", random_init_seed=0)


@pytest.fixture(scope="module")
def saved_sdxl(tmp_path_factory, tiny):
    folder = tmp_path_factory.mktemp("weights") / "tiny-sdxl"
    tiny("sdxl-1024").pipe.save_pretrained(str(folder))
    return folder


def test_a_saved_pipeline_directory_loads_back_exactly(tiny, saved_sdxl):
    loaded = resolve("adapter", "sdxl-1024")(weights=str(saved_sdxl), config="tiny", num_inference_steps=STEPS)
    assert torch.equal(loaded.generate(PROMPTS, SEEDS), tiny("sdxl-1024").generate(PROMPTS, SEEDS))
    info = loaded.info()
    assert info.real_weights is True and info.extra["tokenizers"] == "the weights directory's own tokenizer files"
    assert all(len(d) == 64 for d in info.weights.values()) and any("unet" in f for f in info.weights)


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and isinstance(exc, UserError), text
    return text


def test_missing_weights_give_one_line_naming_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.delenv("DCAR_PIXART_ALPHA_PATH", raising=False)
    with pytest.raises(MissingResourceError) as err:
        resolve("adapter", "pixart-alpha-512")()
    text = _one_line(err.value)
    assert "DCAR_PIXART_ALPHA_PATH" in text and "PixArt-alpha/PixArt-XL-2-512x512" in text and "random_init_seed" in text
    with pytest.raises(MissingResourceError) as err:
        resolve("adapter", "sd3-medium-1024")(weights=str(tmp_path / "nowhere"))
    assert "nowhere" in _one_line(err.value) and "no such path" in str(err.value)
    monkeypatch.setenv("DCAR_PIXART_SIGMA_PATH", str(tmp_path))  # pipeline found, 512 px transformer missing
    (tmp_path / "model_index.json").write_text("{}")
    with pytest.raises(MissingResourceError) as err:
        resolve("adapter", "pixart-sigma-512")()
    assert "DCAR_PIXART_SIGMA_512_PATH" in _one_line(err.value) and "transformer" in str(err.value)


def test_a_wrong_model_id_gives_one_line_with_did_you_mean():
    with pytest.raises(UnknownModelError) as err:
        DiffusersTextToImage(model="pixart-alpha-51")
    assert "Did you mean 'pixart-alpha-512'" in _one_line(err.value)
    with pytest.raises(UserError, match="Did you mean 'sdxl-512'"):
        resolve("adapter", "sdxl-51")
    with pytest.raises(ValueError, match="contradicts"):
        ADAPTERS["sdxl-512"](model="sdxl-1024")


def test_a_weights_directory_of_another_model_gives_one_line(saved_sdxl, tmp_path, tiny):
    with pytest.raises(WrongWeightsError) as err:  # another pipeline class
        resolve("adapter", "pixart-alpha-512")(weights=str(saved_sdxl), config="tiny")
    assert "holds a StableDiffusionXLPipeline" in _one_line(err.value) and "PixArtAlphaPipeline" in str(err.value)
    with pytest.raises(WrongWeightsError) as err:  # same pipeline class, another model (SDXL given to Playground)
        resolve("adapter", "playground-v2.5-1024")(weights=str(saved_sdxl), config="tiny")
    assert "EulerDiscreteScheduler" in _one_line(err.value) and "EDMDPMSolverMultistepScheduler" in str(err.value)
    with pytest.raises(WrongWeightsError) as err:  # the tiny SDXL is not the published SDXL architecture
        resolve("adapter", "sdxl-1024")(weights=str(saved_sdxl))
    assert "another model" in _one_line(err.value) and "config=tiny" in str(err.value)
    (tmp_path / "model_index.json").write_text("not json")
    with pytest.raises(WrongWeightsError) as err:
        resolve("adapter", "sdxl-1024")(weights=str(tmp_path))
    assert "model_index.json" in _one_line(err.value)


def test_the_cli_prints_a_wrong_directory_as_one_line(saved_sdxl, tmp_path, capsys):
    from harness.cli import main

    rc = main(["run", "dummy", "--model", "pixart-alpha-512", "--out", str(tmp_path / "run"),
               "--set", f"model.weights={saved_sdxl}", "--set", "model.config=tiny"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err and err.count("\n") == 1 and "StableDiffusionXLPipeline" in err


def _meta_text(parts, key, length):
    """The text encoder's output for ``length`` tokens, computed on the meta device (shapes only)."""
    enc = parts[key]
    if type(enc).__name__.startswith("Gemma"):  # its mask helper reads values: take the width from its config
        return torch.empty(2, length, enc.config.hidden_size, device="meta"), None
    out = enc(input_ids=torch.zeros(2, length, dtype=torch.long, device="meta"))
    return out.last_hidden_state, getattr(out, "text_embeds", None)


@pytest.mark.parametrize("name", sorted(TABLE2))
def test_full_size_components_fit_together_at_the_table_2_resolution(name, meta_parts):
    """Text encoders -> denoiser -> VAE decoder of the full-size random pipeline, on the meta device.

    The shapes a pipeline hands from one component to the next (real token lengths, text widths, pooled
    projections, latent channels and size at the Table 2 resolution) flow through every full-size module, so
    the random full-size pipeline the profile suite times is one whose parts fit together; no memory is used.
    """
    from baselines.diffusers_t2i import model_config

    cfg = model_config(name)
    res = cfg["defaults"]["resolution"]
    parts = meta_parts(name)
    vae = parts["vae"]
    blocks = getattr(vae.config, "encoder_block_out_channels", None) or vae.config.block_out_channels
    f = 2 ** (len(blocks) - 1)
    lat = torch.empty(2, vae.config.latent_channels, res // f, res // f, device="meta")
    t = torch.empty(2, device="meta")
    if name.startswith(("pixart", "sana")):
        h, _ = _meta_text(parts, "text_encoder", cfg["call"]["max_sequence_length"])
        extra = {"added_cond_kwargs": {"resolution": None, "aspect_ratio": None}} if name.startswith("pixart") else {}
        out = parts["transformer"](lat, encoder_hidden_states=h, timestep=t, **extra).sample
    elif name.startswith("sd3"):
        h1, p1 = _meta_text(parts, "text_encoder", 77)
        h2, p2 = _meta_text(parts, "text_encoder_2", 77)
        h3, _ = _meta_text(parts, "text_encoder_3", 256)
        clip = torch.cat([h1, h2], dim=-1)
        assert clip.shape[-1] <= h3.shape[-1]  # the pipeline zero-pads CLIP features to T5's width
        h = torch.cat([torch.nn.functional.pad(clip, (0, h3.shape[-1] - clip.shape[-1])), h3], dim=1)
        out = parts["transformer"](lat, encoder_hidden_states=h, pooled_projections=torch.cat([p1, p2], -1),
                                   timestep=t).sample
    else:  # SDXL / Playground: both CLIP encoders' features, the second one's pooled projection, six time ids
        h1, _ = _meta_text(parts, "text_encoder", 77)
        h2, pooled = _meta_text(parts, "text_encoder_2", 77)
        cond = {"text_embeds": pooled, "time_ids": torch.empty(2, 6, device="meta")}
        out = parts["unet"](lat, t, encoder_hidden_states=torch.cat([h1, h2], -1), added_cond_kwargs=cond).sample
    assert out.shape[0] == 2 and out.shape[2:] == lat.shape[2:] and out.shape[1] >= lat.shape[1]
    image = vae.decode(out[:, : lat.shape[1]]).sample
    assert image.shape == (2, 3, res, res)


def test_ls_groups_adapters_by_paper_table_and_doctor_lists_each_requirement(tmp_path, monkeypatch, capsys):
    from harness.cli import main

    assert main(["ls", "adapter"]) == 0
    out = capsys.readouterr().out
    t2 = out.index("[Tables 2-3 (text-to-image)]")
    assert all(out.index(n) > t2 for n in ("pixart-alpha-512", "sd3-medium-1024", "playground-v2.5-1024"))
    assert out.index("dc-ae-f32c32") > out.index("[Table 1 (tokenizers)]")
    assert "baselines.diffusers_t2i:SDXL512" in out
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("DCAR_SDXL_PATH", str(tmp_path / "nowhere"))
    assert main(["doctor", "sdxl-512", "pixart-sigma-512"]) == 0
    out = capsys.readouterr().out
    assert "[profile only (SDXL at 512 px)]" in out and "[MISSING] SDXL pipeline weights" in out
    assert f"env:DCAR_SDXL_PATH: {tmp_path / 'nowhere'} [absent (no such path)]" in out
    assert "PixArt-Sigma transformer weights" in out and "PixArt-alpha/PixArt-Sigma-XL-2-512-MS" in out


def test_only_the_weight_files_the_libraries_load_are_hashed(tmp_path):
    from baselines.diffusers_t2i import loaded_weight_files

    for name in ("model.safetensors", "model.fp16.safetensors", "pytorch_model.bin", "config.json"):
        (tmp_path / name).write_text("x")
    assert [f.name for f in loaded_weight_files(tmp_path)] == ["model.safetensors"]
    assert [f.name for f in loaded_weight_files(tmp_path, "fp16")] == ["model.fp16.safetensors"]
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "model.fp16.safetensors").unlink()
    assert [f.name for f in loaded_weight_files(tmp_path)] == ["pytorch_model.bin"]


def test_float16_random_build_casts_every_component(tiny):
    parts = build_components("sdxl-512", "tiny", dtype=torch.float16)
    assert {p.dtype for k in ("unet", "vae", "text_encoder", "text_encoder_2") for p in parts[k].parameters()} \
        == {torch.float16}


@pytest.mark.parametrize("name", sorted(TABLE2))
def test_the_adapter_assembles_the_full_size_random_pipeline(name):
    """The profile suite's build (``random_init_seed=...``, full size), assembled on the meta device."""
    adapter = resolve("adapter", name)(random_init_seed=3, device="meta")
    info = adapter.info()
    res, steps, cfg = TABLE2[name]
    assert (info.resolution, info.steps, adapter.defaults["guidance_scale"]) == (res, steps, cfg)
    assert info.real_weights is False and set(info.weights.values()) == {"random-init:3"}
    pub = published_params(name)
    counted = sum(info.extra["component_params"][k] for k in pub["covers"])
    assert abs(counted / pub["value"] - 1) <= pub["tolerance"]
    assert info.extra["config"] == "full" and "offline" in info.extra["tokenizers"]
    assert type(adapter.pipe).__name__ == info.extra["pipeline"]


def test_sana_in_float16_keeps_its_vae_and_text_encoder_in_bfloat16():
    adapter = resolve("adapter", "sana-0.6b-512")(config="tiny", dtype="float16", num_inference_steps=STEPS)
    dtypes = adapter.info().extra["component_dtypes"]
    assert dtypes == {"transformer": "float16", "vae": "bfloat16", "text_encoder": "bfloat16"}


def test_seeded_random_weights_are_reproducible_and_seed_dependent(tiny):
    again = resolve("adapter", "sd3-medium-1024")(config="tiny", num_inference_steps=STEPS)
    assert torch.equal(again.generate(PROMPTS, SEEDS), tiny("sd3-medium-1024").generate(PROMPTS, SEEDS))
    other = resolve("adapter", "sd3-medium-1024")(config="tiny", random_init_seed=1, num_inference_steps=STEPS)
    assert not torch.equal(other.generate(PROMPTS, SEEDS), again.generate(PROMPTS, SEEDS))
    assert set(other.info().weights.values()) == {"random-init:1"}
