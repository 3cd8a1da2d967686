"""Records per second of `modint diagnose` with letter scoring, letter scoring with the reliance
measures (--reliance), and generate-and-parse, on the same model and samples.
Usage: python benchmarks/diagnose_throughput.py [--model M] [--limit N]"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from modint.cli import DEFAULT_MODEL
    from modint.data.registry import load_benchmark
    from modint.diagnose.engine import DiagnoseConfig, run_diagnosis
    from modint.models import load_adapter

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    adapter = load_adapter(args.model)
    samples = load_benchmark("mini", split="test", limit=args.limit)
    rates = {}
    for scoring in ("letters", "letters+reliance", "generate"):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            config = DiagnoseConfig(scoring=scoring.split("+")[0], batch_size=args.batch_size, n_boot=200,
                                    reliance=scoring.endswith("+reliance"))
            run_diagnosis(adapter, samples, tmp, config)
            elapsed = time.perf_counter() - start
            n = sum(1 for _ in open(os.path.join(tmp, "records.jsonl")))
        rates[scoring] = n / elapsed
        print(f"{scoring:16s}: {n} records in {elapsed:.2f} s = {rates[scoring]:.1f} records/s")
    print(f"ratio letters/generate: {rates['letters'] / rates['generate']:.2f}x, "
          f"letters/letters+reliance: {rates['letters'] / rates['letters+reliance']:.2f}x "
          f"(model {args.model}, {len(samples)} samples, batch {args.batch_size}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
