"""Per-image reconstruction metrics (PSNR, SSIM, LPIPS) with the DC-AE evaluator's conventions.

Both images are quantised to uint8 first (:func:`harness.images.to_uint8`, round-half-up)
because the DC-AE evaluator does that before every metric (``(255 * x + 0.5).clamp(0, 255)``
to uint8). Every function returns one value per image (float64 numpy); suites store these as
records and average them at aggregation, so the mean does not depend on batching.

SSIM is torchmetrics' ``structural_similarity_index_measure``, called as the DC-AE evaluator
calls it: uint8 images with ``data_range=(0.0, 255.0)``, whose clamp promotes them to float32
(``ssim_precision="float32"``, the default). ``"float64"`` feeds the same values as float64
(it reads up to ~2e-5 higher) and is a named option, not the protocol. The border handling
changed in torchmetrics 1.5.0 (PR #2721: the 5-px border of the map is no longer dropped);
both are named options: ``"full"`` (torchmetrics >= 1.5) and ``"valid"`` (torchmetrics < 1.5,
scikit-image, MATLAB: the map without its border). Both choices are recorded in :attr:`SSIM.spec`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from harness.api import MetricSpec, Requirement
from harness.images import to_uint8

SSIM_PRECISIONS = {
    "float32": "uint8 images promoted to float32 on 0..255 by torchmetrics' data_range=(0, 255) clamp "
               "(the DC-AE evaluator's call)",
    "float64": "the same uint8 values as float64 (reads up to ~2e-5 higher than the evaluator)",
}
SSIM_BORDERS = {
    "full": "torchmetrics>=1.5.0 (PR #2721): mean over the full H x W map of the reflect-padded input",
    "valid": "torchmetrics<1.5.0 / scikit-image / MATLAB: mean over the map without its 5-px border",
}


def _pair_u8(reference: torch.Tensor, reconstruction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    for name, t in (("reference", reference), ("reconstruction", reconstruction)):
        if not torch.is_tensor(t):
            raise TypeError(f"{name}: expected a torch tensor, got {type(t).__name__}")
        if t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(f"{name}: expected shape (B, 3, H, W), got {tuple(t.shape)}")
    if reference.shape != reconstruction.shape:
        raise ValueError(f"shape mismatch: reference {tuple(reference.shape)} vs reconstruction "
                         f"{tuple(reconstruction.shape)}")
    return to_uint8(reference), to_uint8(reconstruction)


# --------------------------------------------------------------------------- PSNR


def psnr_per_image(reference: torch.Tensor, reconstruction: torch.Tensor) -> np.ndarray:
    """10 log10(255^2 / MSE) per image over all pixels and RGB channels (inf for identical images)."""
    a, b = _pair_u8(reference, reconstruction)
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(1)
    with np.errstate(divide="ignore"):
        return (10.0 * np.log10(255.0 ** 2 / mse.numpy())).astype(np.float64)


# --------------------------------------------------------------------------- SSIM


def ssim_per_image(reference: torch.Tensor, reconstruction: torch.Tensor, *, border: str = "full",
                   precision: str = "float32", sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> np.ndarray:
    """Gaussian SSIM (11x11, sigma 1.5, data range 255) per RGB channel, averaged per image (float64 numpy).

    Computed by torchmetrics one image at a time, so a value depends only on its image pair,
    never on the other images of the batch.
    """
    if border not in SSIM_BORDERS:
        raise ValueError(f"unknown SSIM border mode {border!r}; choose one of {sorted(SSIM_BORDERS)}")
    if precision not in SSIM_PRECISIONS:
        raise ValueError(f"unknown SSIM precision {precision!r}; choose one of {sorted(SSIM_PRECISIONS)}")
    a, b = _pair_u8(reference, reconstruction)
    size = int(3.5 * sigma + 0.5) * 2 + 1  # torchmetrics' Gaussian window size
    pad = (size - 1) // 2
    h, w = a.shape[-2:]
    if min(h, w) <= pad:
        raise ValueError(f"images of {h}x{w} are too small for an {size}x{size} SSIM window")
    try:
        from torchmetrics.functional.image import structural_similarity_index_measure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from harness.api import MissingDependencyError

        raise MissingDependencyError(f"SSIM needs torchmetrics: pip install 'dcar-bench[recon]' ({exc})") from exc
    if precision == "float64":
        a, b = a.double(), b.double()
    out = np.empty(a.shape[0], dtype=np.float64)
    for i in range(a.shape[0]):
        # (reference, reconstruction) in the evaluator's order; data_range as a tuple clamps, which is what
        # promotes uint8 to float32 (and keeps float64 as float64)
        value, ssim_map = structural_similarity_index_measure(
            a[i:i + 1], b[i:i + 1], sigma=sigma, k1=k1, k2=k2, data_range=(0.0, 255.0), reduction="none",
            return_full_image=True)
        if border == "valid":
            value = ssim_map[..., pad:-pad, pad:-pad].reshape(1, -1).mean(-1)
        out[i] = float(value.reshape(-1)[0])
    return out


# --------------------------------------------------------------------------- metric objects


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


class PSNR:
    spec: ClassVar[MetricSpec] = MetricSpec(
        name="psnr", direction="higher",
        params={"quantize": "uint8 round-half-up", "data_range": 255, "reduction": "mean of per-image PSNR",
                "channels": "RGB jointly"},
        reference="skimage.metrics.peak_signal_noise_ratio; torchmetrics PeakSignalNoiseRatio",
    )

    def __call__(self, reference: torch.Tensor, reconstruction: torch.Tensor) -> np.ndarray:
        return psnr_per_image(reference, reconstruction)


class SSIM:
    """SSIM with a named border convention; ``spec`` records which library version it reproduces."""

    def __init__(self, border: str = "full", precision: str = "float32"):
        if border not in SSIM_BORDERS:
            raise ValueError(f"unknown SSIM border mode {border!r}; choose one of {sorted(SSIM_BORDERS)}")
        if precision not in SSIM_PRECISIONS:
            raise ValueError(f"unknown SSIM precision {precision!r}; choose one of {sorted(SSIM_PRECISIONS)}")
        self.border, self.precision = border, precision
        self.spec = MetricSpec(
            name="ssim", direction="higher",
            params={"window": "gaussian 11x11", "sigma": 1.5, "k1": 0.01, "k2": 0.03, "data_range": 255,
                    "channels": "per RGB channel, averaged", "variance": "population", "border": border,
                    "border_convention": SSIM_BORDERS[border], "quantize": "uint8 round-half-up",
                    "ssim_precision": precision, "precision_convention": SSIM_PRECISIONS[precision],
                    "implementation": "torchmetrics.functional.image.structural_similarity_index_measure, "
                                      "one image per call, data_range=(0.0, 255.0)",
                    "torchmetrics_installed": _version("torchmetrics"),
                    "scikit_image_installed": _version("scikit-image")},
            reference=("torchmetrics 1.9.0 structural_similarity_index_measure (DC-AE evaluator call)"
                       if border == "full" else
                       "skimage.metrics.structural_similarity(gaussian_weights, use_sample_covariance=False)"),
        )

    def __call__(self, reference: torch.Tensor, reconstruction: torch.Tensor) -> np.ndarray:
        return ssim_per_image(reference, reconstruction, border=self.border, precision=self.precision)


# --------------------------------------------------------------------------- LPIPS

ALEXNET_FILENAME = "alexnet-owt-7be5be79.pth"
ALEXNET_ENV_VAR = "DCAR_LPIPS_ALEXNET"


def lpips_alexnet_requirement() -> Requirement:
    """Where the LPIPS AlexNet trunk is looked up (for the loader and ``doctor``)."""
    from harness.metrics.inception import torch_hub_checkpoints_dir

    return Requirement(
        name="LPIPS AlexNet backbone",
        description=(
            "torchvision's ImageNet AlexNet weights (~233 MB) used as the LPIPS trunk (the linear heads ship inside "
            f"the lpips package). Download https://download.pytorch.org/models/{ALEXNET_FILENAME} and point "
            f"{ALEXNET_ENV_VAR} at it, or place it in $TORCH_HOME/hub/checkpoints/."
        ),
        env_var=ALEXNET_ENV_VAR,
        config_key="metrics.lpips.backbone_path",
        default_paths=(str(torch_hub_checkpoints_dir() / ALEXNET_FILENAME),),
    )


def resolve_alexnet_path(backbone_path: str | os.PathLike | None = None) -> Path:
    """Explicit path, then ``$DCAR_LPIPS_ALEXNET``, then the torch hub cache; never downloads."""
    from harness.resources import locate

    return locate(lpips_alexnet_requirement(), backbone_path)


def _load_alexnet_trunk(model: Any, path: Path) -> None:
    """Copy torchvision AlexNet ``features.<i>.*`` weights into lpips' slice modules (same module objects)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    targets = {}
    for slice_name, sl in model.net.named_children():
        for idx, module in sl.named_children():
            for pname, param in module.named_parameters(recurse=False):
                targets[f"features.{idx}.{pname}"] = (f"{slice_name}.{idx}.{pname}", param)
    missing = [k for k in targets if k not in state]
    if missing:
        raise ValueError(f"{path} is not a torchvision AlexNet state dict (missing {missing[:3]}...)")
    with torch.no_grad():
        for key, (_, param) in targets.items():
            if state[key].shape != param.shape:
                raise ValueError(f"{path}: {key} has shape {tuple(state[key].shape)}, expected {tuple(param.shape)}")
            param.copy_(state[key])


class LPIPS:
    """LPIPS v0.1 with the AlexNet trunk, computed by the ``lpips`` package.

    ``random_backbone_seed`` builds the trunk randomly (``pnet_rand=True``) under that
    torch seed for tests and smoke runs; such results are flagged ``real_weights=False``.
    """

    def __init__(self, backbone_path: str | os.PathLike | None = None, *, random_backbone_seed: int | None = None,
                 device: str | torch.device = "cpu", batch_size: int = 32):
        try:
            import lpips
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("LPIPS needs the `lpips` package: pip install 'dcar-bench[recon]'") from exc
        if random_backbone_seed is not None and backbone_path:
            raise ValueError("give either backbone_path or random_backbone_seed, not both")
        path = None if random_backbone_seed is not None else resolve_alexnet_path(backbone_path)
        devnull = open(os.devnull, "w")
        try:
            import contextlib
            import warnings

            with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(devnull), warnings.catch_warnings():
                # lpips builds the trunk with torchvision's deprecated `pretrained=False`; the trunk is ours
                warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
                if random_backbone_seed is not None:
                    torch.manual_seed(int(random_backbone_seed))
                model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
        finally:
            devnull.close()
        if path is not None:
            from harness.io import file_sha256

            _load_alexnet_trunk(model, path)
            self.weights_id = "sha256:" + file_sha256(path)
            self.real_weights = True
        else:
            self.weights_id = f"random-init:torch.manual_seed({int(random_backbone_seed)})"
            self.real_weights = False
        self.model = model.eval().requires_grad_(False).to(device)
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.spec = MetricSpec(
            name="lpips", direction="lower",
            params={"net": "alex", "version": "0.1", "input": "uint8/255 mapped to [-1, 1]",
                    "quantize": "uint8 round-half-up", "backbone_weights": self.weights_id,
                    "real_weights": self.real_weights, "lpips_version": _version("lpips")},
            reference="lpips 0.1.4 LPIPS(net='alex')",
        )

    @torch.inference_mode()
    def __call__(self, reference: torch.Tensor, reconstruction: torch.Tensor) -> np.ndarray:
        a, b = _pair_u8(reference, reconstruction)
        out = []
        for s in range(0, a.shape[0], self.batch_size):
            x = 2.0 * (a[s:s + self.batch_size].to(self.device).float() / 255.0) - 1.0
            y = 2.0 * (b[s:s + self.batch_size].to(self.device).float() / 255.0) - 1.0
            out.append(self.model(x, y).flatten().double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)
