"""Seconds per training step: plain SFT vs the full method (aug_kl_pgd) with the exact k-step PGD
and with the free adversarial step (adv_mode=free), on the same anchors (the first quota batch of
the mini training split), and their ratios to SFT. The three are timed in turn within each repeat,
so a change of machine load hits all of them alike; the figures are medians over the repeats.
``--unshared`` adds the exact and free steps with every row computed whole (no shared prefixes,
``step_loss(share=False)``) to the same rotation: the saving measured under one load.

``--clock cpu`` times the CPU seconds of this process (all its threads) instead of the wall clock:
on a machine other jobs contend for, the wall clock counts the waits for a core, which slow the
small SFT step more than the large ones; the CPU time counts the work (use it with ``--threads 1``).

Usage: python benchmarks/train_step.py [--model M] [--preset NAME] [--repeats N] [--pgd-steps K] [--unshared]
       [--clock wall|cpu] [--json]

Settings: TrainConfig's defaults (the published recipe: full fine-tune, quotas 2:2:4), or a
training preset (``--preset demo``: LoRA, quotas 2:4:2, two switched views, preservation).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODES = {"sft": ["recipe=sft"], "aug_kl_pgd": ["recipe=aug_kl_pgd", "adv_mode=pgd"],
         "free": ["recipe=aug_kl_pgd", "adv_mode=free"]}
UNSHARED = {"aug_kl_pgd_unshared": MODES["aug_kl_pgd"], "free_unshared": MODES["free"]}


def main() -> None:
    from modint.cli import DEFAULT_MODEL
    from modint.data.registry import load_benchmark
    from modint.mitigate.adversarial import FreeAdversary
    from modint.mitigate.config import from_sources
    from modint.mitigate.sampler import QuotaBatchSampler
    from modint.mitigate.train import prepare_trainable, reference_model, step_loss
    from modint.models import load_adapter
    from modint.perturb import default_pools

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--preset", default=None, help="a training preset (configs/train/NAME.yaml); default: none")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--pgd-steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--unshared", action="store_true", help="also time the steps without shared prefixes")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="wall clock or this process's CPU time")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    samples = load_benchmark("mini", split="train", limit=300)
    pools = default_pools(samples, part="train")
    modes = {**MODES, **(UNSHARED if args.unshared else {})}
    runs = {}
    for mode, settings in modes.items():
        cfg = from_sources(args.preset, None, [*settings, f"pgd_steps={args.pgd_steps}"])
        adapter = load_adapter(args.model)
        params = prepare_trainable(adapter, cfg)
        adapter.model.train()
        runs[mode] = (cfg, adapter, torch.optim.AdamW(params, lr=1e-6), reference_model(adapter, cfg),
                      FreeAdversary(cfg, 0) if cfg.adv_mode == "free" and mode.startswith("free") else None)
    cfg = runs["sft"][0]
    anchors = [samples[i] for i in next(iter(QuotaBatchSampler([s.family for s in samples], cfg.quotas)))]
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    for r in range(args.repeats + 1):  # the first is a warm-up
        for mode, (cfg, adapter, opt, reference, adversary) in runs.items():
            start = clock()
            loss, _ = step_loss(adapter, anchors, cfg, pools, 0, r, reference, adversary,
                                share=not mode.endswith("_unshared"))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if adversary is not None:
                adversary.ascend()
            opt.step()
            if r:
                times[mode].append(clock() - start)
    med = {mode: statistics.median(t) for mode, t in times.items()}
    result = {"sft_s": round(med["sft"], 4), "aug_kl_pgd_s": round(med["aug_kl_pgd"], 4),
              "ratio": round(med["aug_kl_pgd"] / med["sft"], 3), "free_s": round(med["free"], 4),
              "free_ratio": round(med["free"] / med["sft"], 3), "model": args.model, "preset": args.preset,
              "pgd_steps": args.pgd_steps, "repeats": args.repeats, "threads": torch.get_num_threads(),
              "anchors": len(anchors), "clock": args.clock}
    for mode in UNSHARED if args.unshared else ():
        result[f"{mode}_s"] = round(med[mode], 4)
        result[f"{mode}_ratio"] = round(med[mode] / med["sft"], 3)
    if args.json:
        print(json.dumps(result))
        return
    for mode in modes:
        print(f"{mode:11s}: {med[mode]:.3f} s/step (median of {args.repeats}; {len(anchors)} anchors)")
    print(f"ratio aug_kl_pgd / sft: {result['ratio']:.2f}x, free / sft: {result['free_ratio']:.2f}x "
          f"(model {args.model}, preset {args.preset or 'none'}, PGD k={args.pgd_steps}, {result['threads']} threads)")


if __name__ == "__main__":
    main()
