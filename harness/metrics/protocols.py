"""The feature protocols people compare on MJHQ-30K: each one's preprocessing, from one decoded picture.

Why several at once: the same images give FID 5.8 with Sana's toolkit and 15.3 with clean-fid (a
2-3x gap users report on MJHQ), so a number means nothing without its protocol. Each protocol here
is (preprocessing of a decoded RGB PIL picture) + (backbone) + (distance), named as its upstream:

* ``sana`` (default; the paper's): torchvision ``Resize(512)`` (bilinear, antialias on PIL),
  ``CenterCrop(512)``, ``ToTensor``, pytorch-fid ``InceptionV3`` pool3 (bilinear 299 inside,
  ``2x-1``) -- Sana's ``tools/metrics/pytorch-fid/compute_fid.py``; Fréchet distance.
* ``clean_fid``: clean-fid ``mode="clean"``: PIL bicubic (antialias) to 299 per channel in float,
  no quantisation (``cleanfid.resize.make_resizer``, called), ``(x-128)/128``, FID-Inception pool3.
* ``torch_fidelity``: the decoded uint8 picture as-is into torch-fidelity's
  ``FeatureExtractorInceptionV3`` (TF1.x bilinear resize to 299 inside): ``fidelity --fid`` on folders.
* ``fd_dinov2``: dgm-eval's DINOv2 encoder: ``Resize((224, 224), BICUBIC)``, ``ToTensor``, ImageNet
  normalisation, ViT-L/14 CLS token after the final norm (transformers ``Dinov2Model.pooler_output``);
  Fréchet distance.
* ``cmmd``: google-research's CMMD: centre square crop, PIL bicubic to 336, ``/255``, CLIP
  normalisation, ``CLIPVisionModelWithProjection`` (ViT-L/14-336) ``image_embeds`` L2-normalised;
  Gaussian-RBF MMD with sigma 10, times 1000 (:func:`cmmd`).

The three Inception protocols share one FID-Inception weights file (the TF 2015-12-05 graph that
pytorch-fid, torch-fidelity and clean-fid all port); clean-fid itself runs NVIDIA's TorchScript port
of that graph, here its weights go through pytorch-fid's module with clean-fid's normalisation.
Backbones load from an explicit path, an environment variable or the Hugging Face / torch hub
cache and never download; ``random_init_seed`` gives seeded random weights (tests, smoke, benchmark),
flagged ``real_weights: false``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from harness.api import DataError, MissingDependencyError, Requirement

PROTOCOLS = ("sana", "clean_fid", "torch_fidelity", "fd_dinov2", "cmmd")
DEFAULT_PROTOCOL = "sana"
SANA_SIZE = 512
CMMD_SIGMA = 10.0
CMMD_SCALE = 1000.0
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)

#: protocol -> (what it reproduces, distance kind)
DESCRIPTIONS = {
    "sana": ("Sana tools/metrics (pytorch-fid): torchvision Resize(512) bilinear antialias, CenterCrop(512), "
             "ToTensor, InceptionV3 pool3 with bilinear 299 (align_corners=False, no antialias) inside, 2x-1",
             "frechet"),
    "clean_fid": ("clean-fid mode=clean: PIL bicubic antialias to 299 per channel in float32 (no quantisation), "
                  "(x-128)/128, FID-Inception pool3", "frechet"),
    "torch_fidelity": ("torch-fidelity fid: decoded uint8 image as-is, TF1.x bilinear resize to 299 inside "
                       "FeatureExtractorInceptionV3, (x-128)/128, pool3", "frechet"),
    "fd_dinov2": ("dgm-eval FD-DINOv2: Resize((224,224)) bicubic antialias on PIL, ToTensor, ImageNet mean/std, "
                  "DINOv2 ViT-L/14 CLS token after the final LayerNorm", "frechet"),
    "cmmd": ("google-research CMMD: centre square crop, PIL bicubic to 336, /255, CLIP mean/std, CLIP ViT-L/14-336 "
             "image_embeds L2-normalised; Gaussian RBF MMD sigma=10, x1000 (biased V-statistic)", "mmd"),
}

DINOV2_REQUIREMENT = Requirement(
    name="DINOv2 ViT-L/14 (FD-DINOv2)",
    description="facebook/dinov2-large (transformers format: config.json + model.safetensors, ~1.2 GB); "
                "`huggingface-cli download facebook/dinov2-large` on a machine with network, then copy the cache",
    env_var="DCAR_DINOV2",
    config_key="metrics.dinov2.weights_path",
    hf_repo="facebook/dinov2-large",
    must_contain=("config.json",),
)
CMMD_CLIP_REQUIREMENT = Requirement(
    name="CLIP ViT-L/14-336 (CMMD)",
    description="openai/clip-vit-large-patch14-336 (transformers format: config.json + weights, ~1.7 GB); "
                "`huggingface-cli download openai/clip-vit-large-patch14-336`, then copy the cache",
    env_var="DCAR_CMMD_CLIP",
    config_key="metrics.clip_vision.weights_path",
    hf_repo="openai/clip-vit-large-patch14-336",
    must_contain=("config.json",),
)


class UnknownProtocolError(DataError):
    """A protocol name that is not one of :data:`PROTOCOLS`."""


def check_names(names: Sequence[str], key: str = "metrics.protocols") -> list[str]:
    import difflib

    out = []
    for n in names:
        if n not in PROTOCOLS:
            close = difflib.get_close_matches(str(n), PROTOCOLS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownProtocolError(f"{key}: unknown protocol {n!r}.{hint} Known: {', '.join(PROTOCOLS)}")
        if n not in out:
            out.append(n)
    return out


# --------------------------------------------------------------------------- backbones


@dataclass
class Backbone:
    """A network with its identity: batch tensor -> (B, D) float64 features."""

    name: str
    weights_id: str
    real_weights: bool
    fn: Callable[[Any], Any]
    info: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"backbone": self.name, "weights": self.weights_id, "real_weights": self.real_weights, **self.info}

    def __call__(self, batch) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.fn(batch)
        return out.detach().double().cpu().numpy()


@dataclass(frozen=True)
class BackboneConfig:
    """Where one backbone's weights come from (``metrics.<backbone>.*``)."""

    weights_path: str | None = None
    random_init_seed: int | None = None
    size: str = "full"  # "tiny" only with random_init_seed (tests)

    def __post_init__(self) -> None:
        if self.weights_path and self.random_init_seed is not None:
            raise ValueError("give weights_path or random_init_seed, not both")
        if self.size not in ("full", "tiny"):
            raise ValueError(f"size must be 'full' or 'tiny', got {self.size!r}")
        if self.size == "tiny" and self.random_init_seed is None:
            raise ValueError("size 'tiny' needs random_init_seed (there are no tiny released weights)")


def _inception_weights(cfg: BackboneConfig) -> tuple[Mapping[str, Any], str, bool]:
    """FID-Inception state dict, its id and whether it is real (the loaders of harness.metrics.inception)."""
    from harness.io import file_sha256
    from harness.metrics import inception

    if cfg.random_init_seed is not None:
        return inception.random_state_dict(cfg.random_init_seed), \
            f"random-init:kaiming-normal:{int(cfg.random_init_seed)}", False
    path = inception.resolve_weights_path(cfg.weights_path)
    return inception.load_weights_file(path), "sha256:" + file_sha256(path), True


def inception_backbones(cfg: BackboneConfig, wanted: Sequence[str], device: str) -> dict[str, Backbone]:
    """The Inception network of each wanted protocol, all holding one weights file (read and hashed once)."""
    from harness.metrics.inception import build_library_network, library_version

    state, wid, real = _inception_weights(cfg)
    out: dict[str, Backbone] = {}
    if "sana" in wanted:
        net = build_library_network("bilinear_pytorch", state, source=wid).to(device)
        out["sana"] = Backbone("fid-inception-v3-2015-12-05/pool3 (pytorch-fid InceptionV3, resize+normalize inside)",
                               wid, real, lambda x: net(x.to(device).float() / 255.0)[0].flatten(1),
                               {"library": library_version("bilinear_pytorch"), "dims": 2048})
    if "clean_fid" in wanted:
        net_c = build_library_network("bilinear_pytorch", state, source=wid, resize_input=False,
                                      normalize_input=False).to(device)
        out["clean_fid"] = Backbone("fid-inception-v3-2015-12-05/pool3 (pytorch-fid module, no resize, (x-128)/128)",
                                    wid, real, lambda x: net_c((x.to(device) - 128.0) / 128.0)[0].flatten(1),
                                    {"library": library_version("bilinear_pytorch"), "dims": 2048})
    if "torch_fidelity" in wanted:
        net_t = build_library_network("bilinear_tf1x", state, source=wid).to(device)
        out["torch_fidelity"] = Backbone("fid-inception-v3-2015-12-05/pool3 (torch-fidelity, TF1.x resize inside)",
                                         wid, real, lambda x: net_t(x.to(device))[0],
                                         {"library": library_version("bilinear_tf1x"), "dims": 2048})
    return out


def _hf_weights(cfg: BackboneConfig, req: Requirement) -> tuple[str, str]:
    """(local model directory, ``sha256:`` of its weight files) from explicit path / env / HF cache."""
    from pathlib import Path

    from harness.io import bytes_sha256, file_sha256
    from harness.resources import locate

    root = Path(locate(req, cfg.weights_path))
    files = sorted(p for p in root.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    if not files:
        raise DataError(f"{root}: no *.safetensors or *.bin weights next to config.json ({req.name}); "
                        f"{req.description}")
    digest = bytes_sha256("".join(f"{p.name}:{file_sha256(p)}\n" for p in files).encode())
    return str(root), "sha256:" + digest


def _seeded(build: Callable[[], Any], seed: int):
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()


def dinov2_config(size: str):
    """DINOv2 ViT-L/14 as facebook/dinov2-large's config.json (full) or a 2-layer toy (tests)."""
    from transformers import Dinov2Config

    if size == "tiny":
        return Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, patch_size=14,
                            image_size=224)
    return Dinov2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, mlp_ratio=4, patch_size=14,
                        image_size=518, layerscale_value=1.0)


def dinov2_backbone(cfg: BackboneConfig, device: str) -> Backbone:
    try:
        from transformers import Dinov2Model
    except ImportError as exc:
        raise MissingDependencyError(f"fd_dinov2 needs transformers: pip install 'dcar-bench[models]' ({exc})") \
            from None
    if cfg.random_init_seed is not None:
        model = _seeded(lambda: Dinov2Model(dinov2_config(cfg.size)), cfg.random_init_seed)
        wid, real = f"random-init:{cfg.size}:{int(cfg.random_init_seed)}", False
    else:
        path, wid = _hf_weights(cfg, DINOV2_REQUIREMENT)
        model, real = Dinov2Model.from_pretrained(path, local_files_only=True), True
    model = model.eval().requires_grad_(False).to(device)
    return Backbone("dinov2-vitl14/cls (transformers Dinov2Model.pooler_output)", wid, real,
                    lambda x: model(pixel_values=x.to(device)).pooler_output,
                    {"dims": int(model.config.hidden_size), "size": cfg.size})


def clip_vision_config(size: str):
    """CLIP ViT-L/14-336 vision tower as openai/clip-vit-large-patch14-336 (full) or a toy (tests)."""
    from transformers import CLIPVisionConfig

    if size == "tiny":
        return CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                patch_size=56, image_size=336, projection_dim=16)
    return CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                            patch_size=14, image_size=336, projection_dim=768, hidden_act="quick_gelu")


def clip_vision_backbone(cfg: BackboneConfig, device: str) -> Backbone:
    import torch

    try:
        from transformers import CLIPVisionModelWithProjection
    except ImportError as exc:
        raise MissingDependencyError(f"cmmd needs transformers: pip install 'dcar-bench[models]' ({exc})") from None
    if cfg.random_init_seed is not None:
        model = _seeded(lambda: CLIPVisionModelWithProjection(clip_vision_config(cfg.size)), cfg.random_init_seed)
        wid, real = f"random-init:{cfg.size}:{int(cfg.random_init_seed)}", False
    else:
        path, wid = _hf_weights(cfg, CMMD_CLIP_REQUIREMENT)
        model, real = CLIPVisionModelWithProjection.from_pretrained(path, local_files_only=True), True
    model = model.eval().requires_grad_(False).to(device)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    size = int(model.config.image_size)

    def embed(x):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic")  # CMMD's _resize_bicubic
        e = model(pixel_values=((x - mean) / std).to(device)).image_embeds
        return e / torch.linalg.norm(e, dim=-1, keepdim=True)

    return Backbone("clip-vit-l14-336/image_embeds (transformers CLIPVisionModelWithProjection, L2-normalised)",
                    wid, real, embed, {"dims": int(model.config.projection_dim), "size": cfg.size,
                                       "input_size": size})


# --------------------------------------------------------------------------- preprocessing (PIL RGB -> tensor)


def sana_input(img, size: int = SANA_SIZE):
    """uint8 (3, size, size): torchvision Resize(size) (bilinear, antialias on PIL) + CenterCrop(size).

    uint8 is exactly what ``ToTensor`` divides by 255 (the backbone does the division).
    """
    import torch
    from torchvision import transforms as T

    crop = T.CenterCrop(size)(T.Resize(size)(img))
    return torch.from_numpy(np.array(crop, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def clean_fid_input(img):
    """float32 (3, 299, 299) in 0..255: clean-fid's own ``clean`` resizer on the uint8 array."""
    import torch
    from cleanfid.resize import make_resizer

    resized = make_resizer("PIL", False, "bicubic", (299, 299))(np.asarray(img, dtype=np.uint8))
    return torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1), dtype=np.float32))


def torch_fidelity_input(img):
    """uint8 (3, H, W): the decoded picture as torch-fidelity's folder dataset hands it over."""
    import torch

    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def dinov2_input(img):
    from torchvision import transforms as T

    return T.Compose([T.Resize((224, 224), T.InterpolationMode.BICUBIC), T.ToTensor(),
                      T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])(img)


def cmmd_input(img, size: int = 336):
    """float32 (3, size, size) in [0, 1]: CMMD's io_util centre square crop and PIL bicubic resize."""
    import torch
    from PIL import Image

    w, h = img.size
    side = min(w, h)
    top, left = (h - side) // 2, (w - side) // 2
    im = img.crop((left, top, left + side, top + side)).resize((size, size), resample=Image.BICUBIC)
    arr = np.asarray(im).astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


PREPARE: dict[str, Callable[[Any], Any]] = {
    "sana": sana_input, "clean_fid": clean_fid_input, "torch_fidelity": torch_fidelity_input,
    "fd_dinov2": dinov2_input, "cmmd": cmmd_input,
}


# --------------------------------------------------------------------------- protocols


@dataclass
class Protocol:
    """One named protocol: preprocessing of a decoded picture, a backbone, a distance kind."""

    name: str
    backbone: Backbone
    prepare: Callable[[Any], Any]

    @property
    def kind(self) -> str:
        return DESCRIPTIONS[self.name][1]

    @property
    def real_weights(self) -> bool:
        return self.backbone.real_weights

    def describe(self) -> dict[str, Any]:
        """What determines the features (goes into cache keys, feature files and reference statistics)."""
        return {"protocol": self.name, "preprocessing": DESCRIPTIONS[self.name][0], "distance": self.kind,
                **self.backbone.describe(), "network_dtype": "float32"}

    def features(self, pictures: Sequence[Any], pad_to: int = 0) -> np.ndarray:
        """(N, D) float64 features of decoded RGB pictures; batches of one shape, padded to ``pad_to`` rows.

        Why pad: network outputs move in the last float digits with the batch's GEMM shapes; padding every
        call to the run's batch size keeps an item's features independent of how many items were left.
        """
        import torch

        inputs = [self.prepare(p) for p in pictures]
        out: list[np.ndarray | None] = [None] * len(inputs)
        groups: dict[tuple, list[int]] = {}
        for i, t in enumerate(inputs):
            groups.setdefault(tuple(t.shape), []).append(i)
        for idx in groups.values():
            batch = torch.stack([inputs[i] for i in idx])
            n = batch.shape[0]
            if pad_to > n:
                batch = torch.cat([batch, batch[-1:].expand(pad_to - n, *batch.shape[1:])])
            feats = self.backbone(batch)[:n]
            if not np.isfinite(feats).all():
                raise DataError(f"protocol {self.name}: the backbone returned NaN/Inf features; its weights "
                                f"({self.backbone.weights_id}) are broken")
            for j, i in enumerate(idx):
                out[i] = feats[j]
        return np.stack(out) if out else np.zeros((0, 0))  # type: ignore[arg-type]


@dataclass(frozen=True)
class ProtocolsConfig:
    """Which protocols and where their backbones come from."""

    names: tuple[str, ...]
    inception: BackboneConfig
    dinov2: BackboneConfig
    clip_vision: BackboneConfig
    device: str = "cpu"


def build_protocols(cfg: ProtocolsConfig) -> list[Protocol]:
    """Every wanted protocol with its backbone (the Inception weights read once for all three)."""
    names = check_names(cfg.names)
    backbones: dict[str, Backbone] = {}
    inc = [n for n in names if n in ("sana", "clean_fid", "torch_fidelity")]
    if inc:
        backbones.update(inception_backbones(cfg.inception, inc, cfg.device))
    if "fd_dinov2" in names:
        backbones["fd_dinov2"] = dinov2_backbone(cfg.dinov2, cfg.device)
    if "cmmd" in names:
        backbones["cmmd"] = clip_vision_backbone(cfg.clip_vision, cfg.device)
    return [Protocol(n, backbones[n], PREPARE[n]) for n in names]


def requirements(cfg: ProtocolsConfig) -> list[Requirement]:
    """The weight files the wanted protocols need (for doctor and pre-flight checks)."""
    from harness.metrics.inception import fid_inception_requirement

    names = check_names(cfg.names)
    out = []
    if any(n in names for n in ("sana", "clean_fid", "torch_fidelity")) and cfg.inception.random_init_seed is None:
        out.append(fid_inception_requirement())
    if "fd_dinov2" in names and cfg.dinov2.random_init_seed is None:
        out.append(DINOV2_REQUIREMENT)
    if "cmmd" in names and cfg.clip_vision.random_init_seed is None:
        out.append(CMMD_CLIP_REQUIREMENT)
    return out


# --------------------------------------------------------------------------- CMMD


def rbf_kernel_mean(x: np.ndarray, y: np.ndarray, sigma: float = CMMD_SIGMA, block: int = 2048) -> float:
    """mean over all pairs of exp(-|x-y|^2 / (2 sigma^2)) (diagonal included, as CMMD), in blocks, float64."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    gamma = 1.0 / (2.0 * sigma ** 2)
    xn, yn = (x * x).sum(1), (y * y).sum(1)
    total = 0.0
    for i in range(0, len(x), block):
        xi = x[i:i + block]
        d = xn[i:i + block, None] + yn[None, :] - 2.0 * xi @ y.T
        total += float(np.exp(-gamma * d).sum())
    return total / (len(x) * len(y))


def cmmd(x: np.ndarray, y: np.ndarray, *, kxx: float | None = None, kyy: float | None = None) -> float:
    """CMMD = 1000 * (k(x,x) + k(y,y) - 2 k(x,y)) with google-research's RBF kernel (sigma 10).

    ``kxx`` may be given precomputed (the reference's, cached with its embeddings).
    """
    kxx = rbf_kernel_mean(x, x) if kxx is None else kxx
    kyy = rbf_kernel_mean(y, y) if kyy is None else kyy
    return CMMD_SCALE * (kxx + kyy - 2.0 * rbf_kernel_mean(x, y))
