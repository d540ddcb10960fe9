"""Tiny tokenizer / generator training configs that run in a second or two on one CPU thread."""
from __future__ import annotations

from dcar_training.generator import AdamWConfig, GeneratorTrainConfig
from dcar_training.tokenizer import TokenizerLossConfig, TokenizerTrainConfig

ONE_EPOCH = {"continuous_warmup": 1, "discrete": 1, "alternate_finetune": 1, "alternate_full": 1}


def tokenizer_config(**kw) -> TokenizerTrainConfig:
    base = dict(recipe="three_stage", codebook_size=64, batch_size=4, micro_batch_size=4, stage_epochs=ONE_EPOCH,
                recipe_stage_epochs={}, discriminator_channels=8, loss=TokenizerLossConfig(lpips_random_backbone_seed=0))
    base.update(kw)
    return TokenizerTrainConfig(**base)


def generator_config(**kw) -> GeneratorTrainConfig:
    base = dict(recipe="pretrain_finetune", low_resolution=32, high_resolution=64, batch_size=4, micro_batch_size=4,
                stage_steps={"pretrain": 3, "finetune": 3, "scratch": 3}, optim=AdamWConfig(lr=1e-3))
    base.update(kw)
    return GeneratorTrainConfig(**base)


def frozen_models():
    """A tiny random DC-HT (codebook 64) and the tiny random T5 (d_model 32)."""
    from baselines.common import seeded
    from baselines.dcar.tokenizer import DCHT
    from baselines.dcar.tokenizer.config import DCHTConfig
    from dcar_training.models import load_text_encoder

    with seeded(0):
        tok = DCHT(DCHTConfig.tiny(codebook_size=64)).eval()
    return tok, load_text_encoder("tiny", max_length=64)
