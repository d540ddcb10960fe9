"""GenEval's docs, YAML comments and code comments cite only files the repository ships."""
from __future__ import annotations

import re
from pathlib import Path

from tests.paths import REPO_ROOT

ROOT = REPO_ROOT
FILES = sorted([ROOT / "docs" / "geneval.md", *ROOT.glob("suites/geneval*"), *ROOT.glob("harness/geneval/**/*.py"),
                *ROOT.glob("harness/geneval/files/*.md"), *ROOT.glob("tests/harness/geneval/*.py"), *ROOT.glob("tests/suites/test_geneval*.py")])
#: notes that live outside the repository; a user cannot open them
NOT_SHIPPED = re.compile(r"DESIGN\.md|PITFALLS|GENEVAL\.md|INSTALL_FACTS|IMAGENET_RECON|\.\./shared/")
#: a path into this repository, e.g. harness/geneval/rules.py or tests/harness/geneval/data/
REPO_PATH = re.compile(r"\b(?:docs|harness|suites|tests|baselines|scripts)/[\w./*<>-]*[\w/*>]")


def test_no_file_cites_notes_that_are_not_shipped():
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in FILES if p.name != Path(__file__).name
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if NOT_SHIPPED.search(line)]
    assert not hits, "\n".join(hits)


def test_every_repository_path_cited_exists():
    assert len(FILES) > 20
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
