"""Seeds belong to items, not to processes (docs/architecture.md, principle 4).

Each item's randomness comes from a CPU ``torch.Generator`` seeded by a stable hash
of (run seed, item id), so a result never depends on batch size, shard count,
process order or device.
"""
from __future__ import annotations

import hashlib


def item_seed(run_seed: int, item_id: str) -> int:
    """A stable 63-bit seed for ``item_id`` under ``run_seed`` (sha256, not Python's hash())."""
    digest = hashlib.sha256(f"{int(run_seed)}\x1f{item_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def item_generator(seed: int):
    """A CPU ``torch.Generator`` seeded with ``seed`` (draw on CPU, then move to device)."""
    import torch

    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed))
    return g
