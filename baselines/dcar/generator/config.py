"""The DC-AR generator configuration and the parsing of the official config files.

Why a flat dataclass: the official code spreads the values that shape the network over
three levels of an OmegaConf tree (``model.vq_model``, ``model.generator``,
``model.generator.diffusion``, plus ``model.text_token_length``/``context_dim``). The
model code only needs the flat list below; :meth:`DCARConfig.from_official` is the one
place that knows the official layout (YAML ``configs/inference/dc_ar_t2i_512.yaml`` or
the JSON dump of it used by the parity fixture).

Sampling defaults are recorded here too, with the source of each: the released config
and demo use ``guidance_scale 4.5`` (official convention ``cond + s(cond - uncond)``),
``randomize_temperature 1.5``, 12 token steps and **32** diffusion steps. The paper's
appendix says 20 diffusion steps (and a randomized temperature of 4.5); we default to the
released values because they are what the released weights were published with and what
the official code runs; both are options.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from harness.api import MissingResourceError

logger = logging.getLogger(__name__)

#: where each default sampling value comes from (recorded in adapter info / results)
SAMPLING_DEFAULTS_SOURCE = {
    "num_steps": "configs/inference/dc_ar_t2i_512.yaml generator.num_steps = 12 (paper: 12)",
    "guidance_scale": "config generator.guidance_scale = 4.5, convention cond + s*(cond - uncond) (paper: 4.5)",
    "randomize_temperature": "config generator.randomize_temperature = 1.5 and demo (paper appendix says 4.5)",
    "num_diffusion_steps": "config generator.diffusion.num_sampling_steps = '32' (paper appendix says 20)",
}


@dataclass
class DCARConfig:
    """Every value that determines the DC-AR module tree, plus the released sampling defaults.

    Field names follow the official config keys where one exists (``hidden_size``,
    ``num_hidden_layers``...); the diffusion-head fields are prefixed ``diffusion_``.
    """

    # token space (vq_model)
    codebook_size: int = 16384
    token_size: int = 32  # residual-token channels = DC-HT latent channels
    image_seq_len: int = 256  # 16 x 16 latent grid at 512 px
    # transformer (generator)
    hidden_size: int = 1152
    num_hidden_layers: int = 28
    num_attention_heads: int = 16
    intermediate_size: int = 4608
    qk_norm: bool = True
    pos_embed_base_size: int = 16  # PixArt sin-cos: coordinate = index * base_size / grid side
    # text conditioning
    text_model: str = "google-t5/t5-base"
    text_token_length: int = 300
    context_dim: int = 768
    # diffusion head (generator.diffusion)
    diffusion_width: int = 1024
    diffusion_depth: int = 6
    diffusion_num_sampling_steps: str = "32"
    diffusion_train_steps: int = 1000
    vae_scale: float = 0.107
    diffusion_batch_mul: int = 4  # training only
    # released sampling defaults (generator)
    num_steps: int = 12
    guidance_scale: float = 4.5
    guidance_decay: str = "constant"
    randomize_temperature: float = 1.5
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # unknown official keys, kept verbatim

    def __post_init__(self) -> None:
        positive = ("codebook_size", "token_size", "image_seq_len", "hidden_size", "num_hidden_layers",
                    "num_attention_heads", "intermediate_size", "text_token_length", "context_dim",
                    "diffusion_width", "diffusion_depth", "num_steps")
        for name in positive:
            value = int(getattr(self, name))
            if value < 1:
                raise ValueError(f"DCARConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
            setattr(self, name, value)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_attention_heads}")
        side = round(self.image_seq_len ** 0.5)
        if side * side != self.image_seq_len:
            raise ValueError(f"image_seq_len must be a square number (a square token grid), got {self.image_seq_len}")
        if self.diffusion_width % 2:
            raise ValueError("diffusion_width must be even")
        self.diffusion_num_sampling_steps = str(self.diffusion_num_sampling_steps)

    # ------------------------------------------------------------------ derived

    @property
    def mask_token_id(self) -> int:
        """The [MASK] id is one past the last codebook id (official ``mask_token_id = codebook_size``)."""
        return self.codebook_size

    @property
    def grid_size(self) -> int:
        return round(self.image_seq_len ** 0.5)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def default_num_diffusion_steps(self) -> int:
        """The released diffusion step count as an int (the config stores the respacing string)."""
        steps = self.diffusion_num_sampling_steps
        if steps.startswith("ddim"):
            return int(steps[4:])
        return sum(int(s) for s in steps.split(","))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["extra"] = dict(self.extra)
        return d

    # ------------------------------------------------------------------ presets

    @classmethod
    def full(cls) -> "DCARConfig":
        """The released DC-AR 512 px model (``dc_ar_t2i_512.yaml``): 635.4M transformer + 36.2M head."""
        return cls()

    @classmethod
    def tiny(cls, codebook_size: int = 1024, image_seq_len: int = 16, context_dim: int = 32) -> "DCARConfig":
        """A few-hundred-kB model for tests and the harness smoke run (same module tree, tiny widths)."""
        return cls(
            codebook_size=codebook_size,
            image_seq_len=image_seq_len,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            text_token_length=32,
            context_dim=context_dim,
            diffusion_width=32,
            diffusion_depth=2,
            diffusion_num_sampling_steps="4",
            num_steps=4,
        )

    @classmethod
    def mini(cls, codebook_size: int = 256, image_seq_len: int = 16, context_dim: int = 32) -> "DCARConfig":
        """The mini-trained default generator (``baselines/dcar/mini_weights``): 4 layers of width 128, 128 px.

        Why wider than ``tiny``: it has to learn to follow captions in minutes on a CPU; ``tiny`` stays the
        few-hundred-kB random model of the tests.
        """
        return cls(
            codebook_size=codebook_size,
            image_seq_len=image_seq_len,
            hidden_size=128,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=512,
            text_model="tiny offline T5 (baselines/dcar/mini_weights/t5)",
            text_token_length=64,
            context_dim=context_dim,
            diffusion_width=64,
            diffusion_depth=2,
            diffusion_num_sampling_steps="16",
            num_steps=8,
            guidance_scale=1.5,
            randomize_temperature=1.0,
        )

    # ------------------------------------------------------------------ official formats

    @classmethod
    def from_official(cls, source: Mapping[str, Any] | str | os.PathLike) -> "DCARConfig":
        """Read the official generator config (OmegaConf YAML or its JSON dump).

        ``source`` is a mapping, a ``.yaml``/``.yml``/``.json`` file, or a directory holding
        one of ``config.yaml``, ``dc_ar_t2i_512.yaml``, ``config.json``. The top level may be
        the whole file (``{"model": {...}}``) or the ``model`` section itself.
        """
        data = read_config_file(source) if not isinstance(source, Mapping) else dict(source)
        model = data.get("model", data)
        if not isinstance(model, Mapping) or "generator" not in model:
            raise ValueError(
                "not a DC-AR generator config: expected a 'model.generator' section "
                f"(top-level keys: {sorted(data)})")
        gen = dict(model["generator"])
        vq = dict(model.get("vq_model", {}))
        diff = dict(gen.pop("diffusion", {}) or {})
        model_type = gen.get("model_type", "DCAR")
        if model_type != "DCAR":
            raise ValueError(f"generator.model_type is {model_type!r}; only 'DCAR' is supported")
        for key, allowed in (("attn_type", ("flash",)), ("ffn_type", ("mlp",))):
            if key in gen and gen[key] not in allowed:
                raise ValueError(f"generator.{key}={gen[key]!r} is not supported (supported: {allowed})")
        kwargs: dict[str, Any] = {}
        used: set[str] = set()

        def take(section: Mapping[str, Any], key: str, name: str | None = None, tag: str = "") -> None:
            if key in section:
                kwargs[name or key] = section[key]
                used.add(f"{tag}{key}")

        take(vq, "codebook_size", tag="vq.")
        take(vq, "token_size", tag="vq.")
        for key in ("image_seq_len", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                    "qk_norm", "num_steps", "guidance_scale", "guidance_decay", "randomize_temperature"):
            take(gen, key, tag="gen.")
        take(diff, "width", "diffusion_width", tag="diff.")
        take(diff, "depth", "diffusion_depth", tag="diff.")
        take(diff, "num_sampling_steps", "diffusion_num_sampling_steps", tag="diff.")
        take(diff, "vae_scale", tag="diff.")
        take(diff, "batch_mul", "diffusion_batch_mul", tag="diff.")
        take(model, "text_model")
        take(model, "text_token_length")
        take(model, "context_dim")
        if "sampler" in diff and diff["sampler"] != "iddpm":
            raise ValueError(f"generator.diffusion.sampler={diff['sampler']!r}; only 'iddpm' is supported")
        known_unused = {"type", "model_type", "attn_type", "ffn_type", "dropout", "attn_drop", "class_label_dropout",
                        "drop_path", "guidance_scale_pow"}
        extra = {k: v for k, v in gen.items() if f"gen.{k}" not in used and k not in known_unused}
        if extra:
            logger.info("DC-AR config: keeping unused generator keys %s", sorted(extra))
        return cls(**kwargs, extra=extra)

    def to_official(self) -> dict[str, Any]:
        """The official nested layout (what :meth:`from_official` reads), e.g. to save next to weights."""
        return {
            "model": {
                "vq_model": {"codebook_size": self.codebook_size, "token_size": self.token_size,
                             "num_latent_tokens": self.image_seq_len},
                "generator": {
                    "model_type": "DCAR", "hidden_size": self.hidden_size,
                    "num_hidden_layers": self.num_hidden_layers, "num_attention_heads": self.num_attention_heads,
                    "intermediate_size": self.intermediate_size, "attn_type": "flash", "ffn_type": "mlp",
                    "qk_norm": self.qk_norm, "num_steps": self.num_steps, "image_seq_len": self.image_seq_len,
                    "randomize_temperature": self.randomize_temperature, "guidance_scale": self.guidance_scale,
                    "guidance_decay": self.guidance_decay,
                    "diffusion": {"width": self.diffusion_width, "depth": self.diffusion_depth, "sampler": "iddpm",
                                  "num_sampling_steps": self.diffusion_num_sampling_steps,
                                  "batch_mul": self.diffusion_batch_mul, "vae_scale": self.vae_scale},
                },
                "text_model": self.text_model,
                "text_token_length": self.text_token_length,
                "context_dim": self.context_dim,
            }
        }


_CONFIG_NAMES = ("config.yaml", "dc_ar_t2i_512.yaml", "config.yml", "config.json")


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Load a YAML or JSON config file (or the first known config file in a directory) as a dict.

    OmegaConf YAML is plain YAML; if ``omegaconf`` is installed, interpolations are resolved with it.
    """
    path = Path(path)
    if path.is_dir():
        for name in _CONFIG_NAMES:
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise MissingResourceError(f"no DC-AR config file ({', '.join(_CONFIG_NAMES)}) in directory {path}")
    if not path.is_file():
        raise MissingResourceError(f"DC-AR config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
    else:
        try:
            from omegaconf import OmegaConf

            data = OmegaConf.to_container(OmegaConf.create(text), resolve=True)
        except ImportError:
            import yaml

            data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def packaged_config_path() -> Path:
    """The released inference config, as shipped with this package (``data/dc_ar_t2i_512.yaml``)."""
    return Path(__file__).with_name("data") / "dc_ar_t2i_512.yaml"


def resolve_config(weights_path: str | os.PathLike, config: "DCARConfig | str | os.PathLike | Mapping | None"
                   ) -> DCARConfig:
    """The config to build the model with: explicit value, else a config file beside the weights, else the released one.

    A config file beside the weights counts only if it describes a generator (a DC-HT ``config.json`` in the
    same folder is not mistaken for one).
    """
    if isinstance(config, DCARConfig):
        return config
    if isinstance(config, Mapping):
        return DCARConfig.from_official(config)
    if config is not None:
        return DCARConfig.from_official(read_config_file(config))
    weights_path = Path(weights_path).expanduser()
    folder = weights_path if weights_path.is_dir() else weights_path.parent
    for name in ("config.yaml", "dc_ar_t2i_512.yaml", "config.json"):
        candidate = folder / name
        if candidate.is_file():
            data = read_config_file(candidate)
            if "generator" in data.get("model", data):
                return DCARConfig.from_official(data)
    return DCARConfig.from_official(read_config_file(packaged_config_path()))
