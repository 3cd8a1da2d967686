"""Seconds per training step: plain SFT vs the full method (aug_kl_pgd, PGD k=2) on the same
anchors (one 2:2:4 quota batch of the mini training split), and their ratio.

Usage: python benchmarks/train_step.py [--model M] [--repeats N] [--pgd-steps K]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from modint.cli import DEFAULT_MODEL
    from modint.data.registry import load_benchmark
    from modint.mitigate.sampler import QuotaBatchSampler
    from modint.mitigate.train import TrainConfig, prepare_trainable, step_loss
    from modint.models import load_adapter
    from modint.perturb import default_pools

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--pgd-steps", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    samples = load_benchmark("mini", split="train", limit=300)
    anchors = [samples[i] for i in next(iter(QuotaBatchSampler([s.family for s in samples])))]
    pools = default_pools(samples)
    times = {}
    for recipe in ("sft", "aug_kl_pgd"):
        adapter = load_adapter(args.model)
        cfg = TrainConfig(recipe=recipe, pgd_steps=args.pgd_steps)
        params = prepare_trainable(adapter, cfg)
        opt = torch.optim.AdamW(params, lr=1e-6)
        adapter.model.train()
        runs = []
        for r in range(args.repeats + 1):  # the first is a warm-up
            start = time.perf_counter()
            loss, _ = step_loss(adapter, anchors, cfg, pools, 0, r)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            runs.append(time.perf_counter() - start)
        times[recipe] = statistics.median(runs[1:])
        print(f"{recipe:11s}: {times[recipe]:.3f} s/step (median of {args.repeats}; "
              f"{len(anchors)} anchors)")
    print(f"ratio aug_kl_pgd / sft: {times['aug_kl_pgd'] / times['sft']:.2f}x (model {args.model}, PGD k="
          f"{args.pgd_steps}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
