"""DC-AE autoencoders (diffusers ``AutoencoderDC``) as image tokenizers: the golden sanity check's model.

Why it is here: the DC-AE README publishes its evaluator's exact output for ``dc-ae-f64c128-in-1.0`` on
ImageNet 512x512 (rFID 0.2168, PSNR 26.149, SSIM 0.7105, LPIPS 0.0802). Running ``imagenet_recon`` with this
adapter and ``--set report.golden=dc-ae-f64c128-in-1.0`` tells a user that their data, crop, weights and metric
stack are right before they trust a DC-HT number. Weights: the diffusers-format release
``mit-han-lab/dc-ae-f64c128-in-1.0-diffusers`` (``config.json`` + ``diffusion_pytorch_model.safetensors``).

Batch shape: like DC-HT, the float32 kernels of AutoencoderDC round differently at different batch sizes
(measured on the tiny config: ~6e-7 between an image alone and in a batch of 4), so after :meth:`set_batch_size`
every shorter call is padded to the run's batch size (:class:`baselines.common.BatchPadding`).
"""
from __future__ import annotations

from typing import Any, ClassVar

from baselines.common import (
    IMAGE_FIX,
    BatchPadding,
    check_weights_or_seed,
    random_init_tag,
    require_finite,
    seeded,
    uses_random_init,
)
from harness.api import AdapterInfo, ImageTokenizer, Requirement

DCAE_WEIGHTS = Requirement(
    name="DC-AE autoencoder (diffusers format)",
    description=("a diffusers AutoencoderDC directory (config.json + diffusion_pytorch_model.safetensors), e.g. "
                 "`git clone https://huggingface.co/mit-han-lab/dc-ae-f64c128-in-1.0-diffusers` for the golden "
                 "sanity check; point DCAR_DCAE_PATH or --set model.weights=... at it"),
    env_var="DCAR_DCAE_PATH",
    config_key="weights",
    hf_repo="mit-han-lab/dc-ae-f64c128-in-1.0-diffusers",
    must_contain=("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
)

#: a tiny AutoencoderDC for tests and smoke runs (f4, random weights): same code path as the released models
TINY_CONFIG: dict[str, Any] = dict(
    in_channels=3, latent_channels=4, attention_head_dim=8,
    encoder_block_types=("ResBlock", "EfficientViTBlock", "EfficientViTBlock"),
    decoder_block_types=("ResBlock", "EfficientViTBlock", "EfficientViTBlock"),
    encoder_block_out_channels=(8, 16, 16), decoder_block_out_channels=(8, 16, 16),
    encoder_layers_per_block=(1, 1, 1), decoder_layers_per_block=(1, 1, 1),
    encoder_qkv_multiscales=((), (), ()), decoder_qkv_multiscales=((), (), ()),
    decoder_norm_types=("batch_norm", "rms_norm", "rms_norm"), decoder_act_fns=("relu", "silu", "silu"),
)


class DCAEAdapter(BatchPadding, ImageTokenizer):
    """Continuous reconstruction ``decode(encode(x))`` of a diffusers DC-AE, fp32, no latent scaling.

    ``random_init_seed`` builds the tiny config (``config="tiny"``, the default for random weights) or, where a
    subclass ships one, the published architecture with random weights (``config="full"``, for timing).
    """

    kind: ClassVar[str] = "image_tokenizer"
    paths: ClassVar[tuple[str, ...]] = ("continuous",)
    libraries: ClassVar[tuple[str, ...]] = ("diffusers",)
    weights_requirement: ClassVar[Requirement] = DCAE_WEIGHTS
    label: ClassVar[str] = "dc-ae"
    full_config_file: ClassVar[str | None] = None  # the published config (baselines/diffusers_configs/components)

    def __init__(self, weights: str | None = None, random_init_seed: int | None = None, device: str = "cpu",
                 resolution: int | None = None, config: str = "tiny"):
        import torch
        from diffusers import AutoencoderDC

        check_weights_or_seed(weights, random_init_seed)
        if config not in ("tiny", "full") or (config == "full" and random_init_seed is not None
                                                and self.full_config_file is None):
            raise ValueError(f"{self.label}: config must be 'tiny'"
                             + (" or 'full'" if self.full_config_file else "") + f", got {config!r}")
        self.device = torch.device(device)
        self.resolution = resolution
        if random_init_seed is not None:
            with seeded(random_init_seed):
                model = (AutoencoderDC(**TINY_CONFIG) if config == "tiny"
                         else AutoencoderDC.from_config(_published_config(self.full_config_file)))
            self.weights = {self.label: random_init_tag(random_init_seed)}
            self.name = f"{self.label}-{config}-random"
        else:
            from harness.io import file_sha256
            from harness.resources import locate

            path = locate(self.weights_requirement, explicit=weights)
            model = AutoencoderDC.from_pretrained(str(path), local_files_only=True)
            files = [p for p in sorted(path.iterdir()) if p.name.startswith("diffusion_pytorch_model")]
            self.weights = {str(p): file_sha256(p) for p in files}
            self.name = f"{self.label}:{path.name}"
        self.model = model.to(self.device).eval()
        self.downsample = 2 ** (len(self.model.config.encoder_block_out_channels) - 1)

    @classmethod
    def requirements(cls) -> list[Requirement]:
        return [cls.weights_requirement]

    def reconstruct(self, images, path: str | None = None):
        import torch

        from harness.images import check_batch

        if path not in (None, "continuous"):
            raise ValueError(f"DC-AE has only the continuous path, got path={path!r}")
        if torch.is_tensor(images):
            require_finite(images, "DC-AE input images", fix=IMAGE_FIX)
        check_batch(images, name="DC-AE input", multiple_of=self.downsample)
        n = images.shape[0]
        with torch.inference_mode():
            x = self._pad(images).to(self.device, torch.float32) * 2 - 1
            latent = self.model.encode(x).latent
            y = self.model.decode(latent).sample[:n]
        require_finite(y, "DC-AE reconstruction", fix="check the weights")
        return ((y.float().cpu() + 1) / 2).clamp(0, 1)

    def info(self) -> AdapterInfo:
        return AdapterInfo(
            name=self.name, kind=self.kind, resolution=self.resolution, dtype="float32",
            num_params=sum(p.numel() for p in self.model.parameters()), weights=dict(self.weights),
            real_weights=not uses_random_init(self.weights),
            extra={"spatial_compression": self.downsample, "latent_channels": self.model.config.latent_channels},
        )


DCAE_F32C32_WEIGHTS = Requirement(
    name="DC-AE f32c32 autoencoder (diffusers format)",
    description=("the ImageNet DC-AE f32c32 (32x spatial compression, 32 latent channels: the continuous "
                 "autoencoder whose architecture DC-HT adopts), diffusers format; `git clone "
                 "https://huggingface.co/mit-han-lab/dc-ae-f32c32-in-1.0-diffusers`; point DCAR_DCAE_F32C32_PATH "
                 "or --set model.weights=... at it"),
    env_var="DCAR_DCAE_F32C32_PATH",
    config_key="weights",
    hf_repo="mit-han-lab/dc-ae-f32c32-in-1.0-diffusers",
    must_contain=("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
)


def _published_config(filename: str) -> dict[str, Any]:
    """A published AutoencoderDC config shipped as JSON in ``baselines/diffusers_configs/components``."""
    import json
    from pathlib import Path

    path = Path(__file__).with_name("diffusers_configs") / "components" / filename
    return json.loads(path.read_text())


class DCAEF32C32Adapter(DCAEAdapter):
    """Table 1's continuous peer of DC-HT: DC-AE f32c32 (ImageNet, ``dc-ae-f32c32-in-1.0``), same code path.

    ``random_init_seed`` + ``config="full"`` builds the published architecture (323.4M parameters) with random
    weights; ``config="tiny"`` (the default for random weights) the tiny f4 one of ``dc-ae``.
    """

    weights_requirement: ClassVar[Requirement] = DCAE_F32C32_WEIGHTS
    label: ClassVar[str] = "dc-ae-f32c32"
    full_config_file: ClassVar[str | None] = "dc_ae_f32c32_in_1_0.json"
