"""DC-HT, the hybrid image tokenizer of DC-AR, re-implemented weight-compatibly in plain PyTorch.

Public names: :class:`DCHT` (the model) and :class:`DCHTConfig` (its configuration; defaults
= the released f32c32 / 16384 x 32 hybrid-VQ model, :meth:`DCHTConfig.tiny` for tests).
"""
from ..checkpoint import StateDictMismatchError
from .config import DCHTConfig
from .model import DCHT

__all__ = ["DCHT", "DCHTConfig", "StateDictMismatchError"]
