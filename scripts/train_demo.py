"""Train the embedded demo model (the default --model) from scratch on the mini training split.

    python scripts/train_demo.py --out src/modint/assets/demo [--config configs/demo_model.yaml]
        [--scale 1.0] [--seed 0] [--set KEY=VALUE ...]

Same as `modint zoo train-demo`. About 1 hour 50 minutes on 2 CPU cores at scale 1.0; the recipe,
its design and how the shipped weights were made: docs/demo-model.md.
"""

import argparse
import logging

from modint.zoo.demo import load_demo_config, train_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory to write the model to")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every stage's steps (0.01 for a smoke run)")
    parser.add_argument("--config", help="YAML file of DemoConfig fields (default: the DemoConfig defaults)")
    parser.add_argument("--seed", type=int, default=None, help="overrides the config's seed")
    parser.add_argument("--checkpoints", action="store_true", help="also keep the model after each stage")
    parser.add_argument("--resume-from", help="a stage checkpoint (OUT/stages/<stage>): run the later stages only")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override DemoConfig fields")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        cfg = load_demo_config(args.config, args.set)
    except ValueError as exc:
        parser.error(str(exc))
    cfg.seed = cfg.seed if args.seed is None else args.seed
    cfg.checkpoints = cfg.checkpoints or args.checkpoints
    cfg.resume_from = args.resume_from or cfg.resume_from
    cfg = cfg.scaled(args.scale)
    print(train_demo(args.out, cfg))


if __name__ == "__main__":
    main()
