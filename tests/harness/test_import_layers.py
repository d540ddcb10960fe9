"""The import graph goes one way: api -> io/store/records -> runner -> report -> jobs -> cli.

Why a test: a cycle (report <-> runner, store -> runner) only shows when some module happens to be
imported first, and a layer violation is how a second copy of a helper or a back-channel starts.
The graph is read statically (every ``import`` in a module, function-level ones included), and then
every module is imported in one fresh interpreter in dependency order.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("harness", "baselines", "suites", "dcar_training")

# rank of each harness module prefix (longest prefix wins); a module may import only ranks <= its own
RANKS = {
    "harness.api": 0,
    "harness.io": 0, "harness.seeding": 0,  # leaves: import nothing of the project
    "harness.images": 1, "harness.registry": 1, "harness.markdown_table": 1,
    "harness.records": 2, "harness.store": 2, "harness.cache": 2, "harness.resources": 2, "harness.provenance": 2,
    "harness.runner.config": 2, "harness.runner.shard": 2,
    "harness.metrics": 3, "harness.data": 3, "harness.geneval": 3,
    "harness.profiling": 3,  # timers, CUDA events, peak memory, component breakdown (imports harness.provenance)
    "harness.runner": 4,
    "harness.report": 5,
    "harness.jobs": 6,
    "harness.doctor": 7, "harness.cli": 7, "harness.geneval.cli": 7, "harness.metrics.stats_tool": 7,
    "harness": 0,  # the package __init__
}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _imports(path: Path, module: str, known: set[str]) -> set[str]:
    """Project modules that ``module`` imports anywhere in its file (resolved to the longest known name)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, base] if base else pkg)
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    out = set()
    for n in names:
        while n and n not in known:
            n = n.rpartition(".")[0]
        if n and n != module:
            out.add(n)
    return out


def _rank(module: str) -> int | None:
    best = None
    for prefix, r in RANKS.items():
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, r)
    return None if best is None else best[1]


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {m: _imports(p, m, known) for m, p in mods.items()}


def test_harness_modules_import_only_their_own_layer_or_below():
    graph = _graph()
    bad = []
    for mod, deps in graph.items():
        if not mod.startswith("harness"):
            continue
        if mod.startswith("harness.") or mod == "harness":
            r = _rank(mod)
            assert r is not None, f"{mod} has no layer in RANKS; add it"
            for d in deps:
                if d.startswith(("baselines", "suites")):
                    bad.append(f"{mod} imports {d} (harness reaches models/suites only through the registry)")
                elif d.startswith("harness") and _rank(d) > r:
                    bad.append(f"{mod} (layer {r}) imports {d} (layer {_rank(d)})")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles = []
    counter = [0]

    def strong(v: str) -> None:  # Tarjan
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in graph:
                continue
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            strong(v)
    # a package __init__ importing its own submodule is not a cycle worth reporting
    real = [c for c in cycles if not all(x == c[0] or x.startswith(c[0] + ".") for x in c)]
    assert not real, f"import cycles: {real}"


def test_no_module_level_getattr_workarounds():
    offenders = [m for m, p in _modules().items()
                 if any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__"
                        for n in ast.parse(p.read_text(encoding="utf-8")).body)]
    assert not offenders, f"module-level __getattr__ in {offenders}"


@pytest.mark.timeout(600)
def test_every_module_imports_in_a_fresh_interpreter_in_dependency_order():
    graph = _graph()
    order: list[str] = []
    seen: set[str] = set()

    def visit(m: str) -> None:
        if m in seen:
            return
        seen.add(m)
        for d in sorted(graph[m]):
            if d in graph:
                visit(d)
        order.append(m)

    for m in sorted(graph):
        visit(m)
    script = (
        "import importlib, json, sys\n"
        "res = {}\n"
        f"for m in {order!r}:\n"
        "    try:\n"
        "        importlib.import_module(m); res[m] = 'ok'\n"
        "    except ModuleNotFoundError as e:\n"
        "        top = (e.name or '').split('.')[0]\n"
        "        res[m] = 'ok' if top not in ('harness', 'baselines', 'suites', 'dcar_training') else f'FAIL {e!r}'\n"
        "        res[m] = res[m] if res[m].startswith('FAIL') else f'missing optional {e.name}'\n"
        "    except Exception as e:\n"
        "        res[m] = f'FAIL {type(e).__name__}: {e}'\n"
        "print(json.dumps(res))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    failed = {m: r for m, r in res.items() if r.startswith("FAIL")}
    assert not failed, failed
    assert len(res) == len(graph)
