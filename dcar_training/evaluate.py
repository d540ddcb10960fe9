"""Evaluating what a recipe trained: reconstruction through both DC-HT paths (discrete-rFID, rFID, PSNR) and
generation (gFID), with the harness's own metric code.

Why features and not FIDs are returned: the training suites store Inception features as run artifacts and
compute every Fréchet distance at aggregation, from files only, as ``imagenet_recon`` does (records never
depend on batch composition; aggregation needs no model). The extractor is the FID-Inception of
:mod:`harness.metrics.inception` (real weights, or a seeded random network for tests and mini runs, flagged).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .data import batch_images

PATHS = ("continuous", "discrete")


def make_extractor(weights_path: str | None, random_init_seed: int | None, resize: str = "bilinear_pytorch",
                   batch_size: int = 50, device: str = "cpu"):
    """The FID-Inception (a seam the tests replace with a small stand-in)."""
    from harness.metrics.inception import InceptionFeatureExtractor

    return InceptionFeatureExtractor(weights_path, random_init_seed=random_init_seed, resize=resize,
                                     batch_size=batch_size, device=device)


@torch.no_grad()
def reconstruct(model, x: torch.Tensor, path: str) -> torch.Tensor:
    """x in [-1, 1] -> reconstruction in [0, 1] through ``path`` (as the dc-ht adapter reconstructs)."""
    z = model.encode(x)
    latent = model.latent_features(z) if path == "continuous" else model.quantize(z)[0]
    return (model.decode(latent).float() * 0.5 + 0.5).clamp(0, 1)


def recon_features(model, dataset, extractor, *, batch: int = 16, device: str | torch.device = "cpu",
                   progress=None, real: np.ndarray | None = None) -> dict[str, Any]:
    """Features of the real images and of each path's reconstructions, plus per-image PSNR per path.

    ``real``: the real images' features if already computed (they do not depend on the tokenizer)."""
    from harness.metrics.recon import psnr_per_image

    model = model.to(device).eval()
    feats: dict[str, list[np.ndarray]] = {"real": [], **{p: [] for p in PATHS}}
    psnr: dict[str, list[float]] = {p: [] for p in PATHS}
    starts = range(0, len(dataset), batch)
    for s in (progress(starts) if progress else starts):
        x = batch_images(dataset, range(s, min(len(dataset), s + batch)))
        images = (x * 0.5 + 0.5).clamp(0, 1)
        if real is None:
            feats["real"].append(extractor(images))
        for p in PATHS:
            rec = reconstruct(model, x.to(device), p).cpu()
            feats[p].append(extractor(rec))
            psnr[p] += [float(v) for v in psnr_per_image(images, rec)]
    out = {"real": np.concatenate(feats["real"]) if real is None else real,
           **{p: np.concatenate(feats[p]) for p in PATHS}}  # fixed key order: the npz bytes are hashed
    return {"features": out, "psnr": psnr}


@torch.no_grad()
def generation_features(generator, tokenizer, text_encoder, dataset, seeds: Sequence[int], extractor, *,
                        discrete_only: bool, sampling: dict[str, Any], batch: int = 8,
                        device: str | torch.device = "cpu", progress=None,
                        real_features: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Features of the dataset's real images (unless given) and of images generated from its captions (one per item)."""
    from baselines.dcar.generator.sampler import SamplingOptions
    from baselines.dcar.pipeline import DCARPipeline

    pipe = DCARPipeline(generator, tokenizer, text_encoder, device=device)
    options = SamplingOptions(**{**sampling, "predict_residuals": not discrete_only})
    real, fake = [], []
    starts = range(0, len(dataset), batch)
    for s in (progress(starts) if progress else starts):
        idx = list(range(s, min(len(dataset), s + batch)))
        if real_features is None:
            real.append(extractor((batch_images(dataset, idx) * 0.5 + 0.5).clamp(0, 1)))
        out = pipe([dataset.caption(i) for i in idx], [int(seeds[i]) for i in idx], options=options)
        fake.append(extractor(out.images))
    return {"real": np.concatenate(real) if real_features is None else real_features,
            "generated": np.concatenate(fake)}
