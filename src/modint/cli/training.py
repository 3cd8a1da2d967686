"""`modint train` and `modint ablate`: fine-tune against modality interference, then diagnose."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from modint.cli.common import (DEFAULT_MODEL, DEVICE_OPTION, DTYPE_OPTION, REMOTE_CODE_OPTION, claim, err, failure,
                               out, progress_bar, split_list, usage_error, usage_errors)
from modint.cli.tables import summary_table


def train(
    model: str = typer.Option(DEFAULT_MODEL, help="Model to fine-tune: built-in name, local directory or hub id."),
    benchmark: str = typer.Option("mini", help="Training benchmark: a registered name or a dataset path."),
    split: str = typer.Option("train", help="Training split."),
    recipe: Optional[str] = typer.Option(None, help="sft, vqa_only, aug, aug_kl, aug_kl_pgd (= the paper's method; "
                                         "the default)."),
    out_dir: Path = typer.Option(Path("runs/train"), "--out", help="Output directory: model/, train_log.jsonl, "
                                 "checkpoint/, diagnosis-val/ (val), diagnosis/ (test), selection/."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="YAML file of TrainConfig fields."),
    set_: list[str] = typer.Option([], "--set", help="Override a TrainConfig field: --set lr=1e-4 (repeatable)."),
    epochs: Optional[float] = typer.Option(None, help="Epochs over the anchors (default 1)."),
    max_steps: Optional[int] = typer.Option(None, min=1, help="Stop after this many steps."),
    lr: Optional[float] = typer.Option(None, help="Learning rate (default 2e-5, as published)."),
    trainable: Optional[str] = typer.Option(None, help="full (vision tower frozen; default), all, lora, projector."),
    limit: Optional[int] = typer.Option(None, min=1, help="At most this many training samples."),
    seed: int = typer.Option(0, help="Seed for batches, views and PGD starts."),
    checkpoint_every: Optional[int] = typer.Option(None, min=1, help="Save a resumable checkpoint every N steps."),
    resume: bool = typer.Option(False, help="Continue from OUT/checkpoint."),
    eval_split: str = typer.Option("test", help="Split the final model is diagnosed on, once, into OUT/diagnosis."),
    val_split: str = typer.Option("val", help="Split diagnosed first, into OUT/diagnosis-val: choose settings on it, "
                                  "never on test (none: skip)."),
    select_on_val: bool = typer.Option(False, help="Diagnose val at every --checkpoint-every step and after the last "
                                       "(OUT/selection/), keep the weights with the best --select-by score, then "
                                       "diagnose test once. Default: the final weights."),
    select_by: str = typer.Option("worst_case", help="worst_case: mean over families of the accuracy right under "
                                  "every condition; mean: mean accuracy over the family x condition rows."),
    eval_limit: Optional[int] = typer.Option(None, min=1, help="At most this many samples in each diagnosis."),
    eval_seed: int = typer.Option(0, help="Seed of the diagnoses (perturbation draws, CIs). The default is "
                                  "`modint diagnose`'s, so the result pairs with a diagnosis of the model before; "
                                  "--seed only changes the training."),
    diagnose_after: bool = typer.Option(True, "--diagnose/--no-diagnose", help="Diagnose the trained model on val "
                                        "and test."),
    report_to: str = typer.Option("none", help="Where step scalars and the final diagnosis go: tensorboard "
                                  "(OUT/tensorboard), wandb, all or none (the Hugging Face Trainer's names)."),
    device: str = DEVICE_OPTION,
    dtype: str = DTYPE_OPTION,
    trust_remote_code: bool = REMOTE_CODE_OPTION,
) -> None:
    """Fine-tune a model with the mitigation framework (heuristic views + embedding PGD +
    consistency), save it in the Hugging Face layout, and diagnose it: on val, then on test once.
    Runs under `accelerate launch` for data parallelism."""
    import json
    import shutil

    from modint.api import run_diagnosis, train_and_diagnose
    from modint.data.registry import load_benchmark
    from modint.diagnose.engine import DiagnoseConfig
    from modint.mitigate.select import CRITERIA, CheckpointSelector, val_score
    from modint.models.adapter import LetterScoringError
    from modint.models.loading import ModelLoadError, load_adapter

    cfg = _train_config(model, config_file, set_, {"recipe": recipe, "epochs": epochs, "max_steps": max_steps,
                                                   "lr": lr, "trainable": trainable,
                                                   "checkpoint_every": checkpoint_every}, seed)
    claim(out_dir).acquire()  # refused at once if another process trains here; held until exit
    val = None if val_split.lower() == "none" else val_split
    if val == eval_split:
        usage_error(f"--val-split and --eval-split are both {val!r}: choosing on the split that is reported is "
                    "what val is for avoiding (--val-split none skips val)")
    if select_on_val and (val is None or not cfg.checkpoint_every):
        usage_error("--select-on-val needs a val split and --checkpoint-every N (the steps it chooses from)")
    if select_on_val and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        usage_error("--select-on-val runs in one process: launch without accelerate")
    if select_by not in CRITERIA:
        usage_error(f"unknown --select-by {select_by!r}; use one of {', '.join(CRITERIA)}")
    from dataclasses import asdict

    from modint.mitigate.logging_backends import last_logged_step, make_logger

    try:
        logger = make_logger(report_to, out_dir, config=asdict(cfg))
    except ValueError as exc:
        usage_error(str(exc))
    with usage_errors():
        samples = load_benchmark(benchmark, split=split, limit=limit)
        val_samples = load_benchmark(benchmark, split=val, limit=eval_limit) if val else []
        test_samples = load_benchmark(benchmark, split=eval_split, limit=eval_limit) if diagnose_after else []
    try:
        adapter = load_adapter(model, device=device, dtype=dtype, trust_remote_code=trust_remote_code, seed=seed)
        if diagnose_after:  # the final diagnosis scores option letters: refuse before training, not after
            adapter.check_letters(max((len(s.options) for s in samples), default=0))
    except LetterScoringError as exc:
        usage_error(f"{exc} (train with --no-diagnose, then `modint diagnose --scoring generate`)")
    except (ModelLoadError, ValueError) as exc:
        usage_error(str(exc))
    out_dir = Path(out_dir)
    run_info = {"model": str(out_dir / "model"), "benchmark": benchmark, "trained_from": model, "recipe": cfg.recipe}
    if not resume:  # a fresh run: diagnoses of earlier weights must not be resumed into
        for stale in ("diagnosis-val", "diagnosis", "selection"):
            shutil.rmtree(out_dir / stale, ignore_errors=True)
    selector = None
    if select_on_val:
        def evaluate(step: int) -> dict:
            summary = run_diagnosis(adapter, val_samples, out_dir / "selection" / f"step-{step:06d}",
                                    DiagnoseConfig(seed=eval_seed), run_info={**run_info, "split": val, "step": step})
            err.print(f"modint: step {step} on {val}: {select_by} {val_score(summary, select_by):.4f}")
            return summary

        selector = CheckpointSelector(evaluate, out_dir / "selection", select_by, resume=resume)
    diagnoses = [(val, val_samples, "diagnosis-val")] if val and selector is None and diagnose_after else []
    diagnoses += [(eval_split, test_samples, "diagnosis")] if diagnose_after else []
    split_of = {folder: split_name for split_name, _, folder in diagnoses}
    with progress_bar() as bar:
        task = bar.add_task(f"train {cfg.recipe}", total=None)

        def report(step: int, total: int, parts: dict) -> None:
            bar.update(task, completed=step, total=total, description=f"train {cfg.recipe} loss {parts['loss']:.3f}")

        def report_diagnosis(folder: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"diagnose {split_of[folder]}")

        try:
            model_dir, summaries = train_and_diagnose(
                adapter, samples, out_dir, cfg, [(folder, split_samples, {**run_info, "split": split_name})
                                                 for split_name, split_samples, folder in diagnoses],
                eval_seed=eval_seed, progress=report, diagnosis_progress=report_diagnosis, resume=resume,
                selector=selector, logger=logger)
        except ValueError as exc:
            failure(str(exc))
    out.print(f"Model: {model_dir}")
    if selector is not None:
        chosen = selector.best["step"]
        shutil.rmtree(out_dir / "diagnosis-val", ignore_errors=True)
        shutil.copytree(out_dir / "selection" / f"step-{chosen:06d}", out_dir / "diagnosis-val")
        scores = out_dir / "selection" / "selection.json"
        out.print(summary_table(json.loads((out_dir / "diagnosis-val" / "summary.json").read_text())))
        out.print(f"Selected on {val} by {select_by}: step {chosen} (scores: {scores}); its diagnosis: "
                  f"{out_dir / 'diagnosis-val'}")
    for folder, summary in summaries.items():
        if summary:
            out.print(summary_table(summary))
            out.print(f"Diagnosis ({split_of[folder]}): {out_dir / folder}")
            if logger is not None and folder == "diagnosis":
                logger.log_diagnosis(summary, step=last_logged_step(out_dir))
    if logger is not None:
        logger.close()


def _train_config(model: str, config_file: Optional[Path], set_: list[str], cli_values: dict, seed: int):
    """TrainConfig from, in increasing priority: the published defaults, the model's preset
    (`demo`), a YAML file, --set KEY=VALUE, explicit options. Bad settings are usage errors."""
    from modint.mitigate.config import from_sources, presets

    preset = presets().get(model)
    try:
        cfg = from_sources(model if preset is not None else None, config_file, set_, {**cli_values, "seed": seed})
    except ValueError as exc:
        usage_error(str(exc))
    if preset is not None:  # said once the settings are known to be valid
        err.print(f"modint: using the {model!r} preset {preset} (override with --set or options)")
    return cfg


def ablate(
    model: str = typer.Option(DEFAULT_MODEL, help="Model every recipe starts from."),
    recipes: str = typer.Option("sft,vqa_only,aug,aug_kl,aug_kl_pgd", help="Comma-separated recipes."),
    out_dir: Path = typer.Option(Path("runs/ablate"), "--out", help="One `modint train` directory per recipe, "
                                 "base/ and ablation.md (re-running reuses finished recipes)."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="YAML file of TrainConfig fields."),
    set_: list[str] = typer.Option([], "--set", help="Override a TrainConfig field (repeatable)."),
    max_steps: Optional[int] = typer.Option(None, min=1, help="Steps per recipe."),
    limit: Optional[int] = typer.Option(None, min=1, help="At most this many training samples."),
    eval_limit: Optional[int] = typer.Option(None, min=1, help="At most this many evaluation samples."),
    seed: int = typer.Option(0, help="Seed for batches, views and PGD starts."),
    seeds: Optional[str] = typer.Option(None, help="Train every recipe at each of these seeds (0,1,2; instead of "
                                        "--seed) into OUT/RECIPE/seed-S/ and report mean ± sd over them."),
    eval_split: str = typer.Option("test", help="Split every model is diagnosed on (val: into diagnosis-val/ and "
                                   "base-val/, for choosing settings)."),
    eval_seed: int = typer.Option(0, help="Seed of every diagnosis (the base model's too); --seed only changes "
                                  "the training."),
) -> None:
    """The paper's ablation on one model: train each recipe, diagnose each, print a Markdown
    table of accuracy under every condition (mean ± sd over --seeds; written to OUT/ablation.md,
    and as JSON with deltas and every run's figures to OUT/ablation.json)."""
    from modint.data.registry import load_benchmark
    from modint.mitigate.ablate import ablate as run_ablation
    from modint.mitigate.train import RECIPES
    from modint.models.loading import ModelLoadError, load_adapter

    names = split_list(recipes) or list(RECIPES)
    for name in names:
        if name not in RECIPES:
            usage_error(f"unknown recipe {name!r}; use some of {', '.join(RECIPES)}")
    seed_list = None
    if seeds is not None:
        try:
            seed_list = [int(v) for v in split_list(seeds) or []]
        except ValueError:
            usage_error(f"--seeds must be comma-separated integers, got {seeds!r}")
        if not seed_list or len(set(seed_list)) < len(seed_list):
            usage_error(f"--seeds needs distinct integers, got {seeds!r}")
    cfg = _train_config(model, config_file, set_, {"max_steps": max_steps}, seed)
    with usage_errors(ModelLoadError):
        load_benchmark("mini", split=eval_split, limit=1)
        load_adapter(model, seed=seed)
    table = run_ablation(lambda: load_adapter(model, seed=seed), out_dir, cfg, names, eval_split=eval_split,
                         train_limit=limit, eval_limit=eval_limit, eval_seed=eval_seed, seeds=seed_list,
                         progress=lambda msg: err.print(f"modint: {msg}"))
    out.print(table)
    out.print(f"Figures per run and mean ± sd: {out_dir / 'ablation.json'}")
