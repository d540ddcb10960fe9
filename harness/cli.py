"""``dcar-bench``: the command line.

Why it imports almost nothing at start-up: ``dcar-bench --help`` and ``dcar-bench ls``
must be instant and must work even when torch or a suite's extra is missing
(docs/architecture.md, principle 1). Every sub-command imports what it needs inside its handler;
the registry is a table of strings. Registry ``tool`` entries are dispatched
generically: ``dcar-bench parity DIR`` calls ``registry.resolve("tool", "parity")(["DIR"])``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from harness import registry
from harness.api import UserError

DEFAULT_SMOKE_LIST = "smoke.yaml"  # inside the `suites` package


def _tool_names() -> list[str]:
    return registry.names("tool")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dcar-bench",
        description="Benchmark and evaluation harness for DC-AR and its peers. Offline: weights come from local "
                    "paths, env vars or the Hugging Face cache (see `dcar-bench doctor`).",
        epilog="tools (dispatched to the registry): " + ", ".join(_tool_names()) + ". "
               "Run `dcar-bench TOOL --help` for a tool's own options.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help="run (or resume) a suite with an adapter into a run directory")
    r.add_argument("suite", help="suite name (see `dcar-bench ls`)")
    r.add_argument("--model", "-m", help="adapter name (see `dcar-bench ls`)")
    r.add_argument("--config", help="YAML file overriding the suite's defaults")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key (dotted, YAML-typed), e.g. --set num_items=8 --set model.path=/w")
    r.add_argument("--out", "-o", required=True, help="run directory (created; resumed if it exists)")
    r.add_argument("--shard", help="run only shard i of n (i/n, 0-based); default from torchrun's RANK/WORLD_SIZE")
    r.add_argument("--seed", type=int, help="run seed (item seeds derive from it); default: config 'seed' (0)")
    r.add_argument("--batch-size", type=int, help="items per adapter call (does not change results)")
    r.add_argument("--no-aggregate", action="store_true", help="only produce records; aggregate later")
    r.add_argument("--reaggregate", action="store_true",
                   help="recompute summary.json and report.md even if the run is already complete and aggregated")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bars (also transformers'/HF hub's)")

    a = sub.add_parser("aggregate", help="aggregate a run directory's records into summary.json + report.md "
                                         "(reads files only: no dataset, no weights)")
    a.add_argument("run_dir")
    a.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="an aggregation-only key the suite accepts (e.g. --set reference.stats_path=FILE); "
                        "changes no record")
    a.add_argument("--quiet", "-q", action="store_true", help="no progress bars")

    c = sub.add_parser("cache", help="what the content-addressed cache holds ($DCAR_BENCH_CACHE, default "
                                     "~/.cache/dcar-bench), and freeing it")
    c.add_argument("action", choices=("ls", "clear"), help="ls: entries and sizes; clear: delete them all")

    ls = sub.add_parser("ls", help="list registered adapters, suites, metrics and tools (imports nothing)")
    ls.add_argument("kind", nargs="?", choices=registry.KINDS, help="only this kind")

    d = sub.add_parser("doctor", help="which weights/datasets each adapter and suite needs, and where they are")
    d.add_argument("names", nargs="*", help="only these adapters/suites")
    d.add_argument("--strict", action="store_true", help="exit 1 if anything required is missing")

    rep = sub.add_parser("report", help="report over run directories: the paper's tables and figures, then one "
                                         "section per run (reads files only: no dataset, no weights)")
    rep.add_argument("run_dirs", nargs="+", help="run directories, or folders of them (e.g. a smoke --out)")
    rep.add_argument("--out", help="a directory: report.md + figures/ + tables/ (CSV, JSON) + report.json; "
                                   "a FILE.md: the per-run sections only; default: print the per-run sections")
    rep.add_argument("--title", default="dcar-bench report")

    s = sub.add_parser("smoke", help="the main job: every entry of suites/smoke.yaml on the shipped mini-trained "
                                     "models (tiny random ones for timing), then a Markdown report")
    s.add_argument("--out", "-o", required=True, help="directory for the runs and report.md")
    s.add_argument("--list", dest="smoke_list", help="YAML list of {suite, model, set} (default: suites/smoke.yaml)")
    s.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    return p


# --------------------------------------------------------------------------- handlers


def cmd_run(args: argparse.Namespace) -> int:
    from harness.jobs import run

    res = run(args.suite, args.model, args.out, overrides=args.overrides, config_file=args.config,
              shard=args.shard, seed=args.seed, batch_size=args.batch_size, show_progress=not args.quiet,
              aggregate_when_done=not args.no_aggregate, reaggregate=args.reaggregate, argv=args.command_line)
    print(f"{res.run_dir}: shard {res.shard}: {res.completed} item(s) run, {res.skipped} already done "
          f"({res.in_shard} in shard, {res.planned} planned)")
    if res.report is not None:
        print(f"report: {res.report}")
    return 0


def cmd_aggregate(args: argparse.Namespace) -> int:
    from harness.jobs import aggregate
    from harness.store import REPORT, SUMMARY

    aggregate(args.run_dir, show_progress=not args.quiet, overrides=args.overrides)
    print(f"{Path(args.run_dir) / SUMMARY}\n{Path(args.run_dir) / REPORT}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from harness.cache import Cache

    cache = Cache()
    if args.action == "clear":
        n, size = cache.clear()
        print(f"{cache.root}: removed {n} entr{'y' if n == 1 else 'ies'} ({size / 2**20:.1f} MiB)")
        return 0
    entries = cache.entries()
    total = sum(e["bytes"] for e in entries)
    print(f"{cache.root}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, {total / 2**20:.1f} MiB "
          f"(set DCAR_BENCH_CACHE to move it; `dcar-bench cache clear` frees it)")
    for e in entries:
        print(f"  {e['key'][:16]}  {e['bytes'] / 2**20:8.1f} MiB  {e['what']}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    kinds = [args.kind] if args.kind else list(registry.KINDS)
    for kind in kinds:
        names = registry.names(kind)
        print(f"{kind}s:")
        width = max((len(n) for n in names), default=0)
        if kind == "adapter":  # grouped by the paper table each belongs to (registry.TABLE_GROUPS)
            groups = sorted({registry.table_group(n) for n in names}, key=lambda g: (g == "other", g))
            for group in groups:
                print(f"  [{group}]")
                for n in (n for n in names if registry.table_group(n) == group):
                    print(f"  {n.ljust(width)}  {registry.target(kind, n)}")
            continue
        for n in names:
            print(f"  {n.ljust(width)}  {registry.target(kind, n)}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from harness.doctor import doctor

    text, problems = doctor(args.names)
    print(text, end="")
    return 1 if (args.strict and problems) else 0


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report.collect import find_run_dirs
    from harness.report.markdown import render_report, write_report

    run_dirs = find_run_dirs(args.run_dirs)
    if args.out and not args.out.endswith(".md"):
        from harness.report.build import write_report_dir

        print(write_report_dir(run_dirs, args.out, title=args.title))
    elif args.out:
        print(write_report(run_dirs, args.out, args.title))
    else:
        print(render_report(run_dirs, args.title), end="")
    return 0


def load_smoke_list(path: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Entries ``{suite, model, config?, set: {...}, name?}`` from ``suites/smoke.yaml`` (or ``path``).

    ``config`` is a suite config file (``--config``): a bare file name is looked up in the ``suites`` package
    (e.g. ``profile_quick.yaml``), anything else relative to the working directory.
    """
    import yaml

    if path is None:
        from importlib import resources

        text = resources.files("suites").joinpath(DEFAULT_SMOKE_LIST).read_text(encoding="utf-8")
        source = f"suites/{DEFAULT_SMOKE_LIST}"
    else:
        try:
            text, source = Path(path).read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise _CliError(f"smoke --list {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text) or []
    except yaml.YAMLError as exc:
        raise _CliError(f"{source}: not valid YAML ({str(exc).splitlines()[0]}); fix the file") from None
    if isinstance(data, dict) and "runs" in data:
        data = data["runs"]
    if not isinstance(data, list) or not data:
        raise _CliError(f"{source}: expected a non-empty list of {{suite, model, set}} entries")
    for i, e in enumerate(data):
        if not isinstance(e, dict) or "suite" not in e:
            raise _CliError(f"{source}: entry {i} must be a mapping with at least 'suite' (and usually 'model')")
        unknown = set(e) - {"suite", "model", "config", "set", "name"}
        if unknown:
            raise _CliError(f"{source}: entry {i} has unknown keys {sorted(unknown)} "
                            f"(allowed: suite, model, config, set, name)")
        if e.get("config") is not None:
            e["config"] = str(_smoke_config_path(str(e["config"]), source, i))
    return data


def _smoke_config_path(name: str, source: str, index: int) -> Path:
    """A smoke entry's ``config``: a bare file name from the ``suites`` package, else a path; it must exist."""
    if os.sep not in name and "/" not in name:
        from importlib import resources

        candidate = Path(str(resources.files("suites").joinpath(name)))
    else:
        candidate = Path(name).expanduser()
    if not candidate.is_file():
        raise _CliError(f"{source}: entry {index}: config file {name!r} not found ({candidate}); give a file in "
                        f"suites/ by name or a path")
    return candidate


def cmd_smoke(args: argparse.Namespace) -> int:
    from harness.jobs import run
    from harness.report.build import write_report_dir
    from harness.store import flatten

    entries = load_smoke_list(args.smoke_list)
    out = Path(args.out)
    run_dirs, failures = [], []
    for i, e in enumerate(entries):
        label = e.get("name") or f"{e['suite']}-{e.get('model') or 'none'}"
        run_dir = out / f"{i:02d}-{label}"
        print(f"[smoke {i + 1}/{len(entries)}] {e['suite']} × {e.get('model')} -> {run_dir}", flush=True)
        try:
            run(e["suite"], e.get("model"), run_dir, overrides=flatten(e.get("set") or {}),
                config_file=e.get("config"), show_progress=not args.quiet, argv=args.command_line)
            run_dirs.append(run_dir)
        except Exception as exc:  # noqa: BLE001 - one broken suite must not hide the others' results
            failures.append((label, f"{type(exc).__name__}: {exc}"))
            print(f"  FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            if (run_dir / "manifest.json").exists():
                run_dirs.append(run_dir)
    report = write_report_dir(run_dirs, out, title="dcar-bench smoke run (embedded default)", failures=failures)
    print(f"report: {report}")
    return 1 if failures else 0


class _CliError(UserError):
    """A user-facing error raised by the CLI itself."""


def quiet_libraries() -> None:
    """``--quiet``: silence tqdm bars everywhere, and transformers' / huggingface_hub's bars and info logs."""
    os.environ["TQDM_DISABLE"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = "1"
    if "transformers" in sys.modules:  # already imported: its env vars were read at import
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()


HANDLERS = {"run": cmd_run, "aggregate": cmd_aggregate, "ls": cmd_ls, "doctor": cmd_doctor,
            "report": cmd_report, "smoke": cmd_smoke, "cache": cmd_cache}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in _tool_names():
            rc = registry.resolve("tool", argv[0])(argv[1:])
            return int(rc or 0)
        parser = build_parser()
        args = parser.parse_args(argv)
        args.command_line = ["dcar-bench", *argv]  # recorded in the manifest
        if args.command is None:
            parser.print_help()
            return 2
        if getattr(args, "quiet", False):
            quiet_libraries()
        return HANDLERS[args.command](args)
    except KeyboardInterrupt:
        print("dcar-bench: interrupted (completed items are kept; rerun the same command to resume)", file=sys.stderr)
        return 130
    except UserError as exc:
        if os.environ.get("DCAR_BENCH_DEBUG"):
            raise
        print(f"dcar-bench: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
