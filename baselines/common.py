"""What every adapter in ``baselines/`` does the same way: seeded random weights, batch padding, finite checks.

Why one module: these are promises the harness makes about *all* models (a random-weight run is labelled
as such, an item's pixels do not depend on how many items were left in its batch, a NaN is reported with
its origin instead of being quantised into a black pixel), so each is written once and every adapter calls it.

* **Random weights.** :func:`seeded` builds modules under a seeded copy of torch's global CPU generator and
  leaves the caller's generator as it was (the runner's per-item generators never see module construction);
  :func:`random_init_tag` is the one spelling (``random-init:<seed>``) recorded in ``info().weights``, and
  :func:`uses_random_init` is how ``real_weights`` is derived from it.
* **Batch padding.** :class:`BatchPadding` implements :meth:`harness.api.Adapter.set_batch_size`. Float32
  GEMM and convolution kernels choose their blocking from the tensor shapes, so a row computed in a batch of
  4 and the same row computed alone can differ in the last bits (measured here: ~1e-6 on the tiny DC-HT and
  DC-AE decoders, one grey level on a few DC-AR pixels). Padding every shorter call up to the run's batch
  size with copies of its last row keeps the shapes, hence the bits, of an item the same whether it ran in
  a full batch, in the last (short) batch or alone after a resume. Per-row results never depend on the
  *values* of the other rows (no op in these models reduces across the batch at inference), so the copies
  change nothing but the shape.
* **Finite checks.** :func:`require_finite` turns NaN/Inf in a tensor into a :class:`harness.api.DataError`
  that names the tensor and the batch rows.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from harness.api import DataError

if TYPE_CHECKING:  # pragma: no cover
    import torch

RANDOM_INIT_PREFIX = "random-init:"


# --------------------------------------------------------------------------- random weights


def random_init_tag(seed: int) -> str:
    """The ``info().weights`` value of a component built with seeded random weights: ``random-init:<seed>``."""
    return f"{RANDOM_INIT_PREFIX}{int(seed)}"


def is_random_init(value: str) -> bool:
    """Whether an ``info().weights`` value is a :func:`random_init_tag` (and not a file's sha256 or path)."""
    return str(value).startswith(RANDOM_INIT_PREFIX)


def uses_random_init(weights: Mapping[str, str]) -> bool:
    """True when any component of an ``info().weights`` mapping is random (then ``real_weights`` is False)."""
    return any(is_random_init(v) for v in weights.values())


def check_weights_or_seed(weights: Any, random_init_seed: int | None) -> None:
    """An adapter with one weights file takes either the file or a random-init seed; both at once is a mistake."""
    if weights is not None and random_init_seed is not None:
        raise ValueError("give either weights or random_init_seed, not both")


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's global CPU generator seeded to ``seed``; restore the caller's state after.

    Module constructors (``nn.Linear``, ``nn.Conv2d``, transformers' ``_init_weights``...) draw from the global
    generator, so building a model inside this block gives the same weights for the same seed in any process.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


# --------------------------------------------------------------------------- batch padding


def padded_rows(rows: Sequence[Any] | "torch.Tensor", target: int | None) -> Any:
    """``rows`` followed by copies of its last row up to ``target`` rows (unchanged if already that long).

    Works for a tensor (batch dimension 0) and for a list (prompts, seeds). An empty batch is not padded.
    """
    n = len(rows)
    extra = 0 if target is None or n == 0 else max(0, int(target) - n)
    if not extra:
        return rows
    import torch

    if torch.is_tensor(rows):
        return torch.cat([rows, rows[-1:].expand(extra, *rows.shape[1:])])
    return list(rows) + [rows[-1]] * extra


class BatchPadding:
    """Mixin implementing ``set_batch_size``: calls with fewer rows than the run's batch size are padded.

    The adapter pads its inputs with :meth:`_pad` and keeps the first ``n`` rows of the outputs. Without a
    ``set_batch_size`` call (scripts, tests) nothing is padded.
    """

    pad_to: int | None = None

    def set_batch_size(self, batch_size: int) -> None:
        """Pad every later call with fewer than ``batch_size`` rows up to it (see the module docstring)."""
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.pad_to = int(batch_size)

    def _pad(self, rows: Any) -> Any:
        return padded_rows(rows, self.pad_to)


# --------------------------------------------------------------------------- finite checks


def nonfinite_rows(t: "torch.Tensor") -> list[int]:
    """Indices (along dimension 0) of the rows of ``t`` that hold a NaN or an Inf."""
    import torch

    if not t.is_floating_point() or t.numel() == 0:
        return []
    bad = ~torch.isfinite(t.detach())
    if t.ndim == 0:
        return [0] if bool(bad) else []
    return bad.reshape(t.shape[0], -1).any(dim=1).nonzero().flatten().tolist()


def require_finite(t: "torch.Tensor", what: str, *, fix: str = "") -> None:
    """Raise :class:`DataError` naming ``what`` and the batch rows if ``t`` holds NaN or Inf values."""
    import torch

    rows = nonfinite_rows(t)
    if not rows:
        return
    n_nan, n_inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
    shown = ", ".join(map(str, rows[:10])) + (f" ... ({len(rows)} rows)" if len(rows) > 10 else "")
    hint = f"; {fix}" if fix else ""
    raise DataError(f"{what}: contains NaN or Inf values ({n_nan} NaN, {n_inf} Inf) in batch row(s) {shown}{hint}")


IMAGE_FIX = "the image was decoded or preprocessed wrongly upstream (check its file and the resize/crop step)"
