"""Tokenizer recipes: each stage trains only its parts, the alternate stage mixes paths 50/50, the loss falls,
and a stage killed midway resumes bit-identically."""
from __future__ import annotations

import pytest
import torch

from dcar_training.data import ShapesDataset
from dcar_training.discriminator import PatchDiscriminator
from dcar_training.loop import Loop, LoopConfig, read_loss_log
from dcar_training.tokenizer import RECIPES, STAGES, TokenizerTask, build_dcht, build_perceptual, train_tokenizer

from .helpers import ONE_EPOCH, tokenizer_config


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_each_stage_trains_only_its_parts(stage, tmp_path):
    cfg = tokenizer_config()
    model, disc = build_dcht(cfg), PatchDiscriminator(8)
    lp, _ = build_perceptual(cfg.loss, torch.device("cpu"))
    ds = ShapesDataset(8, 64)
    before = _snapshot(model)
    task = TokenizerTask(model, disc, lp, stage, cfg, ds, torch.device("cpu"))
    Loop(task, LoopConfig(steps=2, batch_size=4, micro_batch_size=4), len(ds), tmp_path).run()
    trainable = set(STAGES[stage][1])
    for name, value in model.named_parameters():
        part = name.split(".")[0]
        changed = not torch.equal(value, before[name])
        if part in trainable:
            assert part == "quantize" or changed or "stages.0" in name, f"{stage}: {name} should train"
        else:
            assert not changed, f"{stage}: frozen {name} changed"
    codebook_changed = not torch.equal(model.quantize.embedding.weight, before["quantize.embedding.weight"])
    assert codebook_changed == (stage in ("discrete", "alternate_full"))


def test_alternate_stage_takes_each_path_half_the_time(tmp_path):
    cfg = tokenizer_config()
    lp, _ = build_perceptual(cfg.loss, torch.device("cpu"))
    task = TokenizerTask(build_dcht(cfg), PatchDiscriminator(8), lp, "alternate_finetune", cfg, ShapesDataset(4, 64),
                         torch.device("cpu"))
    loop = Loop(task, LoopConfig(steps=1, batch_size=4, micro_batch_size=4), 4, tmp_path)
    from dcar_training.loop import MicroBatch

    mask = task.discrete_mask(MicroBatch(tuple(range(4000)), (0,) * 4000), loop)
    assert 0.47 < float(mask.float().mean()) < 0.53
    # a sample's path is a function of its position only (not of the batch it is in)
    again = task.discrete_mask(MicroBatch(tuple(range(3990, 4000)), (0,) * 10), loop)
    assert torch.equal(again, mask[3990:])
    for stage, (p, _) in STAGES.items():
        t = TokenizerTask(build_dcht(cfg), PatchDiscriminator(8), lp, stage, cfg, ShapesDataset(4, 64),
                          torch.device("cpu"))
        m = t.discrete_mask(MicroBatch(tuple(range(200)), (0,) * 200), loop).float().mean()
        assert (p in (0.0, 1.0) and float(m) == p) or (p == 0.5 and 0.35 < float(m) < 0.65)


def test_loss_decreases_over_a_few_dozen_steps(tmp_path):
    cfg = tokenizer_config()
    model, disc = build_dcht(cfg), PatchDiscriminator(8)
    lp, _ = build_perceptual(cfg.loss, torch.device("cpu"))
    ds = ShapesDataset(2, 64)
    task = TokenizerTask(model, disc, lp, "continuous_warmup", cfg, ds, torch.device("cpu"))
    from dcar_training.tokenizer import AdamConfig

    task._opts["ae"] = torch.optim.Adam(task.ae_params, lr=1e-3, betas=AdamConfig().betas)
    Loop(task, LoopConfig(steps=24, batch_size=2, micro_batch_size=2), len(ds), tmp_path).run()
    l2 = [r["l2"] for r in read_loss_log(tmp_path / "loss_log.jsonl")]
    assert len(l2) == 24
    assert sum(l2[-5:]) / 5 < 0.5 * sum(l2[:5]) / 5


def test_recipe_resumed_mid_stage_is_bit_identical(tmp_path):
    cfg = tokenizer_config(micro_batch_size=2, checkpoint_every=1)  # two micro-batches per step
    ds = ShapesDataset(8, 64)
    train_tokenizer(cfg, ds, tmp_path / "whole")
    part = train_tokenizer(cfg, ds, tmp_path / "resumed", stop_after=(1, 1))  # killed after step 1 of stage 2
    assert part["done"] is False
    resumed = train_tokenizer(cfg, ds, tmp_path / "resumed")
    assert resumed["done"] and [s["steps"] for s in resumed["stages"]] == [2, 2, 2]
    for stage in resumed["stages"]:
        a = torch.load(tmp_path / "whole" / stage["loss_log"].replace("loss_log.jsonl", "checkpoint.pt"),
                       weights_only=False)
        b = torch.load(tmp_path / "resumed" / stage["loss_log"].replace("loss_log.jsonl", "checkpoint.pt"),
                       weights_only=False)
        for m in a["modules"]:
            for k, v in a["modules"][m].items():
                assert torch.equal(v, b["modules"][m][k]), (stage["stage"], m, k)
        drop = ("device_seconds",)
        la = [{k: v for k, v in r.items() if k not in drop} for r in read_loss_log(tmp_path / "whole" / stage["loss_log"])]
        lb = [{k: v for k, v in r.items() if k not in drop}
              for r in read_loss_log(tmp_path / "resumed" / stage["loss_log"])]
        assert la == lb
    from baselines.dcar.tokenizer import DCHT

    final = DCHT.from_pretrained(tmp_path / "resumed" / "final")
    x = torch.zeros(1, 3, 64, 64)
    assert torch.equal(final.tokenize(x)["ids"], DCHT.from_pretrained(tmp_path / "whole" / "final").tokenize(x)["ids"])
    assert set(RECIPES) == {"three_stage", "discrete_alternate", "warmup_alternate_full"}


def test_other_config_refuses_the_checkpoint(tmp_path):
    from dcar_training.loop import TrainingError

    ds = ShapesDataset(8, 64)
    train_tokenizer(tokenizer_config(checkpoint_every=1), ds, tmp_path, stop_after=(0, 1))
    with pytest.raises(TrainingError, match="different training config"):
        train_tokenizer(tokenizer_config(checkpoint_every=1, codebook_size=32), ds, tmp_path)


def test_a_longer_last_stage_reuses_the_earlier_stages(tmp_path):
    """Each stage's identity holds its own length only: lengthening the last stage keeps stages 1-2 and refuses
    only the last stage's own checkpoint (whose length changed)."""
    from dcar_training.loop import TrainingError

    ds = ShapesDataset(8, 64)
    first = train_tokenizer(tokenizer_config(), ds, tmp_path)
    longer = {**ONE_EPOCH, "alternate_finetune": 2}
    with pytest.raises(TrainingError, match="different training config"):
        train_tokenizer(tokenizer_config(stage_epochs=longer), ds, tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "stage3_alternate_finetune")
    second = train_tokenizer(tokenizer_config(stage_epochs=longer), ds, tmp_path)
    assert [s["device_seconds"] for s in second["stages"][:2]] == [s["device_seconds"] for s in first["stages"][:2]]
    assert second["stages"][2]["steps"] == 2 * first["stages"][2]["steps"]
