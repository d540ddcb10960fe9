"""Run or aggregate a suite and write its report: the runner plus the report layer, for the CLI and tools.

Why a module of its own: the runner (``harness.runner``) produces records and summaries and knows
nothing of Markdown; the report (``harness.report``) reads run directories and knows nothing of the
runner. The commands users call want both, so they call these two functions.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from harness.report.markdown import write_run_report
from harness.runner import core
from harness.runner.core import RunResult


def run(suite_name: str, adapter_name: str | None, out_dir: str | os.PathLike, **kwargs: Any) -> RunResult:
    """:func:`harness.runner.core.run`, then ``report.md`` when this process aggregated."""
    res = core.run(suite_name, adapter_name, out_dir, **kwargs)
    if res.summary is not None:
        res.report = write_run_report(res.run_dir)
    return res


def aggregate(out_dir: str | os.PathLike, **kwargs: Any) -> dict[str, Any]:
    """:func:`harness.runner.core.aggregate` (files only: manifest, plan.jsonl, records), then ``report.md``."""
    summary = core.aggregate(out_dir, **kwargs)
    write_run_report(Path(out_dir))
    return summary
