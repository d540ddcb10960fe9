"""``dcar-bench geneval generate|detect|score|check|run``: the GenEval flow from the command line.

Why a tool beside the two suites: the stages are separate runs with files between them
(generate on one machine, detect on a GPU box, re-score anywhere), and ``check`` must fail
in seconds, before any model is loaded, listing exactly which files are missing and
where they are looked for.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from harness.api import MissingResourceError


def _common_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", "-o", required=True, help="run directory (created; resumed if it exists)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable), e.g. --set prompts=0:10")
    p.add_argument("--shard", help="run only shard i of n (i/n); default from torchrun's RANK/WORLD_SIZE")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def _detect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="cpu | cuda | auto (cuda needs a compiled mmcv)")
    p.add_argument("--detector-checkpoint", help="Mask2Former Swin-S COCO .pth (mmdet 2.x or 3.x release)")
    p.add_argument("--detector-config", help="mmdet 3 config (default: the one in the mmdet wheel)")
    p.add_argument("--clip-weights", help="OpenAI CLIP ViT-L-14 weights file or directory")
    p.add_argument("--allow-partial", action="store_true", help="score fewer than 553 x 4 images (labelled INCOMPLETE)")
    p.add_argument("--random-weights", action="store_true",
                   help="TESTS ONLY: random detector and CLIP; results are labelled NOT the GenEval metric")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="dcar-bench geneval", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    g = sub.add_parser("generate", help="write the official GenEval folder with a text-to-image adapter")
    g.add_argument("--model", "-m", required=True, help="adapter name, e.g. dc-ar")
    g.add_argument("--seed", type=int, help="run seed (per-item seeds derive from it)")
    _common_run_args(g)

    d = sub.add_parser("detect", help="detect objects + colours in a GenEval folder and score it")
    d.add_argument("--images", required=True, help="GenEval folder (<dir>/00000/metadata.jsonl + samples/0000.png)")
    _common_run_args(d)
    _detect_args(d)

    s = sub.add_parser("score", help="re-score a detect run's records (no detector needed)")
    s.add_argument("run_dir", help="a geneval_detect run directory")
    s.add_argument("--allow-partial", action="store_true", help="score an incomplete run (labelled INCOMPLETE)")
    s.add_argument("--skip-sanity-gate", action="store_true", help="score even if the gate failed (labelled)")
    s.add_argument("--rule", action="append", default=[], metavar="NAME=VALUE",
                   help="override a rule constant, e.g. --rule threshold=0.35")
    s.add_argument("--json", help="also write the summary JSON here")

    c = sub.add_parser("check", help="which GenEval files are present/missing, mmcv/mmdet status, a folder's state")
    c.add_argument("--images", help="also check this GenEval folder")
    c.add_argument("--model", "-m", help="also check this adapter's files")
    c.add_argument("--detector-checkpoint")
    c.add_argument("--clip-weights")

    r = sub.add_parser("run", help="check, generate, detect, score and report in one go (<out>/generate, <out>/detect)")
    r.add_argument("--model", "-m", required=True)
    r.add_argument("--seed", type=int)
    _common_run_args(r)
    r.add_argument("--detect-set", dest="detect_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a geneval_detect config value (--set goes to the generate stage)")
    _detect_args(r)
    return ap


def _detect_overrides(args: argparse.Namespace) -> list[str]:
    out = list(getattr(args, "overrides", []) or [])
    for flag, key in (("device", "device"), ("detector_checkpoint", "detector_checkpoint"),
                      ("detector_config", "detector_config"), ("clip_weights", "clip_weights")):
        v = getattr(args, flag, None)
        if v:
            out.append(f"{key}={json.dumps(str(v))}")
    if getattr(args, "allow_partial", False):
        out.append("allow_partial=true")
    if getattr(args, "random_weights", False):
        out.append("random_weights=true")
    return out


# ---------------------------------------------------------------- check


def check(detector_checkpoint: str | None = None, clip_weights: str | None = None, model: str | None = None,
          images: str | None = None, random_weights: bool = False, out=None) -> list[str]:
    """Print the state of everything GenEval needs; return the list of problems (empty = ready)."""
    out = out if out is not None else sys.stdout
    from harness import resources
    from harness.geneval.color import CLIP_WEIGHTS
    from harness.geneval.detector import DETECTOR_CHECKPOINT
    from harness.geneval.mmcv_ops import mmcv_status

    problems: list[str] = []
    st = mmcv_status()
    print(f"mmcv: {st.describe()}", file=out)
    import importlib.util

    for mod, extra in (("mmdet", "geneval"), ("mmengine", "geneval"), ("open_clip", "geneval"), ("skimage", "geneval")):
        ok = importlib.util.find_spec(mod) is not None
        print(f"{mod}: {'installed' if ok else 'MISSING'}", file=out)
        if not ok:
            problems.append(f"python package {mod!r} is not installed: pip install 'dcar-bench[{extra}]'")
    if st.installed and not st.compiled_ops:
        print("  (no compiled mmcv ops: the detector runs on CPU only; GPU needs a compiled mmcv, docs/geneval.md)",
              file=out)
    reqs = [] if random_weights else [(DETECTOR_CHECKPOINT, detector_checkpoint), (CLIP_WEIGHTS, clip_weights)]
    if model:
        from harness import registry

        cls = registry.resolve("adapter", model)
        reqs += [(r, None) for r in cls.requirements() if not r.optional]
    for req, explicit in reqs:
        found, candidates = resources.status(req, explicit)
        print(f"{req.name}: {found if found else 'MISSING'}", file=out)
        if found is None:
            problems.append(resources.missing_message(req, candidates))
    if images:
        from harness.data.geneval import GenEvalFolderError, scan_folder

        try:
            scan = scan_folder(images)
            print(f"images: {scan.num_images} PNG samples in {len(scan.prompts)} prompt folders of {images}", file=out)
            for w in scan.warnings():
                print(f"  warning: {w}", file=out)
        except GenEvalFolderError as exc:
            problems.append(str(exc))
    return problems


def _fail_if_missing(problems: list[str]) -> None:
    if problems:
        raise MissingResourceError("GenEval cannot run; missing:\n\n" + "\n\n".join(problems))


# ---------------------------------------------------------------- stages


def generate(args: argparse.Namespace, out_dir: str | None = None):
    from harness.runner import run

    return run("geneval", args.model, out_dir or args.out, overrides=args.overrides, shard=args.shard, seed=args.seed,
               show_progress=not args.quiet, argv=list(sys.argv[1:]))


def detect(args: argparse.Namespace, images: str, out_dir: str, overrides: list[str] | None = None):
    from harness.runner import run

    ov = [f"images_dir={json.dumps(str(Path(images).resolve()))}"] + (overrides if overrides is not None
                                                                       else _detect_overrides(args))
    return run("geneval_detect", None, out_dir, overrides=ov, shard=args.shard, show_progress=not args.quiet,
               argv=list(sys.argv[1:]))


def score(run_dir: str, *, allow_partial: bool = False, skip_gate: bool = False, rule_overrides: Sequence[str] = ()):
    """Re-score a geneval_detect run from its records (any rule constant may be changed)."""
    from harness.geneval.scoring import rules_from_config, score_records
    from harness.runner.config import parse_set
    from harness.records import read_all
    from harness.store import RunStore
    from suites.geneval import GenEvalDetectSuite

    store = RunStore(run_dir)
    manifest = store.require_manifest()
    if manifest.get("suite") != "geneval_detect":
        raise ValueError(f"{run_dir} is a {manifest.get('suite')!r} run; `geneval score` needs a geneval_detect run "
                         "(made by `dcar-bench geneval detect`)")
    config = dict(manifest["config"])
    rules = dict(config.get("rules") or {})
    for expr in rule_overrides:
        k, v = parse_set(expr)
        rules[k] = v
    config["rules"] = rules
    by_id: dict[str, Any] = {}
    for _, res in read_all(store.records_dir):
        for rec in res.records:
            by_id.setdefault(rec["item_id"], rec)
    records = list(by_id.values())
    suite = GenEvalDetectSuite(config)
    return score_records(records, rules=rules_from_config(config),
                         allow_partial=allow_partial or bool(config.get("allow_partial")),
                         require_gate=not skip_gate and bool(config.get("sanity_gate", True))
                         and not config.get("random_weights"), models=suite.model_info(records))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    try:
        if args.cmd == "check":
            problems = check(args.detector_checkpoint, args.clip_weights, args.model, args.images)
            if problems:
                print("\nNOT READY:\n\n" + "\n\n".join(problems), file=sys.stderr)
                return 1
            print("ready")
            return 0
        if args.cmd == "generate":
            res = generate(args)
            print(f"generated {res.completed} images ({res.skipped} already there) in {res.run_dir}/artifacts/geneval")
            return 0
        if args.cmd == "detect":
            if not args.random_weights:
                _fail_if_missing(check(args.detector_checkpoint, args.clip_weights, None, args.images, out=sys.stderr))
            res = detect(args, args.images, args.out)
            if res.report:
                print(Path(res.report).read_text())
            return 0
        if args.cmd == "score":
            from harness.geneval.scoring import render_table3

            summary = score(args.run_dir, allow_partial=args.allow_partial, skip_gate=args.skip_sanity_gate,
                            rule_overrides=args.rule)
            print(render_table3(summary, our_label=(summary["models"].get("generator") or {}).get("name") or "ours"))
            if args.json:
                Path(args.json).write_text(json.dumps(summary, indent=2, sort_keys=True))
            return 0
        if args.cmd == "run":
            _fail_if_missing(check(args.detector_checkpoint, args.clip_weights, args.model, None,
                                   random_weights=args.random_weights, out=sys.stderr))
            out = Path(args.out)
            gen = generate(args, str(out / "generate"))
            ov = _detect_overrides(argparse.Namespace(**{**vars(args), "overrides": args.detect_overrides}))
            res = detect(args, str(Path(gen.run_dir) / "artifacts" / "geneval"), str(out / "detect"), ov)
            if res.report:
                print(Path(res.report).read_text())
            return 0
    except MissingResourceError as exc:
        print(f"dcar-bench geneval: {exc}", file=sys.stderr)
        return 2
    return 1
