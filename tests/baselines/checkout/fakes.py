"""Fake checkouts of the official repositories: the same module and file names, the same entry-point signatures,
trivially implemented, recording every call in a module-level ``CALLS`` list.

Why fakes: the official code needs multi-GB weights and (for MAR, MaskGen-KL, HART) a GPU. A fake with the same
layout proves the adapter imports the right modules from the checkout, passes the documented settings, and
converts outputs to the harness convention. Each fake draws its randomness the way the official code does (a
``generator=`` argument, or the global torch/numpy RNGs), so per-item seeding is tested against the real hazard.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

SHA = "0123456789abcdef0123456789abcdef01234567"

_RECORD = "CALLS = []\n\ndef _rec(name, **kw):\n    CALLS.append((name, kw))\n"

SHOWO = {
    "inference_t2i.py": "# fake\n",
    "models/__init__.py": ("from .modeling_showo import Showo\nfrom .modeling_magvitv2 import MAGVITv2\n"
                           "from .sampling import *\n"),
    "models/sampling.py": _RECORD + textwrap.dedent("""
        import math
        import torch

        def cosine_schedule(t):
            return torch.cos(t * math.pi * 0.5)

        def get_mask_chedule(method, **schedule_kwargs):
            _rec("get_mask_chedule", method=method)
            return cosine_schedule
        """),
    "models/modeling_showo.py": _RECORD + textwrap.dedent("""
        import types
        import torch

        class Showo(torch.nn.Module):
            def __init__(self, vocab_size=40, **kwargs):
                super().__init__()
                self.proj = torch.nn.Linear(2, 2)
                self.config = types.SimpleNamespace(mask_token_id=vocab_size - 1)

            @classmethod
            def from_pretrained(cls, path, **kwargs):
                _rec("Showo.from_pretrained", path=path, **kwargs)
                return cls()

            def t2i_generate(self, input_ids=None, uncond_input_ids=None, attention_mask=None, temperature=1.0,
                             timesteps=18, guidance_scale=0, noise_schedule=None, generator=None, config=None,
                             **kwargs):
                _rec("t2i_generate", n=input_ids.shape[0], uncond=uncond_input_ids is not None,
                     attention_rows=attention_mask.shape[0], temperature=temperature, timesteps=timesteps,
                     guidance_scale=guidance_scale, generator=generator, **kwargs)
                n = input_ids.shape[0]
                ids = torch.randint(0, config.model.showo.codebook_size + 4, (n, config.model.showo.num_vq_tokens),
                                    generator=generator, device=input_ids.device)
                return ids
        """),
    "models/modeling_magvitv2.py": _RECORD + textwrap.dedent("""
        import torch

        class MAGVITv2(torch.nn.Module):
            @classmethod
            def from_pretrained(cls, path, **kwargs):
                _rec("MAGVITv2.from_pretrained", path=path)
                return cls()

            def decode_code(self, ids, shape=None):
                _rec("decode_code", max_id=int(ids.max()))
                n, t = ids.shape
                side = int(t ** 0.5)
                x = ids.float().reshape(n, 1, side, side) / 7.0 * 2.4 - 1.2  # a little outside [-1, 1]
                return x.repeat(1, 3, 4, 4)
        """),
    "training/__init__.py": "",
    "training/prompting_utils.py": _RECORD + textwrap.dedent("""
        import torch

        class UniversalPrompting():
            def __init__(self, text_tokenizer, special_tokens=(), max_text_len=8000, max_seq_len=377,
                         ignore_id=-100, cond_dropout_prob=0.1):
                _rec("UniversalPrompting", special_tokens=special_tokens, max_text_len=max_text_len)
                self.text_tokenizer = text_tokenizer
                self.max_text_len = max_text_len
                self.sptids_dict = {t: torch.tensor([i + 50]) for i, t in enumerate(special_tokens)}
                self.sptids_dict['<|pad|>'] = torch.tensor([0])

            def __call__(self, input, task, padding=True, config=None):
                _rec("prompting", texts=list(input[0]), task=task)
                texts, image_ids = input
                text = torch.tensor([[len(t) % 7 + 1] * (self.max_text_len + 1) for t in texts],
                                    device=image_ids.device)
                return torch.cat([text, image_ids, torch.zeros_like(image_ids[:, :1])], dim=1), None

        def create_attention_mask_predict_next(sequence, pad_id=128256, soi_id=128257, eoi_id=128258,
                                               rm_pad_in_image=False, return_inverse_mask=True):
            _rec("attention_mask", rows=sequence.shape[0], pad_id=pad_id, soi_id=soi_id, eoi_id=eoi_id,
                 rm_pad_in_image=rm_pad_in_image)
            return torch.ones(sequence.shape[0], 1, sequence.shape[1], sequence.shape[1])
        """),
    "configs/showo_demo_512x512.yaml": textwrap.dedent("""
        model:
            showo:
                codebook_size: 8
                num_vq_tokens: 16
                llm_vocab_size: 20
        dataset:
            params:
                resolution: 16
            preprocessing:
                max_seq_length: 5
        training:
            cond_dropout_prob: 0.1
            batch_size: 20
        """),
}

ONED = {  # bytedance/1d-tokenizer: MaskGen, TA-TiTok, TiTok
    "README_MaskGen.md": "# fake\n",
    "demo_util.py": "# fake\n",
    "modeling/__init__.py": "",
    "modeling/maskgen.py": _RECORD + textwrap.dedent("""
        import numpy as np
        import torch

        class _Base(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.proj = torch.nn.Linear(3, 3)

            @classmethod
            def from_pretrained(cls, path, **kwargs):
                _rec(cls.__name__ + ".from_pretrained", path=path)
                return cls()

        class MaskGen_VQ(_Base):
            @torch.no_grad()
            def generate(self, captions, guidance_scale=12.0, randomize_temperature=1.5, sample_aesthetic_score=None,
                         softmax_temperature_annealing=True, num_sample_steps=16, guidance_decay="cosine",
                         guidance_decay_scale_pow=1.0, clip_tokenizer=None, clip_encoder=None, prob_sorting=True):
                _rec("generate", captions=list(captions), guidance_scale=guidance_scale,
                     randomize_temperature=randomize_temperature, sample_aesthetic_score=sample_aesthetic_score,
                     num_sample_steps=num_sample_steps, guidance_decay=guidance_decay)
                n = len(captions)
                noise = torch.zeros(n, 4).uniform_(0, 1)  # the official Gumbel noise: global RNG
                return (noise * 100).long()

        class MaskGen_KL(_Base):
            def sample_orders(self, bsz):
                orders = []
                for _ in range(bsz):
                    order = np.array(list(range(4)))
                    np.random.shuffle(order)
                    orders.append(order)
                return torch.tensor(np.array(orders))

            def sample_tokens(self, bsz, clip_tokenizer, clip_encoder, num_iter=32, cfg=3.0, cfg_schedule="linear",
                              captions=[""], aes_scores=6.0, temperature=1.0, progress=False):
                _rec("sample_tokens", bsz=bsz, captions=list(captions), num_iter=num_iter, cfg=cfg,
                     cfg_schedule=cfg_schedule, aes_scores=aes_scores, temperature=temperature)
                orders = self.sample_orders(bsz).float()
                return (orders + torch.randn(bsz, 4)) * 15 + 40
        """),
    "modeling/tatitok.py": _RECORD + textwrap.dedent("""
        import torch

        class TATiTok(torch.nn.Module):
            @classmethod
            def from_pretrained(cls, path, **kwargs):
                _rec("TATiTok.from_pretrained", path=path)
                return cls()

            def decode_tokens(self, tokens, text_guidance):
                _rec("decode_tokens", tokens=tokens.shape, text_guidance=tuple(text_guidance.shape))
                v = tokens.float().reshape(tokens.shape[0], -1)[:, :1]
                return (v / 110.0 - 0.05).reshape(-1, 1, 1, 1).expand(-1, 3, 8, 8).clone()
        """),
    "modeling/titok.py": _RECORD + textwrap.dedent("""
        import torch

        class TiTok(torch.nn.Module):
            def __init__(self, config):
                super().__init__()
                self.config = config
                self.quantize_mode = config["model"]["vq_model"].get("quantize_mode", "vq")
                self.proj = torch.nn.Linear(1, 1)

            @classmethod
            def from_pretrained(cls, path, **kwargs):
                import json, os
                _rec("TiTok.from_pretrained", path=path)
                with open(os.path.join(path, "config.json")) as f:
                    return cls(json.load(f))

            def encode(self, x):
                _rec("encode", shape=tuple(x.shape), lo=float(x.min()), hi=float(x.max()))
                ids = (x.mean(dim=(1, 2, 3)) * 100).long().reshape(-1, 1, 1)
                return None, {"min_encoding_indices": ids}

            def decode_tokens(self, tokens):
                _rec("decode_tokens", shape=tuple(tokens.shape))
                n = tokens.shape[0]
                side = self.config["dataset"]["preprocessing"]["crop_size"]
                return (tokens.float().reshape(n, 1, 1, 1) / 100.0).expand(n, 3, side, side) * 1.5 - 0.2
        """),
}

MAR = {
    "engine_mar.py": "# fake\n",
    "util/download.py": "# fake\n",
    "models/diffloss.py": "# fake\n",
    "models/mar.py": _RECORD + textwrap.dedent("""
        import numpy as np
        import torch

        class MAR(torch.nn.Module):
            def __init__(self, img_size=256, buffer_size=64, diffloss_d=3, diffloss_w=1024, num_sampling_steps='100',
                         **kwargs):
                super().__init__()
                _rec("MAR", img_size=img_size, buffer_size=buffer_size, diffloss_d=diffloss_d, diffloss_w=diffloss_w,
                     num_sampling_steps=num_sampling_steps)
                self.img_size = 16
                self.proj = torch.nn.Linear(2, 2)

            def sample_tokens(self, bsz, num_iter=64, cfg=1.0, cfg_schedule="linear", labels=None, temperature=1.0,
                              progress=False):
                _rec("sample_tokens", bsz=bsz, num_iter=num_iter, cfg=cfg, cfg_schedule=cfg_schedule,
                     labels=labels.tolist(), temperature=temperature, weight=float(self.proj.weight.sum()))
                order = np.arange(4)
                np.random.shuffle(order)
                z = torch.randn(bsz, 16, 2, 2) * 0.2325 * 0.5
                return z + torch.tensor(order[:1], dtype=torch.float32) * 0.0

        def mar_base(**kwargs):
            return MAR(**kwargs)
        """),
    "models/vae.py": _RECORD + textwrap.dedent("""
        import torch

        class AutoencoderKL(torch.nn.Module):
            def __init__(self, embed_dim, ch_mult, use_variational=True, ckpt_path=None):
                super().__init__()
                _rec("AutoencoderKL", embed_dim=embed_dim, ch_mult=ch_mult, ckpt_path=ckpt_path)

            def decode(self, z):
                _rec("decode", std=float(z.std()))
                return z[:, :3].repeat_interleave(8, dim=2).repeat_interleave(8, dim=3)
        """),
}

HART = {
    "sample.py": "# fake\n",
    "latency_profile.py": "# fake\n",
    "hart/__init__.py": "",
    "hart/modules/__init__.py": "",
    "hart/modules/models/__init__.py": "",
    "hart/modules/models/transformer/__init__.py": "from .hart_transformer_t2i import *\n",
    "hart/modules/models/transformer/hart_transformer_t2i.py": _RECORD + textwrap.dedent("""
        import numpy as np
        import torch

        class HARTForT2I(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.proj = torch.nn.Linear(2, 2)
                self.rng = torch.Generator()

            def autoregressive_infer_cfg(self, B, label_B, g_seed=None, cfg=1.5, top_k=0, top_p=0.0,
                                         more_smooth=False, context_position_ids=None, context_mask=None,
                                         final_stage=0, num_maskgit_iters=1):
                _rec("autoregressive_infer_cfg", B=B, g_seed=g_seed, cfg=cfg, more_smooth=more_smooth, top_k=top_k,
                     top_p=top_p, weight=float(self.proj.weight.sum()))
                self.rng.manual_seed(g_seed)
                order = np.arange(4)
                np.random.shuffle(order)
                gumbel = torch.rand(B, 1, 1, 1, generator=self.rng)
                diffusion = torch.randn(B, 1, 1, 1) * 0.01
                return (gumbel + diffusion + float(order[0]) * 0.0).expand(B, 3, 8, 8).clone().clamp(0, 1)

        __all__ = ["HARTForT2I"]
        """),
    "hart/utils/__init__.py": "from .constants import *\nfrom .tools import *\n",
    "hart/utils/constants.py": "llm_system_prompt = 'SYSTEM'\ndefault_prompts = ['a']\n",
    "hart/utils/tools.py": _RECORD + textwrap.dedent("""
        import torch

        def encode_prompts(prompts, text_model, text_tokenizer, text_tokenizer_max_length, system_prompt=None,
                           use_llm_system_prompt=False):
            _rec("encode_prompts", prompts=list(prompts), max_length=text_tokenizer_max_length,
                 system_prompt=system_prompt, use_llm_system_prompt=use_llm_system_prompt)
            n = len(prompts)
            return (torch.zeros(n, 4, dtype=torch.long), torch.ones(n, 4, dtype=torch.bool),
                    torch.arange(4).repeat(n, 1), torch.zeros(n, 4, 8))
        """),
}

MEISSONIC = {  # no src/__init__.py: the official src is a namespace package
    "inference.py": "# fake\n",
    "src/transformer.py": _RECORD + textwrap.dedent("""
        import torch

        class Transformer2DModel(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.proj = torch.nn.Linear(2, 2)

            @classmethod
            def from_pretrained(cls, path, subfolder=None, **kwargs):
                _rec("Transformer2DModel.from_pretrained", path=path, subfolder=subfolder)
                return cls()
        """),
    "src/scheduler.py": _RECORD + textwrap.dedent("""
        class Scheduler:
            @classmethod
            def from_pretrained(cls, path, subfolder=None, **kwargs):
                _rec("Scheduler.from_pretrained", path=path, subfolder=subfolder)
                return cls()
        """),
    "src/pipeline.py": _RECORD + textwrap.dedent("""
        import types
        import torch

        class Pipeline:
            def __init__(self, vqvae, tokenizer, text_encoder, transformer, scheduler):
                _rec("Pipeline", vqvae=vqvae, tokenizer=tokenizer, text_encoder=text_encoder)
                self.transformer = transformer

            def to(self, device):
                return self

            def __call__(self, prompt=None, height=1024, width=1024, num_inference_steps=48, guidance_scale=9.0,
                         negative_prompt=None, num_images_per_prompt=1, generator=None, output_type="pil", **kwargs):
                _rec("__call__", prompt=list(prompt), height=height, width=width,
                     num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                     negative_prompt=list(negative_prompt), generator=generator, output_type=output_type)
                n = len(prompt)
                x = torch.rand(n, 1, 1, 1, generator=generator).expand(n, 3, height // 64, width // 64).clone()
                return types.SimpleNamespace(images=x)
        """),
}


def make_checkout(root: Path, files: dict[str, str], *, remote: str | None = None, commit: str = SHA,
                  packed: bool = False, git: bool = True) -> Path:
    """Write ``files`` under ``root`` with a minimal ``.git`` (HEAD -> refs/heads/main, optional origin remote)."""
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    if git:
        g = root / ".git"
        (g / "refs" / "heads").mkdir(parents=True, exist_ok=True)
        (g / "HEAD").write_text("ref: refs/heads/main\n")
        if packed:
            (g / "packed-refs").write_text(f"# pack-refs with: peeled fully-peeled sorted\n{commit} refs/heads/main\n")
        else:
            (g / "refs" / "heads" / "main").write_text(commit + "\n")
        config = "[core]\n\trepositoryformatversion = 0\n"
        if remote:
            config += f'[remote "origin"]\n\turl = {remote}\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n'
        (g / "config").write_text(config)
    return root
