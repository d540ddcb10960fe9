"""DC-HT tokenizer training: the losses of the paper's tokenizer hyper-parameter table (Appendix A.2) and the
three strategies of Table 5 as named recipes.

Losses (weights from the paper's tokenizer table): L2 reconstruction 1.0 (L1 0.0), LPIPS perceptual 1.0,
PatchGAN hinge adversarial 0.5 (:mod:`dcar_training.discriminator`), and the VQ loss on discrete-path images
(codebook term + commitment beta = 0.25, the quantizer's own ``beta``). Optimiser Adam (0.9, 0.95), lr 1e-4,
constant, no weight decay, batch 128.

Stages (paper §3.1, "Three-stage adaptation"; the image takes the discrete path with probability ``p``):

==================== ===== ====================================== ======================================
stage                p     trainable                              used in recipe
==================== ===== ====================================== ======================================
continuous_warmup    0     encoder, decoder                       three_stage, warmup_alternate_full
discrete             1     encoder, quantizer, decoder            three_stage, discrete_alternate
alternate_finetune   0.5   decoder (encoder + quantizer frozen)   three_stage, discrete_alternate
alternate_full       0.5   encoder, quantizer, decoder            warmup_alternate_full
==================== ===== ====================================== ======================================

The continuous path decodes the L2-normalised latent (what DC-HT's hybrid path decodes for the encoder's own
residuals); the discrete path decodes the straight-through code vectors. Each stage starts from the previous
stage's final weights (tokenizer and discriminator) with fresh optimisers, in its own folder, so a stage
killed midway resumes from its own checkpoint.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from harness.io import atomic_write_bytes, dump_json

from .data import batch_images
from .discriminator import PatchDiscriminator, hinge_d_loss, hinge_g_loss
from .distributed import DistInfo, broadcast_module_
from .loop import Loop, LoopConfig, MicroBatch, Task, TrainingError

#: stage -> (probability of the discrete path, trainable parts of DC-HT)
STAGES: dict[str, tuple[float, tuple[str, ...]]] = {
    "continuous_warmup": (0.0, ("encoder", "decoder")),
    "discrete": (1.0, ("encoder", "quantize", "decoder")),
    "alternate_finetune": (0.5, ("decoder",)),
    "alternate_full": (0.5, ("encoder", "quantize", "decoder")),
}
#: Table 5's strategies: stage order (lengths come from the config; the paper gives 10 / 40 / 10 epochs for
#: three_stage only -- the alternatives here default to the same 60 epochs in total)
RECIPES: dict[str, tuple[str, ...]] = {
    "three_stage": ("continuous_warmup", "discrete", "alternate_finetune"),
    "discrete_alternate": ("discrete", "alternate_finetune"),
    "warmup_alternate_full": ("continuous_warmup", "alternate_full"),
}
RECIPE_LABELS = {
    "three_stage": "Three-stage adaptation (DC-HT)",
    "discrete_alternate": "Discrete training + alternate fine-tuning",
    "warmup_alternate_full": "Continuous warm-up + alternate training",
}


@dataclass(frozen=True)
class TokenizerLossConfig:
    """Loss weights (paper's tokenizer table) and where the LPIPS trunk comes from."""

    l2_weight: float = 1.0
    l1_weight: float = 0.0
    perceptual_weight: float = 1.0
    discriminator_weight: float = 0.5
    discriminator_start_step: int = 0  # per stage; the paper does not say when the GAN loss starts
    lpips_backbone_path: str | None = None
    lpips_random_backbone_seed: int | None = None  # tests / mini runs only (a random AlexNet trunk)


@dataclass(frozen=True)
class AdamConfig:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0


@dataclass(frozen=True)
class TokenizerTrainConfig:
    """One recipe's training: model size, data, stage lengths, loop settings."""

    recipe: str = "three_stage"
    model_config: str = "tiny"  # tiny | full (the released f32c32 topology)
    codebook_size: int = 1024
    init_seed: int = 0
    stage_epochs: Mapping[str, float] = field(default_factory=lambda: {
        "continuous_warmup": 10, "discrete": 40, "alternate_finetune": 10, "alternate_full": 50})
    recipe_stage_epochs: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: {
        "discrete_alternate": {"discrete": 50}})
    batch_size: int = 128
    micro_batch_size: int = 128
    seed: int = 0
    log_every: int = 1
    checkpoint_every: int = 0
    amp: str = "none"
    discriminator_channels: int = 64
    discriminator_layers: int = 3
    loss: TokenizerLossConfig = TokenizerLossConfig()
    optim: AdamConfig = AdamConfig()

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise TrainingError(f"unknown tokenizer recipe {self.recipe!r}; known: {', '.join(RECIPES)}")
        missing = [s for s in RECIPES[self.recipe] if s not in self.stage_epochs
                   and s not in (self.recipe_stage_epochs or {}).get(self.recipe, {})]
        if missing:
            raise TrainingError(f"stage_epochs has no length for stage(s) {', '.join(missing)} of recipe "
                                f"{self.recipe!r}. Fix: --set stage_epochs.{missing[0]}=10")

    def epochs(self, stage: str) -> float:
        override = (self.recipe_stage_epochs or {}).get(self.recipe, {})
        return float(override.get(stage, self.stage_epochs[stage]))

    def steps(self, stage: str, dataset_size: int) -> int:
        return math.ceil(self.epochs(stage) * dataset_size / self.batch_size)


def build_dcht(cfg: TokenizerTrainConfig):
    from baselines.common import seeded
    from baselines.dcar.tokenizer import DCHT
    from baselines.dcar.tokenizer.config import DCHTConfig

    if cfg.model_config == "tiny":
        mcfg = DCHTConfig.tiny(codebook_size=cfg.codebook_size)
    elif cfg.model_config == "full":
        mcfg = DCHTConfig(codebook_size=cfg.codebook_size)
    else:
        raise TrainingError(f"tokenizer model_config must be tiny or full, got {cfg.model_config!r}")
    with seeded(cfg.init_seed):
        return DCHT(mcfg)


def build_perceptual(loss: TokenizerLossConfig, device: torch.device) -> tuple[torch.nn.Module | None, str]:
    """The LPIPS network (frozen; gradients flow to its inputs) and its weights id; None when its weight is 0."""
    from harness.metrics.recon import LPIPS

    if not loss.perceptual_weight:
        return None, "none (perceptual_weight 0)"
    m = LPIPS(loss.lpips_backbone_path, random_backbone_seed=loss.lpips_random_backbone_seed, device=device)
    return m.model, m.weights_id


class TokenizerTask(Task):
    """One stage of DC-HT training: autoencoder step (rec + perceptual + GAN + VQ) then discriminator step."""

    def __init__(self, model, discriminator: torch.nn.Module, perceptual: torch.nn.Module, stage: str,
                 cfg: TokenizerTrainConfig, dataset, device: torch.device):
        if stage not in STAGES:
            raise TrainingError(f"unknown tokenizer stage {stage!r}; known: {', '.join(STAGES)}")
        self.model, self.disc, self.lpips = model, discriminator, perceptual
        self.stage, self.cfg, self.dataset, self.device = stage, cfg, dataset, device
        self.p_discrete, parts = STAGES[stage]
        self.trainable_parts = parts
        model.requires_grad_(False)
        for name in parts:
            getattr(model, name).requires_grad_(True)
        self.encoder_frozen = "encoder" not in parts
        self.ae_params = [p for p in model.parameters() if p.requires_grad]
        o = cfg.optim
        self._opts = {"ae": torch.optim.Adam(self.ae_params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay),
                      "disc": torch.optim.Adam(self.disc.parameters(), lr=o.lr, betas=tuple(o.betas),
                                               weight_decay=o.weight_decay)}

    def modules(self):
        return {"tokenizer": self.model, "discriminator": self.disc}

    def optimizers(self):
        return self._opts

    def discrete_mask(self, mb: MicroBatch, loop: Loop) -> torch.Tensor:
        """Which images of the micro-batch take the discrete path (a per-sample coin for 0 < p < 1)."""
        if self.p_discrete <= 0.0 or self.p_discrete >= 1.0:
            return torch.full((len(mb.positions),), self.p_discrete >= 1.0)
        return torch.tensor([bool(torch.rand(1, generator=loop.sample_generator(p, "tokenizer-path"))[0]
                                  < self.p_discrete) for p in mb.positions])

    def _forward(self, x: torch.Tensor, discrete: torch.Tensor):
        model = self.model
        model.encoder.train(not self.encoder_frozen)
        with torch.set_grad_enabled(not self.encoder_frozen):
            z = model.encode(x)
        z_q, info = model.quantize(z)
        feats = info["features"]
        d = discrete.to(x.device).view(-1, 1, 1, 1)
        latent = torch.where(d, z_q, feats)
        recon = model.decode(latent)
        # VQ loss per image, counted on discrete-path images only (codebook term + beta * commitment)
        b, c = feats.shape[:2]
        f = feats.permute(0, 2, 3, 1).reshape(b, -1, c)
        codes = model.quantize.codebook_entry(info["indices"])
        per_image = ((codes - f.detach()) ** 2).mean(dim=(1, 2)) \
            + model.quantize.beta * ((codes.detach() - f) ** 2).mean(dim=(1, 2))
        vq = (per_image * discrete.to(per_image.device, per_image.dtype)).sum() / b
        return recon, vq

    def train_step(self, step: int, micro_batches: Sequence[MicroBatch], loop: Loop) -> dict[str, float]:
        lc = self.cfg.loss
        use_gan = lc.discriminator_weight > 0 and step >= lc.discriminator_start_step
        sums: dict[str, float] = {}
        saved = []
        self.model.decoder.train()
        self.disc.train()
        ae_buffers = loop.buffer_average(self.model, self.disc)
        for mb in micro_batches:
            x = batch_images(self.dataset, mb.indices).to(self.device)
            discrete = self.discrete_mask(mb, loop)
            self.disc.requires_grad_(False)
            with loop.autocast():
                recon, vq = self._forward(x, discrete)
                recon = recon.float()
                l2 = ((recon - x) ** 2).mean()
                l1 = (recon - x).abs().mean()
                perceptual = self.lpips(recon, x).mean() if lc.perceptual_weight else recon.new_zeros(())
                g = hinge_g_loss(self.disc(recon)) if use_gan else recon.new_zeros(())
                total = (lc.l2_weight * l2 + lc.l1_weight * l1 + lc.perceptual_weight * perceptual
                         + lc.discriminator_weight * g + vq)
            loop.backward(total, "ae")
            ae_buffers.next()
            saved.append((x, recon.detach()))
            for k, v in (("loss", total), ("l2", l2), ("perceptual", perceptual), ("gan_g", g), ("vq", vq)):
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            sums["discrete_fraction"] = sums.get("discrete_fraction", 0.0) + float(discrete.float().mean())
        ae_buffers.finish()
        loop.optimizer_step("ae", self.ae_params)
        if use_gan:
            self.disc.requires_grad_(True)
            d_buffers = loop.buffer_average(self.disc)
            for x, recon in saved:
                with loop.autocast():
                    d = hinge_d_loss(self.disc(x), self.disc(recon))
                loop.backward(d, "disc")
                d_buffers.next()
                sums["gan_d"] = sums.get("gan_d", 0.0) + float(d.detach())
            d_buffers.finish()
            loop.optimizer_step("disc", list(self.disc.parameters()))
        return {k: v / len(micro_batches) for k, v in sums.items()}


def stage_dirs(out_dir: Path, recipe: str) -> list[tuple[str, Path]]:
    return [(s, Path(out_dir) / f"stage{i + 1}_{s}") for i, s in enumerate(RECIPES[recipe])]


def train_tokenizer(cfg: TokenizerTrainConfig, dataset, out_dir: str | Path, *, dist: DistInfo = DistInfo(),
                    device: str | torch.device = "cpu", progress: Callable | None = None,
                    stop_after: tuple[int, int] | None = None) -> dict[str, Any]:
    """Run every stage of ``cfg.recipe`` into ``out_dir`` (resuming what is there); save the final DC-HT.

    Returns ``{"stages": [...], "device_seconds": total, "final_dir": ...}``; ``stop_after=(stage index, step)``
    stops early (the tests' stand-in for a kill).
    """
    device = torch.device(device)
    out_dir = Path(out_dir)
    model = build_dcht(cfg).to(device)
    with _seeded_disc(cfg.init_seed):
        disc = PatchDiscriminator(cfg.discriminator_channels, cfg.discriminator_layers).to(device)
    broadcast_module_(model, dist)
    broadcast_module_(disc, dist)
    perceptual, lpips_id = build_perceptual(cfg.loss, device)
    # each stage's own length is its loop identity's `steps`; the other stages' lengths do not change it (so a
    # longer last stage reuses the earlier stages' checkpoints)
    skip = ("checkpoint_every", "stage_epochs", "recipe_stage_epochs")
    identity = {"what": "dc-ht tokenizer", "config": {k: v for k, v in _plain(cfg).items() if k not in skip},
                "lpips": lpips_id, "dataset": dataset.describe()}
    stages = []
    previous: Path | None = None
    for i, (stage, sdir) in enumerate(stage_dirs(out_dir, cfg.recipe)):
        if previous is not None:
            _load_modules(previous, {"tokenizer": model, "discriminator": disc}, device)
        task = TokenizerTask(model, disc, perceptual, stage, cfg, dataset, device)
        lcfg = LoopConfig(steps=cfg.steps(stage, len(dataset)), batch_size=cfg.batch_size,
                          micro_batch_size=cfg.micro_batch_size, seed=cfg.seed + i, log_every=cfg.log_every,
                          checkpoint_every=cfg.checkpoint_every, amp=cfg.amp)
        loop = Loop(task, lcfg, len(dataset), sdir, dist=dist, device=device, progress=progress,
                    identity={**identity, "stage": stage, "stage_index": i})
        stop = stop_after[1] if stop_after and stop_after[0] == i else None
        result = loop.run(stop_after=stop)
        stages.append({"stage": stage, "steps": lcfg.steps, "epochs": cfg.epochs(stage), **result,
                       "loss_log": str(loop.log_path.relative_to(out_dir))})
        if not result["done"]:
            return {"stages": stages, "done": False}
        previous = loop.checkpoint_path
    final = out_dir / "final"
    if dist.is_main:
        model.eval()
        model.save_pretrained(final)
    summary = {"recipe": cfg.recipe, "stages": stages, "done": True, "final_dir": "final",
               "device_seconds": sum(s["device_seconds"] for s in stages), "lpips_weights": lpips_id}
    if dist.is_main:
        atomic_write_bytes(out_dir / "training_summary.json", dump_json(summary))
    return summary


def _seeded_disc(seed: int):
    from baselines.common import seeded

    return seeded(int(seed) + 1)


def _plain(obj: Any) -> Any:
    import dataclasses

    return json.loads(json.dumps(dataclasses.asdict(obj), default=list))


def _load_modules(checkpoint: Path, modules: Mapping[str, torch.nn.Module], device: torch.device) -> None:
    state = torch.load(checkpoint, map_location=device, weights_only=False)
    for k, m in modules.items():
        m.load_state_dict(state["modules"][k])
