"""Configuration of DC-HT: the DC-AE autoencoder topology plus the quantizer settings.

Why one dataclass holds both: the official code splits them (a DC-AE dot-list chosen by
``model_name`` and a ``DCHTConfig`` for the quantizer), but a user of this package needs a
single object that fully determines the module tree and therefore the state_dict keys.
The defaults are the released model (``mit-han-lab/dc-ht``: DC-AE-f32c32 + hybrid VQ
16384 x 32). :meth:`DCHTConfig.from_official` reads both official formats and
:meth:`DCHTConfig.to_official` writes an HF ``config.json`` the official loader accepts.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

logger = logging.getLogger(__name__)

F32_BLOCKS = ("ResBlock", "ResBlock", "ResBlock", "EViT_GLU", "EViT_GLU", "EViT_GLU")

# The DC-AE dot-list of the f32c32 architecture (official ``dc_ae_f32``), as the fixture format writes it.
DC_AE_F32C32_DOTLIST = (
    "latent_channels=32 "
    "encoder.block_type=[ResBlock,ResBlock,ResBlock,EViT_GLU,EViT_GLU,EViT_GLU] "
    "encoder.width_list=[128,256,512,512,1024,1024] encoder.depth_list=[0,4,8,2,2,2] "
    "decoder.block_type=[ResBlock,ResBlock,ResBlock,EViT_GLU,EViT_GLU,EViT_GLU] "
    "decoder.width_list=[128,256,512,512,1024,1024] decoder.depth_list=[0,5,10,2,2,2] "
    "decoder.norm=[bn2d,bn2d,bn2d,ln2d,ln2d,ln2d] decoder.act=[relu,relu,relu,silu,silu,silu]"
)

# model_name values the official DCHT accepts, and whether we implement their architecture.
F32_MODEL_NAMES = ("dc-ae-f32-in-1.0", "dc-ae-f32-mix-1.0")
UNSUPPORTED_MODEL_NAMES = {
    "dc-ae-f16-in-1.0": "the f16 DC-AE variant is not implemented here (DC-AR uses f32)",
    "dc-ae-f32-proxy-in-1.0": "this is the official config default, which the official DCHT itself rejects",
}

# Keys of the official HF config.json that carry no architecture information.
_HF_META_KEYS = {
    "model_type", "architectures", "auto_map", "transformers_version", "torch_dtype", "dtype", "_name_or_path",
    "pretrained_path", "codebook_show_usage", "disc_updated", "entropy_loss_ratio", "return_dict",
    "output_hidden_states", "output_attentions", "use_return_dict", "_commit_hash", "_attn_implementation_autoset",
}

# DC-AE dot-list keys whose only supported value is the one DC-AR uses (they fix the resampler types).
_FIXED_DOTLIST_VALUES = {
    "in_channels": "3",
    "encoder.in_channels": "3",
    "decoder.in_channels": "3",
    "encoder.latent_channels": None,  # checked against latent_channels instead
    "decoder.latent_channels": None,
    "encoder.downsample_block_type": "ConvPixelUnshuffle",
    "encoder.downsample_match_channel": "True",
    "encoder.downsample_shortcut": "averaging",
    "encoder.out_shortcut": "averaging",
    "encoder.double_latent": "False",
    "decoder.upsample_block_type": "ConvPixelShuffle",
    "decoder.upsample_match_channel": "True",
    "decoder.upsample_shortcut": "duplicating",
    "decoder.in_shortcut": "duplicating",
}


def _per_stage(value: Any, n: int, what: str) -> tuple:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{what}: expected {n} per-stage values, got {len(value)}: {list(value)}")
        return tuple(value)
    return (value,) * n


@dataclass
class DCHTConfig:
    """Everything that determines the DC-HT module tree and its behaviour.

    Encoder/decoder fields mirror the DC-AE dot-list keys (``encoder.width_list`` ->
    ``encoder_width_list``). Per-stage fields are tuples of one value per stage.
    ``codebook_embed_dim`` is also the latent channel count (as in the official code).
    """

    model_name: str = "dc-ae-f32-in-1.0"
    encoder_block_type: tuple[str, ...] = F32_BLOCKS
    encoder_width_list: tuple[int, ...] = (128, 256, 512, 512, 1024, 1024)
    encoder_depth_list: tuple[int, ...] = (0, 4, 8, 2, 2, 2)
    encoder_norm: tuple[str, ...] = ("ln2d",) * 6
    encoder_act: tuple[str, ...] = ("silu",) * 6
    decoder_block_type: tuple[str, ...] = F32_BLOCKS
    decoder_width_list: tuple[int, ...] = (128, 256, 512, 512, 1024, 1024)
    decoder_depth_list: tuple[int, ...] = (0, 5, 10, 2, 2, 2)
    decoder_norm: tuple[str, ...] = ("bn2d", "bn2d", "bn2d", "ln2d", "ln2d", "ln2d")
    decoder_act: tuple[str, ...] = ("relu", "relu", "relu", "silu", "silu", "silu")
    decoder_out_norm: str = "ln2d"
    decoder_out_act: str = "relu"
    codebook_size: int = 16384
    codebook_embed_dim: int = 32
    codebook_l2_norm: bool = True
    commit_loss_beta: float = 0.25
    quantizer_type: str = "hybrid_vq"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # unknown official keys, kept verbatim

    def __post_init__(self) -> None:
        n = len(self.encoder_width_list)
        for name in ("encoder_width_list", "encoder_depth_list", "decoder_width_list", "decoder_depth_list"):
            setattr(self, name, tuple(int(v) for v in getattr(self, name)))
        for side in ("encoder", "decoder"):
            for key in ("block_type", "norm", "act"):
                name = f"{side}_{key}"
                setattr(self, name, _per_stage(getattr(self, name), n, name))
        for name in ("encoder_depth_list", "decoder_width_list", "decoder_depth_list"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} stages, encoder_width_list has {n}")
        if self.encoder_width_list != self.decoder_width_list:
            raise ValueError("encoder and decoder width lists must match (DC-AE mirrors them)")
        if self.quantizer_type not in ("vq", "hybrid_vq"):
            raise ValueError(f"quantizer_type must be 'vq' or 'hybrid_vq', got {self.quantizer_type!r}")
        if self.codebook_size < 1 or self.codebook_embed_dim < 1:
            raise ValueError("codebook_size and codebook_embed_dim must be positive")

    # ------------------------------------------------------------------ derived

    @property
    def latent_channels(self) -> int:
        return self.codebook_embed_dim

    @property
    def hybrid(self) -> bool:
        return self.quantizer_type == "hybrid_vq"

    @property
    def spatial_compression(self) -> int:
        """Image side / latent side (32 for f32): x2 in project_in if stage 0 is empty, x2 per down-sampler."""
        factor = 2 if self.encoder_depth_list[0] == 0 else 1
        last = len(self.encoder_width_list) - 1
        for i, depth in enumerate(self.encoder_depth_list):
            if i < last and depth > 0:
                factor *= 2
        return factor

    # ------------------------------------------------------------------ presets

    @classmethod
    def tiny(cls, codebook_size: int = 1024) -> "DCHTConfig":
        """A small config for tests and smoke runs: same f32 topology and block types, narrow and shallow."""
        widths = (16, 32, 64, 64, 128, 128)
        return cls(
            model_name="dc-ae-f32-in-1.0",
            encoder_width_list=widths,
            encoder_depth_list=(0, 1, 1, 1, 1, 1),
            decoder_width_list=widths,
            decoder_depth_list=(0, 1, 1, 1, 1, 1),
            codebook_size=codebook_size,
        )

    # ------------------------------------------------------------------ official formats

    @classmethod
    def from_official(cls, source: Mapping[str, Any] | str | os.PathLike) -> "DCHTConfig":
        """Read an official config: HF ``config.json`` (model_type ``dc_ht``) or the parity-fixture JSON.

        ``source`` is a dict, a JSON file, or a directory holding ``config.json``. The fixture
        format is ``{"dc_ae_dotlist": "...", "DCHTConfig": {...}}``; an HF config may also
        carry ``dc_ae_dotlist`` (we write it for non-standard architectures), otherwise its
        ``model_name`` fixes the architecture.
        """
        data = _read_json(source) if not isinstance(source, Mapping) else dict(source)
        if "DCHTConfig" in data:
            fields = dict(data["DCHTConfig"])
            dotlist = data.get("dc_ae_dotlist")
        else:
            fields = dict(data)
            dotlist = fields.pop("dc_ae_dotlist", None)
            model_type = fields.get("model_type")
            if model_type is not None and model_type != "dc_ht":
                raise ValueError(f"config model_type is {model_type!r}, expected 'dc_ht' (a DC-HT tokenizer config)")
        model_name = fields.get("model_name", "dc-ae-f32-in-1.0")
        if dotlist is None:
            if model_name in UNSUPPORTED_MODEL_NAMES:
                raise ValueError(f"model_name {model_name!r} is not supported: {UNSUPPORTED_MODEL_NAMES[model_name]}")
            if model_name not in F32_MODEL_NAMES:
                raise ValueError(f"unknown model_name {model_name!r}; supported: {', '.join(F32_MODEL_NAMES)}")
            dotlist = DC_AE_F32C32_DOTLIST
        kwargs = _parse_dotlist(dotlist)
        latent = kwargs.pop("latent_channels", None)
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        extra = {}
        for key, value in fields.items():
            if key in known:
                kwargs[key] = value
            elif key not in _HF_META_KEYS:
                extra[key] = value
        if extra:
            logger.warning("DC-HT config: ignoring unknown keys %s", sorted(extra))
        embed = int(kwargs.get("codebook_embed_dim", 32))
        if latent is not None and int(latent) != embed:
            raise ValueError(f"dc_ae latent_channels={latent} differs from codebook_embed_dim={embed}")
        return cls(**kwargs, extra=extra)

    def to_dotlist(self) -> str:
        """The DC-AE dot-list of this architecture (the fixture/official format)."""

        def fmt(v: Any) -> str:
            return "[" + ",".join(str(x) for x in v) + "]"

        parts = [f"latent_channels={self.latent_channels}"]
        for side in ("encoder", "decoder"):
            for key in ("block_type", "width_list", "depth_list", "norm", "act"):
                parts.append(f"{side}.{key}={fmt(getattr(self, f'{side}_{key}'))}")
        parts.append(f"decoder.out_norm={self.decoder_out_norm}")
        parts.append(f"decoder.out_act={self.decoder_out_act}")
        return " ".join(parts)

    def is_released_architecture(self) -> bool:
        return _arch(self) == _arch(DCHTConfig())

    def to_official(self) -> dict[str, Any]:
        """An HF ``config.json`` dict in the official ``dc_ht`` format.

        ``dc_ae_dotlist`` is added only when the architecture is not the released f32c32
        (the official loader keeps unknown keys as attributes and ignores them).
        """
        out: dict[str, Any] = {
            "model_type": "dc_ht",
            "model_name": self.model_name,
            "codebook_size": self.codebook_size,
            "codebook_embed_dim": self.codebook_embed_dim,
            "codebook_l2_norm": self.codebook_l2_norm,
            "commit_loss_beta": self.commit_loss_beta,
            "quantizer_type": self.quantizer_type,
        }
        if not self.is_released_architecture():
            out["dc_ae_dotlist"] = self.to_dotlist()
        return out


def _arch(cfg: DCHTConfig) -> tuple:
    return tuple(getattr(cfg, f.name) for f in dataclasses.fields(cfg)
                 if f.name.startswith(("encoder_", "decoder_")))


def _read_json(source: str | os.PathLike) -> dict[str, Any]:
    path = Path(source)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        from harness.api import MissingResourceError

        raise MissingResourceError(f"DC-HT config not found: {path} (an HF-style DC-HT directory holds config.json "
                                   "beside the weights; or pass the config explicitly, e.g. --set model.config=...)")
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _parse_value(text: str) -> Any:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [_parse_value(t) for t in inner.split(",")] if inner else []
    try:
        return int(text)
    except ValueError:
        return text


def _parse_dotlist(dotlist: str) -> dict[str, Any]:
    """``"latent_channels=32 encoder.width_list=[8,16] ..."`` -> DCHTConfig keyword arguments."""
    out: dict[str, Any] = {}
    for item in dotlist.split():
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"malformed dc_ae dot-list entry {item!r} (expected key=value)")
        if key in _FIXED_DOTLIST_VALUES:
            expected = _FIXED_DOTLIST_VALUES[key]
            if expected is not None and raw != expected:
                raise ValueError(f"dc_ae dot-list {key}={raw} is not supported (only {expected})")
            if key.endswith("latent_channels"):
                out["latent_channels"] = int(raw)
            continue
        if key == "latent_channels":
            out["latent_channels"] = int(raw)
            continue
        side, dot, name = key.partition(".")
        if not dot or side not in ("encoder", "decoder") or name not in (
                "block_type", "width_list", "depth_list", "norm", "act", "out_norm", "out_act"):
            raise ValueError(f"unsupported dc_ae dot-list key {key!r}")
        if name in ("out_norm", "out_act") and side == "encoder":
            if raw not in ("null", "None"):
                raise ValueError(f"dc_ae dot-list {key}={raw} is not supported (the encoder has no output norm/act)")
            continue
        out[f"{side}_{name}"] = _parse_value(raw)
    return out
