"""Result type and comparison shared by the tokenizer and generator parity checks."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ParityResult:
    """One compared output: ``max_abs_diff`` for float outputs, mismatch count for indices."""

    group: str  # "tokenizer" | "generator"
    name: str  # output name in the fixture, e.g. "decoded_hybrid"
    max_abs_diff: float
    tolerance: float  # 0.0 means exact equality required
    exact: bool  # True for integer outputs (indices, generate ids)
    shape: tuple[int, ...] = ()

    @property
    def passed(self) -> bool:
        return self.max_abs_diff == 0.0 if self.exact else self.max_abs_diff <= self.tolerance


def compare(group: str, name: str, ours, theirs, tolerance: float, *, exact: bool | None = None,
            relative_to_scale: bool = False) -> ParityResult:
    """Max abs difference (mismatch count for exact outputs) of ``ours`` vs the saved ``theirs``.

    ``exact`` defaults to "the saved output is not floating point" (indices, ids, timestep maps).
    ``relative_to_scale`` multiplies the tolerance by ``max(1, max|theirs|)`` (used for probes). A shape
    difference or a NaN/Inf difference is an infinite difference (a failure), never a silent pass.
    """
    import torch

    if relative_to_scale and theirs.numel():
        tolerance = tolerance * max(1.0, float(theirs.abs().max().item()))
    if exact is None:
        exact = not theirs.is_floating_point()
    shape = tuple(theirs.shape)
    if tuple(ours.shape) != shape:
        return ParityResult(group, f"{name} (shape {tuple(ours.shape)} != {shape})", math.inf,
                            0.0 if exact else tolerance, exact, shape)
    if exact:
        mismatches = float((ours.detach().cpu().long() != theirs.long()).sum().item())
        return ParityResult(group, name, mismatches, 0.0, True, shape)
    diff = (ours.detach().cpu().double() - theirs.double()).abs()
    value = float(diff.max().item()) if diff.numel() else 0.0
    if not torch.isfinite(diff).all():
        value = math.inf
    return ParityResult(group, name, value, tolerance, False, shape)
