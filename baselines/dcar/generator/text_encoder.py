"""T5 text features for DC-AR, exactly as the official code computes them.

Why the quirks are kept (they are what the official DC-AR code does): every prompt is tokenised on its own with
``padding='max_length', max_length=300, truncation=True`` (T5 appends ``</s>``) and the
T5-base *encoder* is run **without an attention mask**, so the pad tokens take part in T5's
self-attention and change the features of the real tokens. The pad mask is used only
afterwards, to choose which positions the generator's cross-attention sees. Reproducing
this means always padding to exactly ``max_length``.

Documented behaviour on awkward prompts:

* ``""`` (empty) is accepted, as in the official code: it becomes the single token ``</s>``.
* Prompts longer than ``max_length`` tokens are truncated to ``max_length - 1`` tokens plus
  ``</s>``; a :class:`PromptTruncatedWarning` is issued and the event is recorded in
  :attr:`EncodedText.truncated` (the adapters add the count to their info).
* Non-string prompts or an empty prompt list raise ``TypeError``/``ValueError``.

The tiny variant (:meth:`T5TextEncoder.tiny`) builds a random 2-layer T5 encoder and a real
T5 (Unigram + Metaspace) tokenizer offline, saves both in the HF ``from_pretrained`` layout
and loads them back through the same code path as the real ``google-t5/t5-base``.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from baselines.common import padded_rows, random_init_tag, seeded
from baselines.dcar.checkpoint import CheckpointFormatError
from harness.api import MissingResourceError

T5_MAX_LENGTH = 300


class PromptTruncatedWarning(UserWarning):
    """A prompt had more T5 tokens than the encoder's max length and was cut."""


@dataclass
class EncodedText:
    hidden: torch.Tensor  # (B, max_length, d_model) float32
    mask: torch.Tensor  # (B, max_length) bool, True = real token (incl. </s>)
    num_tokens: list[int] = field(default_factory=list)  # tokens before truncation (incl. </s>)
    truncated: list[int] = field(default_factory=list)  # indices of prompts that were truncated


def check_prompts(prompts: Sequence[str]) -> list[str]:
    """Validate a batch of prompts (list/tuple of str, at least one)."""
    if isinstance(prompts, str):
        raise TypeError("prompts must be a sequence of strings, not a single string (wrap it in a list)")
    prompts = list(prompts)
    if not prompts:
        raise ValueError("prompts is empty: pass at least one prompt")
    bad = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
    if bad:
        raise TypeError(f"every prompt must be a str; items {bad[:10]} are "
                        f"{sorted({type(prompts[i]).__name__ for i in bad})}")
    return prompts


class T5TextEncoder(nn.Module):
    """A T5 tokenizer + T5 encoder stack with the official DC-AR calling convention."""

    def __init__(self, tokenizer, encoder: nn.Module, max_length: int = T5_MAX_LENGTH, source: str = ""):
        super().__init__()
        self.tokenizer = tokenizer
        self.encoder = encoder.eval()
        self.max_length = int(max_length)
        self.source = source
        if tokenizer.pad_token_id is None:
            raise ValueError("the T5 tokenizer has no pad token")

    @property
    def hidden_size(self) -> int:
        return int(self.encoder.config.d_model)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, max_length: int = T5_MAX_LENGTH,
                        device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> "T5TextEncoder":
        """Load tokenizer + encoder from a local directory (an HF ``google-t5/t5-base`` snapshot or clone).

        Only the encoder weights are used; nothing is downloaded (``local_files_only=True``).
        """
        from transformers import AutoTokenizer, T5EncoderModel

        path = Path(path).expanduser()
        if not path.is_dir():
            raise MissingResourceError(f"T5 directory not found: {path}")
        missing = []
        if not (path / "config.json").is_file():
            missing.append("config.json")
        if not any((path / n).is_file() for n in ("model.safetensors", "pytorch_model.bin")):
            missing.append("model.safetensors or pytorch_model.bin")
        if not any((path / n).is_file() for n in ("spiece.model", "tokenizer.json")):
            missing.append("spiece.model or tokenizer.json")
        if missing:
            raise MissingResourceError(f"T5 directory {path} lacks: {', '.join(missing)} "
                                       "(expected a snapshot of google-t5/t5-base)")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            encoder = T5EncoderModel.from_pretrained(str(path), local_files_only=True, dtype=dtype)
        except Exception as exc:  # noqa: BLE001 - damaged files raise anything (OSError, SafetensorError...)
            raise CheckpointFormatError(
                f"T5 directory {path} could not be loaded by transformers ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}). Fix: replace it with an intact snapshot of "
                f"google-t5/t5-base (config.json, model.safetensors or pytorch_model.bin, spiece.model)") from exc
        return cls(tokenizer, encoder.to(device), max_length=max_length, source=str(path))

    @classmethod
    def tiny(cls, *, d_model: int = 32, max_length: int = 32, seed: int = 0,
             cache_dir: str | os.PathLike | None = None) -> "T5TextEncoder":
        """A random 2-layer T5 encoder with an offline-built T5 tokenizer (for tests and smoke runs)."""
        folder = build_tiny_t5(d_model=d_model, seed=seed, cache_dir=cache_dir)
        return cls.from_pretrained(folder, max_length=max_length)

    def count_tokens(self, prompts: Sequence[str]) -> list[int]:
        """Token counts incl. ``</s>`` before truncation."""
        ids = self.tokenizer(list(prompts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        return [len(x) for x in ids]

    @torch.no_grad()
    def encode(self, prompts: Sequence[str], *, pad_to: int | None = None) -> EncodedText:
        """Prompts -> (features (B, max_length, d_model), pad mask (B, max_length)).

        ``pad_to``: run the encoder on at least this many rows, the extra ones copies of the last prompt
        (see :class:`baselines.common.BatchPadding`); ``hidden`` and ``mask`` then have the padded rows, while
        ``num_tokens``, ``truncated`` and the truncation warning speak of the given prompts only.
        """
        prompts = check_prompts(prompts)
        counts = self.count_tokens(prompts)
        truncated = [i for i, n in enumerate(counts) if n > self.max_length]
        if truncated:
            warnings.warn(
                f"{len(truncated)} prompt(s) exceed {self.max_length} T5 tokens and were truncated "
                f"(items {truncated[:10]}, lengths {[counts[i] for i in truncated[:10]]}); "
                "the official DC-AR code truncates the same way", PromptTruncatedWarning, stacklevel=2)
        # one call per prompt is what the official code does; batched calls give identical ids
        batch = self.tokenizer(prompts, padding="max_length", max_length=self.max_length, truncation=True,
                               return_tensors="pt")
        ids = padded_rows(batch["input_ids"], pad_to)
        device = next(self.encoder.parameters()).device
        # official quirk: no attention mask -> pads participate in T5 self-attention
        hidden = self.encoder(input_ids=ids.to(device)).last_hidden_state.float()
        mask = (ids != self.tokenizer.pad_token_id).to(device)
        return EncodedText(hidden=hidden, mask=mask, num_tokens=counts, truncated=truncated)


# --------------------------------------------------------------------------- tiny offline T5

_TINY_VERSION = "v1"
_TINY_WORDS = (
    "a an the of on in with and to at by for from under over next near behind above below left right "
    "photo picture painting drawing image close up view "
    "cat dog horse bird car bus truck bicycle boat train person man woman child astronaut robot tree "
    "flower house city street park beach mountain river sky sun moon table chair cup bottle book "
    "red green blue yellow black white brown orange purple pink gray "
    "one two three four five six big small tall old new happy bright dark sitting standing riding playing"
).split()


def _tiny_vocab() -> list[tuple[str, float]]:
    """A T5-style Unigram vocabulary: <pad>=0, </s>=1, <unk>=2, '▁', whole words, then single characters."""
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    seen = {p for p, _ in vocab}
    for word in _TINY_WORDS:
        piece = "\u2581" + word
        if piece not in seen:
            vocab.append((piece, -4.0))
            seen.add(piece)
    for ch in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"-()/&%+=":
        for piece in (ch, "\u2581" + ch):
            if piece not in seen:
                vocab.append((piece, -10.0))
                seen.add(piece)
    return vocab


#: T5-base encoder shape (google-t5/t5-base config.json), used for random full-size benchmarks
T5_BASE_SHAPE = dict(d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12,
                     relative_attention_num_buckets=32, relative_attention_max_distance=128)


def _t5_config(vocab_size: int, d_model: int):
    from transformers import T5Config

    if d_model == T5_BASE_SHAPE["d_model"]:
        shape = dict(T5_BASE_SHAPE)
    else:
        shape = dict(d_model=d_model, d_kv=max(d_model // 4, 4), d_ff=2 * d_model, num_layers=2, num_heads=4,
                     relative_attention_num_buckets=8, relative_attention_max_distance=32)
    return T5Config(vocab_size=vocab_size, dropout_rate=0.0, feed_forward_proj="relu", pad_token_id=0,
                    eos_token_id=1, decoder_start_token_id=0, **shape)


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    """``cache_dir``, else ``<harness cache>/tiny-t5`` (``$DCAR_BENCH_CACHE`` or ``~/.cache/dcar-bench``)."""
    if cache_dir:
        return Path(cache_dir)
    from harness.cache import default_cache_dir

    return default_cache_dir() / "tiny-t5"


def _publish(tmp: Path, folder: Path) -> Path:
    """Atomically move a finished build folder into place (another process may have won the race)."""
    try:
        os.replace(tmp, folder)
    except OSError:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def build_offline_tokenizer(cache_dir: str | os.PathLike | None = None) -> Path:
    """Write (once) the offline T5 tokenizer in the HF layout and return its folder."""
    from transformers import T5Tokenizer

    root = _cache_root(cache_dir)
    folder = root / f"tokenizer-{_TINY_VERSION}"
    if (folder / "tokenizer_config.json").is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".build-"))
    T5Tokenizer(vocab=_tiny_vocab(), extra_ids=0).save_pretrained(str(tmp))
    return _publish(tmp, folder)


def build_tiny_t5(*, d_model: int = 32, seed: int = 0, cache_dir: str | os.PathLike | None = None) -> Path:
    """Write (once) a tiny random T5 encoder + the offline tokenizer in the HF layout; return the folder.

    Built with ``transformers`` only (no download); the folder name includes every parameter
    so different settings never collide. Written to a temp folder, then renamed (atomic).
    """
    from transformers import AutoTokenizer, T5EncoderModel

    root = _cache_root(cache_dir)
    folder = root / f"{_TINY_VERSION}-d{d_model}-s{seed}"
    if (folder / "config.json").is_file() and (folder / "tokenizer_config.json").is_file():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(str(build_offline_tokenizer(cache_dir)), local_files_only=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".build-"))
    tokenizer.save_pretrained(str(tmp))
    with seeded(seed):
        model = T5EncoderModel(_t5_config(len(tokenizer), d_model))
    model.save_pretrained(str(tmp))
    _write_missing_model_files(model, tmp)
    return _publish(tmp, folder)


def _write_missing_model_files(model, folder: Path) -> None:
    """Write config and weights if ``save_pretrained`` left them out.

    Under an initialised ``torch.distributed`` (torchrun), transformers' ``save_pretrained`` writes only on rank 0,
    whatever ``is_main_process`` says; a build on another rank would then publish a folder without the model, and
    every rank would fail to load it. Each rank's build is complete on its own instead (the first one published wins).
    """
    if not (folder / "config.json").is_file():
        model.config.to_json_file(str(folder / "config.json"))
    if not any((folder / n).is_file() for n in ("model.safetensors", "pytorch_model.bin")):
        from safetensors.torch import save_model

        save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})


def random_t5_base(*, seed: int = 0, max_length: int = T5_MAX_LENGTH,
                   cache_dir: str | os.PathLike | None = None) -> T5TextEncoder:
    """A randomly initialised encoder of T5-base's shape with the offline tokenizer (benchmarks only).

    Its vocabulary is the small offline one (the embedding table is smaller than T5-base's 32128
    rows); every other tensor has the real shape, so the encoder's cost is T5-base's.
    """
    from transformers import AutoTokenizer, T5EncoderModel

    tokenizer = AutoTokenizer.from_pretrained(str(build_offline_tokenizer(cache_dir)), local_files_only=True)
    with seeded(seed):
        model = T5EncoderModel(_t5_config(len(tokenizer), T5_BASE_SHAPE["d_model"]))
    return T5TextEncoder(tokenizer, model, max_length=max_length, source=random_init_tag(seed))
