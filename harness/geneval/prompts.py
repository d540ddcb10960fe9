"""The official GenEval prompt file and COCO class names, shipped in ``harness/geneval/files/``.

Why checked on every load: the prompt file *is* the benchmark (553 lines, line index = folder
number); an edited copy would give numbers that look like GenEval and are not. Both files are
byte-identical copies of djghosh13/geneval's (MIT; attribution in ``files/SOURCE.md``), pinned by sha256.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from harness.io import bytes_sha256

PROMPT_FILE = "evaluation_metadata.jsonl"
CLASS_FILE = "object_names.txt"
PROMPT_FILE_SHA256 = "5c48e0813e812e3c373fa5c8ed07a8f0a483be30272b4427b0559c8048e67c13"
CLASS_FILE_SHA256 = "608f6a0e5c8ca1c7a92b818430141fe268c85b7930b50f4160f1d65893b5bacd"


def _read_packaged(name: str, sha256: str) -> str:
    data = resources.files("harness.geneval").joinpath("files", name).read_bytes()
    digest = bytes_sha256(data)
    if digest != sha256:
        raise RuntimeError(f"the packaged GenEval file {name} was modified (sha256 {digest}, expected {sha256}); "
                           "reinstall dcar-bench")
    return data.decode("utf-8")


@lru_cache(maxsize=1)
def load_prompts() -> tuple[dict[str, Any], ...]:
    """The 553 official prompt objects, in file order (index = folder number)."""
    return tuple(json.loads(line) for line in _read_packaged(PROMPT_FILE, PROMPT_FILE_SHA256).splitlines()
                 if line.strip())


@lru_cache(maxsize=1)
def load_class_names() -> tuple[str, ...]:
    """The 80 COCO class names; index = Mask2Former's COCO thing-class index (0 = person)."""
    return tuple(line.strip() for line in _read_packaged(CLASS_FILE, CLASS_FILE_SHA256).splitlines() if line.strip())


def is_shipped_metadata(prompt_index: int, metadata: Any) -> bool:
    """Whether ``metadata`` is line ``prompt_index`` of the shipped prompt file (else not comparable)."""
    prompts = load_prompts()
    return 0 <= prompt_index < len(prompts) and metadata == prompts[prompt_index]
