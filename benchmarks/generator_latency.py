"""DC-AR generate() latency (batch 1) and throughput (batch 16) with random full-size weights.

Why a script and not a test: timings depend on the machine and its load, so they are
measured and reported, never asserted. Weights are random (same shapes and FLOPs as the
released model), so no download is needed; the numbers are the cost of the released model.

What one "generate" is: prompts -> T5 encoder -> 12 token steps (2B-row CFG batch) -> diffusion
head (32 iDDPM steps by default) -> DC-HT decode -> images, i.e. ``DCARAdapter.generate``.

Variants (``--variants``), interleaved per repeat so that load drift affects them alike:
  * ``optimised``: text K/V cached across steps, logits only at masked positions (the default path);
  * ``no-cache``: caption embedding + cross-attention K/V recomputed every step and logits for every
    position, as the official code does.

Examples::

    python benchmarks/generator_latency.py --device cuda --dtype bfloat16             # batch 1 and 16
    python benchmarks/generator_latency.py --device cpu --batch-sizes 1 --repeats 1 \\
        --variants optimised no-cache                                                # CPU, short
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = {
    "optimised": {"cache_text": True, "masked_logits_only": True},
    "no-cache": {"cache_text": False, "masked_logits_only": False},
}
PROMPT = "a photo of an astronaut riding a horse on the moon, highly detailed"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=("full", "tiny"), default="full")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float32", help="autocast dtype for the generator on CUDA: float32|bfloat16|float16")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    p.add_argument("--repeats", type=int, default=5, help="timed runs per (variant, batch size); the median is reported")
    p.add_argument("--warmup", type=int, default=1, help="untimed short runs (1 token step, 1 diffusion step) first")
    p.add_argument("--num-steps", type=int, default=12)
    p.add_argument("--num-diffusion-steps", type=int, default=32)
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["optimised"])
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch

    from baselines.dcar.generator.sampler import SamplingOptions
    from baselines.dcar.generator_adapter import DCARAdapter

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    adapter = DCARAdapter(config=args.config, random_init_seed=0, device=args.device, dtype=args.dtype)
    build_s = time.perf_counter() - t0
    pipe = adapter.pipeline
    print(f"built {args.config} DC-AR (random weights) on {adapter.device} in {build_s:.1f}s; "
          f"transformer {pipe.generator.num_transformer_parameters():,} + head "
          f"{pipe.generator.num_head_parameters():,} params; threads={torch.get_num_threads()}", flush=True)

    def run(batch: int, variant: str, steps: int, diff_steps: int) -> dict:
        opts = SamplingOptions(num_steps=steps, num_diffusion_steps=diff_steps, **VARIANTS[variant])
        prompts, seeds = [PROMPT] * batch, list(range(batch))
        start = time.perf_counter()
        result = pipe(prompts, seeds, options=opts)
        if adapter.device.type == "cuda":
            torch.cuda.synchronize()
        return {"total_s": time.perf_counter() - start, **result.info["timings"]}

    rows = []
    for batch in args.batch_sizes:
        for _ in range(args.warmup):
            for variant in args.variants:
                run(batch, variant, 1, 1)
        samples: dict[str, list[dict]] = {v: [] for v in args.variants}
        for r in range(args.repeats):
            for variant in args.variants:
                samples[variant].append(run(batch, variant, args.num_steps, args.num_diffusion_steps))
                print(f"  batch {batch} {variant} run {r + 1}: {samples[variant][-1]['total_s']:.2f}s", flush=True)
        for variant, runs in samples.items():
            med = {k: statistics.median(x[k] for x in runs) for k in runs[0]}
            rows.append({"batch_size": batch, "variant": variant, "repeats": len(runs),
                         "median_latency_s": med["total_s"], "images_per_s": batch / med["total_s"],
                         "median_breakdown_s": {k: v for k, v in med.items() if k != "total_s"},
                         "all_latencies_s": [x["total_s"] for x in runs]})

    print(f"\n{'batch':>5} {'variant':>10} {'median s':>10} {'img/s':>8}   T5 / sampler / decoder (s)")
    for row in rows:
        b = row["median_breakdown_s"]
        print(f"{row['batch_size']:>5} {row['variant']:>10} {row['median_latency_s']:>10.3f} {row['images_per_s']:>8.3f}   "
              f"{b['text_encoder_s']:.3f} / {b['sampler_s']:.3f} / {b['decoder_s']:.3f}")
    report = {
        "config": args.config, "device": str(adapter.device), "dtype": args.dtype, "threads": torch.get_num_threads(),
        "num_steps": args.num_steps, "num_diffusion_steps": args.num_diffusion_steps, "weights": "random-init:0",
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name() if adapter.device.type == "cuda" else None, "rows": rows,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
