"""Names -> lazily imported classes, with did-you-mean on typos.

Why a static table of import strings instead of decorators: ``dcar-bench ls`` and
``--help`` must not import torch or any model library, and a missing optional
dependency must only break the adapter or suite that needs it (docs/architecture.md, principle 1).
Third parties can add entries with :func:`register` or the ``dcar_bench.adapters`` /
``dcar_bench.suites`` entry-point groups.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Any

from harness.api import MissingDependencyError, UserError

KINDS = ("adapter", "suite", "metric", "tool")

# name -> "module:attribute"
_TABLE: dict[str, dict[str, str]] = {
    "adapter": {
        "dummy-t2i": "baselines.dummy:DummyTextToImage",
        "dummy-tokenizer": "baselines.dummy:DummyTokenizer",
        "dummy-c2i": "baselines.dummy:DummyClassToImage",
        "dc-ht": "baselines.dcar.tokenizer_adapter:DCHTAdapter",
        "dc-ht-discrete": "baselines.dcar.tokenizer_adapter:DCHTDiscreteAdapter",
        "dc-ar": "baselines.dcar.generator_adapter:DCARAdapter",
        "dc-ar-discrete-only": "baselines.dcar.generator_adapter:DCARDiscreteOnlyAdapter",
        "dc-ae": "baselines.diffusers_dcae:DCAEAdapter",
        "dc-ae-f32c32": "baselines.diffusers_dcae:DCAEF32C32Adapter",
        "pixart-alpha-512": "baselines.diffusers_t2i:PixArtAlpha512",
        "pixart-sigma-512": "baselines.diffusers_t2i:PixArtSigma512",
        "sana-0.6b-512": "baselines.diffusers_t2i:Sana06B512",
        "sdxl-1024": "baselines.diffusers_t2i:SDXL1024",
        "sdxl-512": "baselines.diffusers_t2i:SDXL512",
        "sd3-medium-1024": "baselines.diffusers_t2i:SD3Medium1024",
        "playground-v2.5-1024": "baselines.diffusers_t2i:PlaygroundV25_1024",
        # peers driven through a user's checkout of their official code (baselines/checkout/)
        "show-o": "baselines.checkout.showo:ShowoAdapter",
        "maskgen-vq": "baselines.checkout.maskgen:MaskGenVQAdapter",
        "maskgen-kl": "baselines.checkout.maskgen:MaskGenKLAdapter",
        "meissonic": "baselines.checkout.meissonic:MeissonicAdapter",
        "titok": "baselines.checkout.titok:TiTokAdapter",
        "mar-b": "baselines.checkout.mar:MARAdapter",
        "hart": "baselines.checkout.hart:HARTAdapter",
    },
    "suite": {
        "dummy": "suites.dummy:DummySuite",
        "imagenet_recon": "suites.imagenet_recon:ImageNetReconSuite",
        "geneval": "suites.geneval:GenEvalSuite",
        "geneval_detect": "suites.geneval_detect:GenEvalDetectSuite",
        "mjhq_fid": "suites.mjhq_fid:MJHQFIDSuite",
        "profile": "suites.profile:ProfileSuite",
        "imagenet_gfid": "suites.imagenet_gfid:ImageNetGFIDSuite",
        "steps_sweep": "suites.steps_sweep:StepsSweepSuite",
        "tokenizer_ablation": "suites.tokenizer_ablation:TokenizerAblationSuite",
        "train_efficiency": "suites.train_efficiency:TrainEfficiencySuite",
        "caption_following": "suites.caption_following:CaptionFollowingSuite",
    },
    "metric": {
        "psnr": "harness.metrics.recon:PSNR",
        "ssim": "harness.metrics.recon:SSIM",
        "lpips": "harness.metrics.recon:LPIPS",
        "fid": "harness.metrics.fid:FID",
        "kid": "harness.metrics.fid:KID",
        "geneval": "harness.geneval.rules:GENEVAL_METRIC",
    },
    "tool": {
        "parity": "baselines.dcar.parity:main",
        "geneval": "harness.geneval.cli:main",
        "stats": "harness.metrics.stats_tool:main",
        "train": "dcar_training.cli:main",
    },
}

#: adapter name -> the paper table(s) it belongs to, for `dcar-bench ls` (data only: add a row with an adapter)
TABLE_GROUPS: dict[str, str] = {
    "dc-ht": "Table 1 (tokenizers)", "dc-ht-discrete": "Table 4 (tokenizer ablation)",
    "dc-ae": "golden sanity check (tokenizer)", "dc-ae-f32c32": "Table 1 (tokenizers)",
    "dc-ar": "Tables 2-3 (text-to-image)", "dc-ar-discrete-only": "Table 4 (generator ablation)",
    "pixart-alpha-512": "Tables 2-3 (text-to-image)", "pixart-sigma-512": "Tables 2-3 (text-to-image)",
    "sana-0.6b-512": "Tables 2-3 (text-to-image)", "sdxl-1024": "Tables 2-3 (text-to-image)",
    "sdxl-512": "profile only (SDXL at 512 px)", "sd3-medium-1024": "Tables 2-3 (text-to-image)",
    "playground-v2.5-1024": "Tables 2-3 (text-to-image)",
    "show-o": "Tables 2-3 (text-to-image)", "maskgen-vq": "Tables 2-3 (text-to-image)",
    "maskgen-kl": "Tables 2-3 (text-to-image)", "meissonic": "Tables 2-3 (text-to-image)",
    "titok": "Table 1 (tokenizers)", "mar-b": "Fig. 11 (MAR-B steps, class-to-image)",
    "hart": "beyond the paper (HART, profile and quality)",
    "dummy-t2i": "test doubles", "dummy-tokenizer": "test doubles", "dummy-c2i": "test doubles",
}


def table_group(name: str) -> str:
    """The paper table an adapter belongs to (``TABLE_GROUPS``), ``other`` when none is listed."""
    return TABLE_GROUPS.get(name, "other")


_ENTRY_POINT_GROUPS = {"adapter": "dcar_bench.adapters", "suite": "dcar_bench.suites"}
_entry_points_loaded = False


class UnknownNameError(UserError, KeyError):
    """Raised for a name that is not registered; the message suggests close matches."""

    def __str__(self) -> str:  # KeyError quotes its arg; we want plain text
        return str(self.args[0]) if self.args else ""


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    try:
        from importlib.metadata import entry_points
    except ImportError:  # pragma: no cover
        return
    for kind, group in _ENTRY_POINT_GROUPS.items():
        for ep in entry_points(group=group):
            _TABLE[kind].setdefault(ep.name, ep.value)


def register(kind: str, name: str, target: str) -> None:
    """Register ``name`` -> ``"module:attr"`` under ``kind`` (overrides an existing entry)."""
    if kind not in KINDS:
        raise ValueError(f"unknown registry kind {kind!r}; kinds are {KINDS}")
    if ":" not in target:
        raise ValueError(f"target must look like 'package.module:Attribute', got {target!r}")
    _TABLE[kind][name] = target


def names(kind: str) -> list[str]:
    _load_entry_points()
    return sorted(_TABLE[kind])


def target(kind: str, name: str) -> str:
    """The import string for ``name``; raises :class:`UnknownNameError` with suggestions."""
    _load_entry_points()
    if kind not in KINDS:
        raise ValueError(f"unknown registry kind {kind!r}; kinds are {KINDS}")
    table = _TABLE[kind]
    if name in table:
        return table[name]
    close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownNameError(f"unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(sorted(table))}.")


def resolve(kind: str, name: str) -> Any:
    """Import and return the registered object (class or function)."""
    module_name, _, attr = target(kind, name).partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{kind} {name!r} needs {module_name!r}, which failed to import: {exc}. "
            f"Install the extra that provides it (see `dcar-bench doctor`)."
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise MissingDependencyError(f"{kind} {name!r}: module {module_name!r} has no attribute {attr!r}") from exc
