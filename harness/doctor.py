"""``dcar-bench doctor``: what each adapter and suite needs, what is present, where it was looked for.

Why it shares :func:`harness.resources.search` with the loaders: the places the
doctor lists are exactly the places a run will search, so "doctor says present"
means "the run will find it".
"""
from __future__ import annotations

from typing import Any, Iterable

from harness import registry
from harness.resources import status


def _environment() -> list[str]:
    import platform
    import sys

    lines = [f"python {sys.version.split()[0]} ({sys.executable}) on {platform.platform()}"]
    try:
        import torch

        cuda = f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)" if torch.cuda.is_available() \
            else "no CUDA device (CPU only)"
        lines.append(f"torch {torch.__version__}: {cuda}")
    except ImportError as exc:
        lines.append(f"torch NOT importable: {exc}")
    from harness.resources import hf_hub_cache

    lines.append(f"Hugging Face cache: {hf_hub_cache()}")
    return lines


def _requirement_lines(reqs: Iterable[Any], config: dict | None) -> tuple[list[str], int]:
    lines: list[str] = []
    missing = 0
    for req in reqs:
        found, cands = status(req, config=config)
        tag = "ok" if found else ("optional, absent" if req.optional else "MISSING")
        if not found and not req.optional:
            missing += 1
        lines.append(f"  [{tag}] {req.name}" + (f" -> {found}" if found else ""))
        if req.description:
            lines.append(f"      what: {req.description}")
        for c in cands:
            lines.append(f"      {c.describe()}")
    return lines, missing


def doctor(names: Iterable[str] = ()) -> tuple[str, int]:
    """(report text, number of missing non-optional requirements or unimportable entries)."""
    wanted = set(names)
    out = ["Environment:"] + [f"  {line}" for line in _environment()]
    problems = 0
    for kind in ("adapter", "suite"):
        entries = registry.names(kind)
        unknown = wanted - set(registry.names("adapter")) - set(registry.names("suite"))
        if unknown:
            registry.target(kind, sorted(unknown)[0])  # raises UnknownNameError with did-you-mean
        for name in entries:
            if wanted and name not in wanted:
                continue
            out.append("")
            group = f"  [{registry.table_group(name)}]" if kind == "adapter" else ""
            out.append(f"{kind} {name}  ({registry.target(kind, name)}){group}")
            try:
                obj = registry.resolve(kind, name)
            except ImportError as exc:
                out.append(f"  [CANNOT IMPORT] {exc}")
                problems += 1
                continue
            try:
                if kind == "suite":
                    cfg = obj.default_config()
                    reqs = obj.requirements(cfg)
                else:
                    cfg = None
                    reqs = obj.requirements()
            except Exception as exc:  # doctor must report, not crash
                out.append(f"  [ERROR] requirements() failed: {type(exc).__name__}: {exc}")
                problems += 1
                continue
            if not reqs:
                out.append("  needs no external files")
                continue
            lines, missing = _requirement_lines(reqs, cfg)
            out += lines
            problems += missing
    out.append("")
    out.append("All required files present." if problems == 0 else
               f"{problems} problem(s): missing files or entries that cannot be imported (see above).")
    return "\n".join(out) + "\n", problems
