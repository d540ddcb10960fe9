"""What every checkout adapter does the same way: settings, per-item randomness, image conversion, provenance.

Why per-item randomness needs care here: the official samplers draw their noise in one of two ways, and the
harness promise (an image depends on its prompt and seed only, docs/architecture.md principle 4) is kept
differently for each:

* **an explicit generator argument** (Show-o ``t2i_generate(generator=)``, Meissonic ``Pipeline(generator=)``, HART
  ``autoregressive_infer_cfg(g_seed=)``): one generator serves the whole batch, so rows of a batch share a
  stream. Each item is therefore sampled alone with a generator seeded by its own seed (and inside
  :func:`isolated_rng` as well, so a global draw the reading of the code missed is seeded too).
* **the global RNGs** (MaskGen's ``torch.rand``/``uniform_`` and ``np.random.shuffle`` orders, MAR's
  ``np.random.shuffle`` orders and diffusion noise, HART's orders and diffusion noise): each item is sampled
  alone inside :func:`isolated_rng`, which seeds torch (CPU and CUDA), numpy and ``random`` with the item's seed
  and restores all of them afterwards, so neither the runner nor the next item sees the official code's draws.

``rng_mode="batched"`` keeps the official batched call instead (faster, for throughput profiling); its images then
depend on the batch they were made in, and ``info().extra["rng_mode"]`` says so.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Mapping, Sequence

from baselines.common import require_finite
from harness.api import MissingResourceError, Requirement

from .repo import Checkout, CheckoutSpec, find_checkout, import_from_checkout

if TYPE_CHECKING:  # pragma: no cover
    import torch

RNG_MODES = ("per_item", "batched")


@contextlib.contextmanager
def isolated_rng(seed: int, device: "torch.device | str | None" = None) -> Iterator[None]:
    """Seed torch (CPU + the CUDA device), numpy and ``random`` with ``seed``; restore every state afterwards."""
    import random

    import numpy as np
    import torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    cuda = [dev.index or 0] if dev.type == "cuda" else []
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(int(seed))
        np.random.seed(int(seed) % (2**32))
        random.seed(int(seed))
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


def item_generator(seed: int, device: "torch.device | str" = "cpu") -> "torch.Generator":
    """A generator on ``device`` seeded by an item's seed (the official samplers draw on the model's device)."""
    import torch

    g = torch.Generator(device=torch.device(device))
    g.manual_seed(int(seed))
    return g


def to_harness_images(x: "torch.Tensor", value_range: tuple[float, float], what: str) -> "torch.Tensor":
    """An official output (B, 3, H, W) in ``value_range`` -> float32 CPU in [0, 1] (the harness convention)."""
    import torch

    if not torch.is_tensor(x) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{what}: expected images (B, 3, H, W), got {shape}")
    lo, hi = value_range
    y = x.detach().float().cpu()
    require_finite(y, what, fix="the official sampler produced NaN/Inf (check the weights and dtype)")
    return ((y - lo) / (hi - lo)).clamp(0, 1).contiguous()


def locate_weights(reqs: Sequence[tuple[Requirement, Any]]) -> dict[str, Any]:
    """``{requirement name: path}``; one :class:`MissingResourceError` lists every missing one."""
    from harness.resources import locate

    found, errors = {}, []
    for req, explicit in reqs:
        try:
            found[req.name] = locate(req, explicit)
        except MissingResourceError as exc:
            errors.append(str(exc))
    if errors:
        raise MissingResourceError("\n\n".join(errors))
    return found


def weights_record(paths: Mapping[str, Any]) -> dict[str, str]:
    """``{path: digest}`` for ``info().weights``: a file's sha256; a directory's ``tree-sha256:`` digest.

    A directory's digest hashes the relative name and size of every file under it plus the bytes of its small
    (< 1 MB) files (configs), not the bytes of multi-GB weight files: it changes when a file is swapped for
    one of another size or a config is edited, and costs no minutes of hashing per run.
    """
    import hashlib
    from pathlib import Path

    from harness.io import file_sha256

    out = {}
    for value in paths.values():
        p = Path(value)
        if p.is_file():
            out[str(p)] = file_sha256(p)
            continue
        h = hashlib.sha256()
        for f in sorted(q for q in p.rglob("*") if q.is_file() and ".git" not in q.relative_to(p).parts):
            size = f.stat().st_size
            h.update(f"{f.relative_to(p).as_posix()}\0{size}\0".encode())
            if size < 1_000_000:
                h.update(f.read_bytes())
        out[str(p)] = "tree-sha256:" + h.hexdigest()
    return out


class CheckoutAdapter:
    """Mixin: a verified checkout, the documented sampling settings, per-item or batched calls, provenance."""

    spec: ClassVar[CheckoutSpec]
    #: the documented sampling settings and where each comes from (recorded in info().extra)
    defaults: ClassVar[Mapping[str, Any]] = {}
    defaults_source: ClassVar[str] = ""
    #: how the official code draws its noise ("generator argument" or "global RNG"), for the record
    official_rng: ClassVar[str] = ""
    #: the official sampler moves tensors with .cuda() itself (MAR, MaskGen-KL, HART)
    cuda_only: ClassVar[bool] = False
    checkout: Checkout

    @classmethod
    def weight_requirements(cls) -> list[Requirement]:
        return []

    @classmethod
    def requirements(cls) -> list[Requirement]:
        return [cls.spec.requirement(), *cls.weight_requirements()]

    def _open_checkout(self, repo: str | None, modules: Sequence[str]) -> dict[str, Any]:
        self.checkout = find_checkout(self.spec, repo)
        return import_from_checkout(self.checkout, modules)

    def _resolve_device(self, device: str) -> "torch.device":
        """``auto`` = CUDA when available; a CUDA-only sampler on another device is refused before it loads."""
        import torch

        dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                           "cpu" if device == "auto" else device)
        if self.cuda_only and dev.type != "cuda":
            raise ValueError(f"{self.spec.name}'s official sampler calls .cuda() itself, so it runs on a CUDA device "
                             f"only; got device={dev} (set model.device=cuda on a machine with a GPU)")
        return dev

    def _init_settings(self, rng_mode: str, overrides: Mapping[str, Any]) -> None:
        if rng_mode not in RNG_MODES:
            raise ValueError(f"rng_mode must be one of {RNG_MODES}, got {rng_mode!r}")
        self.rng_mode = rng_mode
        self.settings = self._merge(overrides, base=dict(self.defaults))

    def _merge(self, overrides: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> dict[str, Any]:
        base = dict(self.settings if base is None else base)
        unknown = sorted(set(overrides) - set(base))
        if unknown:
            raise TypeError(f"unknown {type(self).__name__} option(s) {unknown}; known: {sorted(base)}")
        return {**base, **{k: v for k, v in overrides.items() if v is not None}}

    def _run(self, rows: Sequence[Any], seeds: Sequence[int], call: Callable[[list, list], "torch.Tensor"]
             ) -> "torch.Tensor":
        """``call(rows, seeds)`` per item (seeded alone) or once for the batch, by ``rng_mode``; always inside
        :func:`isolated_rng`, so the official code's global draws are seeded and the caller's RNGs restored."""
        import torch

        if len(rows) != len(seeds):
            raise ValueError(f"got {len(rows)} inputs but {len(seeds)} seeds")
        device = getattr(self, "device", None)
        if self.rng_mode == "batched":
            with isolated_rng(seeds[0], device):
                return call(list(rows), list(seeds))
        out = []
        for row, seed in zip(rows, seeds):
            with isolated_rng(seed, device):
                out.append(call([row], [seed]))
        return torch.cat(out)

    def _extra(self, **more: Any) -> dict[str, Any]:
        per_item = ("each item sampled alone, seeded by its own seed (global torch/numpy/random RNGs seeded with it "
                    "and restored around it)")
        return {
            "checkout": self.checkout.provenance(),
            "settings": dict(self.settings), "settings_source": self.defaults_source,
            "official_rng": self.official_rng,
            "rng_mode": self.rng_mode,
            "rng_note": per_item if self.rng_mode == "per_item" else
            "batched official call seeded by the batch's first seed: an image depends on its batch",
            **more,
        }
