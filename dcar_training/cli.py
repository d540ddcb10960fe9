"""``python -m dcar_training {tokenizer,generator} --out DIR [--set key=value ...]``: one recipe, under torchrun or not.

Why a command of its own (and not only the suites): data-parallel training is a ``torchrun`` job
(``torchrun --nproc_per_node 8 -m dcar_training tokenizer --out runs/t --set recipe=three_stage``), while a suite's
items are sharded over ranks one item per rank; the suites train single-process and call the same functions.
Values of ``--set`` are YAML; keys are the fields of :class:`dcar_training.tokenizer.TokenizerTrainConfig` /
:class:`dcar_training.generator.GeneratorTrainConfig` (dotted for nested ones, e.g. ``loss.perceptual_weight=0``),
plus ``data.kind``, ``data.n``, ``data.seed``, ``data.root`` and, for the generator, ``tokenizer`` (a saved DC-HT
directory or ``random:SEED``; default: the released DC-HT's offline lookup) and ``text_encoder`` (a T5 directory or
``tiny``; default: ``$DCAR_T5_PATH`` / the HF cache of google-t5/t5-base).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

DATA_KEYS = {"data.kind": "shapes", "data.n": 64, "data.seed": 0, "data.root": None}


def _nest(pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from harness.api import UserError

    ap = argparse.ArgumentParser(prog="python -m dcar_training", description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("tokenizer", "generator", "mini-defaults"))
    ap.add_argument("--out", required=True, help="output directory (resumes what is there)")
    ap.add_argument("--work", default=None, help="mini-defaults only: training folder (default: runs/mini-defaults-work; "
                                                 "resumes what is there)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--device", default="auto", help="cpu | cuda | auto (cuda:LOCAL_RANK under torchrun)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # recorded by mini-defaults (its reproduce command)
    try:
        return _run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from harness.runner.config import fill_dataclass, parse_set

    from .data import build_dataset
    from .distributed import init_from_env

    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = [parse_set(s) for s in args.set]
    if args.what == "mini-defaults":
        return _mini_defaults(args, pairs)
    data = {**DATA_KEYS, **{k: v for k, v in pairs if k.startswith("data.")}}
    extra = {k: v for k, v in pairs if k in ("tokenizer", "text_encoder")}
    fields = _nest([(k, v) for k, v in pairs if not k.startswith("data.") and k not in extra])
    if args.device == "auto":
        import os

        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist = init_from_env(device)
    progress = None if args.no_progress else (lambda it: tqdm(it, desc=args.what, unit="step"))
    out = Path(args.out)

    def dataset(resolution: int):
        return build_dataset(data["data.kind"], n=int(data["data.n"]), resolution=resolution,
                             seed=int(data["data.seed"]), root=data["data.root"])

    if args.what == "tokenizer":
        from .tokenizer import TokenizerTrainConfig, train_tokenizer

        fields.setdefault("resolution", 256)
        resolution = int(fields.pop("resolution"))
        cfg = fill_dataclass(TokenizerTrainConfig, fields, source="--set")
        result = train_tokenizer(cfg, dataset(resolution), out, dist=dist, device=device, progress=progress)
    else:
        from .generator import GeneratorTrainConfig, train_generator
        from .models import load_text_encoder, load_tokenizer

        cfg = fill_dataclass(GeneratorTrainConfig, fields, source="--set")
        # default: the released DC-HT and T5-base, looked up offline; random:SEED / tiny only when asked for
        tokenizer = load_tokenizer(extra.get("tokenizer"))
        text_encoder = load_text_encoder(extra.get("text_encoder"), cache_dir=out / "text_encoder_cache")
        datasets = {"low": dataset(cfg.low_resolution), "high": dataset(cfg.high_resolution)}
        result = train_generator(cfg, datasets, tokenizer, text_encoder, out, dist=dist, device=device,
                                 progress=progress)
    if dist.is_main:
        print(json.dumps({k: v for k, v in result.items() if k != "stages"}, sort_keys=True))
    if dist.enabled:
        import torch.distributed as tdist

        tdist.destroy_process_group()
    return 0


def _mini_defaults(args: argparse.Namespace, pairs) -> int:
    """Retrain the shipped mini default models (``dcar_training.mini_defaults``) and export them into ``--out``."""
    import torch
    from tqdm.auto import tqdm

    from harness.runner.config import fill_dataclass

    from .mini_defaults import MiniDefaultsConfig, train_mini_defaults

    fields = _nest(pairs)
    if isinstance(fields.get("tokenizer_epochs"), dict):  # one stage's --set keeps the other stages' lengths
        fields["tokenizer_epochs"] = {**MiniDefaultsConfig().tokenizer_epochs, **fields["tokenizer_epochs"]}
    cfg = fill_dataclass(MiniDefaultsConfig, fields, source="--set")
    if args.device not in ("auto", "cpu"):
        print("error: mini-defaults trains on the CPU (its shipped weights were made there). Fix: drop --device",
              file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads or torch.get_num_threads())
    progress = None if args.no_progress else (lambda it: tqdm(it, desc="mini-defaults", unit="step"))
    import shlex

    command = "python -m dcar_training " + shlex.join(args.argv)
    report = train_mini_defaults(cfg, Path(args.out), Path(args.work or "runs/mini-defaults-work"), progress=progress,
                                 command=command)
    print(json.dumps({"out": args.out, "heldout_psnr": report["heldout_psnr"],
                      "device_seconds": report["device_seconds"]}, sort_keys=True))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
