"""Registered image-tokenizer adapters for DC-HT: ``dc-ht`` (continuous + discrete paths) and ``dc-ht-discrete``.

Why two names: the paper's Table 1 compares DC-HT's continuous/hybrid reconstruction
with its discrete-only reconstruction, and a suite selects a model by registered name.
Both adapters take and return float images in [0, 1] (``harness.images``) and map to
DC-HT's [-1, 1] internally; they never choose seeds or compute metrics.

Weights are looked up offline: the ``weights`` option, ``$DCAR_DCHT_PATH``, then the
Hugging Face cache of ``mit-han-lab/dc-ht``. Without weights the adapter refuses to run
unless ``random_init_seed`` asks explicitly for random weights, and then its
``info().real_weights`` is False so reports cannot mistake the numbers for the paper's.

Batch shape: DC-HT's float32 convolutions and attention round differently at different batch
sizes (measured on the tiny config: up to ~1e-6 between an image reconstructed alone and in a
batch of 4), so after :meth:`set_batch_size` every shorter call is padded to the run's batch size
(:class:`baselines.common.BatchPadding`); token ids are unaffected either way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Mapping

import torch

from baselines.common import IMAGE_FIX, BatchPadding, check_weights_or_seed, random_init_tag, require_finite, seeded
from harness.api import AdapterInfo, ImageTokenizer, Requirement
from harness.images import check_batch
from harness.io import file_sha256
from harness.resources import locate

from .checkpoint import find_weights_file
from .mini import WEIGHTS_NOTE as MINI_NOTE
from .mini import weights_kind
from .tokenizer import DCHT, DCHTConfig

DCHT_WEIGHTS = Requirement(
    name="DC-HT tokenizer weights",
    description=("the released DC-HT tokenizer (config.json + model.safetensors or pytorch_model.bin; "
                 "NVIDIA non-commercial license). Get it with "
                 "`git lfs install && git clone https://huggingface.co/mit-han-lab/dc-ht`, then point "
                 "DCAR_DCHT_PATH (or the adapter option named on the explicit line) at the clone; a raw "
                 "state-dict file also works."),
    env_var="DCAR_DCHT_PATH",
    config_key="weights",
    hf_repo="mit-han-lab/dc-ht",
    default_paths=("pretrained_models/dc-ht",),  # where the official inference config expects it
    must_contain=("model.safetensors", "pytorch_model.bin"),
)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}
_CONFIG_PRESETS = {"full": DCHTConfig, "tiny": DCHTConfig.tiny}


class DCHTAdapter(BatchPadding, ImageTokenizer):
    """DC-HT reconstruction through the ``continuous`` (default) or ``discrete`` path.

    ``continuous`` decodes the L2-normalised encoder latent, which is exactly what the
    hybrid path decodes (codes + the encoder's residual tokens); ``discrete`` decodes the
    codes alone.

    Options: ``weights`` (directory or state-dict file), ``config`` (``"full"``, ``"tiny"``,
    ``"mini"`` -- the shipped mini-trained DC-HT of the main job, not the released weights -- or a path to an
    official config JSON), ``random_init_seed`` (build seeded random
    weights instead of loading), ``device``, ``dtype`` (``"float32"``, ``"bfloat16"``...),
    ``resolution`` (recorded only; DC-HT works at any multiple of 32).
    """

    name: ClassVar[str] = "dc-ht"
    paths: ClassVar[tuple[str, ...]] = ("continuous", "discrete")
    default_path: ClassVar[str] = "continuous"
    downsample: ClassVar[int] = 32

    def __init__(self, weights: str | None = None, config: str = "full", random_init_seed: int | None = None,
                 device: str = "cpu", dtype: str = "float32", resolution: int | None = None):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
        check_weights_or_seed(weights, random_init_seed)
        self.options = {"weights": weights, "config": config, "random_init_seed": random_init_seed,
                        "device": device, "dtype": dtype, "resolution": resolution}
        self.device = torch.device(device)
        self.dtype = _DTYPES[dtype]
        self.resolution = resolution
        if config == "mini":
            if random_init_seed is not None:
                raise ValueError("config='mini' loads the shipped mini-trained DC-HT; random_init_seed does not apply. "
                                 "Fix: drop random_init_seed, or use config='tiny' for random weights")
            if weights is None:
                from .mini import mini_component

                weights = str(mini_component("dcht"))
            config = "full"  # the config.json beside the mini weights
        explicit_config = self._config_from_option(config)
        if random_init_seed is not None:
            cfg = explicit_config or DCHTConfig()
            with seeded(random_init_seed):
                model = DCHT(cfg)
            self.weights_path: Path | None = None
            self._weights_record = {"weights": random_init_tag(random_init_seed)}
        else:
            self.weights_path = locate(DCHT_WEIGHTS, explicit=weights)
            model = DCHT.from_pretrained(self.weights_path, explicit_config)
            self._weights_record = self._hash_weights(self.weights_path)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.weights_kind = weights_kind({"dcht": str(self.weights_path) if self.weights_path is not None
                                          else self._weights_record["weights"]})

    # ------------------------------------------------------------------ construction helpers

    @staticmethod
    def _config_from_option(config: str | Mapping[str, Any] | DCHTConfig) -> DCHTConfig | None:
        """``"full"`` -> None (use the checkpoint's config.json or the released one), ``"tiny"``, or a JSON path/dict."""
        if isinstance(config, DCHTConfig):
            return config
        if isinstance(config, Mapping):
            return DCHTConfig.from_official(config)
        if config == "full":
            return None
        if config in _CONFIG_PRESETS:
            return _CONFIG_PRESETS[config]()
        if Path(config).exists():
            return DCHTConfig.from_official(config)
        raise ValueError(f"config must be 'full', 'tiny' or a path to a DC-HT config JSON, got {config!r}")

    @staticmethod
    def _hash_weights(path: Path) -> dict[str, str]:
        """sha256 of the file actually loaded (and of the directory's config.json)."""
        if path.is_file():
            return {path.name: file_sha256(path)}
        files = [path / "config.json"] if (path / "config.json").is_file() else []
        files.append(find_weights_file(path, "DC-HT"))
        return {p.name: file_sha256(p) for p in files}

    @classmethod
    def requirements(cls) -> list[Requirement]:
        return [DCHT_WEIGHTS]

    def info(self) -> AdapterInfo:
        return AdapterInfo(
            name=self.name,
            kind=self.kind,
            resolution=self.resolution,
            dtype=self.options["dtype"],
            num_params=self.model.num_params,
            weights=dict(self._weights_record),
            real_weights=self.weights_kind == "checkpoint",
            extra={"weights_kind": self.weights_kind,
                   **({"weights_note": MINI_NOTE} if self.weights_kind == "mini-trained" else {}),"paths": list(self.paths), "default_path": self.default_path,
                   "config": self.model.config.to_official(), "config_option": str(self.options["config"]),
                   "device": str(self.device), "spatial_compression": self.model.spatial_compression},
        )

    # ------------------------------------------------------------------ work

    def _to_model_input(self, images: torch.Tensor) -> torch.Tensor:
        """Checked, padded to the run's batch size, moved to the device and mapped to [-1, 1]."""
        if torch.is_tensor(images):
            require_finite(images, f"{self.name} input images", fix=IMAGE_FIX)
        check_batch(images, multiple_of=self.model.spatial_compression)
        if not images.is_floating_point():
            raise TypeError(f"images must be float in [0, 1], got {images.dtype}")
        return self._pad(images).to(self.device, self.dtype) * 2.0 - 1.0

    @staticmethod
    def _to_unit_range(x: torch.Tensor) -> torch.Tensor:
        return (x.float() * 0.5 + 0.5).clamp(0.0, 1.0).cpu()

    def reconstruct(self, images: torch.Tensor, path: str | None = None) -> torch.Tensor:
        """images float (B, 3, H, W) in [0, 1], H, W multiples of 32 -> reconstructions in [0, 1] (float32, CPU)."""
        path = self.default_path if path is None else path
        if path not in self.paths:
            raise ValueError(f"{self.name} has no reconstruction path {path!r}; paths: {', '.join(self.paths)}")
        n = images.shape[0] if torch.is_tensor(images) else 0
        x = self._to_model_input(images)
        with torch.inference_mode():
            z = self.model.encode(x)
            if path == "continuous":
                latent = self.model.latent_features(z)
            else:
                latent, _ = self.model.quantize(z)
            out = self.model.decode(latent)[:n]
        require_finite(out, f"{self.name} reconstruction ({path} path)",
                       fix="the weights or the dtype overflow (try dtype=float32)")
        return self._to_unit_range(out)

    def tokenize(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images in [0, 1] -> ``{"ids": (B, N) long, "residual": (B, N, 32) float32}``, raster order, CPU."""
        n = images.shape[0] if torch.is_tensor(images) else 0
        x = self._to_model_input(images)
        with torch.inference_mode():
            tokens = self.model.tokenize(x)
        return {"ids": tokens["ids"][:n].cpu(), "residual": tokens["residual"][:n].float().cpu()}

    def decode_tokens(self, ids: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """Token ids (B, N) [+ residual tokens (B, N, 32)] -> images (B, 3, H, W) in [0, 1] (float32, CPU)."""
        n = ids.shape[0] if torch.is_tensor(ids) and ids.ndim else 0
        if residual is not None and torch.is_tensor(residual):
            require_finite(residual, f"{self.name} residual tokens")
        with torch.inference_mode():
            res = None if residual is None else self._pad(residual).to(self.device)
            return self._to_unit_range(self.model.decode_tokens(self._pad(ids).to(self.device), res)[:n])

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]


class DCHTDiscreteAdapter(DCHTAdapter):
    """DC-HT restricted to its discrete path (codes only): the discrete-tokenizer row of Table 1."""

    name: ClassVar[str] = "dc-ht-discrete"
    paths: ClassVar[tuple[str, ...]] = ("discrete",)
    default_path: ClassVar[str] = "discrete"
