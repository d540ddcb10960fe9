"""TiTok (Table 1 tokenizer row) through ``bytedance/1d-tokenizer`` as an :class:`~harness.api.ImageTokenizer`.

Drives, from a user checkout (read at commit 942a96f, 2025-03-20), what ``README_TiTok.md`` does for a
reconstruction: ``modeling.titok.TiTok.from_pretrained(<dir>)`` (``PyTorchModelHubMixin``: ``config.json`` +
weights), ``eval()``; images in [0, 1] (the README divides uint8 by 255, no normalisation); for a VQ tokenizer
``encode(x)[1]["min_encoding_indices"]`` then ``decode_tokens(ids)``; for a VAE tokenizer
``encode(x)[1].sample()`` then ``decode_tokens``; the result clamped to [0, 1].

Default weights: ``yucornetto/tokenizer_titok_b64_imagenet``, TiTok-B-64 (VQ, 64 tokens, 256 px), whose README
rFID 1.70 is DC-AR Table 1's TiTok row at 256 x 256. DC-AR's 512 x 512 TiTok row (128 tokens, rFID 1.37) has no
checkpoint in the repository's model zoo at the commit read, so the report shows the paper's number for it.

Batch shape: the real TiTok-B (random weights, CPU) reconstructs an image alone and in a batch of 2 differently by
~4e-5 (float32 GEMM blocking), so after :meth:`set_batch_size` shorter calls are padded to the run's batch size
(:class:`baselines.common.BatchPadding`), as the DC-AE adapter does.

Reconstruction is deterministic for VQ tokenizers; a VAE tokenizer samples its posterior, which is done under
:func:`baselines.checkout.base.isolated_rng` seeded with ``posterior_seed`` (the same for every image).
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping

from baselines.common import BatchPadding
from harness.api import AdapterInfo, DataError, ImageTokenizer, Requirement

from .base import CheckoutAdapter, isolated_rng, locate_weights, to_harness_images, weights_record
from .maskgen import SPEC

WEIGHTS = Requirement(
    name="TiTok tokenizer weights (default TiTok-B-64)",
    description=("a TiTok checkpoint directory (config.json + model.safetensors), e.g. "
                 "`git clone https://huggingface.co/yucornetto/tokenizer_titok_b64_imagenet` (DC-AR Table 1, 256 px)"),
    env_var="DCAR_TITOK_PATH", config_key="weights", hf_repo="yucornetto/tokenizer_titok_b64_imagenet",
    must_contain=("model.safetensors", "pytorch_model.bin"))


class TiTokAdapter(BatchPadding, CheckoutAdapter, ImageTokenizer):
    """TiTok 1D tokenizer reconstruction (the ``discrete`` path for VQ checkpoints, ``continuous`` for VAE)."""

    #: distributions whose versions the run records (the official code's own dependencies)
    libraries: ClassVar[tuple[str, ...]] = ("omegaconf", "huggingface_hub", "einops", "accelerate")

    name: ClassVar[str] = "titok"
    spec = SPEC
    paths: ClassVar[tuple[str, ...]] = ("discrete", "continuous")
    defaults_source: ClassVar[str] = "README_TiTok.md reconstruction example"
    official_rng: ClassVar[str] = "none for VQ; a VAE posterior sample draws from the global torch RNG"

    def __init__(self, repo: str | None = None, weights: str | None = None, device: str = "auto",
                 posterior_seed: int = 0):

        self._init_settings("per_item", {})
        mods = self._open_checkout(repo, ["modeling.titok"])
        self.weights_paths = locate_weights([(WEIGHTS, weights)])
        self.device = self._resolve_device(device)
        self.model = mods["modeling.titok"].TiTok.from_pretrained(str(self.weights_paths[WEIGHTS.name]))
        self.model.eval()
        self.model.requires_grad_(False)
        self.model.to(self.device)
        self.quantize_mode = str(getattr(self.model, "quantize_mode", "vq"))
        self.paths = ("discrete",) if self.quantize_mode == "vq" else ("continuous",)
        cfg = self.model.config
        self.resolution = int(_get(cfg, ("dataset", "preprocessing", "crop_size"), 256))
        self.num_tokens = _get(cfg, ("model", "vq_model", "num_latent_tokens"), None)
        self.posterior_seed = int(posterior_seed)

    @classmethod
    def weight_requirements(cls) -> list[Requirement]:
        return [WEIGHTS]

    def reconstruct(self, images, path: str | None = None):
        import torch

        from harness.images import check_batch

        if path not in (None, *self.paths):
            raise ValueError(f"this TiTok checkpoint ({self.quantize_mode}) has only the {self.paths[0]} path, "
                             f"got path={path!r}")
        check_batch(images, name="TiTok input")
        if tuple(images.shape[-2:]) != (self.resolution, self.resolution):
            raise DataError(f"TiTok input: this tokenizer takes {self.resolution}x{self.resolution} images (a 1D "
                            f"tokenizer does not change resolution), got {images.shape[-2]}x{images.shape[-1]}")
        n = images.shape[0]
        x = self._pad(images).to(self.device, torch.float32)
        with torch.no_grad():
            if self.quantize_mode == "vq":
                tokens = self.model.encode(x)[1]["min_encoding_indices"]
            else:
                with isolated_rng(self.posterior_seed, self.device):
                    tokens = self.model.encode(x)[1].sample()
            y = self.model.decode_tokens(tokens)[:n]
        return to_harness_images(torch.clamp(y, 0.0, 1.0), (0.0, 1.0), "TiTok reconstruction")

    def info(self) -> AdapterInfo:
        return AdapterInfo(
            name=self.name, kind=self.kind, resolution=self.resolution, dtype="float32",
            num_params=sum(p.numel() for p in self.model.parameters()),
            weights=weights_record(self.weights_paths), real_weights=True,
            extra=self._extra(quantize_mode=self.quantize_mode, num_latent_tokens=self.num_tokens,
                              device=str(self.device)))


def _get(cfg: Any, keys: tuple[str, ...], default: Any) -> Any:
    """A nested key of an OmegaConf/dict config, or ``default``."""
    node = cfg
    for k in keys:
        if isinstance(node, Mapping) and k in node:
            node = node[k]
        elif hasattr(node, k):
            node = getattr(node, k)
        else:
            return default
    return node
