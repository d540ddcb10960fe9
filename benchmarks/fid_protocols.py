"""Images/s of the mjhq_fid feature pass for 1, 2 and 4 protocols on the same images, and torch-fidelity's own.

Why: the suite decodes each image once and runs every protocol's preprocessing and backbone on that
picture; this measures what each added protocol costs, and compares one protocol with torch-fidelity's
own folder pipeline (its ``ImagesPathDataset`` + ``FeatureExtractorInceptionV3``, ``save_cpu_ram`` =
single process, like ours) on the same files in the same process. Full-size backbones with seeded
random weights (no weights are downloaded): FID-Inception in pytorch-fid's file format, DINOv2
ViT-L/14. Not a test: wall-clock numbers depend on the machine and its load, which the JSON records.

    python benchmarks/fid_protocols.py --num-images 500 --out benchmarks/results/fid_protocols_cpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SETS = {1: ("sana",), 2: ("sana", "clean_fid"), 4: ("sana", "clean_fid", "torch_fidelity", "fd_dinov2")}


def make_images(folder: Path, n: int, size: int) -> list[Path]:
    """``n`` distinct smooth RGB JPEGs of ``size`` px (quality 75, as Sana's samples)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        a, f = rng.uniform(0, 1, 3), rng.uniform(1, 6, 3)
        arr = np.stack([0.5 + 0.5 * np.sin(2 * np.pi * (f[c] * xx + a[c] * yy) + 6 * a[c]) for c in range(3)], -1)
        noise = rng.normal(0, 0.03, arr.shape)
        p = folder / f"{i:05d}.jpg"
        Image.fromarray((np.clip(arr + noise, 0, 1) * 255).astype(np.uint8)).save(p, format="JPEG")
        out.append(p)
    return out


def our_pass(files: list[Path], protocols, batch: int) -> tuple[float, dict[str, np.ndarray]]:
    """The suite's loop: read + decode each file once, then every protocol's preprocessing and backbone."""
    import io

    from PIL import Image

    feats: dict[str, list[np.ndarray]] = {p.name: [] for p in protocols}
    t0 = time.perf_counter()
    for s in range(0, len(files), batch):
        pics = []
        for f in files[s:s + batch]:
            with Image.open(io.BytesIO(f.read_bytes())) as img:
                pics.append(img.convert("RGB"))
        for p in protocols:
            feats[p.name].append(p.features(pics, pad_to=batch))
    return time.perf_counter() - t0, {k: np.concatenate(v) for k, v in feats.items()}


def torch_fidelity_pass(folder: Path, weights: Path, batch: int) -> tuple[float, np.ndarray]:
    """torch-fidelity's own folder pipeline (dataset, loader, extractor), weights from a local file."""
    from torch_fidelity.utils import create_feature_extractor, extract_featuresdict_from_input_id

    fx = create_feature_extractor("inception-v3-compat", ["2048"], cuda=False,
                                  feature_extractor_weights_path=str(weights))
    with torch.no_grad():  # warm-up, as ours
        fx(torch.zeros(2, 3, 299, 299, dtype=torch.uint8))
    t0 = time.perf_counter()
    out = extract_featuresdict_from_input_id(1, fx, input1=str(folder), batch_size=batch, cuda=False,
                                             save_cpu_ram=True, verbose=False)
    return time.perf_counter() - t0, out["2048"].double().numpy()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-images", type=int, default=500)
    ap.add_argument("--size", type=int, default=512, help="side of the test JPEGs (DC-AR generates 512x512)")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--sets", default="1,2,4", help="which protocol counts to time, of 1, 2, 4")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the best and median are kept")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from harness.metrics.inception import random_state_dict
    from harness.metrics.protocols import BackboneConfig, ProtocolsConfig, build_protocols

    result: dict = {"num_images": args.num_images, "image_size": args.size, "batch": args.batch,
                    "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                    "machine": platform.platform(), "torch": torch.__version__,
                    "load_average_before": os.getloadavg(), "weights": "seeded random, full-size architectures",
                    "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        files = make_images(folder, args.num_images, args.size)
        weights = Path(tmp) / "pt_inception-2015-12-05-6726825d.pth"
        torch.save(random_state_dict(0), weights)
        full = BackboneConfig(weights_path=str(weights))
        rand = BackboneConfig(random_init_seed=0)
        names = [int(k) for k in args.sets.split(",")]
        built = {k: build_protocols(ProtocolsConfig(SETS[k], full, rand, rand)) for k in names}
        for k in names:
            our_pass(files[: args.batch], built[k], args.batch)  # warm-up (allocations, lazy imports)
        times: dict[str, list[float]] = {}
        ours_tf = tf = None
        for r in range(args.repeats):  # interleaved, so a load change on the shared machine hits every variant
            for k in names:
                secs, feats = our_pass(files, built[k], args.batch)
                times.setdefault(f"ours_{k}_protocols", []).append(secs)
                ours_tf = feats.get("torch_fidelity", ours_tf)
                print(f"round {r}: ours, {k} protocol(s) {SETS[k]}: {len(files) / secs:.2f} images/s", flush=True)
            secs, tf = torch_fidelity_pass(folder, weights, args.batch)
            times.setdefault("torch_fidelity_own", []).append(secs)
            print(f"round {r}: torch-fidelity's own pipeline: {len(files) / secs:.2f} images/s", flush=True)
        for key, ts in times.items():
            k = int(key.split("_")[1]) if key.startswith("ours_") else None
            result["runs"][key] = {"protocols": list(SETS[k]) if k else ["torch_fidelity (its own pipeline)"],
                                   "seconds": ts, "images_per_s_best": len(files) / min(ts),
                                   "images_per_s_median": len(files) / float(np.median(ts))}
        if ours_tf is not None and tf is not None:
            result["torch_fidelity_feature_max_abs_diff"] = float(np.max(np.abs(ours_tf - tf)))
    runs = result["runs"]
    base = runs.get("ours_1_protocols", {}).get("images_per_s_best")
    if base:  # throughput relative to ours with 1 protocol (best of the rounds)
        result["ratios_to_ours_1_protocol"] = {k: runs[k]["images_per_s_best"] / base for k in runs}
    result["load_average_after"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
