"""MAR-B (Fig. 11: class-to-image on ImageNet 256 x 256 at different step counts) through ``LTH14/mar``.

Drives, from a user checkout (read at commit fe470ac, 2024-09-27), what ``demo/run_mar.ipynb`` and
``engine_mar.evaluate`` do: ``models.mar.mar_base(buffer_size=64, diffloss_d=6, diffloss_w=1024,
num_sampling_steps="100")``, ``load_state_dict(torch.load(checkpoint-last.pth)["model_ema"])`` (the EMA weights the
evaluation uses), ``models.vae.AutoencoderKL(embed_dim=16, ch_mult=(1, 1, 2, 2, 4), ckpt_path=kl16.ckpt)``; then
under ``torch.no_grad()`` and ``torch.cuda.amp.autocast()`` (float16, as the evaluation)
``sample_tokens(bsz, num_iter, cfg, cfg_schedule, labels, temperature)`` and ``vae.decode(tokens / 0.2325)``,
mapped from [-1, 1] to [0, 1].

Settings: ``num_iter`` **64** (DC-AR Fig. 11 and appendix A.5: "MAR-B requires 64 sampling steps to achieve its best
performance"; the README evaluates with 256 and notes 64 is much faster); **cfg 2.9, linear schedule,
temperature 1.0, 100 diffusion steps** (the README's MAR-B evaluation command). The harness option
``num_steps`` is passed as ``num_iter`` (so ``steps_sweep`` sets it like DC-AR's).

Randomness: ``sample_tokens`` draws its orders with ``np.random.shuffle`` and its diffusion noise from the global
torch RNG (the notebook seeds both globally). Each item runs alone inside
:func:`baselines.checkout.base.isolated_rng`. ``sample_tokens`` calls ``.cuda()`` itself: a CUDA machine only.

Weights (looked up in this order: option, environment variable, the paths ``util/download.py`` writes inside the
checkout): ``pretrained_models/mar/mar_base/checkpoint-last.pth`` and ``pretrained_models/vae/kl16.ckpt``.
Checked by hand on a clone of fe470ac with random MAR-B and KL-16 weights saved as ``checkpoint-last.pth`` /
``kl16.ckpt`` (on CPU, with ``Tensor.cuda`` made a no-op for that check only): the EMA entry is the one loaded, the
adapter's images equal ``sample_tokens`` + ``vae.decode(tokens / 0.2325)`` run by hand with the same seed, and an
image is the same alone and in a batch. Untested: the released weights, and float16 autocast on a GPU.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Sequence

from harness.api import AdapterInfo, ClassToImage, Requirement

from .base import CheckoutAdapter, locate_weights, to_harness_images, weights_record
from .repo import CheckoutSpec

SPEC = CheckoutSpec(
    name="MAR", github="LTH14/mar", env_var="DCAR_MAR_REPO",
    expected=("models/mar.py", "models/vae.py", "models/diffloss.py", "engine_mar.py", "util/download.py"),
    install="pip install timm==0.9.12 (see environment.yaml); python util/download.py fetches the weights",
    read_commit="fe470ac24afbee924668d8c5c83e9fec60af3a73")

MAR_B = Requirement(
    name="MAR-B checkpoint",
    description=("checkpoint-last.pth of MAR-B (with its 'model_ema' state dict): `python util/download.py` in the "
                 "checkout (it writes <checkout>/pretrained_models/mar/mar_base/checkpoint-last.pth, looked up "
                 "there too), or the Dropbox link in the MAR README"),
    env_var="DCAR_MAR_B_CKPT", config_key="weights")
KL16 = Requirement(
    name="MAR KL-16 VAE", description="pretrained_models/vae/kl16.ckpt: `python util/download.py` in the checkout",
    env_var="DCAR_MAR_VAE_CKPT", config_key="vae_weights")

VAE_SCALE = 0.2325  # engine_mar.evaluate: vae.decode(sampled_tokens / 0.2325)


def _load_ema(path) -> dict:
    """``checkpoint-last.pth["model_ema"]``, read with ``weights_only=True``.

    MAR's ``util/misc.save_model`` also stores the training ``args`` (an ``argparse.Namespace``), which a
    weights-only load refuses unless allowed; nothing else in the file is executed.
    """
    import argparse

    import torch

    from harness.api import DataError

    with torch.serialization.safe_globals([argparse.Namespace]):
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # an unpickling refusal names the offending global
            raise DataError(f"MAR checkpoint {path} cannot be read as weights only ({exc}); is it the "
                            "checkpoint-last.pth that util/download.py fetches?") from exc
    if not isinstance(state, dict) or "model_ema" not in state:
        keys = sorted(state)[:8] if isinstance(state, dict) else type(state).__name__
        raise DataError(f"MAR checkpoint {path} has no 'model_ema' entry (found {keys}); the evaluation uses the "
                        "EMA weights of checkpoint-last.pth")
    return state["model_ema"]


class MARAdapter(CheckoutAdapter, ClassToImage):
    """MAR (default MAR-B) class-to-image, ImageNet 256 x 256, from the official checkout."""

    #: distributions whose versions the run records (the official code's own dependencies)
    libraries: ClassVar[tuple[str, ...]] = ("timm",)

    name: ClassVar[str] = "mar-b"
    spec: ClassVar[CheckoutSpec] = SPEC
    defaults: ClassVar[dict[str, Any]] = {"num_steps": 64, "cfg": 2.9, "cfg_schedule": "linear", "temperature": 1.0}
    defaults_source: ClassVar[str] = ("num_steps (num_iter) 64: DC-AR Fig. 11 / appendix A.5 (MAR-B's best); "
                                      "cfg 2.9, linear, "
                                      "temperature 1.0, 100 diffusion steps: MAR README MAR-B evaluation command")
    official_rng: ClassVar[str] = "global numpy (orders) and torch (diffusion noise) RNGs"
    cuda_only: ClassVar[bool] = True

    def __init__(self, repo: str | None = None, weights: str | None = None, vae_weights: str | None = None,
                 model_type: str = "mar_base", diffloss_d: int = 6, diffloss_w: int = 1024,
                 num_sampling_steps: int = 100, device: str = "auto", autocast: bool = True,
                 rng_mode: str = "per_item", num_steps: int | None = None, cfg: float | None = None,
                 cfg_schedule: str | None = None, temperature: float | None = None):

        self._init_settings(rng_mode, {"num_steps": num_steps, "cfg": cfg, "cfg_schedule": cfg_schedule,
                                       "temperature": temperature})
        mods = self._open_checkout(repo, ["models.mar", "models.vae"])
        root = self.checkout.path
        mar_req = dataclasses.replace(MAR_B, default_paths=(
            str(root / "pretrained_models" / "mar" / model_type / "checkpoint-last.pth"),))
        vae_req = dataclasses.replace(KL16, default_paths=(str(root / "pretrained_models" / "vae" / "kl16.ckpt"),))
        self.weights_paths = locate_weights([(mar_req, weights), (vae_req, vae_weights)])
        self.device = self._resolve_device(device)
        self.autocast = bool(autocast)
        self.model_type = model_type
        self.build = {"buffer_size": 64, "diffloss_d": int(diffloss_d), "diffloss_w": int(diffloss_w),
                      "num_sampling_steps": str(int(num_sampling_steps))}
        factory = getattr(mods["models.mar"], model_type, None)
        if factory is None:
            raise ValueError(f"model_type {model_type!r} is not in the checkout's models/mar.py "
                             "(mar_base, mar_large, mar_huge)")
        self.model = factory(**self.build)
        self.model.load_state_dict(_load_ema(self.weights_paths[MAR_B.name]))
        self.model.to(self.device).eval()
        self.vae = mods["models.vae"].AutoencoderKL(embed_dim=16, ch_mult=(1, 1, 2, 2, 4),
                                                    ckpt_path=str(self.weights_paths[KL16.name]))
        self.vae.to(self.device).eval()
        self.resolution = int(getattr(self.model, "img_size", 256))

    @classmethod
    def weight_requirements(cls) -> list[Requirement]:
        return [MAR_B, KL16]

    def _sample(self, labels: list[int], s: dict[str, Any]):
        import torch

        on = self.autocast and self.device.type == "cuda"
        amp = torch.autocast(self.device.type, dtype=torch.float16, enabled=on)
        with torch.no_grad(), amp:
            tokens = self.model.sample_tokens(
                bsz=len(labels), num_iter=int(s["num_steps"]), cfg=float(s["cfg"]), cfg_schedule=s["cfg_schedule"],
                labels=torch.tensor(labels, dtype=torch.long, device=self.device), temperature=float(s["temperature"]))
            images = self.vae.decode(tokens / VAE_SCALE)
        return to_harness_images(images, (-1.0, 1.0), f"{self.name} images")

    def generate(self, class_ids: Sequence[int], seeds: Sequence[int], **options: Any):
        s = self._merge(options)
        bad = [c for c in class_ids if not 0 <= int(c) < 1000]
        if bad:
            raise ValueError(f"{self.name}: ImageNet class ids are 0..999, got {bad[:5]}")
        return self._run([int(c) for c in class_ids], seeds, lambda c, _sd: self._sample(c, s))

    def info(self) -> AdapterInfo:
        return AdapterInfo(
            name=self.name, kind=self.kind, resolution=self.resolution,
            dtype="float16-autocast" if self.autocast and self.device.type == "cuda" else "float32",
            steps=int(self.settings["num_steps"]), num_params=sum(p.numel() for p in self.model.parameters()),
            weights=weights_record(self.weights_paths), real_weights=True,
            extra=self._extra(model_type=self.model_type, build=dict(self.build), device=str(self.device),
                              vae_scale=VAE_SCALE))
