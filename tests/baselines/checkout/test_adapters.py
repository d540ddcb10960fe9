"""Each checkout adapter against a fake checkout with the official module layout: the right modules are imported,
the documented settings are passed, outputs follow the harness convention, an image depends on its own seed only,
and the global RNGs the official code draws from are restored afterwards."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from harness.api import ClassToImage, DataError, ImageTokenizer, MissingResourceError, TextToImage

from .fakes import HART, MAR, MEISSONIC, ONED, SHA, SHOWO, make_checkout


def _calls(module: str, name: str) -> list[dict]:
    return [kw for n, kw in sys.modules[module].CALLS if n == name]


def _convention(x: torch.Tensor, n: int, side: int) -> None:
    assert x.shape == (n, 3, side, side) and x.dtype == torch.float32 and x.device.type == "cpu"
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def _batch_invariant(adapter, rows, seeds) -> None:
    together = adapter.generate(rows, seeds)
    for i in range(len(rows)):
        alone = adapter.generate([rows[i]], [seeds[i]])
        assert torch.equal(alone[0], together[i]), f"row {i} depends on its batch"
    assert not torch.equal(adapter.generate(rows[:1], [seeds[0] + 1])[0], together[0]), "the seed is ignored"


def _global_rng_untouched(fn) -> None:
    torch.manual_seed(123)
    np.random.seed(123)
    expected = (torch.rand(3), np.random.rand(3))
    torch.manual_seed(123)
    np.random.seed(123)
    fn()
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])


# --------------------------------------------------------------------------- Show-o


class _Tok:
    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0


@pytest.fixture
def showo(checkout, weights_dir, monkeypatch):
    import transformers

    seen = {}

    def fake_tokenizer(path, **kw):
        seen.update(path=path, **kw)
        return _Tok()

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", staticmethod(fake_tokenizer))
    from baselines.checkout.showo import ShowoAdapter

    paths = dict(weights=weights_dir("show-o-512x512"), vq_weights=weights_dir("magvitv2"), llm=weights_dir("phi"))
    adapter = ShowoAdapter(repo=checkout(SHOWO, remote="https://github.com/showlab/Show-o.git"), device="cpu",
                           **paths)
    return adapter, paths, seen


def test_showo_passes_the_documented_settings_and_converts_outputs(showo):
    adapter, paths, seen = showo
    assert isinstance(adapter, TextToImage)
    assert seen == {"path": paths["llm"], "padding_side": "left"}
    x = adapter.generate(["a cat", "a red dog"], [1, 2])
    _convention(x, 2, 16)
    gen = _calls("models.modeling_showo", "t2i_generate")
    assert len(gen) == 2 and all(c["n"] == 1 for c in gen)  # per item
    c = gen[0]
    assert (c["timesteps"], c["guidance_scale"], c["temperature"]) == (12, 5.0, 1.0)
    assert c["uncond"] and c["attention_rows"] == 2 and isinstance(c["generator"], torch.Generator)
    assert c["noise_type"] == "mask" and c["seq_len"] == 16 and c["uni_prompting"] is adapter.uni_prompting
    assert _calls("models.sampling", "get_mask_chedule")[0]["method"] == "cosine"
    assert _calls("models.modeling_showo", "Showo.from_pretrained")[0] == {"path": paths["weights"],
                                                                          "llm_model_path": paths["llm"]}
    assert _calls("models.modeling_magvitv2", "MAGVITv2.from_pretrained")[0]["path"] == paths["vq_weights"]
    assert _calls("models.modeling_magvitv2", "decode_code")[0]["max_id"] <= 7  # clamped to the codebook
    texts = [c["texts"] for c in _calls("training.prompting_utils", "prompting")]
    assert texts[:2] == [["a cat"], [""]]
    mask = _calls("training.prompting_utils", "attention_mask")[0]
    assert mask["rm_pad_in_image"] is True and mask["pad_id"] == 0 and mask["soi_id"] == 50
    up = _calls("training.prompting_utils", "UniversalPrompting")[0]
    assert up["max_text_len"] == 5 and up["special_tokens"][0] == "<|soi|>" and len(up["special_tokens"]) == 9
    adapter.generate(["a"], [1], num_steps=4, guidance_scale=0)
    last = _calls("models.modeling_showo", "t2i_generate")[-1]
    assert last["timesteps"] == 4 and not last["uncond"] and last["attention_rows"] == 1
    with pytest.raises(TypeError, match="unknown ShowoAdapter option"):
        adapter.generate(["a"], [1], cfg=3)


def test_showo_image_depends_on_its_seed_only(showo):
    _batch_invariant(showo[0], ["a cat", "a dog", "a bird"], [11, 22, 33])


def test_showo_info_records_checkout_commit_settings_and_weights(showo):
    adapter, paths, _ = showo
    info = adapter.info()
    assert info.real_weights and info.resolution == 16 and info.steps == 12
    co = info.extra["checkout"]
    assert co["commit"] == SHA and co["remote"] == "https://github.com/showlab/Show-o.git"
    assert info.extra["settings"]["guidance_scale"] == 5.0 and info.extra["rng_mode"] == "per_item"
    assert set(info.weights) == set(paths.values()) and all(v.startswith("tree-sha256:") for v in info.weights.values())
    info.to_dict()  # JSON-able


def test_showo_batched_mode_is_one_official_call(checkout, weights_dir, monkeypatch):
    import transformers

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", staticmethod(lambda *a, **k: _Tok()))
    from baselines.checkout.showo import ShowoAdapter

    adapter = ShowoAdapter(repo=checkout(SHOWO), weights=weights_dir("w"), vq_weights=weights_dir("v"),
                           llm=weights_dir("l"), device="cpu", rng_mode="batched")
    _convention(adapter.generate(["a", "b", "c"], [1, 2, 3]), 3, 16)
    assert [c["n"] for c in _calls("models.modeling_showo", "t2i_generate")] == [3]
    assert "depends on its batch" in adapter.info().extra["rng_note"]


def test_showo_missing_weights_name_every_missing_file(checkout, weights_dir):
    from baselines.checkout.showo import ShowoAdapter

    with pytest.raises(MissingResourceError) as e:
        ShowoAdapter(repo=checkout(SHOWO), device="cpu", llm=weights_dir("phi"))
    text = str(e.value)
    assert "DCAR_SHOWO_WEIGHTS" in text and "DCAR_SHOWO_MAGVITV2" in text and "DCAR_PHI15_PATH" not in text
    assert "showlab/show-o-512x512" in text


def test_showo_refuses_another_repository_before_loading_weights(checkout):
    from baselines.checkout.repo import WrongCheckoutError
    from baselines.checkout.showo import ShowoAdapter

    with pytest.raises(WrongCheckoutError, match="not of https://github.com/showlab/Show-o"):
        ShowoAdapter(repo=checkout(MAR, remote="https://github.com/LTH14/mar"))


# --------------------------------------------------------------------------- MaskGen


class _Clip(torch.nn.Module):
    """The open_clip text-tower attributes the README's text guidance uses."""

    def __init__(self):
        super().__init__()
        self.token_embedding = torch.nn.Embedding(10, 8)
        self.positional_embedding = torch.nn.Parameter(torch.zeros(5, 8))
        self.ln_final = torch.nn.LayerNorm(8)
        self.attn_mask = None
        self.transformer = types.SimpleNamespace(get_cast_dtype=lambda: torch.float32,
                                                 __call__=None)

        class _T(torch.nn.Module):
            def get_cast_dtype(self):
                return torch.float32

            def forward(self, x, attn_mask=None):
                assert x.shape[1] >= 1 and x.shape[0] == 5  # LND, as batch_first=False
                return x

        self.transformer = _T()


@pytest.fixture
def maskgen(checkout, weights_dir, monkeypatch):
    from baselines.checkout import maskgen as mod

    monkeypatch.setattr(mod._MaskGenAdapter, "_load_clip",
                        lambda self, path: (_Clip(), lambda texts: torch.zeros(len(texts), 5, dtype=torch.long)))
    repo = checkout(ONED, remote="https://github.com/bytedance/1d-tokenizer")
    clip = weights_dir("clip", files=("ViT-L-14-336px.pt",)) + "/ViT-L-14-336px.pt"

    def make(cls, **kw):
        return cls(repo=repo, weights=weights_dir(f"{cls.name}-gen", files=("model.safetensors",)),
                   tokenizer_weights=weights_dir(f"{cls.name}-tok", files=("model.safetensors",)),
                   clip_weights=clip, device="cpu", **kw)
    return make


def test_maskgen_vq_passes_readme_settings(maskgen):
    from baselines.checkout.maskgen import MaskGenVQAdapter

    adapter = maskgen(MaskGenVQAdapter)
    x = adapter.generate(["a cabin", "a lake"], [5, 6])
    _convention(x, 2, 8)
    c = _calls("modeling.maskgen", "generate")
    assert [k["captions"] for k in c] == [["a cabin"], ["a lake"]]
    assert (c[0]["guidance_scale"], c[0]["randomize_temperature"], c[0]["sample_aesthetic_score"],
            c[0]["num_sample_steps"], c[0]["guidance_decay"]) == (12.0, 2.0, 6.5, 16, "cosine")
    assert _calls("modeling.tatitok", "decode_tokens")[0]["text_guidance"] == (1, 5, 8)
    assert adapter.info().steps == 16 and adapter.info().extra["variant"] == "vq"
    _batch_invariant(adapter, ["a", "b", "c"], [1, 2, 3])
    _global_rng_untouched(lambda: adapter.generate(["a", "b"], [1, 2]))


def test_maskgen_kl_passes_readme_settings(maskgen, monkeypatch):
    from baselines.checkout.maskgen import MaskGenKLAdapter

    monkeypatch.setattr(MaskGenKLAdapter, "cuda_only", False)  # the fake sampler runs on CPU

    adapter = maskgen(MaskGenKLAdapter)
    _convention(adapter.generate(["a"], [9]), 1, 8)
    c = _calls("modeling.maskgen", "sample_tokens")[0]
    assert (c["bsz"], c["num_iter"], c["cfg"], c["cfg_schedule"], c["aes_scores"], c["temperature"]) == \
        (1, 32, 3.0, "linear", 6.5, 1.0)
    assert adapter.info().steps == 32
    _batch_invariant(adapter, ["a", "b", "c"], [1, 2, 3])  # numpy orders + torch noise, both per item
    _global_rng_untouched(lambda: adapter.generate(["a"], [1], num_steps=4))
    assert _calls("modeling.maskgen", "sample_tokens")[-1]["num_iter"] == 4


# --------------------------------------------------------------------------- TiTok


def test_titok_reconstructs_in_the_harness_convention(checkout, weights_dir):
    from baselines.checkout.titok import TiTokAdapter

    cfg = {"model": {"vq_model": {"quantize_mode": "vq", "num_latent_tokens": 64}},
           "dataset": {"preprocessing": {"crop_size": 16}}}
    adapter = TiTokAdapter(repo=checkout(ONED), weights=weights_dir("titok", ("config.json", "model.safetensors"), cfg),
                           device="cpu")
    assert isinstance(adapter, ImageTokenizer) and adapter.paths == ("discrete",)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = adapter.reconstruct(x)
    _convention(y, 2, 16)
    enc = _calls("modeling.titok", "encode")[0]
    assert enc["shape"] == (2, 3, 16, 16) and 0 <= enc["lo"] and enc["hi"] <= 1  # [0, 1], no normalisation
    assert torch.equal(adapter.reconstruct(x), y) and torch.equal(adapter.reconstruct(x[1:]), y[1:])
    with pytest.raises(DataError, match="16x16"):
        adapter.reconstruct(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="only the discrete path"):
        adapter.reconstruct(x, path="continuous")
    info = adapter.info()
    assert info.extra["num_latent_tokens"] == 64 and info.extra["checkout"]["repository"] == "bytedance/1d-tokenizer"
    adapter.set_batch_size(4)  # float32 GEMMs round by batch shape: shorter calls are padded to the run's size
    assert torch.equal(adapter.reconstruct(x[1:]), y[1:])
    assert _calls("modeling.titok", "encode")[-1]["shape"] == (4, 3, 16, 16)


def test_titok_missing_weights_say_where_to_get_them(checkout, weights_dir):
    from baselines.checkout.titok import TiTokAdapter

    weights_dir("unused")  # points the HF cache at an empty folder
    with pytest.raises(MissingResourceError, match="yucornetto/tokenizer_titok_b64_imagenet"):
        TiTokAdapter(repo=checkout(ONED), device="cpu")


# --------------------------------------------------------------------------- MAR


@pytest.fixture
def mar_repo(tmp_path):
    root = make_checkout(tmp_path / "mar", MAR, remote="https://github.com/LTH14/mar")
    ckpt = root / "pretrained_models" / "mar" / "mar_base" / "checkpoint-last.pth"
    ckpt.parent.mkdir(parents=True)
    torch.save({"model": {"proj.weight": torch.zeros(2, 2), "proj.bias": torch.zeros(2)},
                "model_ema": {"proj.weight": torch.full((2, 2), 0.5), "proj.bias": torch.zeros(2)}}, ckpt)
    vae = root / "pretrained_models" / "vae" / "kl16.ckpt"
    vae.parent.mkdir(parents=True)
    vae.write_bytes(b"vae")
    return root


def test_mar_finds_weights_where_download_py_puts_them_and_passes_readme_settings(mar_repo, monkeypatch):
    from baselines.checkout.mar import MARAdapter

    for var in ("DCAR_MAR_B_CKPT", "DCAR_MAR_VAE_CKPT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match=r"calls \.cuda\(\) itself.*model.device=cuda"):
        MARAdapter(repo=str(mar_repo), device="cpu")
    monkeypatch.setattr(MARAdapter, "cuda_only", False)  # the fake sampler runs on CPU
    adapter = MARAdapter(repo=str(mar_repo), device="cpu")
    assert isinstance(adapter, ClassToImage)
    _convention(adapter.generate([207, 360], [1, 2]), 2, 16)
    built = _calls("models.mar", "MAR")[0]
    assert (built["buffer_size"], built["diffloss_d"], built["diffloss_w"], built["num_sampling_steps"]) == \
        (64, 6, 1024, "100")
    c = _calls("models.mar", "sample_tokens")
    assert [k["labels"] for k in c] == [[207], [360]]
    assert (c[0]["num_iter"], c[0]["cfg"], c[0]["cfg_schedule"], c[0]["temperature"]) == (64, 2.9, "linear", 1.0)
    assert c[0]["weight"] == 2.0  # the EMA weights were loaded
    vae = _calls("models.vae", "AutoencoderKL")[0]
    assert vae["embed_dim"] == 16 and vae["ch_mult"] == (1, 1, 2, 2, 4) and vae["ckpt_path"].endswith("kl16.ckpt")
    adapter.generate([1], [1], num_steps=16)
    assert _calls("models.mar", "sample_tokens")[-1]["num_iter"] == 16
    _batch_invariant(adapter, [1, 2, 3], [7, 8, 9])
    _global_rng_untouched(lambda: adapter.generate([1, 2], [1, 2]))
    with pytest.raises(ValueError, match="0..999"):
        adapter.generate([1000], [1])
    assert adapter.info().steps == 64 and adapter.info().extra["model_type"] == "mar_base"


def test_mar_missing_weights_name_the_download_script(tmp_path, monkeypatch):
    from baselines.checkout.mar import MARAdapter

    for var in ("DCAR_MAR_B_CKPT", "DCAR_MAR_VAE_CKPT"):
        monkeypatch.delenv(var, raising=False)
    root = make_checkout(tmp_path / "mar", MAR)
    with pytest.raises(MissingResourceError, match="util/download.py") as e:
        MARAdapter(repo=str(root), device="cpu")
    assert "checkpoint-last.pth" in str(e.value) and "kl16.ckpt" in str(e.value)


# --------------------------------------------------------------------------- HART


@pytest.fixture
def hart(checkout, weights_dir, monkeypatch):
    import transformers

    repo = checkout(HART, remote="https://github.com/mit-han-lab/hart")
    llm = weights_dir("hart-0.7b-1024px/llm")
    text = weights_dir("qwen")

    def auto_model(path, **kw):
        if path == llm:
            return sys.modules["hart.modules.models.transformer.hart_transformer_t2i"].HARTForT2I()
        return torch.nn.Linear(1, 1)

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", staticmethod(auto_model))
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", staticmethod(lambda *a, **k: object()))
    torch.save({"proj.weight": torch.full((2, 2), 3.0), "proj.bias": torch.zeros(2)},
               f"{llm}/ema_model.bin")
    from baselines.checkout.hart import HARTAdapter

    monkeypatch.setattr(HARTAdapter, "cuda_only", False)  # the fake sampler runs on CPU
    return lambda **kw: HARTAdapter(repo=repo, weights=llm, text_model=text, device="cpu", **kw)


def test_hart_passes_sample_py_settings_with_more_smooth_off(hart):
    adapter = hart()
    _convention(adapter.generate(["a lemur", "a piano"], [41, 42]), 2, 8)
    enc = _calls("hart.utils.tools", "encode_prompts")[0]
    assert (enc["max_length"], enc["system_prompt"], enc["use_llm_system_prompt"]) == (300, "SYSTEM", True)
    c = _calls("hart.modules.models.transformer.hart_transformer_t2i", "autoregressive_infer_cfg")
    assert [k["g_seed"] for k in c] == [41, 42] and all(k["B"] == 1 for k in c)
    assert (c[0]["cfg"], c[0]["more_smooth"], c[0]["weight"]) == (4.5, False, 12.0)  # EMA weights loaded
    _batch_invariant(adapter, ["a", "b", "c"], [1, 2, 3])
    _global_rng_untouched(lambda: adapter.generate(["a"], [1]))
    assert adapter.info().resolution == 1024 and "ShieldGemma" in adapter.info().extra["safety_checker"]


def test_hart_without_ema_file_says_so(hart, tmp_path):
    import os

    os.remove(tmp_path / "weights" / "hart-0.7b-1024px" / "llm" / "ema_model.bin")
    with pytest.raises(FileNotFoundError, match="use_ema"):
        hart()
    assert hart(use_ema=False).info().extra["use_ema"] is False


# --------------------------------------------------------------------------- Meissonic


@pytest.fixture
def meissonic(checkout, weights_dir, monkeypatch):
    # stand-ins for diffusers.VQModel and the transformers CLIP classes (importing the real ones costs ~15 s here)
    def loader(kind):
        return types.SimpleNamespace(from_pretrained=lambda *a, **k: (kind, a, k))

    monkeypatch.setitem(sys.modules, "diffusers", types.SimpleNamespace(VQModel=loader("vq")))
    monkeypatch.setitem(sys.modules, "transformers", types.SimpleNamespace(
        CLIPTextModelWithProjection=types.SimpleNamespace(from_pretrained=lambda *a, **k: ("text", a)),
        CLIPTokenizer=loader("tok")))
    from baselines.checkout.meissonic import MeissonicAdapter

    weights = weights_dir("Meissonic", files=("transformer/config.json", "vqvae/config.json"))
    text = weights_dir("clip-h")
    return MeissonicAdapter(repo=checkout(MEISSONIC, remote="https://github.com/viiika/Meissonic"), weights=weights,
                            text_encoder=text, device="cpu"), weights, text


def test_meissonic_passes_inference_py_settings(meissonic):
    from baselines.checkout.meissonic import NEGATIVE_PROMPT

    adapter, weights, text = meissonic
    assert sys.modules["src.pipeline"].__file__.startswith(adapter.checkout.path.as_posix())  # namespace package
    _convention(adapter.generate(["a mug", "a dock"], [3, 4]), 2, 16)
    c = _calls("src.pipeline", "__call__")
    assert [k["prompt"] for k in c] == [["a mug"], ["a dock"]]
    assert (c[0]["num_inference_steps"], c[0]["guidance_scale"], c[0]["height"], c[0]["width"]) == (64, 9.0, 1024, 1024)
    assert c[0]["negative_prompt"] == [NEGATIVE_PROMPT] and c[0]["output_type"] == "pt"
    assert isinstance(c[0]["generator"], torch.Generator)
    assert _calls("src.transformer", "Transformer2DModel.from_pretrained")[0] == {"path": weights,
                                                                                 "subfolder": "transformer"}
    pipe = _calls("src.pipeline", "Pipeline")[0]
    assert pipe["vqvae"][2] == {"subfolder": "vqvae"} and pipe["text_encoder"] == ("text", (text,))
    assert pipe["tokenizer"][2] == {"subfolder": "tokenizer"}
    _batch_invariant(adapter, ["a", "b", "c"], [1, 2, 3])
    assert adapter.info().steps == 64


# --------------------------------------------------------------------------- through the runner


def test_a_geneval_run_records_the_checkout_and_does_not_depend_on_batch_size(checkout, weights_dir, monkeypatch,
                                                                              tmp_path):
    """`dcar-bench run geneval -m show-o --set model.repo=...`: the manifest names the checkout's commit, and the
    images (by sha256) are the same at batch size 3 and 1."""
    import json

    import transformers

    from harness import jobs, registry

    registry.register("adapter", "show-o", "baselines.checkout.showo:ShowoAdapter")  # = its registry entry
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", staticmethod(lambda *a, **k: _Tok()))
    repo = checkout(SHOWO, remote="https://github.com/showlab/Show-o")
    opts = [f"model.repo={json.dumps(repo)}", f"model.weights={json.dumps(weights_dir('w'))}",
            f"model.vq_weights={json.dumps(weights_dir('v'))}", f"model.llm={json.dumps(weights_dir('l'))}",
            "model.device=cpu", "prompts=[0, 1, 2]", "samples_per_prompt=1"]
    digests = []
    for bs in (3, 1):
        res = jobs.run("geneval", "show-o", tmp_path / f"bs{bs}", overrides=opts, batch_size=bs, show_progress=False)
        manifest = json.loads((res.run_dir / "manifest.json").read_text())
        assert manifest["adapter_info"]["extra"]["checkout"]["commit"] == SHA
        assert manifest["adapter_info"]["steps"] == 12
        assert {"transformers", "diffusers", "omegaconf"} <= set(manifest["provenance"]["packages"])
        records = [json.loads(line) for f in sorted((res.run_dir / "records").glob("*.jsonl"))
                   for line in f.read_text().splitlines()]
        digests.append(sorted((r["item_id"], r["image_sha256"]) for r in records))
    assert len(digests[0]) == 3 and digests[0] == digests[1]


def test_mar_checkpoint_with_training_args_loads_and_one_without_ema_is_named(mar_repo):
    import argparse

    from baselines.checkout.mar import _load_ema

    ckpt = mar_repo / "pretrained_models" / "mar" / "mar_base" / "checkpoint-last.pth"
    state = torch.load(ckpt, weights_only=True)
    torch.save({**state, "args": argparse.Namespace(model="mar_base", cfg=2.9), "epoch": 799}, ckpt)
    assert float(_load_ema(ckpt)["proj.weight"].sum()) == 2.0
    torch.save({"model": state["model"]}, ckpt)
    with pytest.raises(DataError, match="no 'model_ema' entry"):
        _load_ema(ckpt)


def test_every_adapter_with_a_step_count_takes_it_as_num_steps_like_dc_ar():
    """steps_sweep sets `num_steps` on any adapter it has no entry for (Fig. 6 / Fig. 11 sweeps)."""
    import inspect

    from baselines.checkout.mar import MARAdapter
    from baselines.checkout.maskgen import MaskGenKLAdapter, MaskGenVQAdapter
    from baselines.checkout.meissonic import MeissonicAdapter
    from baselines.checkout.showo import ShowoAdapter

    for cls in (ShowoAdapter, MaskGenVQAdapter, MaskGenKLAdapter, MeissonicAdapter, MARAdapter):
        name = cls.name
        params = inspect.signature(cls).parameters
        assert "num_steps" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()), name
        assert "num_steps" in cls.defaults, name


def test_maskgen_loads_clip_from_a_snapshot_folder_with_quick_gelu_as_the_openai_tag_does(tmp_path, monkeypatch):
    import open_clip

    from baselines.checkout.maskgen import MaskGenVQAdapter

    seen = {}

    def fake_create(name, pretrained=None, **kw):
        seen.update(name=name, pretrained=pretrained, **kw)
        model = _Clip()
        model.visual = torch.nn.Linear(1, 1)  # the README deletes the image tower
        return model, None, None

    monkeypatch.setattr(open_clip, "create_model_and_transforms", fake_create)
    monkeypatch.setattr(open_clip, "__version__", "3.3.0")
    from harness.api import MissingDependencyError

    with pytest.raises(MissingDependencyError, match="open_clip_torch<3"):
        MaskGenVQAdapter._load_clip(types.SimpleNamespace(device=torch.device("cpu")), str(tmp_path))
    monkeypatch.setattr(open_clip, "__version__", "2.30.0")  # what MaskGen's text encoding works with
    snap = tmp_path / "snapshot"
    snap.mkdir()
    (snap / "open_clip_model.safetensors").write_bytes(b"w")
    stand_in = types.SimpleNamespace(device=torch.device("cpu"))
    encoder, tokenizer = MaskGenVQAdapter._load_clip(stand_in, str(snap))
    assert seen == {"name": "ViT-L-14-336", "pretrained": str(snap / "open_clip_model.safetensors"),
                    "force_quick_gelu": True}
    assert not hasattr(encoder, "visual") and encoder.transformer.batch_first is False
    assert tokenizer(["a jay"]).shape == (1, 77)
