"""The DC-AR generator network: a bidirectional text-conditioned transformer over image tokens.

Why this shape: the module tree reproduces the official state-dict keys exactly
(``x_embedder``, ``pos_embed``, ``y_embedder.{y_proj,y_embedding}``, ``blocks.i.{attn,cross_attn,mlp}``,
``final_layer.linear``, ``diffloss.net.*``), so the released ``pytorch_model.bin`` loads with
``strict=True``.

For speed the forward pass is split in two: :meth:`DCAR.text_context` runs the caption
embedder and every block's cross-attention K/V projection once per prompt batch (they do not
change across the 12 sampling steps), and :meth:`DCAR.forward_tokens` runs the blocks on the
image tokens with that cache, projecting to logits only at the positions asked for.
Cross-attention over each sample's valid text tokens is SDPA with a key-padding mask, which is
the same attention as the official block-diagonal packed form.

``text_context(..., packed=True)`` is the official layout instead: only the valid caption tokens, packed
row after row, and one attention per sample over its own tokens (the official code's xformers
block-diagonal mask, written as a loop). The profile suite's official-style loop uses it so that its
baseline does the work the official code does (see ``docs/profile.md``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import DCARConfig
from .diffusion import DiffusionHead

# --------------------------------------------------------------------------- position embedding


def sincos_pos_embed_2d(embed_dim: int, grid_size: int, base_size: int = 16) -> np.ndarray:
    """PixArt 2-D sin-cos table (grid_size**2, embed_dim), float64.

    Coordinates are ``index * base_size / grid_size``; the first half of the channels encodes the
    column, the second half the row; each half is ``[sin(p w_i) | cos(p w_i)]``, ``w_i = 10000^(-i/(D/4))``.
    """
    if embed_dim % 4:
        raise ValueError(f"embed_dim must be divisible by 4 for a 2-D sin-cos embedding, got {embed_dim}")
    coords = np.arange(grid_size, dtype=np.float32) / (grid_size / base_size)
    cols, rows = np.meshgrid(coords, coords)  # token n = row * grid + col

    def one_dim(dim: int, pos: np.ndarray) -> np.ndarray:
        omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
        omega = 1.0 / 10000 ** omega
        out = np.einsum("m,d->md", pos.reshape(-1).astype(np.float64), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    return np.concatenate([one_dim(embed_dim // 2, cols), one_dim(embed_dim // 2, rows)], axis=1)


# --------------------------------------------------------------------------- building blocks


class Mlp(nn.Module):
    """fc1 -> GELU(tanh) -> fc2 (timm ``Mlp`` layout)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class SelfAttention(nn.Module):
    """Bidirectional multi-head self-attention with full-width (pre head split) affine LayerNorm on q and k."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.LayerNorm(dim, eps=1e-5) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(dim, eps=1e-5) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, c).unbind(2)
        q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (t.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class CrossAttention(nn.Module):
    """Image tokens attend to their own sample's valid text tokens (no norm, no qk-norm)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q_linear = nn.Linear(dim, dim)
        self.kv_linear = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def project_kv(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Text (B, L, C) -> K, V (B, heads, L, head_dim); the part that can be cached across steps."""
        b, length, c = y.shape
        k, v = self.kv_linear(y).view(b, length, 2, self.num_heads, c // self.num_heads).unbind(2)
        return k.transpose(1, 2), v.transpose(1, 2)

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None,
                lengths: tuple[int, ...] | None = None) -> torch.Tensor:
        """``lengths`` given: k/v are (1, heads, sum(lengths), head_dim), the valid tokens of each row packed in
        order, and row i attends to its own slice only (no mask needed)."""
        b, n, c = x.shape
        q = self.q_linear(x).view(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)
        if lengths is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        else:
            outs, start = [], 0
            for i, length in enumerate(lengths):
                outs.append(F.scaled_dot_product_attention(q[i:i + 1], k[:, :, start:start + length],
                                                           v[:, :, start:start + length]))
                start += length
            out = torch.cat(outs)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class DCARBlock(nn.Module):
    """x += SelfAttn(LN(x)); x += CrossAttn(x, text); x += MLP(LN(x)) -- no adaLN, no timestep."""

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, qk_norm: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(hidden_size, num_heads, qk_norm)
        self.cross_attn = CrossAttention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden_size, intermediate_size)

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None,
                lengths: tuple[int, ...] | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        x = x + self.cross_attn(x, k, v, key_mask, lengths)
        return x + self.mlp(self.norm2(x))


class CaptionEmbedder(nn.Module):
    """T5 features (B, L, context_dim) -> hidden size; the null caption is a frozen buffer.

    ``y_embedding`` is random at construction and never trained, but it is in the checkpoint:
    the unconditional branch must use the checkpoint's values.
    """

    def __init__(self, context_dim: int, hidden_size: int, text_token_length: int):
        super().__init__()
        self.y_proj = Mlp(context_dim, hidden_size, hidden_size)
        self.register_buffer("y_embedding", torch.randn(text_token_length, context_dim) / context_dim ** 0.5)

    def forward(self, caption: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        if drop is not None:
            length = caption.shape[1]
            if length > self.y_embedding.shape[0]:
                raise ValueError(f"caption has {length} tokens but the null caption only "
                                 f"{self.y_embedding.shape[0]} (text_token_length)")
            null = self.y_embedding[:length].to(caption.dtype)
            caption = torch.where(drop.view(-1, 1, 1).to(caption.device), null, caption)
        return self.y_proj(caption)


class FinalLayer(nn.Module):
    """Non-affine LayerNorm -> Linear to codebook logits (no [MASK] logit)."""

    def __init__(self, hidden_size: int, codebook_size: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, codebook_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm_final(x))


# --------------------------------------------------------------------------- the model


@dataclass
class TextContext:
    """Per-block cross-attention keys/values for a batch of captions, reused across sampling steps."""

    keys: list[torch.Tensor]  # per block (B, heads, L, head_dim); packed: (1, heads, sum(lengths), head_dim)
    values: list[torch.Tensor]
    key_mask: torch.Tensor | None  # (B, 1, 1, L) bool, True = valid text token; None when packed
    lengths: tuple[int, ...] | None = None  # packed: valid tokens per row

    @property
    def batch_size(self) -> int:
        return len(self.lengths) if self.lengths is not None else self.key_mask.shape[0]


class DCAR(nn.Module):
    """The DC-AR generator: transformer (logits + hidden states) and the residual diffusion head."""

    def __init__(self, config: DCARConfig):
        super().__init__()
        self.config = config
        c = config
        self.x_embedder = nn.Embedding(c.codebook_size + 1, c.hidden_size)  # last id = [MASK]
        self.pos_embed = nn.Parameter(torch.zeros(1, c.image_seq_len, c.hidden_size), requires_grad=False)
        self.y_embedder = CaptionEmbedder(c.context_dim, c.hidden_size, c.text_token_length)
        self.blocks = nn.ModuleList(
            DCARBlock(c.hidden_size, c.num_attention_heads, c.intermediate_size, c.qk_norm)
            for _ in range(c.num_hidden_layers))
        self.final_layer = FinalLayer(c.hidden_size, c.codebook_size)
        self.diffloss = DiffusionHead(c.token_size, c.hidden_size, c.diffusion_width, c.diffusion_depth,
                                      c.vae_scale, c.diffusion_train_steps)
        if not self.pos_embed.is_meta:
            self.reset_pos_embed()

    # ------------------------------------------------------------------ init / loading

    def reset_pos_embed(self) -> None:
        table = sincos_pos_embed_2d(self.config.hidden_size, self.config.grid_size, self.config.pos_embed_base_size)
        with torch.no_grad():
            self.pos_embed.copy_(torch.from_numpy(table).float().unsqueeze(0))

    @torch.no_grad()
    def init_random(self, seed: int, std: float | None = None) -> "DCAR":
        """Seeded random weights (for tests, smoke runs and benchmarks; NOT the released model).

        Every floating parameter/buffer gets N(0, 1/fan_in) weights and small biases (so no layer is
        zero, unlike the training init that zeroes the output layers); pos_embed keeps its sin-cos value.
        """
        gen = torch.Generator().manual_seed(int(seed))
        for name, tensor in self.state_dict(keep_vars=True).items():
            if name == "pos_embed" or not tensor.is_floating_point():
                continue
            if name.endswith("y_embedding"):
                values = torch.randn(tensor.shape, generator=gen) / tensor.shape[-1] ** 0.5
            elif tensor.ndim >= 2:
                values = torch.randn(tensor.shape, generator=gen) * (std or tensor.shape[1] ** -0.5)
            elif "norm" in name or "in_ln" in name:
                values = 1 + 0.1 * torch.randn(tensor.shape, generator=gen) if name.endswith("weight") \
                    else 0.02 * torch.randn(tensor.shape, generator=gen)
            else:
                values = 0.02 * torch.randn(tensor.shape, generator=gen)
            tensor.data.copy_(values.to(tensor.dtype))
        return self

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, config: DCARConfig | str | os.PathLike | None = None,
                        *, torch_dtype: torch.dtype | None = None, device: str | torch.device | None = None) -> "DCAR":
        """Load official weights strictly and return the model in eval mode.

        ``path``: the raw ``pytorch_model.bin`` (a ``torch.save``d state_dict), a ``.safetensors``
        file, or a directory holding one of those (and optionally a config file). ``config``: a
        :class:`DCARConfig`, an official YAML/JSON config path, or None (config file next to the
        weights, else the released 512 px config). ``torch_dtype``: floating tensors are converted to it
        (default float32, as the official code runs; reduced precision is applied by autocast instead);
        ``device``: default CPU. Reading and strict checking are
        :func:`baselines.dcar.checkpoint.load_pretrained` (the same code and errors as DC-HT's): a missing,
        unexpected or mis-shaped key raises :class:`~baselines.dcar.checkpoint.StateDictMismatchError`
        naming the file and the keys.
        """
        from ..checkpoint import find_weights_file, load_pretrained
        from .config import resolve_config

        weight_file = find_weights_file(path, "DC-AR generator")
        cfg = resolve_config(path, config)
        return load_pretrained(
            lambda: cls(cfg), weight_file, torch_dtype=torch_dtype, device=device,
            fix=("check that the file is a DC-AR generator checkpoint and that the config it is built with (the "
                 "config argument, else a config.yaml / config.json beside the weights, else the released 512 px "
                 "config) is the one it was saved with; for the dc-ar adapter that is its config option"))

    # ------------------------------------------------------------------ parameter accounting

    def num_transformer_parameters(self) -> int:
        """Parameters outside the diffusion head (pos_embed included, y_embedding buffer excluded)."""
        return sum(p.numel() for n, p in self.named_parameters() if not n.startswith("diffloss."))

    def num_head_parameters(self) -> int:
        return sum(p.numel() for p in self.diffloss.parameters())

    # ------------------------------------------------------------------ forward

    def text_context(self, text_hidden: torch.Tensor, text_mask: torch.Tensor,
                     drop: torch.Tensor | None = None, *, packed: bool = False) -> TextContext:
        """Caption embedding + every block's cross-attention K/V (cacheable across sampling steps).

        ``text_hidden`` (B, L, context_dim); ``text_mask`` (B, L) bool (True = real token, every row
        needs at least one); ``drop`` (B,) bool selects the null caption (CFG's unconditional rows),
        which keeps the row's own mask. ``packed``: embed and project only the valid tokens, packed row
        after row (the official layout; valid tokens must be a prefix of each row, as T5's right padding makes them).
        """
        if text_hidden.ndim != 3 or text_hidden.shape[-1] != self.config.context_dim:
            raise ValueError(f"text_hidden must be (B, L, {self.config.context_dim}), got {tuple(text_hidden.shape)}")
        if text_mask.shape != text_hidden.shape[:2]:
            raise ValueError(f"text_mask shape {tuple(text_mask.shape)} != text_hidden (B, L) {tuple(text_hidden.shape[:2])}")
        text_mask = text_mask.bool()
        if not bool(text_mask.any(dim=1).all()):
            raise ValueError("every caption needs at least one valid text token (text_mask row is all False)")
        param = self.x_embedder.weight
        y = self.y_embedder(text_hidden.to(param.device, param.dtype), drop)
        if packed:
            lengths = tuple(int(n) for n in text_mask.sum(dim=1).tolist())
            if any(bool(row[:n].all()) is False for row, n in zip(text_mask, lengths)):
                raise ValueError("packed text context needs the valid tokens first in each row (right padding)")
            y = torch.cat([row[:n] for row, n in zip(y, lengths)])[None]
        keys, values = [], []
        for block in self.blocks:
            k, v = block.cross_attn.project_kv(y)
            keys.append(k)
            values.append(v)
        if packed:
            return TextContext(keys, values, None, lengths)
        return TextContext(keys, values, text_mask.to(param.device)[:, None, None, :])

    def forward_tokens(self, ids: torch.Tensor, context: TextContext,
                       logits_at: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the blocks on token ids (B, N) with cached text K/V.

        Returns ``(logits, hidden)``: hidden (B, N, hidden_size) is the last block's output before the
        final norm (it conditions the diffusion head); logits are (B, N, codebook_size), or, when
        ``logits_at`` (B, N) bool is given, only the selected positions (M, codebook_size) in row-major order.
        """
        c = self.config
        if ids.ndim != 2 or ids.shape[1] != c.image_seq_len:
            raise ValueError(f"ids must be (B, {c.image_seq_len}), got {tuple(ids.shape)}")
        if ids.shape[0] != context.batch_size:
            raise ValueError(f"ids batch {ids.shape[0]} != text context batch {context.batch_size}")
        hidden = self.forward_hidden(ids, context)
        selected = hidden if logits_at is None else hidden[logits_at]
        return self.final_layer(selected), hidden

    def forward_hidden(self, ids: torch.Tensor, context: TextContext) -> torch.Tensor:
        """The blocks only: (B, N) ids -> (B, N, hidden_size), static shapes (what ``compile`` captures)."""
        x = self.x_embedder(ids) + self.pos_embed
        for block, k, v in zip(self.blocks, context.keys, context.values):
            x = block(x, k, v, context.key_mask, context.lengths)
        return x

    def forward(self, ids: torch.Tensor, text_hidden: torch.Tensor, text_mask: torch.Tensor,
                drop: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Plain (uncached) forward: ``(logits (B, N, V), hidden (B, N, C))``, as the official ``forward()[:2]``."""
        return self.forward_tokens(ids, self.text_context(text_hidden, text_mask, drop))

