"""FID-Inception (pool3, 2048-d): the network, its weights, and the resize paths of each protocol.

Why our own module instead of calling torch-fidelity: the DC-AE evaluator (Table 1) and
pytorch-fid/Sana (MJHQ, Table 2) feed the network *float* images resized with PyTorch's
bilinear interpolation, while torch-fidelity's extractor only accepts uint8 and always
resizes the TensorFlow-1.x way. One network with the resize path as a named option serves
both; the tests check that the ``"bilinear_tf1x"`` path gives torch-fidelity's features on
the same weights, so the network itself is verified against the reference library.

Weights: the TF-ported 2015-12-05 Inception (1008 classes) that pytorch-fid and
torch-fidelity download as ``pt_inception-2015-12-05-6726825d.pth`` /
``weights-inception-2015-12-05-6726825d.pth`` (same state-dict keys). We never download:
the file comes from an explicit path, ``$DCAR_FID_INCEPTION`` or the torch hub cache.
``random_init_seed`` builds a Kaiming-initialised network for tests and smoke runs (default
initialisation gives degenerate features); results from it are flagged ``real_weights=False``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.api import Requirement
from harness.io import file_sha256
from harness.images import check_batch, to_uint8

WEIGHTS_FILENAMES = (
    "weights-inception-2015-12-05-6726825d.pth",  # torch-fidelity's name
    "pt_inception-2015-12-05-6726825d.pth",  # pytorch-fid's name (same keys)
)
WEIGHTS_URLS = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
)
ENV_VAR = "DCAR_FID_INCEPTION"
INPUT_SIZE = 299
FEATURE_DIM = 2048

#: resize path name -> what it reproduces (recorded in provenance and stats files)
RESIZE_PATHS = {
    "bilinear_pytorch": "x/255 -> F.interpolate(299, bilinear, align_corners=False, no antialias) -> 2x-1 "
    "(DC-AE evaluator, pytorch-fid, Sana's MJHQ toolkit)",
    "bilinear_tf1x": "uint8 -> TF1.x bilinear resize to 299 (align_corners=False, no half-pixel offset) -> (x-128)/128 "
    "(torch-fidelity, TiTok evaluator)",
}


def torch_hub_checkpoints_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` resolved as ``torch.hub.get_dir()`` does (without importing torch)."""
    home = os.environ.get("TORCH_HOME")
    if not home:
        xdg = os.environ.get("XDG_CACHE_HOME")
        home = str(Path(xdg) / "torch") if xdg else str(Path.home() / ".cache" / "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


def fid_inception_requirement() -> Requirement:
    """Where the FID-Inception weights are looked up (for loaders and ``doctor``)."""
    return Requirement(
        name="FID Inception weights",
        description=(
            "TF-ported Inception-v3 2015-12-05 weights used by pytorch-fid/torch-fidelity (~92 MB). Download once "
            f"({WEIGHTS_URLS[0]}) and point {ENV_VAR} at it, or place it in $TORCH_HOME/hub/checkpoints/."
        ),
        env_var=ENV_VAR,
        config_key="metrics.inception.weights_path",
        default_paths=tuple(str(torch_hub_checkpoints_dir() / n) for n in WEIGHTS_FILENAMES),
    )


# --------------------------------------------------------------------------- network


class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm (eps 1e-3, as in the TF graph) + ReLU."""

    def __init__(self, in_ch: int, out_ch: int, **conv_kwargs: Any):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, bias=False, **conv_kwargs)
        self.bn = nn.BatchNorm2d(out_ch, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TF's 3x3 average pool ignores the zero padding in the divisor
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, in_ch: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_ch, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_ch, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_ch, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_tf_avg_pool(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, in_ch: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_ch, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, in_ch: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_ch, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_ch, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_ch, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_ch, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d = layer(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_tf_avg_pool(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, in_ch: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_ch, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_ch, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """The last two blocks; the TF graph max-pools in the second one (``pool="max"``)."""

    def __init__(self, in_ch: int, pool: str):
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_ch, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_ch, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_ch, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(s), self.branch3x3_2b(s)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        if self.pool == "max":
            p = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            p = _tf_avg_pool(x)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(p)], 1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 as in the TF 2015-12-05 graph; attribute names give the official state-dict keys."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(2048, 1008)  # unused for FID; kept so the official file loads strictly

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised (B, 3, 299, 299) input in [-1, 1] -> pool3 features (B, 2048)."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def kaiming_init_(model: FIDInceptionV3, seed: int) -> FIDInceptionV3:
    """Seeded Kaiming-normal convs (BN at identity) so test features are informative, not degenerate."""
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu", generator=g)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
                m.reset_running_stats()
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01, generator=g)
                nn.init.zeros_(m.bias)
    return model


# --------------------------------------------------------------------------- weights


def resolve_weights_path(weights_path: str | os.PathLike | None = None) -> Path:
    """Explicit path, then ``$DCAR_FID_INCEPTION``, then the torch hub cache; never downloads."""
    from harness.resources import locate

    return locate(fid_inception_requirement(), weights_path)


# --------------------------------------------------------------------------- preprocessing


def resize_bilinear_tf1x(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize as TF 1.x ``resize_bilinear(align_corners=False)``: src = dst * in/out, no half-pixel shift.

    Source positions are computed in float32 and the width is interpolated before the
    height, the order torch-fidelity uses, so the two agree to float32 rounding.
    """
    def axis(n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src = torch.arange(size, dtype=torch.float32) * torch.tensor(n_in / size, dtype=torch.float32)
        lo = src.long()
        hi = (lo + 1).clamp(max=n_in - 1)
        return lo.to(x.device), hi.to(x.device), (src - lo.float()).to(device=x.device, dtype=x.dtype)

    h_lo, h_hi, h_w = axis(x.shape[-2])
    w_lo, w_hi, w_w = axis(x.shape[-1])
    top, bottom = x[..., h_lo, :], x[..., h_hi, :]
    top = top[..., w_lo] + (top[..., w_hi] - top[..., w_lo]) * w_w
    bottom = bottom[..., w_lo] + (bottom[..., w_hi] - bottom[..., w_lo]) * w_w
    return top + (bottom - top) * h_w.view(-1, 1)


def prepare_input(images_u8: torch.Tensor, resize: str) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> the network input (B, 3, 299, 299) in [-1, 1] along the named resize path."""
    if resize == "bilinear_pytorch":
        x = images_u8.float() / 255.0
        if tuple(x.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2.0 * x - 1.0
    if resize == "bilinear_tf1x":
        x = resize_bilinear_tf1x(images_u8.float(), INPUT_SIZE)
        return (x - 128.0) / 128.0
    raise ValueError(f"unknown Inception resize path {resize!r}; choose one of {sorted(RESIZE_PATHS)}")


# --------------------------------------------------------------------------- extractor


class InceptionFeatureExtractor:
    """Images -> float64 pool3 features, with a self-description used in cache keys and stats files.

    Images are quantised to uint8 first (:func:`harness.images.to_uint8`), which is what
    saving a PNG does and what the DC-AE evaluator simulates, so float and uint8 inputs of
    the same picture give the same features.
    """

    def __init__(
        self,
        weights_path: str | os.PathLike | None = None,
        *,
        random_init_seed: int | None = None,
        resize: str = "bilinear_pytorch",
        batch_size: int = 50,
        device: str | torch.device = "cpu",
    ):
        if resize not in RESIZE_PATHS:
            raise ValueError(f"unknown Inception resize path {resize!r}; choose one of {sorted(RESIZE_PATHS)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.resize = resize
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        net = FIDInceptionV3()
        if random_init_seed is not None:
            if weights_path:
                raise ValueError("give either weights_path or random_init_seed, not both")
            kaiming_init_(net, random_init_seed)
            self.weights_id = f"random-init:kaiming-normal:{int(random_init_seed)}"
            self.weights_file = None
            self.real_weights = False
        else:
            path = resolve_weights_path(weights_path)
            state = torch.load(path, map_location="cpu", weights_only=True)
            try:
                net.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise ValueError(f"{path} is not an FID-Inception state dict: {exc}") from exc
            self.weights_id = "sha256:" + file_sha256(path)
            self.weights_file = str(path)
            self.real_weights = True
        self.net = net.eval().requires_grad_(False).to(self.device)

    def describe(self) -> dict[str, Any]:
        """What determines the features (goes into cache keys and stats protocols)."""
        return {
            "extractor": "fid-inception-v3-2015-12-05/pool3",
            "dims": FEATURE_DIM,
            "weights": self.weights_id,
            "real_weights": self.real_weights,
            "resize": self.resize,
            "quantize": "uint8 floor(255x+0.5)",
            "network_dtype": "float32",
        }

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        """(B, 3, H, W) float [0,1] or uint8 -> (B, 2048) float64 numpy."""
        if images.dtype != torch.uint8:
            check_batch(images, name="images")
        elif images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images: expected shape (B, 3, H, W), got {tuple(images.shape)}")
        u8 = to_uint8(images)
        out = []
        for start in range(0, u8.shape[0], self.batch_size):
            x = prepare_input(u8[start:start + self.batch_size].to(self.device), self.resize)
            out.append(self.net(x).double().cpu().numpy())
        if not out:
            return np.zeros((0, FEATURE_DIM), dtype=np.float64)
        return np.concatenate(out, axis=0)
