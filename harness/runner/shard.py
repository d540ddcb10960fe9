"""Which share of the planned items this process runs.

Why strided (item k goes to shard k mod n): neighbouring items often have similar
cost (same prompt family, same image size), so striding balances shards. The
shard comes from ``--shard i/n`` or, under ``torchrun``, from RANK / WORLD_SIZE.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Sequence, TypeVar

from harness.api import UserError

T = TypeVar("T")


class ShardError(UserError, ValueError):
    """A --shard value or RANK/WORLD_SIZE pair is invalid."""


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1
    from_torchrun: bool = False

    def __post_init__(self) -> None:
        if self.count < 1 or not (0 <= self.index < self.count):
            raise ShardError(f"invalid shard {self.index}/{self.count}: need 0 <= i < n and n >= 1")

    def select(self, items: Sequence[T]) -> list[T]:
        return list(items[self.index::self.count])

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"1/4"`` -> Shard(1, 4)."""
    i, sep, n = str(text).partition("/")
    try:
        if not sep:
            raise ValueError
        return Shard(int(i), int(n))
    except ValueError:
        raise ShardError(f"--shard expects i/n with integers 0 <= i < n (e.g. 0/2), got {text!r}") from None


def shard_from_env(env: Mapping[str, str] | None = None) -> Shard | None:
    """Shard from torchrun's RANK/WORLD_SIZE (LOCAL_RANK is only used for the device), or None."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env or "RANK" not in env:
        return None
    try:
        return Shard(int(env["RANK"]), int(env["WORLD_SIZE"]), from_torchrun=True)
    except ValueError:
        raise ShardError(f"bad torchrun environment RANK={env.get('RANK')!r} "
                         f"WORLD_SIZE={env.get('WORLD_SIZE')!r}") from None


def resolve_shard(explicit: Shard | str | None, env: Mapping[str, str] | None = None) -> Shard:
    """``--shard`` wins; under torchrun they must agree with the environment if both are given."""
    from_env = shard_from_env(env)
    if isinstance(explicit, str):
        explicit = parse_shard(explicit)
    if explicit is not None:
        if from_env is not None and from_env.count > 1 and (explicit.index, explicit.count) != (from_env.index,
                                                                                                from_env.count):
            raise ShardError(f"--shard {explicit} contradicts torchrun's RANK/WORLD_SIZE {from_env}")
        return explicit
    return from_env or Shard(0, 1)
