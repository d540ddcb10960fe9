"""The helpers every adapter shares: seeded random init, batch padding, finite checks."""
from __future__ import annotations

import pytest
import torch

from baselines.common import (
    BatchPadding,
    is_random_init,
    nonfinite_rows,
    padded_rows,
    random_init_tag,
    require_finite,
    seeded,
    uses_random_init,
)
from harness.api import DataError


def test_seeded_builds_the_same_weights_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    with seeded(3):
        a = torch.nn.Linear(4, 4)
    with seeded(3):
        b = torch.nn.Linear(4, 4)
    with seeded(4):
        c = torch.nn.Linear(4, 4)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)


def test_random_init_tag_is_one_spelling():
    assert random_init_tag(7) == "random-init:7" and is_random_init("random-init:7")
    assert not is_random_init("0" * 64)
    assert uses_random_init({"a": "f" * 64, "b": random_init_tag(0)}) and not uses_random_init({"a": "f" * 64})


def test_every_random_weight_adapter_records_the_seed_the_same_way(tmp_path):
    from harness.registry import resolve

    pytest.importorskip("diffusers")
    adapters = [resolve("adapter", "dc-ht")(config="tiny", random_init_seed=3),
                resolve("adapter", "dc-ae")(random_init_seed=3),
                resolve("adapter", "dc-ar")(config="tiny", random_init_seed=3, device="cpu", cache_dir=str(tmp_path))]
    for adapter in adapters:
        info = adapter.info()
        assert set(info.weights.values()) == {"random-init:3"}, info.name
        assert info.real_weights is False


def test_padded_rows_repeats_the_last_row():
    assert padded_rows(["a", "b"], 4) == ["a", "b", "b", "b"]
    assert padded_rows([1, 2, 3], 2) == [1, 2, 3] and padded_rows([1], None) == [1] and padded_rows([], 3) == []
    x = torch.arange(6.0).reshape(2, 3)
    y = padded_rows(x, 3)
    assert y.shape == (3, 3) and torch.equal(y[2], x[1]) and torch.equal(y[:2], x)
    assert padded_rows(x, 2) is x


def test_batch_padding_mixin():
    class Model(BatchPadding):
        pass

    m = Model()
    assert m._pad([1]) == [1]  # no batch size told: nothing padded
    m.set_batch_size(3)
    assert m._pad([1]) == [1, 1, 1] and m.pad_to == 3
    for bad in (0, -2, 1.5, True, "4"):
        with pytest.raises((ValueError, TypeError)):
            m.set_batch_size(bad)


def test_require_finite_names_the_tensor_and_rows():
    x = torch.zeros(4, 2)
    require_finite(x, "fine")
    x[1, 0], x[3, 1] = float("nan"), float("inf")
    assert nonfinite_rows(x) == [1, 3]
    with pytest.raises(DataError, match=r"^my images: contains NaN or Inf values \(1 NaN, 1 Inf\) in batch row\(s\) "
                                        r"1, 3; look upstream$"):
        require_finite(x, "my images", fix="look upstream")
    require_finite(torch.zeros(2, dtype=torch.long), "ids")  # integers are always finite
