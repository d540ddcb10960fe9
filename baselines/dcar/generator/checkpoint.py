"""Reading the official generator checkpoint formats (raw ``pytorch_model.bin``, safetensors, directory).

Why separate from the model: path handling and file formats are not the network's business,
and the adapter reuses :func:`find_weights_file` to report what is missing.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch

from .config import DCARConfig, packaged_config_path, read_config_file

WEIGHT_FILE_NAMES = ("pytorch_model.bin", "model.safetensors", "diffusion_pytorch_model.safetensors")


def find_weights_file(path: str | os.PathLike) -> Path:
    """The weights file itself, or the first known weights file inside a directory."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        for name in WEIGHT_FILE_NAMES:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"no DC-AR weights ({', '.join(WEIGHT_FILE_NAMES)}) in directory {path}")
    raise FileNotFoundError(f"DC-AR generator weights not found: {path}")


def load_state_dict_file(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, torch.Tensor]:
    """Load a state_dict from ``.bin``/``.pt`` (torch.save) or ``.safetensors``; unwraps ``{"state_dict": ...}``."""
    file = find_weights_file(path)
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Mapping[str, Any] = load_file(str(file), device=str(map_location))
    else:
        state = torch.load(file, map_location=map_location, weights_only=True)
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(state, Mapping) and wrapper in state and isinstance(state[wrapper], Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"{file}: expected a state_dict (name -> tensor), got {type(state).__name__}")
    return dict(state)


def resolve_config(weights_path: str | os.PathLike, config: DCARConfig | str | os.PathLike | Mapping | None) -> DCARConfig:
    """The config to build the model with: explicit value, else a config file beside the weights, else the released one."""
    if isinstance(config, DCARConfig):
        return config
    if isinstance(config, Mapping):
        return DCARConfig.from_official(config)
    if config is not None:
        return DCARConfig.from_official(read_config_file(config))
    weights_path = Path(weights_path)
    folder = weights_path if weights_path.is_dir() else weights_path.parent
    for name in ("config.yaml", "dc_ar_t2i_512.yaml", "config.json"):
        candidate = folder / name
        if candidate.is_file():
            data = read_config_file(candidate)
            if "generator" in data.get("model", data):
                return DCARConfig.from_official(data)
    return DCARConfig.from_official(read_config_file(packaged_config_path()))
