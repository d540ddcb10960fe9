"""Full-size DC-HT encode -> decode of one 512x512 image on the CPU: wall time and peak memory.

Why a script and not a test: time and memory depend on the machine and its load, so they are
measured and reported, never asserted. Without weights the model gets random weights (same
shapes and FLOPs as the released f32c32 model); with ``--weights`` (or ``$DCAR_DCHT_PATH``) the
released checkpoint is loaded and the reconstruction PSNR is printed as well.

Time: ``encode_decode_s`` is wall-clock; ``encode_decode_cpu_s`` is the process's CPU time over
all threads, which says more than wall time on a shared, loaded machine.

Memory: ``peak_rss_mib`` is the process's peak resident set size (``getrusage``), which
includes the Python interpreter, torch and the 1.24 GiB of float32 weights;
``rss_before_forward_mib`` is the resident size after building the model, so the difference
is roughly the activation memory of the forward pass.

Example::

    python benchmarks/tokenizer_cpu.py --threads 2 --path continuous
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rss_mib() -> float:
    """Current resident set size (Linux /proc), MiB."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # pragma: no cover - non-Linux
        return float("nan")


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=os.environ.get("DCAR_DCHT_PATH"), help="DC-HT directory or state dict")
    p.add_argument("--seed", type=int, default=0, help="random-init seed when no weights are given")
    p.add_argument("--size", type=int, default=512, help="image side (multiple of 32)")
    p.add_argument("--path", choices=("continuous", "discrete"), default="continuous")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    import numpy as np
    import torch
    from skimage import data
    from skimage.transform import resize

    from baselines.common import random_init_tag, seeded
    from baselines.dcar.tokenizer import DCHT

    if args.threads:
        torch.set_num_threads(args.threads)
    image = data.astronaut()  # 512 x 512 x 3 uint8
    if image.shape[0] != args.size:
        image = (resize(image, (args.size, args.size), anti_aliasing=True) * 255).round().astype(np.uint8)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1.0

    t0 = time.perf_counter()
    if args.weights:
        model = DCHT.from_pretrained(args.weights)
        weights = str(args.weights)
    else:
        with seeded(args.seed):
            model = DCHT().eval()
        weights = random_init_tag(args.seed)
    build_s = time.perf_counter() - t0
    rss_before = _rss_mib()

    with torch.inference_mode():
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        z = model.encode(x)
        t1 = time.perf_counter()
        latent = model.latent_features(z) if args.path == "continuous" else model.quantize(z)[0]
        out = model.decode(latent)
        t2 = time.perf_counter()
        cpu_s = time.process_time() - cpu0

    recon = (out * 0.5 + 0.5).clamp(0, 1)
    orig = x * 0.5 + 0.5
    mse = torch.mean((torch.floor(recon * 255 + 0.5) - torch.floor(orig * 255 + 0.5)) ** 2).item()
    result = {
        "image": f"skimage astronaut {args.size}x{args.size}",
        "path": args.path,
        "weights": weights,
        "num_params": model.num_params,
        "latent_shape": list(z.shape),
        "output_finite": bool(torch.isfinite(out).all()),
        "build_or_load_s": round(build_s, 2),
        "encode_s": round(t1 - t0, 2),
        "quantize_decode_s": round(t2 - t1, 2),
        "encode_decode_s": round(t2 - t0, 2),
        "encode_decode_cpu_s": round(cpu_s, 2),  # CPU time of this process, all threads (less load-sensitive)
        "rss_before_forward_mib": round(rss_before, 1),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
        "psnr_db": None if not args.weights else round(10 * np.log10(255.0**2 / max(mse, 1e-12)), 2),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
