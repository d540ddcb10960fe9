"""Docs, YAML comments, docstrings and comments cite only files the repository ships.

Why: a user's clone has none of the project's private notes; a citation of one is a dead end. Every
repository path a text names must exist. The ``SOURCE.md`` provenance notes (and the byte-for-byte copy
of the parity fixture's README) may name where copied data came from.
"""
from __future__ import annotations

import re
from pathlib import Path

from tests.paths import REPO_ROOT

ROOT = REPO_ROOT
TEXT = ("*.py", "*.md", "*.yaml", "*.ini", "*.toml", "*.sh", "run")
PROVENANCE_NOTES = {"SOURCE.md", "README.md"}  # README.md only inside tests/fixtures/ (a byte copy)
FILES = sorted({p for d in ("docs", "harness", "suites", "baselines", "scripts", "tests", "benchmarks", "reports", ".ci")
                for pat in TEXT for p in (ROOT / d).rglob(pat)
                if p.is_file() and not (p.name in PROVENANCE_NOTES and ("fixtures" in p.parts or p.name == "SOURCE.md"))}
               | {ROOT / "README.md", ROOT / "tox.ini", ROOT / "pyproject.toml"})
#: notes that live outside the repository; a user cannot open them
NOT_SHIPPED = re.compile(r"DESIGN\.md|PITFALLS|GENEVAL\.md|INSTALL_FACTS|IMAGENET_RECON|MJHQ\.md|PROFILING\.md|FACTS\.md|\.\./shared/|shared/reference")
#: a path into this repository, e.g. harness/geneval/rules.py or tests/harness/geneval/data/
REPO_PATH = re.compile(r"\b(?:docs|harness|suites|tests|baselines|scripts)/[\w./*<>-]*[\w/*>]")


def test_no_file_cites_notes_that_are_not_shipped():
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in FILES if p.name != Path(__file__).name
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if NOT_SHIPPED.search(line)]
    assert not hits, "\n".join(hits)


def test_every_repository_path_cited_exists():
    assert len(FILES) > 150
    missing = []
    for p in FILES:
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            for ref in REPO_PATH.findall(line):
                ref = ref.rstrip(".")
                if "<" in ref or "*" in ref:  # a pattern, not a file
                    continue
                if not (ROOT / ref).exists():
                    missing.append(f"{p.relative_to(ROOT)}:{n}: {ref}")
    assert not missing, "\n".join(missing)
