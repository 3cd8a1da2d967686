"""Train the embedded demo model (the default --model) from scratch on the mini training split.

    python scripts/train_demo.py --out src/modint/assets/demo [--scale 1.0] [--seed 0]

Same as `modint zoo train-demo`. About 1 hour 50 minutes on 2 CPU cores at scale 1.0; the recipe,
its design and how the shipped weights were made: docs/demo-model.md.
"""

import argparse
import logging

from modint.zoo.demo import DemoConfig, train_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory to write the model to")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every stage's steps (0.01 for a smoke run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoints", action="store_true", help="also keep the model after each stage")
    parser.add_argument("--resume-from", help="a stage checkpoint (OUT/stages/<stage>): run the later stages only")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override DemoConfig fields")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = DemoConfig(seed=args.seed, checkpoints=args.checkpoints, resume_from=args.resume_from)
    for item in args.set:
        key, value = item.split("=", 1)
        setattr(cfg, key, type(getattr(cfg, key))(value))
    cfg = cfg.scaled(args.scale)
    print(train_demo(args.out, cfg))


if __name__ == "__main__":
    main()
