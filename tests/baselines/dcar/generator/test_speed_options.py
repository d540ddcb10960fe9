"""Every DC-AR speed option gives the same ids (and, where stated, the same residual bits) as the default path at fp32.

Captions of different valid lengths share each batch, so trimming to the batch's longest caption is checked
against the untrimmed 300-token layout and against each row computed alone (batch-composition invariance).
"""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from baselines.dcar.generator.config import DCARConfig
from baselines.dcar.generator.sampler import PerItemNoise, SamplingOptions, sample, static_mask_counts, trim_caption
from baselines.dcar.generator.transformer import DCAR

LENGTHS = (3, 11, 70, 20)  # valid caption tokens per row; T5 pads them all to 300
SEEDS = (5, 6, 7, 8)


@pytest.fixture(scope="module")
def model_and_text():
    config = DCARConfig.tiny(codebook_size=512, image_seq_len=64, context_dim=48)
    config.text_token_length = 300
    model = DCAR(config).init_random(3).eval()
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(len(LENGTHS), 300, 48, generator=gen)
    mask = torch.zeros(len(LENGTHS), 300, dtype=torch.bool)
    for i, n in enumerate(LENGTHS):
        mask[i, :n] = True
    return model, hidden, mask


def _run(model, hidden, mask, seeds=SEEDS, **options):
    opts = SamplingOptions(num_steps=5, num_diffusion_steps=3, **options)
    return sample(model, hidden, mask, opts, PerItemNoise(list(seeds), "cpu"))


def test_trim_keeps_whole_multiples_of_64_and_every_valid_token():
    mask = torch.zeros(2, 300, dtype=torch.bool)
    mask[0, :3], mask[1, :70] = True, True
    h = torch.randn(2, 300, 4)
    th, tm = trim_caption(h, mask)
    assert tm.shape == (2, 128) and th.shape == (2, 128, 4) and tm.sum() == mask.sum()
    mask[1, :] = True
    assert trim_caption(h, mask)[1].shape == (2, 300)  # never longer than the caption


def test_static_counts_are_the_schedule():
    from baselines.dcar.generator.sampler import remask_count

    for n, steps in ((256, 12), (64, 5), (16, 4), (4, 8)):
        counts = static_mask_counts(n, steps)
        assert len(counts) == steps and counts[0] == n
        for step in range(steps - 1):
            k = remask_count((step + 1) / steps, n, torch.tensor([counts[step]]), per_row=True)
            assert counts[step + 1] == int(k[0])
    assert static_mask_counts(256, 12)[:3] == [256, 242, 228]


@pytest.mark.parametrize("options", [
    {},  # default: trimmed caption
    {"static_shapes": True},
    {"static_shapes": True, "trim_caption": False},
    {"cache_text": False, "masked_logits_only": False},
])
def test_speed_options_are_bit_identical_to_the_untrimmed_default(model_and_text, options):
    model, hidden, mask = model_and_text
    reference = _run(model, hidden, mask, trim_caption=False)
    got = _run(model, hidden, mask, **options)
    assert torch.equal(got.ids, reference.ids)
    assert torch.equal(got.residual, reference.residual)
    assert got.info["text_tokens"] == (300 if options.get("trim_caption") is False else 128)


def test_trimmed_rows_do_not_depend_on_their_batch_mates(model_and_text):
    model, hidden, mask = model_and_text
    batch = _run(model, hidden, mask)
    for i in range(len(LENGTHS)):
        alone = _run(model, hidden[i:i + 1], mask[i:i + 1], seeds=[SEEDS[i]])
        assert torch.equal(alone.ids[0], batch.ids[i]) and torch.equal(alone.residual[0], batch.residual[i])
    short = [0, 3]  # without the 70-token caption the batch trims to 64 keys instead of 128
    pair = _run(model, hidden[short], mask[short], seeds=[SEEDS[i] for i in short])
    assert pair.info["text_tokens"] == 64 and torch.equal(pair.ids, batch.ids[short])


def test_official_style_loop_gives_the_same_ids(model_and_text):
    model, hidden, mask = model_and_text
    reference = _run(model, hidden, mask)
    official = _run(model, hidden, mask, packed_text=True, cache_text=False, masked_logits_only=False)
    assert torch.equal(official.ids, reference.ids)
    assert torch.allclose(official.residual, reference.residual, atol=1e-5)


def test_static_path_redoes_the_batch_when_a_tie_breaks_the_schedule(model_and_text, monkeypatch):
    """Exact confidence ties at the cut-off re-mask more tokens than the schedule; the batch is then redone.

    Ties are forced: without position embeddings every position of the all-[MASK] first step has the same
    logits, and constant confidence noise makes every position that drew the same id tie exactly.
    """
    import copy

    model, hidden, mask = model_and_text
    flat = copy.deepcopy(model)
    with torch.no_grad():
        flat.pos_embed.zero_()
    monkeypatch.setattr(PerItemNoise, "confidence_uniform",
                        lambda self, shape, device: torch.full(shape, 0.5))
    reference = _run(flat, hidden, mask)
    got = _run(flat, hidden, mask, static_shapes=True)
    assert got.info.get("static_fallback") is True
    assert torch.equal(got.ids, reference.ids) and torch.equal(got.residual, reference.residual)


def test_static_shapes_refuse_the_official_rng_mode(model_and_text):
    from baselines.dcar.generator.sampler import OfficialOrderNoise

    model, hidden, mask = model_and_text
    with pytest.raises(ValueError, match="per-item noise"):
        sample(model, hidden, mask, SamplingOptions(num_steps=2, static_shapes=True),
               OfficialOrderNoise(len(LENGTHS), torch.device("cpu")))


def test_sdpa_math_backend_gives_the_same_ids(model_and_text):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model, hidden, mask = model_and_text
    reference = _run(model, hidden, mask)
    with sdpa_kernel([SDPBackend.MATH]):
        got = _run(model, hidden, mask)
    assert torch.equal(got.ids, reference.ids)


# --------------------------------------------------------------------------- through the adapter


def test_adapter_records_speed_options_and_its_official_sampler_gives_the_same_ids(tiny_cache):
    from baselines.dcar.generator_adapter import DCARAdapter

    prompts, seeds = ["a cat", "a very long prompt about a small red house by a lake"], [1, 2]
    plain = DCARAdapter(config="tiny", cache_dir=str(tiny_cache))
    assert plain.info().extra["speed_options"] == {"sampler": "optimised", "trim_caption": True,
                                                   "static_shapes": False, "compile": None,
                                                   "compile_backend": "inductor", "sdpa_backend": "auto"}
    official = DCARAdapter(config="tiny", cache_dir=str(tiny_cache), sampler="official", static_shapes=True)
    assert official.info().extra["speed_options"]["sampler"] == "official"
    assert torch.equal(official.pipeline(prompts, seeds).ids, plain.pipeline(prompts, seeds).ids)


@pytest.mark.slow
def test_compiled_static_path_is_bit_identical(tiny_cache):
    """compile through TorchDynamo (eager backend: the same kernels, so the same bits) on the tiny model (~25 s)."""
    from baselines.dcar.generator_adapter import DCARAdapter

    prompts, seeds = ["a cat", "a very long prompt about a small red house by a lake"], [1, 2]
    plain = DCARAdapter(config="tiny", cache_dir=str(tiny_cache))
    compiled = DCARAdapter(config="tiny", cache_dir=str(tiny_cache), compile="default", compile_backend="eager",
                           static_shapes=True)
    assert compiled.info().extra["speed_options"]["compile"] == "default"
    a, b = plain.pipeline(prompts, seeds), compiled.pipeline(prompts, seeds)
    assert torch.equal(a.ids, b.ids) and torch.equal(a.images, b.images)


def test_adapter_speed_option_errors(tiny_cache):
    from baselines.dcar.generator_adapter import DCARAdapter

    with pytest.raises(ValueError, match="sampler must be one of"):
        DCARAdapter(config="tiny", cache_dir=str(tiny_cache), sampler="fast")
    with pytest.raises(ValueError, match="compile must be null or one of"):
        DCARAdapter(config="tiny", cache_dir=str(tiny_cache), compile="turbo")
    with pytest.raises(ValueError, match="sdpa_backend"):
        DCARAdapter(config="tiny", cache_dir=str(tiny_cache), sdpa_backend="fastest")


def test_profile_components_name_real_methods(tiny_cache):
    from baselines.dcar.generator_adapter import DCARAdapter

    adapter = DCARAdapter(config="tiny", cache_dir=str(tiny_cache))
    parts = adapter.profile_components()
    assert {name for name, _, _ in parts} == {"text_encoder", "generator_steps", "diffusion_head", "decoder"}
    assert all(callable(getattr(owner, attr)) for _, owner, attr in parts)


class _HostReads(TorchDispatchMode):
    """Counts the aten ops that make the host wait for the device: a scalar read back to Python (``item``,
    ``bool``, ``int``, ``float``: ``_local_scalar_dense``), ``nonzero``, boolean-mask indexing and copies to the CPU.

    A dispatch mode rather than patched ``torch.Tensor`` dunders: setting ``__getitem__`` on ``torch.Tensor``
    changes the type's slots for the rest of the process, even after it is deleted again.
    """

    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name in ("_local_scalar_dense", "nonzero", "masked_select"):
            self.n += 1
        elif name in ("index", "index_put", "index_put_") and any(
                isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] or ())):
            self.n += 1
        elif name == "_to_copy" and str(kwargs.get("device", "")) == "cpu":
            self.n += 1
        return func(*args, **kwargs)


def test_static_step_loop_reads_nothing_back_per_step(model_and_text):
    """With static shapes the host reads from the device a fixed number of times, whatever the step count."""
    model, hidden, mask = model_and_text

    def reads(steps, **options):
        with _HostReads() as counter:
            sample(model, hidden, mask, SamplingOptions(num_steps=steps, predict_residuals=False, **options),
                   PerItemNoise(list(SEEDS), "cpu"))
        return counter.n

    assert reads(3, static_shapes=True) == reads(6, static_shapes=True)
    assert reads(6) > reads(3)  # the default path reads back every step


def test_adapters_of_the_same_weights_share_one_pipeline_until_the_last_closes(tiny_cache):
    import gc
    import weakref

    from baselines.dcar.generator_adapter import DCARAdapter, DCARDiscreteOnlyAdapter

    kw = {"config": "tiny", "cache_dir": str(tiny_cache), "share_weights": True}
    a = DCARAdapter(**kw)
    b = DCARAdapter(**kw, sampler="official")
    c = DCARDiscreteOnlyAdapter(**kw)
    other_seed = DCARAdapter(**kw, random_init_seed=1)
    compiled = DCARAdapter(**kw, compile="default", compile_backend="eager")
    private = DCARAdapter(config="tiny", cache_dir=str(tiny_cache))  # not sharing: its own modules
    assert a.pipeline is b.pipeline is c.pipeline
    assert other_seed.pipeline is not a.pipeline and compiled.pipeline is not a.pipeline
    assert private.pipeline is not a.pipeline
    assert b.info().weights == a.info().weights and b.resolution == a.resolution
    ref = weakref.ref(a.pipeline)
    for adapter in (a, b, c):
        adapter.close()
    gc.collect()
    assert ref() is None  # freed with the last adapter
