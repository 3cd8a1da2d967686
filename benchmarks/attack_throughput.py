"""What embedding PGD on image-heavy samples costs with and without the cached image prefix.

Both paths attack the same samples' text after the image (``embed_text="after_image"``, the
default of ``modint attack``) with the same PGD settings and random starts: ``cached`` computes the
header + image prefix's keys and values once per batch and runs every iteration on the text after
it; ``full`` runs every iteration over the whole prompt (``--no-share``). The two alternate within
each repeat, so a change of machine load hits both alike; times are medians over the repeats.
Printed per model: samples/s of each path, their ratio, the largest difference in final option
probabilities between them and whether every prediction agrees, and the prefix / suffix lengths.

Usage:
  python benchmarks/attack_throughput.py [--models demo,tiny-random-llava-1.5-geometry] [--limit 8]
      [--steps 10] [--eps 0.1] [--batch-size 8] [--repeats 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PATHS = {"cached": True, "full": False}  # path -> attack(share=...)


def _samples(limit: int):
    """The first ``limit`` image-heavy test samples of the bundled benchmark, images decoded."""
    from modint.data.registry import load_benchmark
    from modint.data.sample import load_image

    samples = [s for s in load_benchmark("mini", split="test") if s.family == "image_heavy"][:limit]
    return [s.replace(image=load_image(s)) for s in samples]


def _measure(model: str, samples, args) -> dict:
    import numpy as np

    from modint.attacks import PGDConfig
    from modint.attacks.prefix import text_start
    from modint.attacks.vlm import attack
    from modint.models import load_adapter

    adapter = load_adapter(model)
    config = PGDConfig(eps=args.eps, steps=args.steps, seed=0)
    batches = [samples[i:i + args.batch_size] for i in range(0, len(samples), args.batch_size)]
    encoded = adapter.encode(samples)
    lengths = encoded.inputs["attention_mask"].sum(1).tolist()
    prefix = [text_start(encoded, i) for i in range(len(samples))]
    times: dict[str, list[float]] = {path: [] for path in PATHS}
    outcomes: dict[str, list] = {}
    attack(adapter, samples[:1], "embed", PGDConfig(eps=args.eps, steps=1))  # warm-up
    for _ in range(args.repeats):
        for path, share in PATHS.items():
            start = time.perf_counter()
            outcomes[path] = [o for b in batches for o in attack(adapter, b, "embed", config, share=share)]
            times[path].append(time.perf_counter() - start)
    seconds = {path: statistics.median(t) for path, t in times.items()}
    diff = max(float(np.abs(c.probs - f.probs).max()) for c, f in zip(outcomes["cached"], outcomes["full"]))
    return {"model": model, "samples": len(samples),
            "paths": {path: {"seconds": round(s, 3), "samples_per_s": round(len(samples) / s, 3)}
                      for path, s in seconds.items()},
            "ratio": round(seconds["full"] / seconds["cached"], 3),
            "max_prob_diff": diff,
            "same_predictions": all(c.pred == f.pred for c, f in zip(outcomes["cached"], outcomes["full"])),
            "prefix_tokens_mean": round(statistics.mean(prefix), 1),
            "suffix_tokens_mean": round(statistics.mean(n - p for n, p in zip(lengths, prefix)), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="demo,tiny-random-llava-1.5-geometry")
    ap.add_argument("--limit", type=int, default=8, help="image-heavy test samples")
    ap.add_argument("--steps", type=int, default=10, help="PGD steps (modint attack's default)")
    ap.add_argument("--eps", type=float, default=0.1, help="x the embeddings' RMS")
    ap.add_argument("--batch-size", type=int, default=8, help="samples per attack call")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    samples = _samples(args.limit)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results = [_measure(m, samples, args) for m in args.models.split(",") if m]
    report = {"results": results, "steps": args.steps, "eps": args.eps, "batch_size": args.batch_size,
              "repeats": args.repeats, "threads": torch.get_num_threads(), "uptime_before": load,
              "uptime_after": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}
    if args.json:
        print(json.dumps(report))
        return
    print(f"embedding PGD, {args.steps} steps, eps {args.eps:g}, {args.batch_size} samples per call, "
          f"{torch.get_num_threads()} thread(s)")
    print(f"{'model':36} {'prefix':>6} {'suffix':>6} {'cached/s':>9} {'full/s':>8} {'ratio':>6} {'max diff':>9} same")
    for r in results:
        print(f"{r['model']:36} {r['prefix_tokens_mean']:6.0f} {r['suffix_tokens_mean']:6.0f} "
              f"{r['paths']['cached']['samples_per_s']:9.2f} {r['paths']['full']['samples_per_s']:8.2f} "
              f"{r['ratio']:6.2f} {r['max_prob_diff']:9.1e} {r['same_predictions']}")


if __name__ == "__main__":
    main()
