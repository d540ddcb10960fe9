"""DC-AE encoder and decoder (the convolution/EfficientViT halves of DC-HT).

Why the stage layout looks the way it does: the module tree mirrors the official DC-AE
so that the released checkpoint's keys (``encoder.stages.3.op_list.2.main.conv.conv.weight``
...) load strictly. Stage ``i`` works at width ``width_list[i]``; the encoder appends its
down-sampler to the end of a non-empty stage, the decoder puts its up-sampler first; an
empty stage is an empty ``OpSequential`` that still takes its index (as in the official efficientvit
``DCAE`` encoder/decoder builders).
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import (
    ChannelDuplicatingPixelShuffle,
    ConvLayer,
    ConvPixelShuffleUp,
    ConvPixelUnshuffleDown,
    OpSequential,
    PixelUnshuffleChannelAveraging,
    ResidualBlock,
    build_act,
    build_block,
    build_norm,
)
from .config import DCHTConfig


class Encoder(nn.Module):
    """RGB in [-1, 1] at H x W -> ``latent_channels`` x H/f x W/f (f = 32 for f32)."""

    def __init__(self, cfg: DCHTConfig):
        super().__init__()
        widths, depths = cfg.encoder_width_list, cfg.encoder_depth_list
        n = len(widths)
        if depths[0] == 0:
            # stage 0 is empty: the input projection also halves the resolution, straight to stage 1's width
            self.project_in = ConvPixelUnshuffleDown(3, widths[1])
        else:
            self.project_in = ConvLayer(3, widths[0], 3, bias=True)
        stages = []
        for i, (width, depth) in enumerate(zip(widths, depths)):
            ops: list[nn.Module] = [
                build_block(cfg.encoder_block_type[i], width, cfg.encoder_norm[i], cfg.encoder_act[i])
                for _ in range(depth)
            ]
            if i < n - 1 and depth > 0:
                ops.append(ResidualBlock(ConvPixelUnshuffleDown(width, widths[i + 1]),
                                         PixelUnshuffleChannelAveraging(width, widths[i + 1])))
            stages.append(OpSequential(ops))
        self.stages = nn.ModuleList(stages)
        self.project_out = ResidualBlock(
            OpSequential([ConvLayer(widths[-1], cfg.latent_channels, 3, bias=True)]),
            PixelUnshuffleChannelAveraging(widths[-1], cfg.latent_channels, factor=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.project_in(x)
        for stage in self.stages:
            x = stage(x)
        return self.project_out(x)


class Decoder(nn.Module):
    """Latent -> RGB in [-1, 1] (unclamped); stages run from the last (coarsest) to the first."""

    def __init__(self, cfg: DCHTConfig):
        super().__init__()
        widths, depths = cfg.decoder_width_list, cfg.decoder_depth_list
        n = len(widths)
        self.project_in = ResidualBlock(
            ConvLayer(cfg.latent_channels, widths[-1], 3, bias=True),
            ChannelDuplicatingPixelShuffle(cfg.latent_channels, widths[-1], factor=1),
        )
        stages = []
        for i, (width, depth) in enumerate(zip(widths, depths)):
            ops: list[nn.Module] = []
            if i < n - 1 and depth > 0:
                ops.append(ResidualBlock(ConvPixelShuffleUp(widths[i + 1], width),
                                         ChannelDuplicatingPixelShuffle(widths[i + 1], width)))
            ops += [build_block(cfg.decoder_block_type[i], width, cfg.decoder_norm[i], cfg.decoder_act[i])
                    for _ in range(depth)]
            stages.append(OpSequential(ops))
        self.stages = nn.ModuleList(stages)
        if depths[0] == 0:
            out_width, last = widths[1], ConvPixelShuffleUp(widths[1], 3)
        else:
            out_width, last = widths[0], ConvLayer(widths[0], 3, 3, bias=True)
        self.project_out = OpSequential([build_norm(cfg.decoder_out_norm, out_width),
                                         build_act(cfg.decoder_out_act), last])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project_in(z)
        for stage in reversed(self.stages):
            x = stage(x)
        return self.project_out(x)
