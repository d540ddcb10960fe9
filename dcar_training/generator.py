"""DC-AR generator training: masked-token cross-entropy + residual diffusion loss, and the resolution recipes of
Table 6 / Fig. 10.

Hyper-parameters (the paper's generator table, Appendix A.2): AdamW (0.9, 0.96), weight decay 0.03, lr 1e-4
with a cosine schedule, condition dropout 0.1, cross-entropy and diffusion loss weights 1.0, batch 1024,
200K steps at 256x256 and 50K at 512x512. Diffusion ``batch_mul`` 4 (the released config). The losses are
:mod:`baselines.dcar.generator.training_forward`.

Recipes (paper §3.2 and §4.3 "Training Efficiency Benefit"):

* ``pretrain_finetune``: pre-train at the low resolution (256), then fine-tune the same weights at the high
  resolution (512). Only the token grid changes (8x8 -> 16x16 for DC-HT's 32x compression); the weights are
  shared and the fixed 2-D sin-cos position table is rebuilt for the larger grid. With the same
  ``pos_embed_base_size`` at both grids the table spans the same coordinate range (PixArt's interpolated
  sin-cos), so a position keeps its meaning across resolutions.
* ``scratch``: train at the high resolution from the random init.

``discrete_only: true`` trains the discrete-only baseline of Table 4: no diffusion loss, the head untrained.
The tokenizer (DC-HT) and the T5 text encoder are frozen; their outputs for the whole dataset are computed
once per stage (token ids + residual tokens per resolution, caption features).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from harness.io import atomic_write_bytes, dump_json

from .data import batch_images
from .distributed import DistInfo, broadcast_module_
from .loop import Loop, LoopConfig, MicroBatch, Task, TrainingError

RECIPES: dict[str, tuple[tuple[str, str], ...]] = {
    "pretrain_finetune": (("pretrain", "low"), ("finetune", "high")),
    "scratch": (("scratch", "high"),),
}
RECIPE_LABELS = {"pretrain_finetune": "Pretrain 256 + finetune 512", "scratch": "From scratch at 512"}


@dataclass(frozen=True)
class AdamWConfig:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.96)
    weight_decay: float = 0.03
    warmup_steps: int = 0  # the paper states none


@dataclass(frozen=True)
class GeneratorTrainConfig:
    recipe: str = "pretrain_finetune"
    discrete_only: bool = False
    model_config: str = "tiny"  # tiny | mini (the shipped mini default's) | full (the released 512 px architecture)
    init_seed: int = 0
    low_resolution: int = 256
    high_resolution: int = 512
    stage_steps: Mapping[str, int] = field(default_factory=lambda: {"pretrain": 200_000, "finetune": 50_000,
                                                                    "scratch": 200_000})
    batch_size: int = 1024
    micro_batch_size: int = 1024
    seed: int = 0
    log_every: int = 1
    checkpoint_every: int = 0
    amp: str = "none"
    condition_dropout: float = 0.1
    ce_weight: float = 1.0
    diffusion_weight: float = 1.0
    diffusion_batch_mul: int = 4
    optim: AdamWConfig = AdamWConfig()

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise TrainingError(f"unknown generator recipe {self.recipe!r}; known: {', '.join(RECIPES)}")
        for res in (self.low_resolution, self.high_resolution):
            if res % 32:
                raise TrainingError(f"generator resolutions must be multiples of 32 (DC-HT's compression), got {res}")


def build_generator(cfg: GeneratorTrainConfig, resolution: int, codebook_size: int, context_dim: int,
                    text_token_length: int):
    """A DC-AR generator for the token grid of ``resolution`` (seeded init; zeroed output layers as in training)."""
    from baselines.common import seeded
    from baselines.dcar.generator import DCAR, DCARConfig

    seq = (resolution // 32) ** 2
    if cfg.model_config == "tiny":
        mcfg = DCARConfig.tiny(codebook_size=codebook_size, image_seq_len=seq, context_dim=context_dim)
        mcfg.text_token_length = text_token_length
    elif cfg.model_config == "mini":
        mcfg = DCARConfig.mini(codebook_size=codebook_size, image_seq_len=seq, context_dim=context_dim)
        mcfg.text_token_length = text_token_length
    elif cfg.model_config == "full":
        mcfg = DCARConfig(codebook_size=codebook_size, image_seq_len=seq, context_dim=context_dim,
                          text_token_length=text_token_length)
    else:
        raise TrainingError(f"generator model_config must be tiny, mini or full, got {cfg.model_config!r}")
    mcfg.diffusion_batch_mul = cfg.diffusion_batch_mul
    with seeded(cfg.init_seed):
        return DCAR(mcfg)


def encode_dataset(tokenizer, text_encoder, dataset, device: torch.device, batch: int = 16) -> dict[str, torch.Tensor]:
    """Frozen-model features of every item: ids (N, L), residual (N, L, C), text hidden (N, T, D), mask (N, T)."""
    ids, res, hid, msk = [], [], [], []
    tokenizer.eval()
    with torch.no_grad():
        for s in range(0, len(dataset), batch):
            idx = list(range(s, min(len(dataset), s + batch)))
            tok = tokenizer.tokenize(batch_images(dataset, idx).to(device))
            ids.append(tok["ids"].cpu())
            res.append(tok["residual"].float().cpu())
            text = text_encoder.encode([dataset.caption(i) for i in idx])
            hid.append(text.hidden.cpu())
            msk.append(text.mask.cpu())
    return {"ids": torch.cat(ids), "residual": torch.cat(res), "text_hidden": torch.cat(hid),
            "text_mask": torch.cat(msk)}


class LazyFeatures(Mapping):
    """``encode_dataset``'s result, computed on first use: a resumed stage that is already complete never encodes
    (on a CPU, encoding 16k pictures takes longer than re-exporting a finished run should)."""

    def __init__(self, compute: Callable[[], dict[str, torch.Tensor]]):
        self._compute, self._value = compute, None

    def _get(self) -> dict[str, torch.Tensor]:
        if self._value is None:
            self._value = self._compute()
        return self._value

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._get()[key]

    def __iter__(self):
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


def cosine_lambda(total_steps: int, warmup_steps: int = 0) -> Callable[[int], float]:
    def f(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup_steps) / span)))
    return f


class GeneratorTask(Task):
    """One stage of generator training on precomputed tokens."""

    def __init__(self, model, features: Mapping[str, torch.Tensor], cfg: GeneratorTrainConfig, steps: int,
                 device: torch.device):
        from baselines.dcar.generator.training_forward import diffusion_loss, masked_token_forward, random_mask

        self._ce, self._diff, self._mask = masked_token_forward, diffusion_loss, random_mask
        self.model, self.features, self.cfg, self.device = model, features, cfg, device
        model.requires_grad_(True)
        model.pos_embed.requires_grad_(False)
        if cfg.discrete_only:
            model.diffloss.requires_grad_(False)
        self.params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
        o = cfg.optim
        self._opt = torch.optim.AdamW([{"params": decay, "weight_decay": o.weight_decay},
                                       {"params": no_decay, "weight_decay": 0.0}], lr=o.lr, betas=tuple(o.betas))
        self._sched = torch.optim.lr_scheduler.LambdaLR(self._opt, cosine_lambda(steps, o.warmup_steps))

    def modules(self):
        return {"generator": self.model}

    def optimizers(self):
        return {"main": self._opt}

    def schedulers(self):
        return {"main": self._sched}

    def train_step(self, step: int, micro_batches: Sequence[MicroBatch], loop: Loop) -> dict[str, float]:
        cfg, model, f = self.cfg, self.model, self.features
        model.train()
        n_tok = model.config.image_seq_len
        mul = cfg.diffusion_batch_mul
        steps_t = model.diffloss.num_train_steps
        sums = {"loss": 0.0, "ce": 0.0, "diffusion": 0.0}
        for mb in micro_batches:
            idx = torch.tensor(mb.indices)
            ids = f["ids"][idx].to(self.device)
            residual = f["residual"][idx].to(self.device)
            mask = torch.stack([self._mask(n_tok, loop.sample_generator(p, "gen-mask")) for p in mb.positions])
            drop = torch.tensor([bool(torch.rand(1, generator=loop.sample_generator(p, "gen-cond-drop"))[0]
                                      < cfg.condition_dropout) for p in mb.positions])
            with loop.autocast():
                ce, hidden = self._ce(model, ids, mask.to(self.device), f["text_hidden"][idx].to(self.device),
                                      f["text_mask"][idx].to(self.device), drop.to(self.device))
                loss = cfg.ce_weight * ce
                diff = ce.new_zeros(())
                if not cfg.discrete_only and cfg.diffusion_weight:
                    b, c = len(mb.positions), residual.shape[-1]
                    t = torch.stack([torch.randint(0, steps_t, (mul, n_tok),
                                                   generator=loop.sample_generator(p, "gen-diff-t"))
                                     for p in mb.positions], dim=1)  # (mul, B, N): the official repeat order
                    noise = torch.stack([torch.randn((mul, n_tok, c), generator=loop.sample_generator(p, "gen-diff-n"))
                                         for p in mb.positions], dim=1)
                    z = hidden.reshape(b * n_tok, -1).repeat(mul, 1)
                    target = residual.reshape(b * n_tok, c).repeat(mul, 1)
                    diff = self._diff(model, z, target, t.reshape(-1).to(self.device),
                                      noise.reshape(-1, c).to(self.device))
                    loss = loss + cfg.diffusion_weight * diff
            loop.backward(loss, "main")
            sums["loss"] += float(loss.detach())
            sums["ce"] += float(ce.detach())
            sums["diffusion"] += float(diff.detach())
        loop.optimizer_step("main", self.params)
        out = {k: v / len(micro_batches) for k, v in sums.items()}
        out["lr"] = float(self._opt.param_groups[0]["lr"])
        return out


def load_generator_weights(model, checkpoint: Path, device: torch.device) -> None:
    """Copy a previous stage's generator weights; ``pos_embed`` (a fixed sin-cos table) keeps this grid's."""
    state = torch.load(checkpoint, map_location=device, weights_only=False)["modules"]["generator"]
    state = {k: v for k, v in state.items() if k != "pos_embed"}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"pos_embed"}:
        raise TrainingError(f"{checkpoint}: generator weights do not fit (missing {missing}, unexpected {unexpected})")


def save_generator(model, directory: Path) -> Path:
    """``pytorch_model.bin`` + ``config.json`` in the official layout (``DCAR.from_pretrained`` reads both)."""
    directory.mkdir(parents=True, exist_ok=True)
    import io

    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    atomic_write_bytes(directory / "pytorch_model.bin", buf.getvalue())
    atomic_write_bytes(directory / "config.json", dump_json(model.config.to_official()))
    return directory


def train_generator(cfg: GeneratorTrainConfig, datasets: Mapping[str, Any], tokenizer, text_encoder,
                    out_dir: str | Path, *, dist: DistInfo = DistInfo(), device: str | torch.device = "cpu",
                    progress: Callable | None = None, stop_after: tuple[int, int] | None = None,
                    identity: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run the stages of ``cfg.recipe``; ``datasets`` maps ``"low"``/``"high"`` to datasets at those resolutions."""
    device = torch.device(device)
    out_dir = Path(out_dir)
    tokenizer = tokenizer.to(device).eval().requires_grad_(False)
    stages = []
    previous: Path | None = None
    model = None
    for i, (stage, which) in enumerate(RECIPES[cfg.recipe]):
        dataset = datasets[which]
        res = dataset.resolution
        features = LazyFeatures(lambda ds=dataset: encode_dataset(tokenizer, text_encoder, ds, device))
        model = build_generator(cfg, res, tokenizer.config.codebook_size, text_encoder.hidden_size,
                                text_encoder.max_length).to(device)
        if previous is not None:
            load_generator_weights(model, previous, device)
        broadcast_module_(model, dist)
        steps = int(cfg.stage_steps[stage])
        task = GeneratorTask(model, features, cfg, steps, device)
        lcfg = LoopConfig(steps=steps, batch_size=cfg.batch_size, micro_batch_size=cfg.micro_batch_size,
                          seed=cfg.seed + i, log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every,
                          amp=cfg.amp)
        import dataclasses
        import json

        config = json.loads(json.dumps(dataclasses.asdict(cfg), default=list))
        ident = {"what": "dc-ar generator", "config": {k: v for k, v in config.items() if k != "checkpoint_every"},
                 "stage": stage, "resolution": res, "dataset": dataset.describe(), **(identity or {})}
        loop = Loop(task, lcfg, len(dataset), out_dir / f"stage{i + 1}_{stage}_{res}", dist=dist, device=device,
                    progress=progress, identity=ident)
        result = loop.run(stop_after=stop_after[1] if stop_after and stop_after[0] == i else None)
        stages.append({"stage": stage, "resolution": res, "steps": steps, **result,
                       "loss_log": str(loop.log_path.relative_to(out_dir))})
        if not result["done"]:
            return {"stages": stages, "done": False}
        previous = loop.checkpoint_path
    if dist.is_main:
        model.eval()
        save_generator(model, out_dir / "final")
    summary = {"recipe": cfg.recipe, "discrete_only": cfg.discrete_only, "stages": stages, "done": True,
               "final_dir": "final", "device_seconds": sum(s["device_seconds"] for s in stages)}
    if dist.is_main:
        atomic_write_bytes(out_dir / "training_summary.json", dump_json(summary))
    return summary
