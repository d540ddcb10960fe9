"""``dcar-bench geneval generate|detect|score|check|run|parity``: the GenEval flow from the command line.

Why a tool beside the two suites: the stages are separate runs with files between them (generate
on one machine, detect on a GPU box, re-score anywhere), and ``check`` must fail in seconds, before
any model is loaded, listing exactly which files are missing and where they are looked for. Every
stage is :func:`harness.jobs.run` or :func:`harness.jobs.aggregate` with the right suite and keys;
this module reads no record itself.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence, TextIO

from harness.api import MissingResourceError, UserError
from harness.geneval.folder import RUN_SUBDIR

#: a ``--set`` example per sub-command, each a key that sub-command's suite accepts (tested)
SET_EXAMPLES = {"generate": "prompts=0:10", "detect": "strict_metadata=true", "run": "prompts=0:10"}
DETECT_SET_EXAMPLE = "strict_metadata=true"


class NotADetectRunError(UserError, ValueError):
    """``geneval score`` was pointed at a run directory of another suite."""


def _common_run_args(p: argparse.ArgumentParser, stage: str) -> None:
    p.add_argument("--out", "-o", required=True, help="run directory (created; resumed if it exists)")
    suite = "geneval_detect" if stage == "detect" else "geneval"
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a {suite} config value (repeatable; keys of suites/{suite}.yaml), "
                        f"e.g. --set {SET_EXAMPLES[stage]}")
    p.add_argument("--shard", help="run only shard i of n (i/n); default from torchrun's RANK/WORLD_SIZE")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def _detect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="cpu | cuda | auto")
    p.add_argument("--detector-backend", choices=("transformers", "mmdet"),
                   help="transformers (default: HF Mask2Former with GenEval's weights converted) or mmdet "
                        "(needs the geneval-mmdet extra)")
    p.add_argument("--detector-checkpoint", help="Mask2Former Swin-S COCO .pth (mmdet 2.x or 3.x release)")
    p.add_argument("--detector-config", help="mmdet backend: mmdet 3 config (default: the one in the mmdet wheel)")
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
    _common_run_args(g, "generate")

    d = sub.add_parser("detect", help="detect objects + colours in a GenEval folder and score it")
    d.add_argument("--images", required=True, help="GenEval folder (<dir>/00000/metadata.jsonl + samples/0000.png)")
    _common_run_args(d, "detect")
    _detect_args(d)

    s = sub.add_parser("score", help="re-score a detect run's records with other rule constants (no detector)")
    s.add_argument("run_dir", help="a geneval_detect run directory")
    s.add_argument("--allow-partial", action="store_true", help="score an incomplete run (labelled INCOMPLETE)")
    s.add_argument("--skip-sanity-gate", action="store_true", help="score even if the gate failed (labelled)")
    s.add_argument("--rule", action="append", default=[], metavar="NAME=VALUE",
                   help="override a rule constant (rules.* of suites/geneval_detect.yaml), e.g. --rule threshold=0.35")
    s.add_argument("--json", help="also write the summary JSON here")

    c = sub.add_parser("check", help="which GenEval files are present/missing, mmcv/mmdet status, a folder's state")
    c.add_argument("--images", help="also check this GenEval folder (layout, completeness, every PNG decoded)")
    c.add_argument("--model", "-m", help="also check this adapter's files")
    c.add_argument("--detector-checkpoint")
    c.add_argument("--clip-weights")
    c.add_argument("--detector-backend", choices=("transformers", "mmdet"), default="transformers")

    pa = sub.add_parser("parity", help="run both detector backends on the same images and weights; compare "
                                       "detections and GenEval verdicts (exit 1 if a verdict differs)")
    pa.add_argument("--images", required=True, help="GenEval folder; every PNG sample is compared")
    pa.add_argument("--detector-checkpoint", help="Mask2Former Swin-S COCO .pth (mmdet 2.x or 3.x release)")
    pa.add_argument("--detector-config", help="mmdet 3 config for the mmdet side (default: the one in the wheel)")
    pa.add_argument("--clip-weights", help="OpenAI CLIP ViT-L-14 weights (colour verdicts; shared by both sides)")
    pa.add_argument("--clip-model", default="ViT-L-14", help="open_clip architecture (tests use a tiny one)")
    pa.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (both backends on it)")
    pa.add_argument("--limit", type=int, help="compare only the first N images")
    pa.add_argument("--json", help="write the per-image comparison here")
    pa.add_argument("--random-weights", action="store_true",
                    help="TESTS ONLY: one random mmdet model, its weights converted for the transformers side")
    pa.add_argument("--quiet", "-q", action="store_true", help="no progress line per image")

    r = sub.add_parser("run", help="check, generate, detect, score and report in one go (<out>/generate, <out>/detect)")
    r.add_argument("--model", "-m", required=True)
    r.add_argument("--seed", type=int)
    _common_run_args(r, "run")
    r.add_argument("--detect-set", dest="detect_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a geneval_detect config value (--set goes to the generate stage), "
                        f"e.g. --detect-set {DETECT_SET_EXAMPLE}")
    _detect_args(r)
    return ap


def detect_overrides(args: argparse.Namespace, extra: Sequence[str]) -> list[str]:
    """``--set`` values for geneval_detect from the detect flags, then ``extra`` (the user's own --set)."""
    out = []
    for flag, key in (("device", "device"), ("detector_backend", "detector_backend"),
                      ("detector_checkpoint", "detector_checkpoint"),
                      ("detector_config", "detector_config"), ("clip_weights", "clip_weights")):
        v = getattr(args, flag, None)
        if v:
            out.append(f"{key}={json.dumps(str(v))}")
    if getattr(args, "allow_partial", False):
        out.append("allow_partial=true")
    if getattr(args, "random_weights", False):
        out.append("random_weights=true")
    return out + list(extra)


# ---------------------------------------------------------------- check


def check(detector_checkpoint: str | None = None, clip_weights: str | None = None, model: str | None = None,
          images: str | None = None, random_weights: bool = False, out: TextIO | None = None,
          backend: str = "transformers") -> list[str]:
    """Print the state of everything GenEval needs; return the list of problems (empty = ready)."""
    out = out if out is not None else sys.stdout
    from harness import resources
    from harness.geneval.color import CLIP_WEIGHTS
    from harness.geneval.detection import BACKEND_PACKAGES, EXTRA, PACKAGES, missing_packages
    from harness.geneval.detector import DETECTOR_CHECKPOINT
    from harness.geneval.mmcv_ops import mmcv_status

    problems: list[str] = []
    print(f"detector backend: {backend}", file=out)
    missing = missing_packages(backend)
    for dist in [*PACKAGES.values(), *BACKEND_PACKAGES[backend].values()]:
        if dist != "mmcv-lite":  # its line is the mmcv status below
            print(f"{dist}: {'MISSING' if dist in missing else 'installed'}", file=out)
        if dist in missing:
            problems.append(f"python package {dist!r} is not installed: pip install 'dcar-bench[{EXTRA[backend]}]'")
    if backend == "mmdet":
        st = mmcv_status()
        print(f"mmcv: {st.describe()}", file=out)
        if st.installed and not st.compiled_ops:
            print("  (no compiled mmcv ops: deformable attention runs mmcv's pure-PyTorch function, on CPU and CUDA)",
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
        problems += check_images(images, out)
    return problems


def check_images(images: str, out: TextIO) -> list[str]:
    """The folder checks of the detect suite's validate (layout, every PNG decoded), plus its completeness."""
    from harness.geneval.folder import GenEvalFolderError, image_rows, inspect_folder
    from harness.geneval.rules import completeness_message, summarize

    try:
        scan = inspect_folder(images)
    except GenEvalFolderError as exc:
        return [str(exc)]
    print(f"images: {scan.num_images} PNG samples (all decode) in {len(scan.prompts)} prompt folders of {images}",
          file=out)
    summary = summarize(image_rows(scan))
    if not summary["complete"]:
        print(f"  warning: {completeness_message(summary)}; `geneval detect` needs --allow-partial for it", file=out)
    for w in scan.warnings():
        print(f"  warning: {w}", file=out)
    return []


def _fail_if_missing(problems: list[str]) -> None:
    if problems:
        raise MissingResourceError("GenEval cannot run; missing:\n\n" + "\n\n".join(problems))


# ---------------------------------------------------------------- stages


def generate(args: argparse.Namespace, out_dir: str | None = None):
    from harness import jobs

    return jobs.run("geneval", args.model, out_dir or args.out, overrides=args.overrides, shard=args.shard,
                    seed=args.seed, show_progress=not args.quiet, argv=args.command_line)


def detect(args: argparse.Namespace, images: str, out_dir: str, overrides: Sequence[str]):
    from harness import jobs

    ov = [f"images_dir={json.dumps(str(Path(images).expanduser().resolve()))}", *overrides]
    return jobs.run("geneval_detect", None, out_dir, overrides=ov, shard=args.shard, show_progress=not args.quiet,
                    argv=args.command_line)


def score(run_dir: str, *, allow_partial: bool = False, skip_gate: bool = False,
          rule_overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Re-aggregate a geneval_detect run with other rule constants; returns the GenEval results.

    The aggregate writes the run's ``summary.json`` and ``report.md`` again (``aggregate_overrides``
    in the summary records what was changed); no record changes.
    """
    from harness import jobs
    from harness.store import RunStore

    manifest = RunStore(run_dir).require_manifest()
    if manifest.get("suite") != "geneval_detect":
        raise NotADetectRunError(f"{run_dir} is a {manifest.get('suite')!r} run; `geneval score` needs a "
                                 "geneval_detect run (made by `dcar-bench geneval detect`)")
    overrides = [f"rules.{expr.strip()}" for expr in rule_overrides]
    if allow_partial:
        overrides.append("allow_partial=true")
    if skip_gate:
        overrides.append("skip_sanity_gate=true")
    return jobs.aggregate(run_dir, overrides=overrides)["results"]


class ParityError(UserError, RuntimeError):
    """``geneval parity`` found images whose GenEval verdict depends on the detector backend."""


def parity(args: argparse.Namespace) -> int:
    """Both backends on every image of a folder; one summary, optional JSON; a differing verdict fails."""
    from harness import resources
    from harness.geneval.color import CLIP_WEIGHTS, load_color_classifier
    from harness.geneval.detection import missing_packages
    from harness.geneval.detector import DETECTOR_CHECKPOINT
    from harness.geneval.parity import compare_backends, folder_items, load_pair, render

    need = sorted(set(missing_packages("mmdet")) | set(missing_packages("transformers")))
    if need:
        from harness.api import MissingDependencyError

        raise MissingDependencyError(f"geneval parity runs both backends and needs {', '.join(need)}: "
                                     "pip install 'dcar-bench[geneval,geneval-mmdet]'")
    items = folder_items(args.images, args.limit)
    if args.random_weights:
        ckpt = clip = None
    else:
        ckpt = resources.locate(DETECTOR_CHECKPOINT, args.detector_checkpoint)
        clip = resources.locate(CLIP_WEIGHTS, args.clip_weights)
    mm, hf = load_pair(ckpt, device=args.device, mmdet_config=args.detector_config,
                       random_init_seed=0 if args.random_weights else None)
    clf = load_color_classifier(clip, model_name=args.clip_model, device=args.device,
                                random_init_seed=0 if args.random_weights else None)

    def progress(row: dict) -> None:
        if not args.quiet:
            print(f"{row['file']}: verdict {'agrees' if row['verdict_agrees'] else 'DIFFERS'}, detections "
                  f"{'identical' if row['identical'] else 'differ'} (box {row['max_box_diff']:.3g}, score "
                  f"{row['max_score_diff']:.3g})", file=sys.stderr)

    summary = compare_backends(mm, hf, items, clf, progress=progress).summary()
    summary["images_dir"] = str(Path(args.images).expanduser().resolve())
    summary["real_weights"] = not args.random_weights
    print(render(summary))
    if args.json:
        from harness.io import atomic_write_bytes, dump_json

        atomic_write_bytes(Path(args.json), dump_json(summary))
    if summary["verdicts_agree"] != summary["images"]:
        raise ParityError(f"{summary['images'] - summary['verdicts_agree']} of {summary['images']} GenEval verdicts "
                          "differ between the mmdet and transformers backends (listed above)")
    return 0


def _print_report(res: Any) -> None:
    if res.report:
        print(Path(res.report).read_text(encoding="utf-8"))


def _dispatch(args: argparse.Namespace) -> int:
    if args.cmd == "check":
        problems = check(args.detector_checkpoint, args.clip_weights, args.model, args.images,
                         backend=args.detector_backend)
        if problems:
            print("\nNOT READY:\n\n" + "\n\n".join(problems), file=sys.stderr)
            return 1
        print("ready")
        return 0
    if args.cmd == "generate":
        res = generate(args)
        print(f"generated {res.completed} images ({res.skipped} already there) in {Path(res.run_dir) / RUN_SUBDIR}")
        return 0
    if args.cmd == "parity":
        return parity(args)
    if args.cmd == "detect":
        if not args.random_weights:
            _fail_if_missing(check(args.detector_checkpoint, args.clip_weights, None, args.images, out=sys.stderr,
                                   backend=args.detector_backend or "transformers"))
        _print_report(detect(args, args.images, args.out, detect_overrides(args, args.overrides)))
        return 0
    if args.cmd == "score":
        from harness.io import atomic_write_bytes, dump_json
        from harness.store import RunStore

        results = score(args.run_dir, allow_partial=args.allow_partial, skip_gate=args.skip_sanity_gate,
                        rule_overrides=args.rule)
        print(RunStore(args.run_dir).report_path.read_text(encoding="utf-8"))
        if args.json:
            atomic_write_bytes(Path(args.json), dump_json(results))
        return 0
    # run: check everything first, then generate -> detect (+ score, report)
    _fail_if_missing(check(args.detector_checkpoint, args.clip_weights, args.model, None,
                           random_weights=args.random_weights, out=sys.stderr,
                           backend=args.detector_backend or "transformers"))
    out = Path(args.out)
    gen = generate(args, str(out / "generate"))
    _print_report(detect(args, str(Path(gen.run_dir) / RUN_SUBDIR), str(out / "detect"),
                         detect_overrides(args, args.detect_overrides)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 on success, 1 on a user error (one line on stderr; ``DCAR_BENCH_DEBUG=1`` shows the traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = ["dcar-bench", "geneval", *argv]  # recorded in the manifest
    if getattr(args, "quiet", False):
        from harness.cli import quiet_libraries

        quiet_libraries()
    try:
        return _dispatch(args)
    except UserError as exc:
        if os.environ.get("DCAR_BENCH_DEBUG"):
            raise
        print(f"dcar-bench geneval: error: {exc}", file=sys.stderr)
        return 1
