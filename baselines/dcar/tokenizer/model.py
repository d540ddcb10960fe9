"""DC-HT: the deep-compression hybrid tokenizer of DC-AR (paper §3.1), as a plain PyTorch module.

An image in [-1, 1] is encoded by DC-AE-f32 to a 32-channel latent at 1/32 resolution
(512 px -> 16 x 16 = 256 tokens). The hybrid quantizer turns each latent vector into a
discrete code id plus a continuous *residual token*; the decoder can reconstruct from
the continuous (normalised) latent, from the codes alone, or from codes + residuals
(hybrid), which for the encoder's own residuals equals the continuous path.

Attribute names ``encoder``, ``decoder``, ``quantize`` reproduce the official state_dict
keys, so the released ``mit-han-lab/dc-ht`` weights load with ``strict=True``.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from harness.api import DataError
from harness.images import check_batch

from ..checkpoint import find_weights_file, load_pretrained
from .autoencoder import Decoder, Encoder
from .config import DCHTConfig
from .quantizer import HybridVectorQuantizer


def _check_image(x: torch.Tensor, multiple: int) -> None:
    """The harness's batch checks (shape, RGB, multiples of the compression, finite), plus: a float tensor."""
    if torch.is_tensor(x) and not x.is_floating_point():
        raise TypeError(f"DC-HT expects a floating-point image in [-1, 1], got dtype {x.dtype}")
    check_batch(x, name="DC-HT input", multiple_of=multiple)
    if 0 in x.shape[-2:]:
        raise DataError(f"DC-HT input: height and width must be positive multiples of {multiple}, got "
                        f"{x.shape[-2]}x{x.shape[-1]}")


class DCHT(nn.Module):
    """Encoder + hybrid VQ + decoder. Call :meth:`eval` before inference (decoder BatchNorm)."""

    def __init__(self, config: DCHTConfig | None = None):
        super().__init__()
        self.config = config or DCHTConfig()
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)
        self.quantize = HybridVectorQuantizer(
            self.config.codebook_size, self.config.codebook_embed_dim,
            l2_norm=self.config.codebook_l2_norm, beta=self.config.commit_loss_beta)

    # ------------------------------------------------------------------ properties

    @property
    def spatial_compression(self) -> int:
        return self.config.spatial_compression

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _param_dtype(self) -> torch.dtype:
        return self.encoder.project_out.main.op_list[0].conv.weight.dtype

    # ------------------------------------------------------------------ paths

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) in [-1, 1], H and W multiples of 32 -> continuous latent (B, 32, H/32, W/32)."""
        _check_image(x, self.spatial_compression)
        return self.encoder(x.to(self._param_dtype()))

    def latent_features(self, z: torch.Tensor) -> torch.Tensor:
        """The continuous latent as the decoder sees it on the hybrid path (L2-normalised per token)."""
        return self.quantize.normalize(z.to(self.quantize.compute_dtype), dim=1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent (B, 32, h, w) -> image (B, 3, 32h, 32w) in [-1, 1] space (not clamped)."""
        if z.ndim != 4 or z.shape[1] != self.config.latent_channels:
            raise ValueError(f"decode expects latents (B, {self.config.latent_channels}, h, w), got {tuple(z.shape)}")
        if not torch.isfinite(z).all():
            raise DataError("decode: latent contains NaN or Inf values")
        return self.decoder(z.to(self._param_dtype()))

    def tokens_to_latent(self, ids: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, N) [+ residual (B, N, C)] -> the latent (B, C, sqrt N, sqrt N) the decoder receives."""
        if not torch.is_tensor(ids) or ids.ndim != 2:
            raise ValueError(f"token ids must be a (B, N) tensor, got {getattr(ids, 'shape', type(ids))}")
        if ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise TypeError(f"token ids must be an integer tensor, got {ids.dtype}")
        b, n = ids.shape
        side = math.isqrt(n)
        if side * side != n or n == 0:
            raise ValueError(f"decode_tokens needs a square token grid, got N={n} tokens")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.config.codebook_size):
            raise ValueError(f"token ids must lie in [0, {self.config.codebook_size}), "
                             f"got range [{int(ids.min())}, {int(ids.max())}]")
        z = self.quantize.codebook_entry(ids.long())  # (B, N, C)
        if residual is not None and self.config.hybrid:
            c = self.config.latent_channels
            if tuple(residual.shape) != (b, n, c):
                raise ValueError(f"residual must have shape {(b, n, c)} to match the ids, got {tuple(residual.shape)}")
            if not torch.isfinite(residual).all():
                raise DataError("residual contains NaN or Inf values")
            z = z + residual.to(z.device, z.dtype)
        return z.view(b, side, side, -1).permute(0, 3, 1, 2).contiguous()

    def decode_tokens(self, ids: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """Token ids (B, N) long and optional residual tokens (B, N, 32) -> image (B, 3, H, W) in [-1, 1].

        Decodes ``codebook[ids] + residual`` on a sqrt(N) x sqrt(N) grid; without a
        residual (or for a plain ``vq`` tokenizer, as in the official code) the codes alone.
        """
        return self.decode(self.tokens_to_latent(ids, residual))

    def tokenize(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x in [-1, 1] -> ``{"ids": (B, N) long, "residual": (B, N, 32)}`` (raster order; float32 or wider)."""
        _, info = self.quantize(self.encode(x))
        return {"ids": info["indices"], "residual": info["residual"]}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Discrete-path autoencoding (as the official HybridVQ default): (reconstruction, quantizer info)."""
        z_q, info = self.quantize(self.encode(x))
        return self.decode(z_q), info

    # ------------------------------------------------------------------ loading and saving

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, config: DCHTConfig | Mapping[str, Any] | str | os.PathLike
                        | None = None, *, torch_dtype: torch.dtype | None = None,
                        device: str | torch.device | None = None) -> "DCHT":
        """Load official weights strictly and return the model in eval mode.

        ``path`` is an HF-style directory (``config.json`` + ``model.safetensors`` or
        ``pytorch_model.bin``, e.g. a clone of ``mit-han-lab/dc-ht``) or a single state-dict
        file (``.safetensors``/``.bin``/``.pt``). ``config`` overrides the directory's
        ``config.json``; for a single file without ``config``, a ``config.json`` beside it is
        used, else the released architecture. ``torch_dtype`` (default float32) applies to the
        floating tensors, ``device`` (default CPU) to the model. Reading and strict checking are
        :func:`baselines.dcar.checkpoint.load_pretrained` (the same code and errors as DC-AR's):
        missing, unexpected or mis-shaped keys raise
        :class:`~baselines.dcar.checkpoint.StateDictMismatchError` naming them and the file.
        """
        path = Path(path).expanduser()
        weight_file = find_weights_file(path, "DC-HT")
        if path.is_dir():
            config_source: Any = config if config is not None else path / "config.json"
        else:
            sibling = path.parent / "config.json"
            config_source = config if config is not None else (sibling if sibling.is_file() else None)
        if isinstance(config_source, DCHTConfig):
            cfg = config_source
        elif config_source is None:
            cfg = DCHTConfig()
        else:
            cfg = DCHTConfig.from_official(config_source)
        return load_pretrained(
            lambda: cls(cfg), weight_file, torch_dtype=torch_dtype, device=device,
            fix=("check that the file is a DC-HT tokenizer checkpoint and that the config it is built with (the "
                 "config argument, else config.json beside the weights, else the released f32c32) is the one it "
                 "was saved with; for an adapter that is its config option, e.g. --set model.config=tiny"))

    def save_pretrained(self, directory: str | os.PathLike, *, safe_serialization: bool = True) -> Path:
        """Write ``config.json`` (official ``dc_ht`` format) and ``model.safetensors`` / ``pytorch_model.bin``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(self.config.to_official(), indent=2) + "\n")
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        if safe_serialization:
            from safetensors.torch import save_file

            target = directory / "model.safetensors"
            save_file(state, str(target))
        else:
            target = directory / "pytorch_model.bin"
            torch.save(state, target)
        return target
