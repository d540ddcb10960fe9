"""Tests of the adapters' shared code run on one intra-op thread.

Why: their tensors are tiny, so OpenMP threading costs more than it saves, and on a shared 2-core
machine oversubscribed threads slow such tests by 10-50x (measured in tests/tokenizer); results do
not depend on the thread count.
"""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_intra_op_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
