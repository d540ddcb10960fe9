"""The (hybrid) vector quantizer of DC-HT.

Why it returns so much: DC-AR's generator is trained on two targets per image token,
the discrete code id and the *residual* (normalised latent minus its code), and the
tokenizer has three decode paths (continuous, discrete, hybrid). One forward pass
therefore yields the straight-through quantised latent, the ids in raster order, the
residual tokens, the normalised features and the VQ loss (as the official ``HybridVQ`` quantizer).

Everything runs in at least float32 regardless of the module dtype (float64 stays
float64, for the parity check): the nearest-code search must not change with
autocast or a half-precision model.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class HybridVectorQuantizer(nn.Module):
    """Nearest-code quantizer over ``codebook_size`` codes of dimension ``embed_dim``.

    With ``l2_norm`` (the released model) both latents and codes are L2-normalised before
    the search, so the nearest code is the one of highest cosine similarity. The module's
    only state is ``embedding.weight`` (key ``quantize.embedding.weight``).
    """

    def __init__(self, codebook_size: int, embed_dim: int, *, l2_norm: bool = True, beta: float = 0.25):
        super().__init__()
        self.codebook_size = codebook_size
        self.embed_dim = embed_dim
        self.l2_norm = l2_norm
        self.beta = beta
        # an explicit _weight skips nn.Embedding's normal_() init, which on the meta device
        # (used by from_pretrained) pulls in torch's slow-to-import decompositions
        self.embedding = nn.Embedding(codebook_size, embed_dim, _weight=torch.empty(codebook_size, embed_dim))
        nn.init.uniform_(self.embedding.weight, -1.0 / codebook_size, 1.0 / codebook_size)

    def normalize(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        return F.normalize(x, p=2, dim=dim) if self.l2_norm else x

    @property
    def compute_dtype(self) -> torch.dtype:
        """float32, or float64 for a float64 codebook."""
        return torch.promote_types(self.embedding.weight.dtype, torch.float32)

    def codebook(self) -> torch.Tensor:
        """The (normalised) codebook in :attr:`compute_dtype`, (codebook_size, embed_dim)."""
        return self.normalize(self.embedding.weight.to(self.compute_dtype), dim=-1)

    def codebook_entry(self, ids: torch.Tensor) -> torch.Tensor:
        """Code vectors of ``ids`` (any shape) -> ``ids.shape + (embed_dim,)``, in :attr:`compute_dtype`."""
        return self.normalize(F.embedding(ids, self.embedding.weight.to(self.compute_dtype)), dim=-1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """z (B, C, h, w) -> (z_q (B, C, h, w) in :attr:`compute_dtype`, info).

        ``info``: ``indices`` (B, h*w) long, raster order; ``residual`` (B, h*w, C) =
        normalised z minus its code; ``features`` (B, C, h, w) = normalised z (what the
        hybrid path decodes); ``loss`` = codebook + beta * commitment loss, plus its
        parts ``codebook_loss`` and ``commitment_loss``. ``z_q`` carries straight-through
        gradients to z.
        """
        if z.ndim != 4 or z.shape[1] != self.embed_dim:
            raise ValueError(f"quantizer expects (B, {self.embed_dim}, h, w) latents, got {tuple(z.shape)}")
        with torch.autocast(device_type=z.device.type, enabled=False):
            b, c, h, w = z.shape
            z = self.normalize(z.to(self.compute_dtype).permute(0, 2, 3, 1), dim=-1)  # (B, h, w, C)
            flat = z.reshape(-1, c)
            codes = self.codebook()
            distances = (flat.square().sum(dim=1, keepdim=True) + codes.square().sum(dim=1)
                         - 2.0 * flat @ codes.t())
            indices = distances.argmin(dim=1)
            z_q = codes[indices].view(z.shape)
            codebook_loss = torch.mean((z_q - z.detach()) ** 2)
            commitment_loss = self.beta * torch.mean((z_q.detach() - z) ** 2)
            residual = (z - z_q).reshape(b, h * w, c)
            z_q_st = z + (z_q - z).detach()
        info = {
            "indices": indices.view(b, h * w),
            "residual": residual,
            "features": z.permute(0, 3, 1, 2).contiguous(),
            "loss": codebook_loss + commitment_loss,
            "codebook_loss": codebook_loss,
            "commitment_loss": commitment_loss,
        }
        return z_q_st.permute(0, 3, 1, 2).contiguous(), info
