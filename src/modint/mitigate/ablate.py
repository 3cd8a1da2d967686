"""The paper's ablation: the same model fine-tuned by each recipe, each result diagnosed, one table.

``ablate(model, out)`` writes OUT/<recipe>/ (a `modint train` output directory each; with
several seeds OUT/<recipe>/seed-<s>/), OUT/base/ (the diagnosis of the untouched model),
OUT/ablation.md (accuracy under every condition per recipe, mean ± sd over seeds) and
OUT/ablation.json (the same figures, and deltas, per run and aggregated).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from modint.api import run_diagnosis, train_and_diagnose
from modint.data.registry import load_benchmark
from modint.diagnose.aggregate import across_runs, format_mean_sd
from modint.diagnose.engine import DiagnoseConfig
from modint.mitigate.train import RECIPES, TrainConfig

COLUMNS = [("image_heavy", "clean"), ("image_heavy", "unrelated_text"), ("image_heavy", "misleading_text"),
           ("text_heavy", "noise_image"), ("text_heavy", "switched_image"), ("text_heavy", "black_image"),
           ("text_heavy", "white_image"), ("text_heavy", "no_image"), ("vqa", "clean")]
SHORT = {"image_heavy": "IH", "text_heavy": "TH", "vqa": "VQA"}
BASE_LABEL = "none (base model)"


def ablation_table(summaries: dict[str, dict | Sequence[dict]]) -> str:
    """Markdown: a row per label (-> summary.json, or the summaries of its seeds), accuracy % per
    (family, condition); over several seeds "mean ± sd" (sample sd)."""
    head = "| recipe | " + " | ".join(f"{SHORT[f]} {c}" for f, c in COLUMNS) + " |"
    lines = [head, "|---" * (len(COLUMNS) + 1) + "|"]
    for label, runs in summaries.items():
        rows = {(r["family"], r["condition"]): r for r in across_runs([runs] if isinstance(runs, dict) else runs)}
        cells = [format_mean_sd(rows.get(key, {}).get("accuracy_mean"), rows.get(key, {}).get("accuracy_sd"))
                 for key in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def ablate(load: Callable[[], Any], out_dir: str | Path, base_cfg: TrainConfig, recipes: Sequence[str] = tuple(RECIPES),
           benchmark: str = "mini", train_split: str = "train", eval_split: str = "test",
           train_limit: int | None = None, eval_limit: int | None = None, eval_seed: int = 0,
           progress: Callable[[str], None] | None = None, seeds: Sequence[int] | None = None) -> str:
    """Train ``recipes`` from fresh copies of the model (``load()``), diagnose each; returns the
    Markdown table (also written to OUT/ablation.md, and its figures to OUT/ablation.json).
    Finished recipes are reused on re-run. Every diagnosis, the base model's included, uses
    ``eval_seed`` (not the training seed), so runs trained at different seeds pair with one base
    diagnosis. ``seeds``: train every recipe at each seed, into OUT/<recipe>/seed-<s>/, and report
    mean ± sd over them; None: once at ``base_cfg.seed``, into OUT/<recipe>/. A split other than
    test is diagnosed into diagnosis-<split>/ (base-<split>/ for the base model)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_samples = load_benchmark(benchmark, split=train_split, limit=train_limit)
    eval_samples = load_benchmark(benchmark, split=eval_split, limit=eval_limit)
    suffix = "" if eval_split == "test" else f"-{eval_split}"
    run_info = {"benchmark": benchmark, "split": eval_split}
    summaries: dict[str, list[dict]] = {}
    dirs: dict[str, list[Path]] = {}
    base = out / f"base{suffix}"
    if not (base / "summary.json").exists():
        if progress:
            progress(f"diagnosing the base model on {eval_split}")
        run_diagnosis(load(), eval_samples, base, DiagnoseConfig(seed=eval_seed), run_info=run_info)
    summaries[BASE_LABEL], dirs[BASE_LABEL] = [json.loads((base / "summary.json").read_text())], [base]
    for recipe in recipes:
        label = recipe if seeds is None else f"{recipe} (seeds {', '.join(map(str, seeds))})"
        summaries[label], dirs[label] = [], []
        for seed in ([base_cfg.seed] if seeds is None else seeds):
            run = out / recipe if seeds is None else out / recipe / f"seed-{seed}"
            diag = run / f"diagnosis{suffix}"
            if not (diag / "summary.json").exists():
                if progress:
                    progress(f"training {recipe} at seed {seed}")
                info = {**run_info, "model": str(run / "model"), "recipe": recipe}
                train_and_diagnose(load(), train_samples, run, replace(base_cfg, recipe=recipe, seed=seed),
                                   [(diag.name, eval_samples, info)], eval_seed=eval_seed)
            summaries[label].append(json.loads((diag / "summary.json").read_text()))
            dirs[label].append(diag)
    table = ablation_table(summaries)
    (out / "ablation.md").write_text(table)
    figures = {"benchmark": benchmark, "eval_split": eval_split, "eval_seed": eval_seed,
               "seeds": [base_cfg.seed] if seeds is None else list(seeds),
               "recipes": [{"recipe": label, "runs": [str(d.relative_to(out)) for d in dirs[label]],
                            "conditions": across_runs(runs)} for label, runs in summaries.items()]}
    (out / "ablation.json").write_text(json.dumps(figures, indent=1))
    return table
