"""DC-AR generator: config, transformer + diffusion head, hybrid sampler, T5 text encoder, parity check.

Import what you need from the submodules; this package import stays light (no transformers import).
"""
from .config import DCARConfig
from .transformer import DCAR

__all__ = ["DCAR", "DCARConfig"]
