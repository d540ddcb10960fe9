"""Block-level maths of DC-AE checked against independent formulations."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from baselines.dcar.tokenizer.blocks import (
    ChannelDuplicatingPixelShuffle,
    LayerNorm2d,
    LiteMLA,
    PixelUnshuffleChannelAveraging,
    depthwise_conv_shifted_sum,
)


def test_layernorm2d_equals_layer_norm_over_channels():
    torch.manual_seed(0)
    ln = LayerNorm2d(24)
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    x = torch.randn(2, 24, 5, 7)
    ref = F.layer_norm(x.permute(0, 2, 3, 1), (24,), ln.weight, ln.bias, eps=1e-5).permute(0, 3, 1, 2)
    torch.testing.assert_close(ln(x), ref, atol=1e-5, rtol=1e-5)


def _naive_relu_attention(qkv: torch.Tensor, heads: int) -> torch.Tensor:
    """out_i = sum_j (k_j . q_i) v_j / sum_j (k_j . q_i), ReLU on q and k, per head, float64 loops."""
    b, _, h, w = qkv.shape
    qkv = qkv.double().reshape(b, heads, 96, h * w)
    out = torch.zeros(b, heads, 32, h * w, dtype=torch.float64)
    for bi in range(b):
        for hd in range(heads):
            q, k, v = qkv[bi, hd, :32].relu(), qkv[bi, hd, 32:64].relu(), qkv[bi, hd, 64:]
            for i in range(h * w):
                weights = (k * q[:, i:i + 1]).sum(0)  # (N,)
                out[bi, hd, :, i] = (v * weights).sum(1) / (weights.sum() + 1e-15)
    return out.reshape(b, heads * 32, h, w)


def test_lite_mla_both_branches_match_naive_attention():
    torch.manual_seed(1)
    mla = LiteMLA(64, norm="ln2d").eval()
    for hw in [(4, 4), (3, 5), (8, 8), (6, 9)]:  # <= 32 pixels: quadratic branch; > 32: linear branch
        x = torch.randn(2, 64, *hw)
        with torch.no_grad():
            ref = mla.proj(_naive_relu_attention(mla.qkv(x), heads=2).float())
            torch.testing.assert_close(mla(x), ref, atol=2e-5, rtol=1e-4)


def test_down_and_up_shortcuts_are_inverse_on_duplicated_channels():
    torch.manual_seed(2)
    x = torch.randn(2, 16, 6, 10)
    up = ChannelDuplicatingPixelShuffle(16, 32)  # 16 ch at 6x10 -> 32 ch at 12x20
    down = PixelUnshuffleChannelAveraging(32, 16)
    y = up(x)
    assert y.shape == (2, 32, 12, 20)
    torch.testing.assert_close(down(y), x)


def test_averaging_shortcut_is_mean_over_consecutive_channel_groups():
    x = torch.randn(1, 64, 3, 3)
    out = PixelUnshuffleChannelAveraging(64, 4, factor=1)(x)
    torch.testing.assert_close(out, x.view(1, 4, 16, 3, 3).mean(2))


def test_depthwise_shifted_sum_equals_grouped_conv():
    torch.manual_seed(3)
    x = torch.randn(2, 12, 7, 5, dtype=torch.float64)
    w = torch.randn(12, 1, 3, 3, dtype=torch.float64)
    b = torch.randn(12, dtype=torch.float64)
    ref = F.conv2d(x, w, b, padding=1, groups=12)
    torch.testing.assert_close(depthwise_conv_shifted_sum(x, w, b), ref, atol=1e-12, rtol=1e-12)
