"""Building blocks of the DC-AE-f32 autoencoder used by DC-HT.

Why these exact class and attribute names: the released DC-HT checkpoint is a
state_dict of the official (efficientvit-derived) module tree, and we load it with
``strict=True``. So each block's parameters live under the same attribute path as
in the official code (``conv.conv``, ``main``, ``op_list.N``, ``context_module.main.qkv``
...). The maths of every block is stated in its docstring (it follows the official efficientvit
module it stands for); the code here is our own.

All convolutions use "same" padding (``kernel // 2``) and stride 1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Small constant that the official LiteMLA adds to the attention normaliser.
ATTENTION_EPS = 1e-15
# Head dimension of LiteMLA; the number of heads is channels // HEAD_DIM.
HEAD_DIM = 32

NORM_NAMES = ("ln2d", "bn2d")
ACT_NAMES = ("silu", "relu")


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel axis of an NCHW tensor, at every pixel.

    Subclasses ``nn.LayerNorm`` so its parameters are ``weight``/``bias`` of shape (C,),
    as in the checkpoint. Written out explicitly (mean, centred second moment) to follow
    the official arithmetic order, which keeps parity at the 1e-7 level.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(dim=1, keepdim=True)
        out = centred / torch.sqrt(centred.square().mean(dim=1, keepdim=True) + self.eps)
        if self.elementwise_affine:
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return out


def build_norm(name: str | None, channels: int) -> nn.Module | None:
    """``"ln2d"`` -> LayerNorm2d, ``"bn2d"`` -> BatchNorm2d (eval mode uses running stats), None -> None."""
    if name is None:
        return None
    if name == "ln2d":
        return LayerNorm2d(channels, eps=1e-5)
    if name == "bn2d":
        return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)
    raise ValueError(f"unknown norm {name!r}; known: {', '.join(NORM_NAMES)}")


def build_act(name: str | None) -> nn.Module | None:
    if name is None:
        return None
    if name == "silu":
        return nn.SiLU()
    if name == "relu":
        return nn.ReLU()
    raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACT_NAMES)}")


class ConvLayer(nn.Module):
    """Conv2d (same padding) -> optional norm -> optional activation. Keys: ``conv.*``, ``norm.*``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, groups: int = 1,
                 bias: bool = True, norm: str | None = None, act: str | None = None):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                              groups=groups, bias=bias)
        self.norm = build_norm(norm, out_channels)
        self.act = build_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv.groups > 1 and self.conv.groups == self.conv.in_channels and x.dtype == torch.float64 \
                and x.device.type == "cpu":
            x = depthwise_conv_shifted_sum(x, self.conv.weight, self.conv.bias)
        else:
            x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.act is not None:
            x = self.act(x)
        return x


def depthwise_conv_shifted_sum(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Depthwise "same" convolution as a sum of k*k shifted, per-channel-scaled copies of the input.

    Why: identical maths to ``F.conv2d(..., groups=C)``, but torch's CPU float64 grouped
    convolution runs one tiny convolution per channel (thousands of calls for GLUMBConv's
    8C channels), which made the float64 parity check ~10x slower. Used only for float64 on CPU.
    """
    channels, _, kh, kw = weight.shape
    h, w = x.shape[-2:]
    padded = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2))
    out = torch.zeros_like(x) if bias is None else bias.view(1, channels, 1, 1).expand_as(x).clone()
    for dy in range(kh):
        for dx in range(kw):
            out = out + padded[:, :, dy:dy + h, dx:dx + w] * weight[:, 0, dy, dx].view(1, channels, 1, 1)
    return out


class OpSequential(nn.Module):
    """Runs its ops in order; the ops live in ``op_list`` (a ModuleList) like the official code.

    Parameter-free ops (e.g. a ReLU) still take an index, so later indices match the checkpoint;
    ``None`` entries (an unset norm or activation) are dropped, as in the official code.
    """

    def __init__(self, ops: list[nn.Module | None]):
        super().__init__()
        self.op_list = nn.ModuleList([op for op in ops if op is not None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.op_list:
            x = op(x)
        return x


class ResidualBlock(nn.Module):
    """``main(x) + shortcut(x)``; the shortcut is parameter-free (identity or a resampler)."""

    def __init__(self, main: nn.Module, shortcut: nn.Module):
        super().__init__()
        self.main = main
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.shortcut(x)


class ResBlock(nn.Module):
    """Two 3x3 convs: conv1 (bias, act) then conv2 (no bias, norm, no act). The residual add is outside."""

    def __init__(self, channels: int, norm: str, act: str):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, bias=True, norm=None, act=act)
        self.conv2 = ConvLayer(channels, channels, 3, bias=False, norm=norm, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class LiteMLA(nn.Module):
    """Multi-head ReLU-kernel attention of EfficientViT (no multi-scale aggregation).

    Why not ``F.scaled_dot_product_attention``: this is not softmax attention. Queries and
    keys go through ReLU and the weights are normalised by their plain sum, which SDPA
    cannot express. For large maps (H*W > head dim) the official code uses the linear
    form ``(V K^T) Q`` (cost linear in the number of pixels); for small maps the quadratic
    form ``V (K^T Q)``. The two are equal in exact arithmetic; we reproduce the branch
    choice so results agree with the official model to float rounding. Both are computed
    in at least float32 (float64 models stay float64, which the parity check uses).

    qkv channel layout: per head, 32 query, 32 key, then 32 value channels (interleaved
    per head, not three contiguous blocks).
    """

    def __init__(self, channels: int, norm: str):
        super().__init__()
        if channels % HEAD_DIM:
            raise ValueError(f"LiteMLA needs channels divisible by {HEAD_DIM}, got {channels}")
        self.heads = channels // HEAD_DIM
        self.qkv = ConvLayer(channels, 3 * channels, 1, bias=False, norm=None, act=None)
        self.proj = ConvLayer(channels, channels, 1, bias=False, norm=norm, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        qkv = self.qkv(x)
        out_dtype = qkv.dtype
        qkv = qkv.to(torch.promote_types(out_dtype, torch.float32)).reshape(b, self.heads, 3 * HEAD_DIM, h * w)
        q = F.relu(qkv[:, :, :HEAD_DIM])
        k = F.relu(qkv[:, :, HEAD_DIM:2 * HEAD_DIM])
        v = qkv[:, :, 2 * HEAD_DIM:]
        if h * w > HEAD_DIM:
            # Append a row of ones to V: its output row is the normaliser sum_j k_j . q_i.
            v1 = F.pad(v, (0, 0, 0, 1), value=1.0)
            out = (v1 @ k.transpose(-1, -2)) @ q  # (b, heads, 33, N)
            out = out[:, :, :-1] / (out[:, :, -1:] + ATTENTION_EPS)
        else:
            weights = k.transpose(-1, -2) @ q  # (b, heads, N_keys, N_queries)
            weights = weights / (weights.sum(dim=2, keepdim=True) + ATTENTION_EPS)
            out = v @ weights
        out = out.reshape(b, -1, h, w).to(out_dtype)
        return self.proj(out)


class GLUMBConv(nn.Module):
    """Gated inverted bottleneck: 1x1 expand (x8, SiLU) -> depthwise 3x3 -> x * act(gate) -> 1x1 project + norm."""

    def __init__(self, channels: int, norm: str, act: str, expand_ratio: int = 4):
        super().__init__()
        mid = channels * expand_ratio
        self.inverted_conv = ConvLayer(channels, 2 * mid, 1, bias=True, norm=None, act=act)
        self.depth_conv = ConvLayer(2 * mid, 2 * mid, 3, groups=2 * mid, bias=True, norm=None, act=None)
        self.glu_act = build_act(act)
        self.point_conv = ConvLayer(mid, channels, 1, bias=False, norm=norm, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.depth_conv(self.inverted_conv(x))
        x, gate = torch.chunk(x, 2, dim=1)
        return self.point_conv(x * self.glu_act(gate))


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class EfficientViTBlock(nn.Module):
    """``x + LiteMLA(x)`` then ``x + GLUMBConv(x)`` (keys ``context_module.main``, ``local_module.main``)."""

    def __init__(self, channels: int, norm: str, act: str):
        super().__init__()
        self.context_module = ResidualBlock(LiteMLA(channels, norm), Identity())
        self.local_module = ResidualBlock(GLUMBConv(channels, norm, act), Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.local_module(self.context_module(x))


# ----------------------------------------------------------------------------- resamplers


class ConvPixelUnshuffleDown(nn.Module):
    """3x3 conv to ``out/4`` channels, then pixel_unshuffle(2): halves H, W; key ``conv.conv``."""

    def __init__(self, in_channels: int, out_channels: int, factor: int = 2):
        super().__init__()
        if out_channels % (factor * factor):
            raise ValueError(f"down-sampler output {out_channels} not divisible by {factor * factor}")
        self.factor = factor
        self.conv = ConvLayer(in_channels, out_channels // (factor * factor), 3, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(self.conv(x), self.factor)


class PixelUnshuffleChannelAveraging(nn.Module):
    """Parameter-free down shortcut: pixel_unshuffle, then average groups of consecutive channels."""

    def __init__(self, in_channels: int, out_channels: int, factor: int = 2):
        super().__init__()
        total = in_channels * factor * factor
        if total % out_channels:
            raise ValueError(f"averaging shortcut: {total} channels not divisible into {out_channels} groups")
        self.factor = factor
        self.out_channels = out_channels
        self.group = total // out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor > 1:
            x = F.pixel_unshuffle(x, self.factor)
        b, _, h, w = x.shape
        return x.view(b, self.out_channels, self.group, h, w).mean(dim=2)


class ConvPixelShuffleUp(nn.Module):
    """3x3 conv to ``4*out`` channels, then pixel_shuffle(2): doubles H, W; key ``conv.conv``."""

    def __init__(self, in_channels: int, out_channels: int, factor: int = 2):
        super().__init__()
        self.factor = factor
        self.conv = ConvLayer(in_channels, out_channels * factor * factor, 3, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), self.factor)


class ChannelDuplicatingPixelShuffle(nn.Module):
    """Parameter-free up shortcut: repeat each channel ``out*f^2/in`` times, then pixel_shuffle."""

    def __init__(self, in_channels: int, out_channels: int, factor: int = 2):
        super().__init__()
        total = out_channels * factor * factor
        if total % in_channels:
            raise ValueError(f"duplicating shortcut: {total} channels not a multiple of {in_channels}")
        self.factor = factor
        self.repeats = total // in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.repeat_interleave(self.repeats, dim=1)
        if self.factor > 1:
            x = F.pixel_shuffle(x, self.factor)
        return x


def build_block(block_type: str, channels: int, norm: str, act: str) -> nn.Module:
    """One main-stage block: ``ResBlock`` (wrapped with identity shortcut) or ``EViT_GLU``."""
    if block_type == "ResBlock":
        return ResidualBlock(ResBlock(channels, norm, act), Identity())
    if block_type == "EViT_GLU":
        return EfficientViTBlock(channels, norm, act)
    raise ValueError(f"unknown block type {block_type!r}; known: ResBlock, EViT_GLU")
