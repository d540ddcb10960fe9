"""GenEval's mmdet Mask2Former checkpoint -> ``transformers`` ``Mask2FormerForUniversalSegmentation`` weights.

Why a converter and not HF's published Mask2Former: GenEval's scores are defined by one mmdet training
run (``mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco``, 2.x file ``743b7d99``, 3.x release ``c9d0c4f2``);
Facebook's HF checkpoints are other runs. The mapping is deterministic and strict: every mmdet key is
consumed exactly once, every HF key is produced, except the two HF keys inference never reads
(:data:`HF_ONLY_KEYS`), and any leftover or missing key is an error naming it.

What is not a rename (each checked by the parity tests):

* Swin attention: mmdet's fused ``qkv`` -> HF ``q_proj``/``k_proj``/``v_proj`` (split in thirds).
* Swin patch merging: mmdet gathers the 2x2 neighbourhood with ``nn.Unfold`` (channel index
  ``c*4 + 2*row + col``); HF concatenates ``x[0::2,0::2], x[1::2,0::2], x[0::2,1::2], x[1::2,1::2]``
  (index ``(2*col + row)*C + c``). The merge norm and reduction columns are permuted accordingly.
* Swin ``relative_position_index``: an mmdet buffer, recomputed by HF; consumed after checking it
  equals HF's (same table layout, so the bias tables copy unchanged).
* Decoder self-attention: mmcv's ``nn.MultiheadAttention`` ``in_proj_weight`` -> HF ``q/k/v_proj``;
  the decoder cross-attention is ``nn.MultiheadAttention`` on both sides (copied as is).

Input keys are mmdet 3 names; a 2.x checkpoint is renamed first by :mod:`harness.geneval.checkpoint`.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

#: HF keys with no mmdet source: SwinModel's final LayerNorm (SwinBackbone uses its per-stage
#: ``hidden_states_norms`` instead) and the loss's class weights buffer (training only).
HF_ONLY_KEYS = ("model.pixel_level_module.encoder.swin.layernorm.weight",
                "model.pixel_level_module.encoder.swin.layernorm.bias",
                "criterion.empty_weight")

_B = "model.pixel_level_module.encoder."
_P = "model.pixel_level_module.decoder."
_T = "model.transformer_module."
_H = "panoptic_head."


class ConversionError(ValueError):
    """The state dict does not map one-to-one onto the HF model."""


@dataclass(frozen=True)
class Layout:
    """The sizes that define a Mask2Former Swin model; read off an mmdet state dict (:func:`layout_of`)."""

    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int
    feature_size: int  # pixel decoder channels (= decoder hidden dim in GenEval's model)
    mask_feature_size: int
    encoder_layers: int
    encoder_feedforward_dim: int
    decoder_layers: int  # mmdet's transformer decoder layers (HF's config.decoder_layers is one more)
    dim_feedforward: int
    num_attention_heads: int
    num_queries: int
    num_labels: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: GenEval's detector: Swin-S, 256-channel pixel decoder (6 layers), 9 decoder layers, 100 queries, 80 classes
SWIN_S_COCO = Layout(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), window_size=7, feature_size=256,
                     mask_feature_size=256, encoder_layers=6, encoder_feedforward_dim=1024, decoder_layers=9,
                     dim_feedforward=2048, num_attention_heads=8, num_queries=100, num_labels=80)


def _count(sd: Mapping[str, Any], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.match(k))})


def layout_of(sd: Mapping[str, Any]) -> Layout:
    """The model sizes an mmdet 3 Mask2Former Swin state dict implies (shapes and key counts only)."""
    try:
        stages = _count(sd, r"backbone\.stages\.(\d+)\.")
        depths = tuple(_count(sd, rf"backbone\.stages\.{i}\.blocks\.(\d+)\.") for i in range(stages))
        heads = tuple(int(sd[f"backbone.stages.{i}.blocks.0.attn.w_msa.relative_position_bias_table"].shape[1])
                      for i in range(stages))
        table = int(sd["backbone.stages.0.blocks.0.attn.w_msa.relative_position_bias_table"].shape[0])
        window = (int(round(table ** 0.5)) + 1) // 2
        pd = _H + "pixel_decoder."
        offsets = int(sd[pd + "encoder.layers.0.self_attn.sampling_offsets.weight"].shape[0])
        n_levels = _count(sd, re.escape(pd) + r"input_convs\.(\d+)\.")
        return Layout(
            embed_dim=int(sd["backbone.patch_embed.projection.weight"].shape[0]), depths=depths, num_heads=heads,
            window_size=window, feature_size=int(sd[pd + "input_convs.0.conv.weight"].shape[0]),
            mask_feature_size=int(sd[pd + "mask_feature.weight"].shape[0]),
            encoder_layers=_count(sd, re.escape(pd) + r"encoder\.layers\.(\d+)\."),
            encoder_feedforward_dim=int(sd[pd + "encoder.layers.0.ffn.layers.0.0.weight"].shape[0]),
            decoder_layers=_count(sd, re.escape(_H) + r"transformer_decoder\.layers\.(\d+)\."),
            dim_feedforward=int(sd[_H + "transformer_decoder.layers.0.ffn.layers.0.0.weight"].shape[0]),
            num_attention_heads=offsets // (n_levels * 4 * 2),  # heads x levels x 4 points x (x, y)
            num_queries=int(sd[_H + "query_feat.weight"].shape[0]),
            num_labels=int(sd[_H + "cls_embed.weight"].shape[0]) - 1)
    except KeyError as exc:
        raise ConversionError(f"not an mmdet 3 Mask2Former Swin state dict: key {exc} is missing") from exc


# ------------------------------------------------------------------ the mapping

def _merge_perm(channels4: int) -> list[int]:
    """HF patch-merging index -> mmdet (nn.Unfold) index, for ``4*C`` channels."""
    c_in = channels4 // 4
    perm = []
    for h in range(channels4):
        k, c = divmod(h, c_in)
        col, row = divmod(k, 2)
        perm.append(c * 4 + row * 2 + col)
    return perm


def _copy(hf: str) -> Callable[[Any], dict[str, Any]]:
    return lambda v: {hf: v}


def _split3(prefix: str, suffix: str) -> Callable[[Any], dict[str, Any]]:
    def f(v):
        q, k, w = v.chunk(3, dim=0)
        return {f"{prefix}q_proj.{suffix}": q.clone(), f"{prefix}k_proj.{suffix}": k.clone(),
                f"{prefix}v_proj.{suffix}": w.clone()}
    return f


def _merge_cols(hf: str) -> Callable[[Any], dict[str, Any]]:
    def f(v):
        perm = _merge_perm(v.shape[-1])
        return {hf: v[..., perm].clone()}
    return f


def _check_index(v: Any) -> dict[str, Any]:
    ws = int(round(v.shape[0] ** 0.5))
    if getattr(v, "is_meta", False):  # a shapes-only (meta) state dict: nothing to compare
        return {}
    if not bool((v == swin_relative_position_index(ws).to(v.dtype)).all()):
        raise ConversionError("relative_position_index of the checkpoint differs from Swin's standard index")
    return {}


def swin_relative_position_index(window: int):
    """The standard Swin window index (what HF builds and mmdet stores)."""
    import torch

    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += window - 1
    rel[:, :, 1] += window - 1
    rel[:, :, 0] *= 2 * window - 1
    return rel.sum(-1)


def _rule(key: str) -> Callable[[Any], dict[str, Any]] | None:
    """The HF key(s) one mmdet 3 key becomes, as a function of its tensor; None = no rule."""
    m = re.fullmatch(r"backbone\.patch_embed\.(projection|norm)\.(weight|bias)", key)
    if m:
        part = "patch_embeddings.projection" if m[1] == "projection" else "norm"
        return _copy(f"{_B}swin.embeddings.{part}.{m[2]}")
    m = re.fullmatch(r"backbone\.stages\.(\d+)\.blocks\.(\d+)\.(.+)", key)
    if m:
        blk, rest = f"{_B}swin.encoder.layers.{m[1]}.blocks.{m[2]}.", m[3]
        simple = {"norm1.weight": "layernorm_before.weight", "norm1.bias": "layernorm_before.bias",
                  "norm2.weight": "layernorm_after.weight", "norm2.bias": "layernorm_after.bias",
                  "attn.w_msa.relative_position_bias_table": "attention.relative_position_bias.relative_position_bias_table",
                  "attn.w_msa.proj.weight": "attention.o_proj.weight", "attn.w_msa.proj.bias": "attention.o_proj.bias",
                  "ffn.layers.0.0.weight": "mlp.fc1.weight", "ffn.layers.0.0.bias": "mlp.fc1.bias",
                  "ffn.layers.1.weight": "mlp.fc2.weight", "ffn.layers.1.bias": "mlp.fc2.bias"}
        if rest in simple:
            return _copy(blk + simple[rest])
        if rest in ("attn.w_msa.qkv.weight", "attn.w_msa.qkv.bias"):
            return _split3(blk + "attention.", rest.rsplit(".", 1)[1])
        if rest == "attn.w_msa.relative_position_index":
            return _check_index
        return None
    m = re.fullmatch(r"backbone\.stages\.(\d+)\.downsample\.(norm\.weight|norm\.bias|reduction\.weight)", key)
    if m:
        return _merge_cols(f"{_B}swin.encoder.layers.{m[1]}.downsample.{m[2]}")
    m = re.fullmatch(r"backbone\.norm(\d+)\.(weight|bias)", key)
    if m:
        return _copy(f"{_B}hidden_states_norms.stage{int(m[1]) + 1}.{m[2]}")
    pd = re.escape(_H + "pixel_decoder.")
    m = re.fullmatch(pd + r"(input_convs|lateral_convs|output_convs)\.(\d+)\.(conv|gn)\.(weight|bias)", key)
    if m:
        sub = "0" if m[3] == "conv" else "1"
        if m[1] == "input_convs":
            return _copy(f"{_P}input_projections.{m[2]}.{sub}.{m[4]}")
        name = "adapter" if m[1] == "lateral_convs" else "layer"
        return _copy(f"{_P}{name}_{int(m[2]) + 1}.{sub}.{m[4]}")
    m = re.fullmatch(pd + r"encoder\.layers\.(\d+)\.(.+)", key)
    if m:
        layer, rest = f"{_P}encoder.layers.{m[1]}.", m[2]
        mm = re.fullmatch(r"self_attn\.(sampling_offsets|attention_weights|value_proj|output_proj)\.(weight|bias)", rest)
        if mm:
            return _copy(f"{layer}self_attn.{mm[1]}.{mm[2]}")
        simple = {"ffn.layers.0.0": "fc1", "ffn.layers.1": "fc2", "norms.0": "self_attn_layer_norm",
                  "norms.1": "final_layer_norm"}
        head, _, wb = rest.rpartition(".")
        return _copy(f"{layer}{simple[head]}.{wb}") if head in simple else None
    if key == _H + "pixel_decoder.level_encoding.weight":
        return _copy(_P + "level_embed")
    m = re.fullmatch(pd + r"mask_feature\.(weight|bias)", key)
    if m:
        return _copy(f"{_P}mask_projection.{m[1]}")
    m = re.fullmatch(re.escape(_H) + r"transformer_decoder\.layers\.(\d+)\.(.+)", key)
    if m:
        layer, rest = f"{_T}decoder.layers.{m[1]}.", m[2]
        if rest.startswith("cross_attn.attn."):
            return _copy(layer + "cross_attn." + rest[len("cross_attn.attn."):])
        if rest in ("self_attn.attn.in_proj_weight", "self_attn.attn.in_proj_bias"):
            return _split3(layer + "self_attn.", "weight" if rest.endswith("weight") else "bias")
        if rest.startswith("self_attn.attn.out_proj."):
            return _copy(layer + "self_attn.out_proj." + rest.rsplit(".", 1)[1])
        simple = {"ffn.layers.0.0": "fc1", "ffn.layers.1": "fc2", "norms.0": "cross_attn_layer_norm",
                  "norms.1": "self_attn_layer_norm", "norms.2": "final_layer_norm"}
        head, _, wb = rest.rpartition(".")
        return _copy(f"{layer}{simple[head]}.{wb}") if head in simple else None
    simple = {"transformer_decoder.post_norm.weight": _T + "decoder.layernorm.weight",
              "transformer_decoder.post_norm.bias": _T + "decoder.layernorm.bias",
              "query_embed.weight": _T + "queries_embedder.weight", "query_feat.weight": _T + "queries_features.weight",
              "level_embed.weight": _T + "level_embed.weight", "cls_embed.weight": "class_predictor.weight",
              "cls_embed.bias": "class_predictor.bias"}
    if key.startswith(_H) and key[len(_H):] in simple:
        return _copy(simple[key[len(_H):]])
    m = re.fullmatch(re.escape(_H) + r"mask_embed\.([024])\.(weight|bias)", key)
    if m:
        return _copy(f"{_T}decoder.mask_predictor.mask_embedder.{int(m[1]) // 2}.0.{m[2]}")
    return None


def mmdet3_to_hf(sd: Mapping[str, Any], expected: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Convert an mmdet 3 Mask2Former Swin state dict to HF keys; strict.

    ``expected`` (an HF model's ``state_dict()``, or any key -> tensor/shape map): the result must
    produce exactly its keys, minus :data:`HF_ONLY_KEYS`, with the same shapes.
    """
    out: dict[str, Any] = {}
    unmapped = []
    for key, value in sd.items():
        rule = _rule(key)
        if rule is None:
            unmapped.append(key)
            continue
        for new, v in rule(value).items():
            if new in out:
                raise ConversionError(f"two checkpoint keys map to {new!r} (the second: {key!r})")
            out[new] = v
    if unmapped:
        raise ConversionError(f"{len(unmapped)} checkpoint keys have no transformers counterpart, e.g. {unmapped[:3]}")
    if expected is not None:
        want = set(expected) - set(HF_ONLY_KEYS)
        missing, extra = sorted(want - set(out)), sorted(set(out) - want)
        if missing or extra:
            raise ConversionError(f"conversion does not fit the transformers model: {len(missing)} keys missing "
                                  f"(e.g. {missing[:3]}), {len(extra)} unexpected (e.g. {extra[:3]})")
        bad = [k for k in out if tuple(_shape(out[k])) != tuple(_shape(expected[k]))]
        if bad:
            raise ConversionError(f"{len(bad)} converted tensors have the wrong shape, e.g. {bad[0]}: "
                                  f"{tuple(_shape(out[bad[0]]))} vs {tuple(_shape(expected[bad[0]]))}")
    return out


def _shape(v: Any) -> tuple[int, ...]:
    return tuple(v.shape) if hasattr(v, "shape") else tuple(v)
