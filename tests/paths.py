"""Where the tests find the repository and its shipped fixtures (one place, whatever a test file's depth)."""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PARITY_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "parity"
