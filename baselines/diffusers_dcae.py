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
    """Continuous reconstruction ``decode(encode(x))`` of a diffusers DC-AE, fp32, no latent scaling."""

    kind: ClassVar[str] = "image_tokenizer"
    paths: ClassVar[tuple[str, ...]] = ("continuous",)
    libraries: ClassVar[tuple[str, ...]] = ("diffusers",)

    def __init__(self, weights: str | None = None, random_init_seed: int | None = None, device: str = "cpu",
                 resolution: int | None = None):
        import torch
        from diffusers import AutoencoderDC

        check_weights_or_seed(weights, random_init_seed)
        self.device = torch.device(device)
        self.resolution = resolution
        if random_init_seed is not None:
            with seeded(random_init_seed):
                model = AutoencoderDC(**TINY_CONFIG)
            self.weights = {"dc-ae": random_init_tag(random_init_seed)}
            self.name = "dc-ae-tiny-random"
        else:
            from harness.io import file_sha256
            from harness.resources import locate

            path = locate(DCAE_WEIGHTS, explicit=weights)
            model = AutoencoderDC.from_pretrained(str(path), local_files_only=True)
            files = [p for p in sorted(path.iterdir()) if p.name.startswith("diffusion_pytorch_model")]
            self.weights = {str(p): file_sha256(p) for p in files}
            self.name = f"dc-ae:{path.name}"
        self.model = model.to(self.device).eval()
        self.downsample = 2 ** (len(self.model.config.encoder_block_out_channels) - 1)

    @classmethod
    def requirements(cls) -> list[Requirement]:
        return [DCAE_WEIGHTS]

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
