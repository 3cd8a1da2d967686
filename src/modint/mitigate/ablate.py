"""The paper's ablation: the same model fine-tuned by each recipe, each result diagnosed, one table.

``ablate(model, out)`` writes OUT/<recipe>/ (a `modint train` output directory each),
OUT/base/ (the diagnosis of the untouched model) and OUT/ablation.md: accuracy under every
condition per recipe.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from modint.data.registry import load_benchmark
from modint.diagnose.engine import DiagnoseConfig, run_diagnosis
from modint.mitigate.train import RECIPES, TrainConfig, train
from modint.report.format import percent
from modint.report.html import write_report_safely

COLUMNS = [("image_heavy", "clean"), ("image_heavy", "unrelated_text"), ("image_heavy", "misleading_text"),
           ("text_heavy", "noise_image"), ("text_heavy", "switched_image"), ("text_heavy", "black_image"),
           ("text_heavy", "white_image"), ("text_heavy", "no_image"), ("vqa", "clean")]
SHORT = {"image_heavy": "IH", "text_heavy": "TH", "vqa": "VQA"}


def ablation_table(summaries: dict[str, dict]) -> str:
    """Markdown: a row per run (label -> summary.json), accuracy % per (family, condition)."""
    head = "| recipe | " + " | ".join(f"{SHORT[f]} {c}" for f, c in COLUMNS) + " |"
    lines = [head, "|---" * (len(COLUMNS) + 1) + "|"]
    for label, summary in summaries.items():
        rows = {(r["family"], r["condition"]): r for r in summary["conditions"]}
        cells = []
        for key in COLUMNS:
            acc = rows.get(key, {}).get("accuracy")
            cells.append(percent(acc))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def ablate(load: Callable[[], Any], out_dir: str | Path, base_cfg: TrainConfig, recipes: Sequence[str] = tuple(RECIPES),
           benchmark: str = "mini", train_split: str = "train", eval_split: str = "test",
           train_limit: int | None = None, eval_limit: int | None = None, eval_seed: int = 0,
           progress: Callable[[str], None] | None = None) -> str:
    """Train ``recipes`` from fresh copies of the model (``load()``), diagnose each; returns the
    Markdown table (also written to OUT/ablation.md). Finished recipes are reused on re-run.
    Every diagnosis, the base model's included, uses ``eval_seed`` (not the training seed), so
    runs trained at different seeds pair with one base diagnosis."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_samples = load_benchmark(benchmark, split=train_split, limit=train_limit)
    eval_samples = load_benchmark(benchmark, split=eval_split, limit=eval_limit)
    summaries: dict[str, dict] = {}
    base = out / "base"
    if not (base / "summary.json").exists():
        if progress:
            progress("diagnosing the base model")
        if run_diagnosis(load(), eval_samples, base, DiagnoseConfig(seed=eval_seed)):
            write_report_safely(base, eval_samples)
    summaries["none (base model)"] = json.loads((base / "summary.json").read_text())
    for recipe in recipes:
        run = out / recipe
        diag = run / "diagnosis"
        if not (diag / "summary.json").exists():
            if progress:
                progress(f"training {recipe}")
            adapter = load()
            train(adapter, train_samples, run, replace(base_cfg, recipe=recipe))
            if run_diagnosis(adapter, eval_samples, diag, DiagnoseConfig(seed=eval_seed),
                             run_info={"model": str(run / "model"), "benchmark": benchmark, "split": eval_split,
                                       "recipe": recipe}):
                write_report_safely(diag, eval_samples)
        summaries[recipe] = json.loads((diag / "summary.json").read_text())
    table = ablation_table(summaries)
    (out / "ablation.md").write_text(table)
    return table
