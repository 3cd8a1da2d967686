"""What `modint diagnose` costs, per scoring path, on the same model, samples and conditions.

Paths: ``generate`` (generate-and-parse as the published code scores: batched greedy decoding,
10 new tokens, repetition penalty 1.2, regex parse, one retry of unparsed answers), ``reference``
(letter scoring, one forward per record: ``--no-share``) and ``shared`` (letter scoring with shared
prefixes; reported as null where this version has no such path); ``reliance`` (letter scoring with
``--reliance``'s measures, not run unless named in ``--paths``: its records/s beside the others is
the measures' cost). Each path runs in its own
process, so its peak RSS is its own. Figures (docs/speed.md says how each is computed):
records/s, LLM positions computed vs distinct (``redundancy``, per family), vision encodings per
sample, achieved matmul FLOP rate as a fraction of this machine's fp32 matmul peak, peak RSS,
and the largest option-probability difference between the shared and reference paths.

Usage:
  python benchmarks/diagnose_throughput.py [--model demo] [--limit 60 | --limit 0 (all)] [--json]
  python benchmarks/diagnose_throughput.py --memory [--memory-sizes 300,3000] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PATHS = ("generate", "reference", "shared", "reliance")
DEFAULT_PATHS = ("generate", "reference", "shared")


def _has_shared_path() -> bool:
    from modint.diagnose.engine import DiagnoseConfig

    return "share" in DiagnoseConfig.__dataclass_fields__


def _config(path: str, batch_size: int):
    from modint.diagnose.engine import DiagnoseConfig

    kwargs = {"batch_size": batch_size, "n_boot": 200}
    if _has_shared_path():
        kwargs["share"] = path == "shared"
    if path == "reliance":
        kwargs["reliance"] = True
    if path == "generate":
        kwargs["scoring"] = "generate"  # max_new_tokens 10 and repetition penalty 1.2 are the defaults
    return DiagnoseConfig(**kwargs)


def _samples(limit: int, memory_size: int | None = None):
    from modint.data.mini import load_mini
    from modint.data.registry import load_benchmark

    if memory_size:  # more test samples than the bundled split, from the same generator
        return load_mini("test", limit=memory_size, sizes={"test": math.ceil(memory_size / 3)})
    return load_benchmark("mini", split="test", limit=limit or None)


# ----- the worker: one path in its own process ------------------------------------------------
def _diagnose(adapter, samples, config, pools=None) -> float:
    """Seconds to diagnose ``samples`` into a fresh directory; ``pools`` replaces the run's own
    perturbation pools (a one-family run then perturbs exactly as the full run does)."""
    from unittest import mock

    from modint.diagnose.engine import run_diagnosis

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        if pools is None:
            run_diagnosis(adapter, samples, tmp, config)
        else:
            with mock.patch("modint.diagnose.engine.default_pools", lambda *a, **k: pools):
                run_diagnosis(adapter, samples, tmp, config)
        return time.perf_counter() - start


def _timed_run(args, path: str, adapter, samples) -> dict:
    from modint.diagnose.cost import PositionCounter, VisionCounter, peak_rss_mb
    from modint.diagnose.engine import run_diagnosis
    from modint.diagnose.rundir import read_records

    loaded_mb = peak_rss_mb()
    positions, vision = PositionCounter(), VisionCounter()
    with tempfile.TemporaryDirectory() as tmp, positions.watch(adapter), vision.watch(adapter):
        start, cpu_start = time.perf_counter(), time.process_time()
        run_diagnosis(adapter, samples, tmp, _config(path, args.batch_size))
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        records = read_records(Path(tmp) / "records.jsonl")
    result = {"records": len(records), "seconds": round(seconds, 3), "records_per_s": round(len(records) / seconds, 3),
              "cpu_seconds": round(cpu_seconds, 3), "records_per_cpu_s": round(len(records) / cpu_seconds, 3),
              "peak_rss_mb": round(peak_rss_mb(), 1), "rss_after_load_mb": round(loaded_mb, 1),
              "llm_positions_computed": positions.positions, "llm_calls": positions.calls,
              "vision_encodings_per_sample": round(vision.images / len(samples), 3),
              "errors": sum(r["error"] is not None for r in records),
              "_records": [{k: r.get(k) for k in ("id", "condition", "probs", "pred")} for r in records]}
    if path == "generate":
        result["unparsed"] = sum(r["pred"] is None and r["error"] is None for r in records)
        result["retried"] = sum(bool(r.get("retried")) for r in records)
    return result


def _counting_runs(args, path: str, samples, seconds: float, cpu_seconds: float) -> dict:
    """Untimed passes on a freshly loaded model each (no cache carried over from the timed run):
    FLOPs of the whole diagnosis, then each family alone for its positions and vision encodings
    (and, on the reference path, the distinct positions of every row it scores)."""
    from modint.diagnose.cost import DistinctPositions, PositionCounter, VisionCounter, count_flops
    from modint.models import load_adapter
    from modint.perturb import default_pools

    config = _config(path, args.batch_size)
    with count_flops() as mode:
        _diagnose(load_adapter(args.model), samples, config)
    flops = mode.get_total_flops()
    out: dict = {"matmul_flops": flops, "matmul_flop_rate": flops / seconds,
                 "matmul_flop_rate_per_cpu_s": flops / cpu_seconds,
                 "llm_positions_by_family": {}, "vision_encodings_per_sample_by_family": {}}
    pools = default_pools(list(samples), switch_source=config.switch_source, part=config.pool_part)
    distinct = DistinctPositions(total=True)
    for family in sorted({s.family for s in samples}):
        part = [s for s in samples if s.family == family]
        adapter = load_adapter(args.model)
        positions, vision = PositionCounter(), VisionCounter()
        with positions.watch(adapter), vision.watch(adapter):
            if path == "reference":
                with distinct.watch(adapter):
                    _diagnose(adapter, part, config, pools)
            else:
                _diagnose(adapter, part, config, pools)
        out["llm_positions_by_family"][family] = positions.positions
        out["vision_encodings_per_sample_by_family"][family] = round(vision.images / len(part), 3)
    if path == "reference":
        out["distinct_positions"] = distinct.counts()
    return out


def _memory_run(args, size: int) -> dict:
    from modint.diagnose.cost import peak_rss_mb
    from modint.models import load_adapter

    adapter = load_adapter(args.model)
    samples = _samples(0, memory_size=size)
    loaded_mb = peak_rss_mb()
    from modint.diagnose.engine import DiagnoseConfig

    path = "shared" if _has_shared_path() and args.paths != "reference" else "reference"
    config = _config(path, args.batch_size)
    config.n_boot = DiagnoseConfig().n_boot  # the summary as `modint diagnose` makes it
    seconds = _diagnose(adapter, samples, config)
    return {"samples": len(samples), "path": path, "seconds": round(seconds, 1),
            "rss_after_load_mb": round(loaded_mb, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}


def worker(args) -> None:
    import torch

    from modint.models import load_adapter

    torch.set_num_threads(args.threads)
    if args.memory_size:
        result = _memory_run(args, args.memory_size)
    else:
        from modint.diagnose.cost import matmul_peak_flops

        samples = _samples(args.limit)
        adapter = load_adapter(args.model)
        result = _timed_run(args, args.worker, adapter, samples)
        peak_wall, peak_cpu = matmul_peak_flops()  # in this process, after its timed run (not in its peak RSS)
        result.update(matmul_peak_flops=round(peak_wall), matmul_peak_flops_per_cpu_s=round(peak_cpu))
        if args.worker in ("reference", "shared") and not args.no_counts:
            result.update(_counting_runs(args, args.worker, samples, result["seconds"], result["cpu_seconds"]))
            result["matmul_peak_fraction"] = round(result["matmul_flop_rate_per_cpu_s"] / peak_cpu, 4)
            result["matmul_peak_fraction_wall"] = round(result["matmul_flop_rate"] / peak_wall, 4)
    Path(args.result).write_text(json.dumps(result))


# ----- the parent: runs the workers, compares, reports ------------------------------------------
def _spawn(args, **extra) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, __file__, "--model", args.model, "--limit", str(args.limit), "--batch-size",
               str(args.batch_size), "--threads", str(args.threads), "--paths", args.paths, "--result", str(result)]
        if args.no_counts:
            cmd.append("--no-counts")
        for key, value in extra.items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        subprocess.run(cmd, check=True)
        return json.loads(result.read_text())


def compare_records(shared: list[dict], reference: list[dict]) -> tuple[float | None, bool]:
    """Largest absolute option-probability difference and whether every prediction is the same,
    over records matched by (id, condition); a record on one side only is a difference."""
    ref = {(r["id"], r["condition"]): r for r in reference}
    same = len(shared) == len(reference)
    diff = 0.0
    for r in shared:
        other = ref.get((r["id"], r["condition"]))
        if other is None:
            same = False
            continue
        same = same and r["pred"] == other["pred"]
        if r["probs"] is not None and other["probs"] is not None:
            diff = max(diff, max(abs(a - b) for a, b in zip(r["probs"], other["probs"])))
    return round(diff, 8), same


def redundancy(path: dict, distinct: dict[str, int]) -> dict[str, float] | None:
    """Positions computed / distinct positions, per family (one-family runs) and over the whole run."""
    by_family = path.get("llm_positions_by_family")
    if not by_family or not distinct:
        return None
    out = {f: round(n / distinct[f], 3) for f, n in by_family.items() if distinct.get(f)}
    if distinct.get("all"):
        out["all"] = round(path["llm_positions_computed"] / distinct["all"], 3)
    return out


def throughput(args) -> dict:
    notes = ["records/s include preparing inputs, writing records and the summary (n_boot 200); records_per_cpu_s "
             "divides by the process's CPU time instead (less sensitive to other load on a shared machine)",
             "matmul_peak_fraction = (FLOPs of the path's diagnosis, counted in an untimed pass under torch's "
             "FlopCounterMode: matmuls and attention) / the timed run's CPU seconds, over the best 2048x2048 fp32 "
             "matmul's FLOP per CPU second measured in the same process right after; matmul_peak_fraction_wall "
             "uses wall seconds for both (other jobs on the machine distort it)"]
    paths: dict = {}
    for name in args.paths.split(","):
        if name == "shared" and not _has_shared_path():
            paths[name] = None
            notes.append("shared: this version has no shared-prefix path (DiagnoseConfig.share); reported as null")
            continue
        paths[name] = _spawn(args, worker=name)
    distinct = (paths.get("reference") or {}).get("distinct_positions") or {}
    for entry in paths.values():
        if entry is None:
            continue
        entry["redundancy"] = redundancy(entry, distinct)
    shared, reference = paths.get("shared"), paths.get("reference")
    max_diff, same = compare_records(shared["_records"], reference["_records"]) if shared and reference else (None, None)
    for entry in paths.values():
        if entry is not None:
            entry.pop("_records", None)
    rate = {k: v["records_per_s"] for k, v in paths.items() if v}
    ratios = {f"{a}_over_{b}": round(rate[a] / rate[b], 3) for a, b in
              (("shared", "reference"), ("shared", "generate"), ("reference", "generate"),
               ("reference", "reliance"), ("shared", "reliance")) if a in rate and b in rate}
    return {"model": args.model, "samples": len(_samples(args.limit)), "batch_size": args.batch_size,
            "threads": args.threads, "paths": paths, "ratios": ratios,
            "distinct_positions": distinct or None,
            "redundancy": shared.get("redundancy") if shared else None,
            "matmul_peak_fraction": shared.get("matmul_peak_fraction") if shared else None,
            "max_prob_diff": max_diff, "same_predictions": same, "notes": notes}


def memory(args) -> dict:
    sizes = [int(n) for n in args.memory_sizes.split(",")]
    runs = [_spawn(args, memory_size=n) for n in sizes]
    first, last = runs[0], runs[-1]
    growth = (last["peak_rss_mb"] - last["rss_after_load_mb"]) / max(first["peak_rss_mb"] - first["rss_after_load_mb"], 1e-9)
    return {"model": args.model, "memory": runs, "peak_ratio": round(last["peak_rss_mb"] / first["peak_rss_mb"], 3),
            "growth_over_load_ratio": round(growth, 3),
            "notes": ["peak_ratio: peak RSS of the largest run / the smallest, each in its own process, model included",
                      "growth_over_load_ratio: the same for (peak - RSS after loading the model)"]}


def _table(result: dict) -> str:
    if "memory" in result:
        lines = [f"{'samples':>8} {'path':>10} {'seconds':>8} {'RSS loaded':>11} {'peak RSS':>9}"]
        lines += [f"{r['samples']:>8} {r['path']:>10} {r['seconds']:>8} {r['rss_after_load_mb']:>9} MB "
                  f"{r['peak_rss_mb']:>6} MB" for r in result["memory"]]
        lines.append(f"peak ratio {result['peak_ratio']}x, growth above the loaded model {result['growth_over_load_ratio']}x")
        return "\n".join(lines)
    lines = [f"model {result['model']}, {result['samples']} samples, batch {result['batch_size']}, "
             f"{result['threads']} threads",
             f"{'path':<10} {'records/s':>9} {'records':>7} {'peak RSS':>9} {'positions':>10} {'vision/sample':>13} "
             f"{'peak frac':>9}  redundancy"]
    for name, p in result["paths"].items():
        if p is None:
            lines.append(f"{name:<10} (not available in this version)")
            continue
        red = ", ".join(f"{k} {v}" for k, v in (p.get("redundancy") or {}).items()) or "-"
        frac = p.get("matmul_peak_fraction")
        lines.append(f"{name:<10} {p['records_per_s']:>9.2f} {p['records']:>7} {p['peak_rss_mb']:>6.0f} MB "
                     f"{p['llm_positions_computed']:>10} {p['vision_encodings_per_sample']:>13} "
                     f"{'-' if frac is None else f'{frac:.1%}':>9}  {red}")
    lines.append("ratios: " + (", ".join(f"{k} {v}x" for k, v in result["ratios"].items()) or "-"))
    lines.append(f"max |shared - reference| option probability: {result['max_prob_diff']}, "
                 f"same predictions: {result['same_predictions']}")
    return "\n".join(lines)


def main() -> None:
    from modint.cli import DEFAULT_MODEL

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--limit", type=int, default=60, help="samples of the mini test split; 0: all (the default diagnosis)")
    ap.add_argument("--batch-size", type=int, default=16)
    # OMP_NUM_THREADS when set: on a machine other jobs share, a thread pool larger than this
    # process's share of the cores waits on its slowest thread at every operation.
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))
    ap.add_argument("--paths", default=",".join(DEFAULT_PATHS), help="comma-separated subset of " + ", ".join(PATHS))
    ap.add_argument("--no-counts", action="store_true", help="skip the untimed FLOP and per-family counting passes")
    ap.add_argument("--memory", action="store_true", help="peak RSS of diagnosing each of --memory-sizes samples "
                    "(the shared path where there is one; --paths reference: the reference path)")
    ap.add_argument("--memory-sizes", default="300,3000")
    ap.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    ap.add_argument("--worker", choices=PATHS, help=argparse.SUPPRESS)
    ap.add_argument("--memory-size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.limit < 0:
        ap.error("--limit must be 0 (all) or more")
    unknown = set(args.paths.split(",")) - set(PATHS)
    if unknown:
        ap.error(f"unknown path(s) {', '.join(sorted(unknown))}; use {', '.join(PATHS)}")
    if args.worker or args.memory_size:
        worker(args)
        return
    result = memory(args) if args.memory else throughput(args)
    print(json.dumps(result, indent=1) if args.json else _table(result))


if __name__ == "__main__":
    main()
