"""Result type shared by the tokenizer and generator parity checks."""
from __future__ import annotations

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
