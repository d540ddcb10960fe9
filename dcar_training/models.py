"""Loading the frozen models a generator recipe needs: a DC-HT tokenizer and a T5 text encoder.

Why here: both the ``python -m dcar_training`` command and the ``train_efficiency`` suite take the same spellings --
a saved DC-HT directory (``save_pretrained`` layout, e.g. a ``tokenizer_ablation`` run's ``final/``) or
``random:SEED`` (tiny random DC-HT, tests and mini runs only); a T5 directory or ``tiny`` (random 2-layer T5
with an offline tokenizer). A missing directory is one line naming it.
"""
from __future__ import annotations

from pathlib import Path

from harness.api import MissingResourceError


def state_digest(*modules) -> str:
    """sha256 over the modules' state_dicts (names, shapes and bytes), for training checkpoints' identity."""
    import hashlib

    h = hashlib.sha256()
    for module in modules:
        for k, v in sorted(module.state_dict().items()):
            h.update(k.encode())
            h.update(str(tuple(v.shape)).encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def is_random(spec: str | None) -> bool:
    return str(spec).startswith("random:")


def tokenizer_path(spec: str | None) -> Path:
    """A DC-HT directory: ``spec``, else the released one's lookup (``$DCAR_DCHT_PATH``, HF cache, default path)."""
    if spec is None:
        import dataclasses

        from baselines.dcar.tokenizer_adapter import DCHT_WEIGHTS
        from harness.resources import locate

        return locate(dataclasses.replace(DCHT_WEIGHTS, config_key="tokenizer"), None)
    return Path(spec).expanduser()


def load_tokenizer(spec: str | None, *, codebook_size: int = 1024):
    """DC-HT from a saved directory (None: the released DC-HT's lookup), or ``random:SEED`` (tiny, random)."""
    from baselines.common import seeded
    from baselines.dcar.tokenizer import DCHT
    from baselines.dcar.tokenizer.config import DCHTConfig

    if is_random(spec):
        with seeded(int(str(spec).split(":", 1)[1])):
            return DCHT(DCHTConfig.tiny(codebook_size=codebook_size)).eval()
    path = tokenizer_path(spec)
    if not path.exists():
        raise MissingResourceError(f"DC-HT tokenizer {path} does not exist. Fix: give a directory written by "
                                   f"DCHT.save_pretrained (e.g. a tokenizer_ablation run's artifacts/train/<recipe>/"
                                   f"final), or random:0 for a random tiny tokenizer")
    return DCHT.from_pretrained(path)


def text_encoder_path(spec: str | None) -> Path:
    """A T5 directory: ``spec``, else ``$DCAR_T5_PATH`` / the HF cache of ``google-t5/t5-base``."""
    if spec is None:
        from harness.api import Requirement
        from harness.resources import locate

        return locate(Requirement(
            name="T5-base text encoder", env_var="DCAR_T5_PATH", config_key="text_encoder",
            hf_repo="google-t5/t5-base", must_contain=("model.safetensors", "pytorch_model.bin"),
            description=("google-t5/t5-base (config.json, weights, spiece.model); `huggingface-cli download "
                         "google-t5/t5-base` on a machine with internet")), None)
    return Path(spec).expanduser()


def load_text_encoder(spec: str | None, *, max_length: int = 64, cache_dir: str | Path | None = None):
    """T5 encoder from a directory (None: the lookup of ``google-t5/t5-base``), or ``tiny`` (random 2-layer T5)."""
    from baselines.dcar.generator.text_encoder import T5TextEncoder

    if spec == "tiny":
        return T5TextEncoder.tiny(d_model=32, max_length=max_length, cache_dir=cache_dir)
    path = text_encoder_path(spec)
    if not path.exists():
        raise MissingResourceError(f"T5 text encoder {path} does not exist. Fix: `huggingface-cli download "
                                   f"google-t5/t5-base` on a machine with internet and pass its directory, or tiny")
    return T5TextEncoder.from_pretrained(path)
