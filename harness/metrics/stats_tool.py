"""``dcar-bench stats make DIR --protocol P --out FILE`` and ``dcar-bench stats show FILE``.

Why a command: ``reference.stats_path`` (imagenet_recon) takes a dcar-bench statistics file of
the run's own protocol and refuses any other, so the file has to be made with exactly the crop,
resize path and Inception weights the run will use. ``make`` reads every image under DIR
(``.png .jpg .jpeg .webp``, sorted by relative path), crops it as the named protocol says,
extracts pool3 features and writes the mergeable statistics with the protocol, the image count
and a digest of the input files inside; ``show`` prints what a file holds without reading its
matrices. Mistakes (no images, an unreadable image, an unknown protocol) are one-line user errors.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from harness.api import MissingResourceError, UserError
from harness.store import ensure_output_dir

STATS_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
INPUTS_DIGEST = "sha256 over '<path relative to DIR>\\x1f<sha256 of the file>\\n' lines, sorted by path"


class StatsToolError(UserError, ValueError):
    """A ``dcar-bench stats`` argument or input that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class StatsProtocol:
    """How images are cropped before the Inception path, and the dataset label a matching run records."""

    crop: str
    default_dataset: str | None  # None: the folder's name
    what: str


PROTOCOLS = {
    "imagenet_recon": StatsProtocol(
        crop="adm_center_crop", default_dataset="imagenet-val",
        what="imagenet_recon's rFID reference: ADM centre crop to --resolution (as the DC-AE evaluator), dataset "
             "label imagenet-val; the same protocol as a run with dataset.kind=imagenet and these metrics.inception.*"),
    "whole_image": StatsProtocol(
        crop="none", default_dataset=None,
        what="every image whole at its own size (pytorch-fid --save-stats convention); the resize path brings it "
             "to 299; dataset label = --dataset or the folder's name"),
}


def build_parser() -> argparse.ArgumentParser:
    from harness.metrics.inception import RESIZE_PATHS

    ap = argparse.ArgumentParser(prog="dcar-bench stats", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make", help="reference statistics from a folder of images")
    make.add_argument("directory", type=Path, metavar="DIR")
    make.add_argument("--protocol", required=True,
                      help="; ".join(f"{k}: {v.what}" for k, v in PROTOCOLS.items()))
    make.add_argument("--out", required=True, type=Path, metavar="FILE", help="the .npz to write")
    make.add_argument("--resolution", type=int, default=256, help="crop size for imagenet_recon (default 256)")
    make.add_argument("--dataset", default=None, help="dataset label recorded in the protocol (see --protocol)")
    make.add_argument("--resize", default="bilinear_pytorch",
                      help="Inception resize path: " + "; ".join(f"{k}: {v}" for k, v in RESIZE_PATHS.items()))
    weights = make.add_mutually_exclusive_group()
    weights.add_argument("--weights", default=None, metavar="PATH",
                         help="FID-Inception weights (else $DCAR_FID_INCEPTION, else the torch hub cache)")
    weights.add_argument("--random-init-seed", type=int, default=None, metavar="N",
                         help="tests and smoke runs only: seeded random Inception (statistics flagged real_weights=false)")
    make.add_argument("--batch-size", type=int, default=50)
    make.add_argument("--device", default="cpu")
    make.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    show = sub.add_parser("show", help="print n, dim, protocol and provenance of a statistics file")
    show.add_argument("file", type=Path, metavar="FILE")
    return ap


def list_stats_images(directory: Path) -> list[Path]:
    """Image files under ``directory`` (recursively, by extension, case-insensitive), sorted by relative path."""
    if not directory.is_dir():
        raise StatsToolError(f"stats make: {directory} is not a directory")
    files = [p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in STATS_EXTENSIONS]
    if not files:
        raise StatsToolError(f"stats make: no images ({' '.join(STATS_EXTENSIONS)}) under {directory}")
    return sorted(files, key=lambda p: p.relative_to(directory).as_posix())


def _validate(args: argparse.Namespace) -> StatsProtocol:
    import difflib

    from harness.metrics.inception import RESIZE_PATHS

    if args.protocol not in PROTOCOLS:
        close = difflib.get_close_matches(args.protocol, list(PROTOCOLS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise StatsToolError(f"stats make: unknown protocol {args.protocol!r}.{hint} Known: {', '.join(PROTOCOLS)}")
    if args.resize not in RESIZE_PATHS:
        raise StatsToolError(f"stats make: unknown --resize {args.resize!r}; choose one of {', '.join(RESIZE_PATHS)}")
    proto = PROTOCOLS[args.protocol]
    if proto.crop == "adm_center_crop" and args.resolution < 16:
        raise StatsToolError(f"stats make: --resolution must be >= 16, got {args.resolution}")
    if args.batch_size < 1:
        raise StatsToolError(f"stats make: --batch-size must be >= 1, got {args.batch_size}")
    if args.out.exists() and not args.force:
        raise StatsToolError(f"stats make: {args.out} exists; pass --force to overwrite it")
    if args.out.is_dir():
        raise StatsToolError(f"stats make: --out {args.out} is a directory; give a file name, e.g. {args.out}/ref.npz")
    ensure_output_dir(args.out.parent, what="stats make: --out (its folder)")
    return proto


def make_stats(args: argparse.Namespace) -> dict[str, Any]:
    """Compute and write the statistics; returns what ``make`` prints."""
    import numpy as np
    import torch

    from harness.data.image_io import CorruptImageError, open_rgb
    from harness.data.imagenet import adm_center_crop
    from harness.io import file_sha256
    from harness.metrics.fid import FeatureStats, fid_protocol
    from harness.metrics.inception import InceptionFeatureExtractor

    proto = _validate(args)
    files = list_stats_images(args.directory)
    if len(files) < 2:
        raise StatsToolError(f"stats make: {args.directory} holds {len(files)} image; a covariance needs at least 2")
    try:
        extractor = InceptionFeatureExtractor(args.weights, random_init_seed=args.random_init_seed,
                                              resize=args.resize, batch_size=args.batch_size, device=args.device)
    except MissingResourceError as exc:
        raise MissingResourceError(f"{exc}\nFor `dcar-bench stats make`: pass --weights PATH.") from exc
    crop_res = args.resolution if proto.crop == "adm_center_crop" else "native"
    protocol = fid_protocol(extractor.describe(), dataset=args.dataset or proto.default_dataset or args.directory.name,
                            crop=proto.crop, resolution=crop_res)
    stats = FeatureStats(extractor.describe()["dims"], protocol)
    digest = hashlib.sha256()
    pending: list[np.ndarray] = []

    def flush() -> None:
        if pending:
            u8 = torch.from_numpy(np.stack(pending)).permute(0, 3, 1, 2).contiguous()
            stats.update(extractor(u8))
            pending.clear()

    from tqdm import tqdm

    for path in tqdm(files, desc="stats make", unit="image", file=sys.stderr, disable=None):
        try:
            img = open_rgb(path)
        except CorruptImageError as exc:
            raise StatsToolError(f"stats make: {exc}. Remove or replace it: reference statistics are made from "
                                 f"every image under {args.directory}") from exc
        arr = adm_center_crop(img, args.resolution) if proto.crop == "adm_center_crop" else np.asarray(img)
        digest.update(f"{path.relative_to(args.directory).as_posix()}\x1f{file_sha256(path)}\n".encode())
        if pending and (arr.shape != pending[0].shape or len(pending) >= args.batch_size):
            flush()
        pending.append(arr)
    flush()
    stats.meta = {"made_by": "dcar-bench stats make", "protocol_name": args.protocol,
                  "source_dir": str(args.directory.resolve()), "num_images": len(files),
                  "inputs_sha256": digest.hexdigest(), "inputs_digest": INPUTS_DIGEST,
                  "extractor_library": extractor.library}
    sha = stats.save(args.out)
    return {"file": str(args.out), "sha256": sha, "n": stats.n, "dim": stats.dim, "protocol": protocol,
            "inputs_sha256": stats.meta["inputs_sha256"]}


def show_stats(path: Path) -> str:
    from harness.metrics.fid import check_reference_stats

    header = check_reference_stats(path, None, min_n=0)
    lines = [str(path), f"  n: {header.n}", f"  dim: {header.dim}", "  protocol:"]
    lines += [f"    {k}: {json.dumps(v)}" for k, v in sorted(header.protocol.items())]
    if header.meta:
        lines.append("  provenance:")
        lines += [f"    {k}: {json.dumps(v)}" for k, v in sorted(header.meta.items())]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Registry tool entry: ``dcar-bench stats make|show ...``; user errors propagate as :class:`UserError`."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command == "show":
        print(show_stats(args.file))
        return 0
    out = make_stats(args)
    print(f"wrote {out['file']} (sha256 {out['sha256'][:12]}): n={out['n']}, dim={out['dim']}, "
          f"inputs_sha256={out['inputs_sha256'][:12]}, protocol={json.dumps(out['protocol'], sort_keys=True)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
