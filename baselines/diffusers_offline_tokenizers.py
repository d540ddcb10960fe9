"""Deterministic offline tokenizers for the diffusers adapters' random-init (tiny and full-size) pipelines.

Why they exist: the real pipelines' tokenizers (T5 sentencepiece, CLIP BPE, Gemma) are files that cannot be
downloaded here, yet a full-size random pipeline must run end to end for the profile suite, with the text
encoders seeing the *real* sequence lengths (120 T5 tokens for PixArt-alpha, 300 for PixArt-Sigma and Sana,
77 for CLIP, 256 for SD3's T5). These are word-level ``tokenizers`` models over a fixed word list, wrapped in a
``transformers.PreTrainedTokenizerFast`` with each family's special-token layout, so a pipeline calls them
exactly as it calls the real ones (``padding="max_length"``, ``truncation=True``). Unknown words map to the
unknown token. They are recorded in ``info()`` as offline tokenizers; real weights directories always use the
tokenizer files they ship with.

Special-token layouts (what the pipelines and text encoders rely on):

* ``t5``: ``<pad>``=0, ``</s>``=1, ``<unk>``=2; ``$A </s>`` (T5 appends ``</s>``, pads with id 0).
* ``clip``: ``<|startoftext|> $A <|endoftext|>``, padded with ``<|endoftext|>``, which has the highest id so
  that CLIP's legacy pooling (``argmax`` of the ids, used when the config's ``eos_token_id`` is 2, as in the
  SDXL/SD3 configs) picks the first end token, as it does with the real vocabulary.
* ``gemma``: ``<pad>``=0, ``<eos>``=1, ``<bos>``=2, ``<unk>``=3; ``<bos> $A`` (what Gemma's tokenizer adds).
"""
from __future__ import annotations

from typing import Any

KINDS = ("t5", "clip", "gemma")

_WORDS = (
    "a an the of on in with and to at by for from under over next near behind above below left right "
    "photo picture painting drawing image close up view portrait landscape illustration render style "
    "cat dog horse bird car bus truck bicycle boat train person man woman child astronaut robot tree "
    "flower house city street park beach mountain river sky sun moon table chair cup bottle book "
    "red green blue yellow black white brown orange purple pink gray golden silver "
    "one two three four five six big small tall old new happy bright dark sitting standing riding playing "
    "is are it its this that very highly detailed realistic beautiful cinematic lighting 4k 8k "
    ". , ; : ! ? ' \" - ( ) /"
).split()


def _vocab(kind: str) -> tuple[dict[str, int], dict[str, str]]:
    """(token -> id, role -> token) for one family; word ids follow the leading special tokens."""
    if kind == "t5":
        specials = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
        head = ["<pad>", "</s>", "<unk>"]
    elif kind == "gemma":
        specials = {"pad_token": "<pad>", "eos_token": "<eos>", "bos_token": "<bos>", "unk_token": "<unk>"}
        head = ["<pad>", "<eos>", "<bos>", "<unk>"]
    elif kind == "clip":
        specials = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                    "unk_token": "<|unk|>"}
        head = ["<|unk|>"]
    else:
        raise ValueError(f"offline tokenizer kind must be one of {KINDS}, got {kind!r}")
    tokens = head + [w for w in dict.fromkeys(_WORDS) if w not in head]
    if kind == "clip":
        tokens += ["<|startoftext|>", "<|endoftext|>"]  # end token last: the highest id
    return {t: i for i, t in enumerate(tokens)}, specials


def offline_tokenizer(kind: str, max_length: int) -> Any:
    """A ``PreTrainedTokenizerFast`` of the given family whose ``model_max_length`` is ``max_length``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab, specials = _vocab(kind)
    tok = Tokenizer(models.WordLevel(vocab, unk_token=specials["unk_token"]))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if kind == "t5":
        template = "$A </s>"
    elif kind == "gemma":
        template = "<bos> $A"
    else:
        template = "<|startoftext|> $A <|endoftext|>"
    used = sorted({t for t in template.split() if t != "$A"})
    tok.post_processor = processors.TemplateProcessing(single=template, special_tokens=[(t, vocab[t]) for t in used])
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=int(max_length), **specials)


def vocab_size(kind: str) -> int:
    """Number of ids the offline tokenizer of ``kind`` can produce (tiny text encoders need at least this)."""
    return len(_vocab(kind)[0])
