"""Train the mini default models the main job ships with: a DC-HT tokenizer and a DC-AR generator trained for
minutes on a 2-core CPU on procedural captioned pictures, exported in the official checkpoint format.

Why: without released weights a newcomer's first run shows random-weight noise. The mini models are small enough
to live in the repository (``baselines/dcar/mini_weights``, about 15 MB) and trained enough to reconstruct and
generate recognisable pictures that follow their captions, in the procedural world they were trained on
(:mod:`dcar_training.data`). They are NOT the released weights and say so in every report.

``python -m dcar_training mini-defaults --out baselines/dcar/mini_weights`` retrains them from scratch (per-sample
seeds, so the same machine reproduces them; another CPU's float rounding gives slightly different weights, hence
the committed files and their sha256). Steps:

1. DC-HT (``DCHTConfig.tiny`` topology, codebook 256) with the paper's three-stage adaptation (Table 5's recipe)
   at 128 px on ``shapes`` seed 0; L2 + VQ loss only (no LPIPS trunk or GAN here: neither can be downloaded, and a
   random-trunk perceptual loss teaches nothing);
2. DC-AR (``DCARConfig.mini``: 4 layers of width 128, 4 x 4 tokens at 128 px) from scratch on the frozen mini DC-HT's
   tokens and the tiny offline T5's caption features (random 2-layer T5, shipped too: it is part of the model);
3. export: ``dc-ht/`` (``config.json`` + ``model.safetensors``, DC-HT's HF layout), ``dc-ar/`` (official nested
   ``config.json`` + ``model.safetensors`` with the official state-dict keys), ``t5/`` (HF layout), ``SHA256SUMS``
   and ``training.json`` (configs, losses, device seconds, held-out PSNR beside random weights').
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from baselines.dcar.mini import COMPONENT_DIRS, SUMS_FILE, TRAINING_FILE
from harness.io import atomic_write_bytes, dump_json


@dataclass(frozen=True)
class MiniDefaultsConfig:
    """Everything that determines the mini default models (recorded in ``training.json``)."""

    resolution: int = 128
    data_seed: int = 0
    heldout_seed: int = 1
    heldout_n: int = 64
    codebook_size: int = 256
    tokenizer_n: int = 2048
    tokenizer_epochs: Mapping[str, float] = field(default_factory=lambda: {
        "continuous_warmup": 2, "discrete": 3, "alternate_finetune": 4})
    tokenizer_batch: int = 16
    tokenizer_lr: float = 3e-4
    generator_n: int = 16384
    generator_steps: int = 3000
    generator_batch: int = 32
    generator_lr: float = 1e-3
    t5_d_model: int = 32
    t5_seed: int = 0
    text_max_length: int = 64
    init_seed: int = 0


def tokenizer_train_config(cfg: MiniDefaultsConfig):
    from .tokenizer import AdamConfig, TokenizerLossConfig, TokenizerTrainConfig

    return TokenizerTrainConfig(
        recipe="three_stage", model_config="tiny", codebook_size=cfg.codebook_size, init_seed=cfg.init_seed,
        stage_epochs=dict(cfg.tokenizer_epochs), recipe_stage_epochs={}, batch_size=cfg.tokenizer_batch,
        micro_batch_size=cfg.tokenizer_batch, log_every=10, checkpoint_every=100,
        loss=TokenizerLossConfig(perceptual_weight=0.0, discriminator_weight=0.0),
        optim=AdamConfig(lr=cfg.tokenizer_lr))


def generator_train_config(cfg: MiniDefaultsConfig):
    from .generator import AdamWConfig, GeneratorTrainConfig

    return GeneratorTrainConfig(
        recipe="scratch", model_config="mini", init_seed=cfg.init_seed, low_resolution=cfg.resolution,
        high_resolution=cfg.resolution, stage_steps={"scratch": cfg.generator_steps}, batch_size=cfg.generator_batch,
        micro_batch_size=cfg.generator_batch, log_every=10, checkpoint_every=250,
        optim=AdamWConfig(lr=cfg.generator_lr, warmup_steps=min(100, cfg.generator_steps // 10)))


def heldout_indices(cfg: MiniDefaultsConfig) -> list[int]:
    """``heldout_n`` pictures of ``heldout_seed`` that neither model saw in training (scenes repeat across seeds)."""
    from .data import unseen_indices

    return unseen_indices(cfg.heldout_seed, cfg.heldout_n, train_seed=cfg.data_seed,
                          train_n=max(cfg.tokenizer_n, cfg.generator_n))


def heldout_psnr(dcht, cfg: MiniDefaultsConfig) -> dict[str, float]:
    """Mean PSNR (uint8, as ``imagenet_recon``) of both paths on held-out procedural pictures (``heldout_seed``)."""
    from harness.metrics.recon import psnr_per_image

    from .data import ShapesDataset, batch_images

    idx = heldout_indices(cfg)
    ds = ShapesDataset(max(idx) + 1, cfg.resolution, cfg.heldout_seed)
    out: dict[str, list] = {"continuous": [], "discrete": []}
    dcht = dcht.eval()
    with torch.no_grad():
        for s in range(0, len(idx), 16):
            x = batch_images(ds, idx[s:s + 16])
            z = dcht.encode(x)
            z_q, info = dcht.quantize(z)
            ref = (x + 1) / 2
            for path, latent in (("continuous", info["features"]), ("discrete", z_q)):
                rec = (dcht.decode(latent).clamp(-1, 1) + 1) / 2
                out[path].extend(psnr_per_image(ref, rec).tolist())
    return {k: float(sum(v) / len(v)) for k, v in out.items()}


def _export(out_dir: Path, dcht, generator, t5_folder: Path) -> dict[str, str]:
    """Write the three component folders and SHA256SUMS (atomically per file); return {relative path: sha256}."""
    from safetensors.torch import save_file

    from harness.io import file_sha256

    out_dir.mkdir(parents=True, exist_ok=True)
    for d in COMPONENT_DIRS.values():  # no stale file of an earlier export may be summed and shipped
        if (out_dir / d).exists():
            shutil.rmtree(out_dir / d)
    dcht.save_pretrained(out_dir / COMPONENT_DIRS["dcht"])
    gdir = out_dir / COMPONENT_DIRS["generator"]
    gdir.mkdir()
    atomic_write_bytes(gdir / "config.json", dump_json(generator.config.to_official()))
    state = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    tmp = gdir / ".model.safetensors.tmp"
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(gdir / "model.safetensors")
    shutil.copytree(t5_folder, out_dir / COMPONENT_DIRS["t5"])
    files = sorted(p for d in COMPONENT_DIRS.values() for p in (out_dir / d).rglob("*") if p.is_file())
    for p in files:
        p.chmod(0o644)  # temp-file permissions would otherwise be committed as they are
    sums = {p.relative_to(out_dir).as_posix(): file_sha256(p) for p in files}
    atomic_write_bytes(out_dir / SUMS_FILE, "".join(f"{h}  {name}\n" for name, h in sums.items()).encode())
    return sums


def train_mini_defaults(cfg: MiniDefaultsConfig, out_dir: str | Path, work_dir: str | Path, *,
                        progress: Callable | None = None, command: str | None = None) -> dict[str, Any]:
    """Train both models into ``work_dir`` (resumable: every stage checkpoints), export them into ``out_dir``."""
    from baselines.common import seeded
    from baselines.dcar.generator.text_encoder import T5TextEncoder, build_tiny_t5
    from baselines.dcar.tokenizer import DCHT
    from baselines.dcar.tokenizer.config import DCHTConfig

    from .data import ShapesDataset
    from .generator import train_generator
    from .tokenizer import train_tokenizer

    out_dir, work_dir = Path(out_dir), Path(work_dir)
    tcfg = tokenizer_train_config(cfg)
    tok = train_tokenizer(tcfg, ShapesDataset(cfg.tokenizer_n, cfg.resolution, cfg.data_seed), work_dir / "tokenizer",
                          progress=progress)
    dcht = DCHT.from_pretrained(work_dir / "tokenizer" / tok["final_dir"]).eval()
    t5_folder = build_tiny_t5(d_model=cfg.t5_d_model, seed=cfg.t5_seed, cache_dir=work_dir / "t5")
    t5 = T5TextEncoder.from_pretrained(t5_folder, max_length=cfg.text_max_length)
    gcfg = generator_train_config(cfg)
    data = ShapesDataset(cfg.generator_n, cfg.resolution, cfg.data_seed)
    from .models import state_digest

    # the generator's checkpoints are valid only for these tokens (the tokenizer's encoder and quantizer; a longer
    # decoder-only stage keeps them) and this text encoder: a resume with others is refused
    identity = {"tokens_sha256": state_digest(dcht.encoder, dcht.quantize), "text_encoder": t5_folder.name,
                "text_max_length": cfg.text_max_length}
    gen = train_generator(gcfg, {"low": data, "high": data}, dcht, t5, work_dir / "generator", progress=progress,
                          identity=identity)
    from baselines.dcar.generator import DCAR

    generator = DCAR.from_pretrained(work_dir / "generator" / gen["final_dir"]).eval()
    with seeded(0):
        random_dcht = DCHT(DCHTConfig.tiny(codebook_size=cfg.codebook_size)).eval()
    psnr = {"mini": heldout_psnr(dcht, cfg), "random_init_seed_0": heldout_psnr(random_dcht, cfg)}
    sums = _export(out_dir, dcht, generator, t5_folder)

    def plain(obj):
        return json.loads(json.dumps(dataclasses.asdict(obj), default=list))

    def final_losses(log: Path, keys: tuple[str, ...]) -> dict[str, float]:
        lines = [json.loads(s) for s in log.read_text().splitlines() if s.strip()]
        tail = lines[-10:]
        return {k: sum(float(r[k]) for r in tail if k in r) / max(1, sum(k in r for r in tail)) for k in keys}

    report = {
        "what": "mini-trained DC-HT + DC-AR (dcar_training.mini_defaults), NOT the released weights",
        "command": command or f"python -m dcar_training mini-defaults --out {out_dir}",
        "torch_threads": torch.get_num_threads(),
        "config": plain(cfg),
        "tokenizer_train_config": plain(tcfg),
        "generator_train_config": plain(gcfg),
        "data": {"tokenizer_train": ShapesDataset(cfg.tokenizer_n, cfg.resolution, cfg.data_seed).describe(),
                 "generator_train": ShapesDataset(cfg.generator_n, cfg.resolution, cfg.data_seed).describe(),
                 "heldout": {**ShapesDataset(cfg.heldout_n, cfg.resolution, cfg.heldout_seed).describe(),
                             "indices": heldout_indices(cfg),
                             "note": "scenes that occur among the training items are left out"}},
        "device_seconds": {"tokenizer": tok["device_seconds"], "generator": gen["device_seconds"]},
        "final_losses": {
            "tokenizer": {s["stage"]: final_losses(work_dir / "tokenizer" / s["loss_log"], ("l2", "vq"))
                          for s in tok["stages"]},
            "generator": final_losses(work_dir / "generator" / gen["stages"][-1]["loss_log"], ("ce", "diffusion")),
        },
        "heldout_psnr": psnr,
        "torch": torch.__version__,
        "files": sums,
    }
    atomic_write_bytes(out_dir / TRAINING_FILE, dump_json(report))
    atomic_write_bytes(out_dir / "README.md", readme(report).encode())
    return report


def readme(report: Mapping[str, Any]) -> str:
    """``mini_weights/README.md``: what the files are, how they were made, what they measure (from training.json)."""
    cfg, psnr, secs = report["config"], report["heldout_psnr"], report["device_seconds"]
    t = report["tokenizer_train_config"]
    g = report["generator_train_config"]
    rows = "\n".join(f"| `{name}` | `{digest}` |" for name, digest in sorted(report["files"].items()))
    stages = ", ".join(f"{k} {v} epoch(s)" for k, v in t["stage_epochs"].items())
    return f"""# Mini-trained default models (NOT the released weights)

The main job's default DC-HT tokenizer and DC-AR generator (`config: mini` of the `dc-ht`, `dc-ht-discrete`, `dc-ar`
and `dc-ar-discrete-only` adapters). They were trained by this project on a CPU in minutes on procedural pictures with
captions that describe them (`dcar_training/data.py`: 1-2 circles, squares or triangles of 10 colours at 5 places
on a plain background, {cfg["resolution"]} px), so a first run shows recognisable reconstructions and generations
that follow such captions. They know nothing else: a GenEval prompt gives a picture of coloured shapes. Every
report labels their runs "mini-trained, not the released weights"; their numbers are not the paper's metrics.

Reproduce (about {round((secs["tokenizer"] + secs["generator"]) / 60)} device-minutes with {report["torch_threads"]} torch
thread(s); another CPU's float rounding gives slightly different weights, hence the committed files and their sha256):

```bash
{report["command"]}
```

| component | folder | what |
|---|---|---|
| DC-HT | `dc-ht/` | `DCHTConfig.tiny` topology (f32, 32 latent channels), codebook {cfg["codebook_size"]}; three-stage adaptation ({stages}) on {cfg["tokenizer_n"]} pictures, batch {t["batch_size"]}, Adam lr {t["optim"]["lr"]}; L2 + VQ loss (no LPIPS or GAN term: their trunks cannot be downloaded here); {secs["tokenizer"] / 60:.1f} device-minutes |
| DC-AR | `dc-ar/` | `DCARConfig.mini` (4 layers, width 128, diffusion head width 64), 4 x 4 tokens; {g["stage_steps"]["scratch"]} steps from scratch at batch {g["batch_size"]} on {cfg["generator_n"]} captioned pictures, AdamW lr {g["optim"]["lr"]} cosine, condition dropout {g["condition_dropout"]}; {secs["generator"] / 60:.1f} device-minutes |
| T5 | `t5/` | the tiny offline T5 encoder (random 2-layer, d_model {cfg["t5_d_model"]}, seed {cfg["t5_seed"]}; frozen during training, so it is part of the model), {cfg["text_max_length"]} tokens |

Held-out reconstruction ({cfg["heldout_n"]} pictures of seed {cfg["heldout_seed"]} whose scenes occur nowhere in the
training items of seed {cfg["data_seed"]}), mean PSNR in dB:

| weights | continuous path | discrete path |
|---|---|---|
| mini-trained | {psnr["mini"]["continuous"]:.2f} | {psnr["mini"]["discrete"]:.2f} |
| random (tiny, seed 0) | {psnr["random_init_seed_0"]["continuous"]:.2f} | {psnr["random_init_seed_0"]["discrete"]:.2f} |

Formats: `dc-ht/` is DC-HT's HF layout (`config.json` + `model.safetensors`), `dc-ar/` the official nested config
and the official state-dict keys in `model.safetensors`, `t5/` transformers' layout; the loaders that read the
released checkpoints read these. `training.json` holds every setting, the final losses and the numbers above.
The adapters check every file against `SHA256SUMS` before loading:

| file | sha256 |
|---|---|
{rows}
"""
