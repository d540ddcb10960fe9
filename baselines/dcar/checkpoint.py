"""The one checkpoint reader of DC-HT and DC-AR: official file formats in, a strictly loaded model out.

Why one module for both models: the same rules apply to every file a user may hold (a raw
``pytorch_model.bin`` as DC-AR ships it, a ``.pt`` dump, an HF-style directory with ``config.json``
+ ``model.safetensors`` as DC-HT ships it), and every way a file can be wrong must reach the user as
one message that names the file, says what is wrong and what to do -- never as a shape error deep in
torch, and never silently (a non-strict load would leave random weights behind real-looking numbers):

* a file that is no checkpoint at all (random bytes, text, a zip that torch did not write, an empty
  file) -> :class:`CheckpointFormatError`;
* keys or shapes that differ from the model -> :class:`StateDictMismatchError`, listing the first
  missing / unexpected keys and shape mismatches with their counts;
* NaN or Inf in a weight -> :class:`CheckpointFormatError` naming the tensor.

All three are :class:`harness.api.UserError` s, so the CLI prints them as one message and exits 1.
The file format is recognised from the file's first bytes, not its suffix (a safetensors file saved
as ``.bin`` still loads). Pickled files are read with ``torch.load(weights_only=True)``, which runs no
code from the file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, Sequence, TypeVar

import torch
from torch import nn

from harness.api import DataError, MissingResourceError, UserError

#: weight files looked for inside a directory, in order (safetensors first: it is read without unpickling)
WEIGHT_FILE_NAMES = ("model.safetensors", "pytorch_model.bin")
_WRAPPER_KEYS = ("state_dict", "model", "module")
_SHOWN = 10  # keys listed per category in a mismatch message

M = TypeVar("M", bound=nn.Module)


class StateDictMismatchError(UserError, ValueError):
    """The checkpoint's keys or shapes differ from the model's; the message lists them by name.

    Built by :func:`check_state_dict` (via :meth:`from_diff`); the lists stay available as attributes.
    """

    def __init__(self, message: str, *, missing: Sequence[str] = (), unexpected: Sequence[str] = (),
                 mismatched: Sequence[tuple[str, tuple, tuple]] = (), source: str = "checkpoint"):
        super().__init__(message)
        self.missing, self.unexpected, self.mismatched = list(missing), list(unexpected), list(mismatched)
        self.source = source

    @classmethod
    def from_diff(cls, missing: list[str], unexpected: list[str], mismatched: list[tuple[str, tuple, tuple]],
                  source: str = "checkpoint", fix: str = "") -> "StateDictMismatchError":
        """The error for these differences: first few keys of each kind with their counts, then what to do."""
        lines = [f"{source} does not match the model:"]

        def listing(title: str, items: list[str]) -> None:
            if items:
                shown = items[:_SHOWN]
                more = f" ... and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
                lines.append(f"  {title} ({len(items)}): " + ", ".join(shown) + more)

        listing("missing keys", missing)
        listing("unexpected keys", unexpected)
        listing("shape mismatches", [f"{k} (checkpoint {tuple(a)} vs model {tuple(b)})" for k, a, b in mismatched])
        lines.append("  fix: " + (fix or "check that the file is this model's checkpoint and that the config "
                                         "it is built with is the checkpoint's own"))
        return cls("\n".join(lines), missing=missing, unexpected=unexpected, mismatched=mismatched, source=source)


class CheckpointFormatError(DataError):
    """A file that cannot be a checkpoint of this model: unreadable, not a state dict, or NaN/Inf weights."""


# --------------------------------------------------------------------------- finding and reading files


def find_weights_file(path: str | os.PathLike, what: str = "model") -> Path:
    """``path`` itself if it is a file, else the first of :data:`WEIGHT_FILE_NAMES` inside the directory."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        for name in WEIGHT_FILE_NAMES:
            if (path / name).is_file():
                return path / name
        raise MissingResourceError(
            f"no {what} weights in {path}: expected one of {', '.join(WEIGHT_FILE_NAMES)} "
            "(sharded checkpoints are not supported)")
    raise MissingResourceError(f"{what} weights not found: {path}")


def _sniff(path: Path) -> str:
    """``"torch-zip"``, ``"torch-legacy"`` or ``"safetensors"`` from the first bytes; CheckpointFormatError otherwise."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    if not head:
        raise CheckpointFormatError(f"{path} is empty, not a checkpoint (an interrupted download or copy?)")
    if head.startswith(b"PK\x03\x04"):
        return "torch-zip"
    if head[:1] == b"\x80":  # pickle protocol marker: a torch.save file of the pre-1.6 format
        return "torch-legacy"
    if len(head) >= 9 and head[8:9] == b"{":  # safetensors: u64 header length, then a JSON header
        return "safetensors"
    raise CheckpointFormatError(
        f"{path} is not a checkpoint: it is neither a torch.save file nor safetensors "
        f"(first bytes {head[:8]!r}); point the weights option at the model's pytorch_model.bin / "
        "model.safetensors (or its directory)")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, on the CPU, with their stored dtypes.

    A dict that wraps the weights under ``state_dict`` / ``model`` / ``module`` (training checkpoints that
    also hold an optimizer or an epoch) is unwrapped. Anything else that is not a flat ``name -> tensor``
    mapping is refused with :class:`CheckpointFormatError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingResourceError(f"state-dict file not found: {path}")
    kind = _sniff(path)
    try:
        if kind == "safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise many types (UnpicklingError, RuntimeError, SafetensorError...)
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        what = {"torch-zip": "a zip archive but not a readable torch.save file",
                "torch-legacy": "not a readable torch.save file",
                "safetensors": "not a readable safetensors file"}[kind]
        raise CheckpointFormatError(f"{path} is {what} ({type(exc).__name__}: {first_line})") from exc
    while isinstance(obj, Mapping) and not _all_tensors(obj):
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not _all_tensors(obj):
        raise CheckpointFormatError(f"{path} does not hold a flat state dict of tensors ({_describe(obj)})")
    return dict(obj)


def _all_tensors(obj: Mapping) -> bool:
    return bool(obj) and all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items())


def _describe(obj: object) -> str:
    """What a non-state-dict object is, for the error message."""
    if not isinstance(obj, Mapping):
        return f"it holds a {type(obj).__name__}"
    if not obj:
        return "it is an empty mapping"
    k, v = next((k, v) for k, v in obj.items() if not (isinstance(k, str) and torch.is_tensor(v)))
    return f"key {k!r} holds a {type(v).__name__}"


# --------------------------------------------------------------------------- checking and loading


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint",
                     fix: str = "") -> None:
    """Raise :class:`StateDictMismatchError` unless keys and shapes equal the model's exactly."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [(k, tuple(v.shape), expected[k]) for k, v in state_dict.items()
                  if k in expected and tuple(v.shape) != expected[k]]
    if missing or unexpected or mismatched:
        raise StateDictMismatchError.from_diff(missing, unexpected, mismatched, source, fix)


def check_finite_weights(state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise :class:`CheckpointFormatError` naming every tensor (first few) that holds NaN or Inf."""
    bad = [(k, v) for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if not bad:
        return
    parts = [f"{k} ({int(torch.isnan(v).sum())} NaN, {int(torch.isinf(v).sum())} Inf)" for k, v in bad[:_SHOWN]]
    more = f" ... and {len(bad) - _SHOWN} more tensors" if len(bad) > _SHOWN else ""
    raise CheckpointFormatError(
        f"{source} has non-finite weights in {len(bad)} tensor(s): {', '.join(parts)}{more}; the file is corrupt "
        "or was saved from a diverged run: download or copy it again")


def load_pretrained(build: Callable[[], M], weight_file: str | os.PathLike, *, torch_dtype: torch.dtype | None = None,
                    device: str | torch.device | None = None, fix: str = "") -> M:
    """Build the model with ``build()`` on the meta device and load ``weight_file`` into it strictly.

    Order of checks: the file is a checkpoint, its keys and shapes are the model's, every weight is finite.
    Floating tensors are converted to ``torch_dtype`` (None: torch's default dtype, float32, whatever the file
    stores, so a half-precision file gives a float32 model); integer buffers keep theirs. The model comes back
    on ``device`` (None: CPU) in eval mode; parameters the model marks frozen (``requires_grad=False``) stay so.
    ``fix`` is the "what to do" line of a mismatch message.
    """
    weight_file = Path(weight_file)
    state = read_state_dict(weight_file)
    with torch.device("meta"):
        model = build()
    check_state_dict(model, state, source=str(weight_file), fix=fix)
    check_finite_weights(state, source=str(weight_file))
    dtype = torch_dtype or torch.get_default_dtype()
    state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    model.load_state_dict(state, strict=True, assign=True)
    params = dict(model.named_parameters())
    for name in frozen:
        params[name].requires_grad_(False)
    return model.to(torch.device(device) if device is not None else "cpu").eval()
