"""Reading state-dict files and checking them against a model, strictly and by name.

Why a separate module: the same rules apply to every format a user may hold
(safetensors, ``pytorch_model.bin``, a ``.pt`` dump, an HF directory), and a mismatch
must name the keys at fault instead of surfacing as a shape error deep inside torch or,
worse, being ignored.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import torch
from harness.api import UserError

WEIGHT_FILE_NAMES = ("model.safetensors", "pytorch_model.bin")
_WRAPPER_KEYS = ("state_dict", "model", "module")


class StateDictMismatchError(UserError, ValueError):
    """The checkpoint's keys or shapes differ from the model's; the message lists them by name."""

    def __init__(self, missing: list[str], unexpected: list[str], mismatched: list[tuple[str, tuple, tuple]],
                 source: str = "checkpoint"):
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        lines = [f"{source} does not match the model:"]

        def listing(title: str, items: list[str]) -> None:
            if items:
                shown = items[:20]
                more = f" ... and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
                lines.append(f"  {title} ({len(items)}): " + ", ".join(shown) + more)

        listing("missing keys", missing)
        listing("unexpected keys", unexpected)
        listing("shape mismatches", [f"{k} (checkpoint {tuple(a)} vs model {tuple(b)})" for k, a, b in mismatched])
        super().__init__("\n".join(lines))


def find_weight_file(directory: str | os.PathLike) -> Path:
    """``model.safetensors`` or ``pytorch_model.bin`` inside an HF-style directory."""
    directory = Path(directory)
    for name in WEIGHT_FILE_NAMES:
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(
        f"no weights in {directory}: expected one of {', '.join(WEIGHT_FILE_NAMES)} "
        "(sharded checkpoints are not supported)")


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or a ``torch.save``d dict (read with ``weights_only=True``).

    A dict that wraps the weights under ``state_dict``/``model``/``module`` is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"state-dict file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    while isinstance(obj, Mapping) and len(obj) == 1 and next(iter(obj)) in _WRAPPER_KEYS:
        obj = next(iter(obj.values()))
    if not isinstance(obj, Mapping) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError(f"{path} does not hold a flat state dict of tensors")
    return dict(obj)


def check_state_dict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint"):
    """Raise :class:`StateDictMismatchError` unless keys and shapes equal the model's exactly."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [(k, tuple(v.shape), expected[k]) for k, v in state_dict.items()
                  if k in expected and tuple(v.shape) != expected[k]]
    if missing or unexpected or mismatched:
        raise StateDictMismatchError(missing, unexpected, mismatched, source)
