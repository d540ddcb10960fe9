"""Images/s of our Inception wrapper vs bare torch-fidelity, same 200 images, same weights, one run.

Not a test (pytest does not collect it): run ``python tests/harness/metrics/bench_inception_speed.py [--size 64]``.
Our ``bilinear_tf1x`` path *is* torch-fidelity's network, so this measures the wrapper's overhead
(quantisation, batching, float64 output); ``--both-paths`` also times the ``bilinear_pytorch`` path
(pytorch-fid's network). Both get uint8 batches of 50 and the same Kaiming-initialised weights
(saved to a temp file and loaded by torch-fidelity itself). The order is interleaved (ours, theirs,
ours, theirs with --reps 2) to spread machine load evenly, and the features are compared so the
timing is of equivalent computations.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch


def _images(n: int, size: int) -> torch.Tensor:
    import skimage.data

    rng = np.random.default_rng(0)
    pics = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    out = []
    for i in range(n):
        p = pics[i % len(pics)]
        y, x = rng.integers(0, p.shape[0] - size), rng.integers(0, p.shape[1] - size)
        out.append(p[y:y + size, x:x + size])
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--reps", type=int, default=1, help="timed passes per extractor (best is reported)")
    ap.add_argument("--both-paths", action="store_true", help="also time our bilinear_pytorch resize path")
    args = ap.parse_args()
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from harness.metrics.inception import InceptionFeatureExtractor, random_state_dict

    images = _images(args.n, args.size)
    ours_tf = InceptionFeatureExtractor(random_init_seed=0, resize="bilinear_tf1x", batch_size=args.batch)
    ours_pt = InceptionFeatureExtractor(random_init_seed=0, resize="bilinear_pytorch", batch_size=args.batch)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "w.pth")
        torch.save(random_state_dict(0), path)
        theirs = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=path)

    def run_theirs() -> np.ndarray:
        with torch.no_grad():
            return np.concatenate([theirs(images[i:i + args.batch])[0].double().numpy()
                                   for i in range(0, len(images), args.batch)])

    runners = {"ours_tf1x": lambda: ours_tf(images), "torch_fidelity": run_theirs}
    if args.both_paths:
        runners["ours_pytorch_bilinear"] = lambda: ours_pt(images)
    with torch.no_grad():  # warm-up: one batch through each network
        ours_tf(images[: args.batch]), ours_pt(images[: args.batch]), theirs(images[: args.batch])
    times: dict[str, list[float]] = {k: [] for k in runners}
    feats: dict[str, np.ndarray] = {}
    for _ in range(args.reps):
        for name, fn in runners.items():
            t = time.perf_counter()
            feats[name] = fn()
            times[name].append(time.perf_counter() - t)
    result = {
        "images": args.n, "size": f"{args.size}x{args.size} (resized to 299 inside)", "batch": args.batch,
        "threads": torch.get_num_threads(), "device": "cpu",
        "images_per_s": {k: round(args.n / min(v), 2) for k, v in times.items()},
        "seconds_per_pass": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "max_abs_diff_ours_tf1x_vs_torch_fidelity": float(np.abs(feats["ours_tf1x"] - feats["torch_fidelity"]).max()),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
