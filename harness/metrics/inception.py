"""FID-Inception (pool3, 2048-d) computed by the field's libraries, with the resize path of each protocol.

Why two libraries: the conventions differ in how a picture reaches the 299x299 network input,
and each convention has a reference implementation that we call instead of re-implementing it:

* ``"bilinear_tf1x"``: torch-fidelity's ``FeatureExtractorInceptionV3`` (uint8 in, TensorFlow-1.x
  bilinear resize, ``(x - 128) / 128``): the torch-fidelity / TiTok evaluator convention.
* ``"bilinear_pytorch"``: pytorch-fid's ``InceptionV3`` (``x / 255`` in, ``F.interpolate`` bilinear,
  ``align_corners=False``, no antialias, ``2x - 1``): the DC-AE evaluator, pytorch-fid and Sana's
  MJHQ toolkit.

Weights: the TF-ported 2015-12-05 Inception (1008 classes) that pytorch-fid and torch-fidelity
download as ``pt_inception-2015-12-05-6726825d.pth`` / ``weights-inception-2015-12-05-6726825d.pth``
(same state-dict keys). We never download: the file comes from an explicit path,
``$DCAR_FID_INCEPTION`` or the torch hub cache, is read here with ``weights_only=True`` and is
handed to the library's constructor in place of its download call, so the library loads it
strictly into its own module. ``random_init_seed`` hands over seeded Kaiming-normal weights
instead (for tests and smoke runs; default initialisation gives degenerate features); results from
them are flagged ``real_weights=False``.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator, Mapping
from unittest import mock

import numpy as np
import torch

from harness.api import DataError, Requirement
from harness.images import check_batch, to_uint8
from harness.io import file_sha256

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
#: resize path -> (pip distribution, class) that computes it
LIBRARIES = {
    "bilinear_pytorch": ("pytorch-fid", "pytorch_fid.inception.InceptionV3"),
    "bilinear_tf1x": ("torch-fidelity", "torch_fidelity.feature_extractor_inceptionv3.FeatureExtractorInceptionV3"),
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


def resolve_weights_path(weights_path: str | os.PathLike | None = None) -> Path:
    """Explicit path, then ``$DCAR_FID_INCEPTION``, then the torch hub cache; never downloads."""
    from harness.resources import locate

    return locate(fid_inception_requirement(), weights_path)


# --------------------------------------------------------------------------- weights


def random_state_dict(seed: int) -> dict[str, torch.Tensor]:
    """Seeded Kaiming-normal weights with the official file's keys and shapes (BN at identity).

    The skeleton is torchvision's ``Inception3(num_classes=1008, aux_logits=False)``, the module
    pytorch-fid patches into the FID network: same parameter names and shapes as the 2015-12-05
    file. Convs get Kaiming-normal (fan-in, ReLU) from one ``torch.Generator(seed)`` in module order,
    so test features are informative and reproducible; the global RNG is left untouched.
    """
    import torch.nn as nn
    from torchvision.models.inception import Inception3

    with torch.random.fork_rng(devices=[]):
        skeleton = Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for m in skeleton.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu", generator=g)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
                m.reset_running_stats()
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01, generator=g)
                nn.init.zeros_(m.bias)
    return skeleton.state_dict()


def load_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a weights file safely (``weights_only=True``); a file that is not a state dict is a DataError naming it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a checkpoint"
        raise DataError(f"{path} is not an FID-Inception state dict (cannot be read as a torch checkpoint: "
                        f"{type(exc).__name__}: {_one_line(exc)})") from exc
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise DataError(f"{path} is not an FID-Inception state dict (expected a mapping of tensor names to tensors, "
                        f"got {type(state).__name__})")
    return dict(state)


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


class DownloadRefused(Exception):
    """A library asked for a URL we do not hand weights over for (a library change); nothing is fetched."""


@contextlib.contextmanager
def _weights_handed_over(module: Any, url: str, state: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """While a library builds its network, its download call returns ``state`` instead of fetching ``url``."""

    def load_state_dict_from_url(requested: str, *args: Any, **kwargs: Any) -> Mapping[str, torch.Tensor]:
        if requested != url:  # a library change we do not know; never let it reach the network
            raise DownloadRefused(f"refusing to download {requested}: dcar-bench hands over local weights only")
        return state

    with mock.patch.object(module, "load_state_dict_from_url", load_state_dict_from_url):
        yield


def build_library_network(resize: str, state: Mapping[str, torch.Tensor], *, source: str = "weights",
                          resize_input: bool = True, normalize_input: bool = True,
                          tf1x_features: tuple[str, ...] = ("2048",)) -> torch.nn.Module:
    """The library module of ``resize``'s convention, holding ``state`` (loaded strictly by the library).

    ``resize_input`` / ``normalize_input`` apply to pytorch-fid's module only (tests use them to
    feed both libraries one prepared input); torch-fidelity's always resizes from uint8.
    ``tf1x_features``: the torch-fidelity layers to return, pool3 first (``"logits_unbiased"`` adds the
    1008 logits its Inception Score uses, from the same forward pass).
    """
    if resize not in RESIZE_PATHS:
        raise ValueError(f"unknown Inception resize path {resize!r}; choose one of {sorted(RESIZE_PATHS)}")
    try:
        with torch.random.fork_rng(devices=[]):  # the libraries' default inits must not move the global RNG
            if resize == "bilinear_tf1x":
                import torch_fidelity.feature_extractor_inceptionv3 as lib

                with _weights_handed_over(lib, lib.URL_INCEPTION_V3, state):
                    net = lib.FeatureExtractorInceptionV3("inception-v3-compat", list(tf1x_features))
            else:
                import pytorch_fid.inception as lib

                with _weights_handed_over(lib, lib.FID_WEIGHTS_URL, state):
                    net = lib.InceptionV3([lib.InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIM]],
                                          resize_input=resize_input, normalize_input=normalize_input)
    except ImportError as exc:
        from harness.api import MissingDependencyError

        raise MissingDependencyError(f"the {resize} Inception path needs {LIBRARIES[resize][0]}: "
                                     f"pip install 'dcar-bench[fid]' ({exc})") from exc
    except RuntimeError as exc:  # strict load_state_dict: missing/unexpected keys or wrong shapes
        raise DataError(f"{source} is not an FID-Inception state dict (Inception-v3 2015-12-05, 1008 classes): "
                        f"{_one_line(exc)}") from exc
    return net.eval().requires_grad_(False)


def library_version(resize: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    dist, cls = LIBRARIES[resize]
    try:
        return f"{dist} {version(dist)} {cls}"
    except PackageNotFoundError:
        return f"{dist} (not installed) {cls}"


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
        logits: bool = False,
    ):
        """``logits=True`` (``bilinear_tf1x`` only) also makes :meth:`features_and_logits` available (Inception Score)."""
        if logits and resize != "bilinear_tf1x":
            raise ValueError("Inception logits (for the Inception Score) come from torch-fidelity's network: "
                             "use resize='bilinear_tf1x'")
        if resize not in RESIZE_PATHS:
            raise ValueError(f"unknown Inception resize path {resize!r}; choose one of {sorted(RESIZE_PATHS)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.resize = resize
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        if random_init_seed is not None:
            if weights_path:
                raise ValueError("give either weights_path or random_init_seed, not both")
            state = random_state_dict(random_init_seed)
            self.weights_id = f"random-init:kaiming-normal:{int(random_init_seed)}"
            self.weights_file = None
            self.real_weights = False
        else:
            path = resolve_weights_path(weights_path)
            state = load_weights_file(path)
            self.weights_id = "sha256:" + file_sha256(path)
            self.weights_file = str(path)
            self.real_weights = True
        self.library = library_version(resize)
        self.logits = bool(logits)
        layers = ("2048", "logits_unbiased") if self.logits else ("2048",)
        self.net = build_library_network(resize, state, source=self.weights_file or self.weights_id,
                                         tf1x_features=layers).to(self.device)

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

    def _features(self, u8: torch.Tensor) -> torch.Tensor:
        if self.resize == "bilinear_tf1x":
            return self.net(u8)[0]
        return self.net(u8.float() / 255.0)[0].flatten(1)

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        """(B, 3, H, W) float [0,1] or uint8 -> (B, 2048) float64 numpy."""
        if images.dtype != torch.uint8:
            check_batch(images, name="images")
        elif images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images: expected shape (B, 3, H, W), got {tuple(images.shape)}")
        u8 = to_uint8(images)
        out = [self._features(u8[s:s + self.batch_size].to(self.device)).double().cpu().numpy()
               for s in range(0, u8.shape[0], self.batch_size)]
        if not out:
            return np.zeros((0, FEATURE_DIM), dtype=np.float64)
        return np.concatenate(out, axis=0)

    @torch.inference_mode()
    def features_and_logits(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(B, 3, H, W) -> ((B, 2048) pool3, (B, 1008) torch-fidelity ``logits_unbiased``), both float64, one pass."""
        if not self.logits:
            raise ValueError("this extractor was built without logits: InceptionFeatureExtractor(..., logits=True)")
        if images.dtype != torch.uint8:
            check_batch(images, name="images")
        elif images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images: expected shape (B, 3, H, W), got {tuple(images.shape)}")
        u8 = to_uint8(images)
        pools, logits = [], []
        for s in range(0, u8.shape[0], self.batch_size):
            pool, logit = self.net(u8[s:s + self.batch_size].to(self.device))
            pools.append(pool.double().cpu().numpy())
            logits.append(logit.double().cpu().numpy())
        if not pools:
            return np.zeros((0, FEATURE_DIM), dtype=np.float64), np.zeros((0, 1008), dtype=np.float64)
        return np.concatenate(pools, axis=0), np.concatenate(logits, axis=0)
