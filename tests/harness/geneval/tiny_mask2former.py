"""A tiny Mask2Former Swin for backend-parity tests: GenEval's mmdet config, shrunk, with seeded random weights.

The mmdet model is built from the real shipped config with only sizes changed (Swin depths (2, 2, 2, 2)
so shifted windows are exercised, 32 channels; a 64-channel pixel decoder and decoder, 2 + 3
layers, 20 queries, 80 classes), so the conversion mapping and both forwards are the real ones.
"""
from __future__ import annotations

TINY = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), feat=64, queries=20, enc_layers=2,
            dec_layers=3, enc_ffn=128, dec_ffn=128)


def tiny_mmdet_config(cfg):
    """Shrink an mmdet 3 Mask2Former Swin-S config in place (sizes only)."""
    t = TINY
    bb = cfg.model.backbone
    bb.embed_dims, bb.depths, bb.num_heads = t["embed_dims"], list(t["depths"]), list(t["num_heads"])
    bb.init_cfg = None
    head = cfg.model.panoptic_head
    head.in_channels = [t["embed_dims"] * 2 ** i for i in range(4)]
    head.feat_channels = head.out_channels = t["feat"]
    head.num_queries = t["queries"]
    pd = head.pixel_decoder
    pd.encoder.num_layers = t["enc_layers"]
    pd.encoder.layer_cfg.self_attn_cfg.embed_dims = t["feat"]
    pd.encoder.layer_cfg.ffn_cfg.embed_dims = t["feat"]
    pd.encoder.layer_cfg.ffn_cfg.feedforward_channels = t["enc_ffn"]
    pd.positional_encoding.num_feats = t["feat"] // 2
    head.positional_encoding.num_feats = t["feat"] // 2
    dec = head.transformer_decoder
    dec.num_layers = t["dec_layers"]
    for k in ("self_attn_cfg", "cross_attn_cfg", "ffn_cfg"):
        dec.layer_cfg[k].embed_dims = t["feat"]
    dec.layer_cfg.ffn_cfg.feedforward_channels = t["dec_ffn"]
    return cfg


def randomize_(model, seed: int = 0, scale: float = 0.05) -> None:
    """Perturb every float parameter (seeded): norms and embeddings stop being trivial, outputs become diverse."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


def tiny_layout():
    """The :class:`~harness.geneval.convert.Layout` of the tiny mmdet config (for HF-only tests)."""
    from harness.geneval.convert import Layout

    t = TINY
    return Layout(embed_dim=t["embed_dims"], depths=t["depths"], num_heads=t["num_heads"], window_size=7,
                  feature_size=t["feat"], mask_feature_size=t["feat"], encoder_layers=t["enc_layers"],
                  encoder_feedforward_dim=t["enc_ffn"], decoder_layers=t["dec_layers"], dim_feedforward=t["dec_ffn"],
                  num_attention_heads=8, num_queries=t["queries"], num_labels=80)
