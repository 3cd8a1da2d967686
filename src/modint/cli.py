"""The `modint` command line: argument parsing and printing only; the work is in the library."""

from __future__ import annotations

import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Diagnose and mitigate modality interference in multimodal LLMs.")
data_app = typer.Typer(no_args_is_help=True, help="Benchmarks: list them, preview perturbed samples.")
zoo_app = typer.Typer(no_args_is_help=True, help="Models modint can build: tiny random models of each family.")
app.add_typer(data_app, name="data")
app.add_typer(zoo_app, name="zoo")

# A table piped to a file or a CI log should not wrap into unreadable columns.
out = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True)

DEFAULT_MODEL = "demo"

# Options every model-loading command shares (typer accepts one OptionInfo as several defaults).
LIMIT_OPTION = typer.Option(None, min=1, help="At most this many samples, spread over families.")
DEVICE_OPTION = typer.Option("cpu", help="cpu, cuda, cuda:1, mps ...")
DTYPE_OPTION = typer.Option("auto", help="auto (fp32 on CPU, bf16 on GPU), float32, bfloat16, float16.")
DEVICE_MAP_OPTION = typer.Option(None, help="Spread a model larger than one device: auto, balanced, sequential, or a "
                                 "JSON map of modules to devices ('{\"model.language_model\": \"disk\", ...}'; "
                                 "'disk' offloads to a temporary folder).")
REMOTE_CODE_OPTION = typer.Option(False, help="Allow model code from the checkpoint (off by default).")
MAX_ERROR_RATE_OPTION = typer.Option(0.05, min=0.0, max=1.0, help="Exit 1 when a condition has more error records "
                                     "than this share (or all of them); the records stay and a re-run resumes.")


def usage_error(message: str) -> None:
    """One clear line on stderr and exit code 2: the user asked for something that isn't there."""
    print(f"modint: error: {message}", file=sys.stderr)  # one line, never wrapped
    raise typer.Exit(2)


def failure(message: str) -> None:
    print(f"modint: failed: {message}", file=sys.stderr)
    raise typer.Exit(1)


def _split_list(value: Optional[str]) -> Optional[list[str]]:
    if value is None or value.strip() in ("", "all"):
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _progress() -> Progress:
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=False,
                    disable=not err.is_terminal and os.environ.get("MODINT_PROGRESS") != "1")


@app.command()
def diagnose(
    model: str = typer.Option(DEFAULT_MODEL, help="Built-in name (demo: the embedded model; tiny-random-FAMILY), local directory or hub id."),
    benchmark: str = typer.Option("mini", help="Registered name (`modint data list`), a dataset path (format "
                                  "detected), or several, comma-separated."),
    split: str = typer.Option("test", help="Benchmark split."),
    conditions: Optional[str] = typer.Option(None, help="Comma-separated conditions (default: all heuristic ones "
                                             "that apply to each family; add pgd_pixel, pgd_embed or pgd_pixel@EPS "
                                             "for attacks). See `modint data conditions`."),
    limit: Optional[int] = LIMIT_OPTION,
    batch_size: int = typer.Option(16, min=1, help="Inputs per forward pass."),
    seed: int = typer.Option(0, help="Seed for perturbations, attack starts and bootstrap CIs."),
    out_dir: Path = typer.Option(Path("runs/diagnose"), "--out", help="Run directory (re-running resumes)."),
    device: str = DEVICE_OPTION,
    dtype: str = DTYPE_OPTION,
    device_map: Optional[str] = DEVICE_MAP_OPTION,
    scoring: str = typer.Option("letters", help="letters: option-letter probabilities from one forward pass; "
                                "generate: greedy decoding + robust parsing."),
    switch_source: str = typer.Option("mixed", help="Images for switched_image: photos, benchmark or mixed."),
    pool_part: str = typer.Option("eval", help="Perturbation pools: eval (never seen by `modint train`) or train "
                                  "(the mitigation views' own; recorded in the manifest)."),
    pgd_steps: int = typer.Option(10, min=0, help="PGD steps (adversarial conditions)."),
    pgd_step_rule: str = typer.Option("sign", help="PGD step: sign (L-inf), l2, or raw (the published one)."),
    pgd_restarts: int = typer.Option(1, min=1, help="PGD random restarts."),
    pgd_targeted: bool = typer.Option(False, help="Push toward the most likely wrong option instead of away from "
                                      "the gold one."),
    save_adversarial: bool = typer.Option(False, help="Write attacked images to OUT/adversarial/."),
    facts_model: Optional[str] = typer.Option(None, help="A model that writes the misleading facts for image-heavy "
                                              "samples whose data has none (cached beside the data); default: "
                                              "the built-in template."),
    strict: bool = typer.Option(False, help="Fail on the first bad sample instead of recording an error."),
    text_model: Optional[str] = typer.Option(None, help="The LLM base run text only (a model, or the run directory "
                                             "of its no_image answers, e.g. from `modint score`): adds MMStar's "
                                             "multimodal leakage. Request no_image in --conditions."),
    max_error_rate: float = MAX_ERROR_RATE_OPTION,
    trust_remote_code: bool = REMOTE_CODE_OPTION,
    quiet: bool = typer.Option(False, help="Print no table."),
) -> None:
    """Run a model over a benchmark under clean and perturbed conditions; write records.jsonl,
    summary.json, manifest.json and report.html into --out and print a table."""
    from modint.diagnose.engine import DiagnoseConfig

    config = DiagnoseConfig(conditions=_split_list(conditions), seed=seed, batch_size=batch_size,
                            scoring=scoring, strict=strict, switch_source=switch_source, pool_part=pool_part,
                            attack={"steps": pgd_steps, "step_rule": pgd_step_rule, "restarts": pgd_restarts,
                                    "targeted": pgd_targeted},
                            save_adversarial=save_adversarial)
    summary = _run(config, model, benchmark, split, limit, out_dir, device, dtype, device_map, trust_remote_code,
                   facts_model=facts_model)
    if summary and text_model:
        from modint.cli_interop import leakage

        summary = leakage(text_model, config, benchmark, split, limit, out_dir, device, dtype, trust_remote_code)
    if summary and not quiet:
        out.print(summary_table(summary))
        if summary.get("robustness"):
            out.print(robustness_table(summary))
        out.print(f"Run directory: {out_dir}  (report: {Path(out_dir) / 'report.html'})")
    _fail_on_errors(summary, out_dir, max_error_rate)


@app.command()
def attack(
    model: str = typer.Option(DEFAULT_MODEL, help="Built-in name, local directory or hub id."),
    benchmark: str = typer.Option("mini", help="Registered name, a dataset path, or several, comma-separated."),
    split: str = typer.Option("test", help="Benchmark split."),
    space: str = typer.Option("pixel,embed", help="pixel (text-heavy images, eps in 1/255), embed (the irrelevant "
                              "modality's LLM input embeddings, eps relative to their RMS), or both."),
    pixel_eps: str = typer.Option("0,1,2,4,8", help="Pixel-space eps values, in 1/255."),
    embed_eps: str = typer.Option("0,0.05,0.1,0.2,0.4", help="Embedding-space eps values, x RMS."),
    steps: int = typer.Option(10, min=0, help="PGD steps."),
    step_rule: str = typer.Option("sign", help="sign (L-inf), l2, or raw (the published step)."),
    restarts: int = typer.Option(1, min=1, help="Random restarts (a sample keeps its most successful one)."),
    targeted: bool = typer.Option(False, help="Toward the most likely wrong option."),
    save_images: bool = typer.Option(False, help="Write attacked images to OUT/adversarial/."),
    limit: Optional[int] = LIMIT_OPTION,
    batch_size: int = typer.Option(16, min=1, help="Samples per attack batch."),
    seed: int = typer.Option(0, help="Seed for random starts (per sample) and bootstrap CIs."),
    out_dir: Path = typer.Option(Path("runs/attack"), "--out", help="Run directory (re-running resumes)."),
    device: str = DEVICE_OPTION,
    dtype: str = DTYPE_OPTION,
    device_map: Optional[str] = DEVICE_MAP_OPTION,
    max_error_rate: float = MAX_ERROR_RATE_OPTION,
    trust_remote_code: bool = REMOTE_CODE_OPTION,
    quiet: bool = typer.Option(False, help="Print no table."),
) -> None:
    """Robustness curves: PGD on the irrelevant modality at each eps (accuracy and attack success
    rate against eps, per family and space), as conditions of one diagnosis run in --out."""
    from modint.diagnose.engine import DiagnoseConfig
    from modint.perturb import REFERENCE_CONDITION

    spaces = _split_list(space) or ["pixel", "embed"]
    conditions: list[str] = []
    for name in spaces:
        if name not in ("pixel", "embed"):
            usage_error(f"unknown attack space {name!r}; use pixel, embed or pixel,embed")
        raw = pixel_eps if name == "pixel" else embed_eps
        try:
            values = [float(v) for v in raw.split(",") if v.strip()]
        except ValueError:
            usage_error(f"--{name}-eps must be comma-separated numbers, got {raw!r}")
        if not values or min(values) < 0:
            usage_error(f"--{name}-eps needs at least one value, all >= 0")
        conditions += [f"pgd_{name}@{v:g}" for v in values]
    families = {"text_heavy"} | ({"image_heavy"} if "embed" in spaces else set())
    conditions = [REFERENCE_CONDITION[f] for f in sorted(families)] + conditions
    config = DiagnoseConfig(conditions=conditions, seed=seed, batch_size=batch_size,
                            attack={"steps": steps, "step_rule": step_rule, "restarts": restarts, "targeted": targeted},
                            save_adversarial=save_images)
    summary = _run(config, model, benchmark, split, limit, out_dir, device, dtype, device_map, trust_remote_code,
                   keep=lambda s: s.family in families)
    if summary and not quiet:
        out.print(robustness_table(summary))
        out.print(f"Run directory: {out_dir}  (report: {Path(out_dir) / 'report.html'})")
    _fail_on_errors(summary, out_dir, max_error_rate)


def _fail_on_errors(summary: dict, out_dir: Path, max_error_rate: float) -> None:
    """Exit 1 with one line when the run's error records make it a failure (every process but
    the first returns an empty summary: it has no merged records to judge)."""
    from modint.diagnose.failures import run_failure
    from modint.diagnose.rundir import RECORDS, read_records

    problem = run_failure(read_records(Path(out_dir) / RECORDS), max_error_rate) if summary else None
    if problem:
        failure(f"{problem} (records kept in {out_dir}; see --max-error-rate)")


def _claim(out_dir: Path):
    """Hold --out for this process from the start, so that a second writer is refused at once
    (before a model loads); each rank of `accelerate launch` holds its own part."""
    from modint.diagnose.rundir import RunLock

    rank = int(os.environ.get("RANK", "0") or 0)
    return RunLock(out_dir, "" if rank == 0 else f"rank{rank}")


def _run(config, model, benchmark, split, limit, out_dir, device, dtype, device_map, trust_remote_code,
         keep=None, facts_model=None) -> dict:
    """Load the benchmark and the model (a usage error for anything missing), then diagnose."""
    with _claim(out_dir):
        return _run_claimed(config, model, benchmark, split, limit, out_dir, device, dtype, device_map,
                            trust_remote_code, keep, facts_model)


def _run_claimed(config, model, benchmark, split, limit, out_dir, device, dtype, device_map, trust_remote_code,
                 keep=None, facts_model=None) -> dict:
    from modint.api import run_diagnosis
    from modint.data.registry import load_benchmark
    from modint.data.sample import SampleError
    from modint.models.adapter import LetterScoringError
    from modint.models.loading import ModelLoadError, load_adapter

    try:
        config.check()
        # Filtered runs take --limit of the samples they keep (images are loaded lazily).
        samples = load_benchmark(benchmark, split=split, limit=None if keep else limit)
    except (KeyError, ValueError) as exc:
        usage_error(str(exc.args[0]) if exc.args else str(exc))
    if keep is not None:
        samples = [s for s in samples if keep(s)][:limit]
    try:
        adapter = load_adapter(model, device=device, dtype=dtype, device_map=device_map,
                               trust_remote_code=trust_remote_code, seed=config.seed)
    except (ModelLoadError, ValueError) as exc:
        usage_error(str(exc))
    if facts_model:
        from modint.data.facts_lm import adapter_writer, add_generated_facts, cache_path_for

        try:
            writer = adapter if facts_model == model else load_adapter(facts_model, device=device, dtype=dtype,
                                                                       trust_remote_code=trust_remote_code)
        except (ModelLoadError, ValueError) as exc:
            usage_error(f"--facts-model: {exc}")
        cache = cache_path_for(benchmark, facts_model, Path(out_dir))
        err.print(f"modint: misleading facts by {facts_model} (cache: {cache})")
        samples = add_generated_facts(samples, adapter_writer(writer), cache)
    run_info = {"model": model, "benchmark": benchmark, "split": split, "limit": limit,
                "command": "modint " + " ".join(shlex.quote(a) for a in sys.argv[1:])}
    with _progress() as bar:
        task = bar.add_task("diagnose", total=None)
        try:
            return run_diagnosis(adapter, samples, out_dir, config,
                                 progress=lambda done, total: bar.update(task, completed=done, total=total),
                                 run_info=run_info)
        except SampleError as exc:
            failure(f"{exc} (--strict)")
        except LetterScoringError as exc:
            attacks = any(c.startswith("pgd") for c in config.conditions or [])
            usage_error(f"{exc} (" + ("attacks read option-letter probabilities: use `modint diagnose --scoring "
                                      "generate` without pgd conditions" if attacks else "use --scoring generate") + ")")
    return {}


@app.command()
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

    from modint.data.registry import load_benchmark
    from modint.mitigate.select import CRITERIA, CheckpointSelector, val_score
    from modint.mitigate.train import train as run_training
    from modint.models.adapter import LetterScoringError
    from modint.models.loading import ModelLoadError, load_adapter

    cfg = _train_config(model, config_file, set_, {"recipe": recipe, "epochs": epochs, "max_steps": max_steps,
                                                   "lr": lr, "trainable": trainable,
                                                   "checkpoint_every": checkpoint_every}, seed)
    _claim(out_dir).acquire()  # refused at once if another process trains here; held until exit
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
    try:
        samples = load_benchmark(benchmark, split=split, limit=limit)
        val_samples = load_benchmark(benchmark, split=val, limit=eval_limit) if val else []
        test_samples = load_benchmark(benchmark, split=eval_split, limit=eval_limit) if diagnose_after else []
    except (KeyError, ValueError) as exc:
        usage_error(str(exc.args[0]) if exc.args else str(exc))
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
            summary = _diagnose_into(adapter, val_samples, out_dir / "selection" / f"step-{step:06d}", eval_seed,
                                     {**run_info, "split": val, "step": step}, progress=False)
            err.print(f"modint: step {step} on {val}: {select_by} {val_score(summary, select_by):.4f}")
            return summary

        selector = CheckpointSelector(evaluate, out_dir / "selection", select_by, resume=resume)
    with _progress() as bar:
        task = bar.add_task(f"train {cfg.recipe}", total=None)

        def report(step: int, total: int, parts: dict) -> None:
            bar.update(task, completed=step, total=total, description=f"train {cfg.recipe} loss {parts['loss']:.3f}")

        try:
            model_dir = run_training(adapter, samples, out_dir, cfg, progress=report, resume=resume,
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
    diagnoses = [(val, val_samples, "diagnosis-val")] if val and selector is None and diagnose_after else []
    diagnoses += [(eval_split, test_samples, "diagnosis")] if diagnose_after else []
    for split_name, split_samples, folder in diagnoses:
        summary = _diagnose_into(adapter, split_samples, out_dir / folder, eval_seed, {**run_info, "split": split_name})
        if summary:
            out.print(summary_table(summary))
            out.print(f"Diagnosis ({split_name}): {out_dir / folder}")
            if logger is not None and folder == "diagnosis":
                logger.log_diagnosis(summary, step=last_logged_step(out_dir))
    if logger is not None:
        logger.close()


def _diagnose_into(adapter, samples, folder: Path, seed: int, run_info: dict, progress: bool = True) -> dict:
    """One diagnosis of the trained model (default conditions) into ``folder``."""
    from modint.api import run_diagnosis
    from modint.diagnose.engine import DiagnoseConfig

    if not progress:
        return run_diagnosis(adapter, samples, folder, DiagnoseConfig(seed=seed), run_info=run_info)
    with _progress() as bar:
        task = bar.add_task(f"diagnose {run_info.get('split')}", total=None)
        return run_diagnosis(adapter, samples, folder, DiagnoseConfig(seed=seed), run_info=run_info,
                             progress=lambda d, t: bar.update(task, completed=d, total=t))


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


@app.command()
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

    names = _split_list(recipes) or list(RECIPES)
    for name in names:
        if name not in RECIPES:
            usage_error(f"unknown recipe {name!r}; use some of {', '.join(RECIPES)}")
    seed_list = None
    if seeds is not None:
        try:
            seed_list = [int(v) for v in _split_list(seeds) or []]
        except ValueError:
            usage_error(f"--seeds must be comma-separated integers, got {seeds!r}")
        if not seed_list or len(set(seed_list)) < len(seed_list):
            usage_error(f"--seeds needs distinct integers, got {seeds!r}")
    cfg = _train_config(model, config_file, set_, {"max_steps": max_steps}, seed)
    try:
        load_benchmark("mini", split=eval_split, limit=1)
        load_adapter(model, seed=seed)
    except (KeyError, ValueError, ModelLoadError) as exc:
        usage_error(str(exc.args[0]) if exc.args else str(exc))
    table = run_ablation(lambda: load_adapter(model, seed=seed), out_dir, cfg, names, eval_split=eval_split,
                         train_limit=limit, eval_limit=eval_limit, eval_seed=eval_seed, seeds=seed_list,
                         progress=lambda msg: err.print(f"modint: {msg}"))
    out.print(table)
    out.print(f"Figures per run and mean ± sd: {out_dir / 'ablation.json'}")


def robustness_table(summary: dict) -> Table:
    from modint.report.format import percent

    table = Table(title="Robustness under PGD on the irrelevant modality")
    for name in ("family", "space", "eps", "unit", "n", "acc %", "attack success %"):
        table.add_column(name, justify="left" if name in ("family", "space", "unit") else "right")
    for curve in summary.get("robustness", []):
        for p in curve["points"]:
            asr = p["attack_success_rate"]
            unit = {"pixel": "/255", "embed": "x RMS"}.get(curve["space"], curve["eps_unit"])
            table.add_row(curve["family"], curve["space"], f"{p['eps']:g}", unit, str(p["n"]),
                          percent(p["accuracy"]), percent(asr))
    return table


def summary_table(summary: dict) -> Table:
    """Family x condition: accuracy with CI, delta with CI, flips, errors."""
    table = Table(title=f"{summary.get('model')} on {summary.get('benchmark')}/{summary.get('split')}")
    for name, justify in [("family", "left"), ("condition", "left"), ("n", "right"), ("acc %", "right"),
                          ("95% CI", "right"), ("delta", "right"), ("delta 95% CI", "right"),
                          ("flips %", "right"), ("harm/benef %", "right"), ("followed %", "right"),
                          ("err", "right")]:
        table.add_column(name, justify=justify)

    from modint.report.format import percent as pct, percent_ci as ci

    for c in summary["conditions"]:
        table.add_row(c["family"], c["condition"], str(c["n"]), pct(c["accuracy"]), ci(c["accuracy_ci95"]),
                      pct(c["delta"], signed=True), ci(c["delta_ci95"]), pct(c["flip_rate"]),
                      f"{pct(c['harmful_flip_rate'])}/{pct(c['beneficial_flip_rate'])}",
                      pct(c.get("followed_distractor_rate")), str(c["errors"]))
    return table


@data_app.command("list")
def data_list() -> None:
    """List the registered benchmarks."""
    from modint.data.registry import list_benchmarks

    table = Table("benchmark", "splits", "description")
    for bench in list_benchmarks():
        table.add_row(bench.name, ", ".join(bench.splits), bench.description)
    out.print(table)


@data_app.command("conditions")
def data_conditions() -> None:
    """List the perturbation conditions and the families they apply to."""
    from rich.markup import escape

    from modint.perturb import CONDITIONS, REFERENCE_CONDITION

    table = Table("condition", "families", "description")
    for name, cond in CONDITIONS.items():
        fams = ", ".join(f + (" (reference)" if REFERENCE_CONDITION.get(f) == name else "") for f in sorted(cond.families))
        extra = "" if cond.default else (f" [opt-in; default eps {cond.parameters['eps']:g}, or {name}@EPS]"
                                         if cond.attack_space else " [opt-in; out of distribution]")
        table.add_row(name, fams, escape(cond.description + extra))  # rich would read "[opt-in ...]" as markup
    out.print(table)


@data_app.command("preview")
def data_preview(
    sample_id: Optional[str] = typer.Argument(None, help="Sample id (default: the first of each family)."),
    benchmark: str = typer.Option("mini"), split: str = typer.Option("test"),
    seed: int = typer.Option(0), out_dir: Path = typer.Option(Path("previews"), "--out", help="Folder for PNGs."),
    switch_source: str = typer.Option("mixed"),
    pool_part: str = typer.Option("eval", help="Perturbation pools: eval (diagnosis) or train (mitigation views)."),
    conditions: Optional[str] = typer.Option(None, help="Comma-separated conditions (default: every one that applies "
                                             "and needs no model, the opt-in out-of-distribution ones too)."),
) -> None:
    """Write a PNG per sample showing it under every applicable condition."""
    from modint.data.registry import load_benchmark
    from modint.perturb import conditions_for, default_pools, get_condition, save_preview

    try:
        samples = load_benchmark(benchmark, split=split)
        pools = default_pools(samples, switch_source=switch_source, part=pool_part)
        for name in _split_list(conditions) or []:
            get_condition(name)
    except (KeyError, ValueError) as exc:
        usage_error(str(exc.args[0]) if exc.args else str(exc))
    if sample_id is not None:
        chosen = [s for s in samples if s.id == sample_id]
        if not chosen:
            usage_error(f"no sample {sample_id!r} in {benchmark}/{split}")
    else:
        chosen = [next(s for s in samples if s.family == f) for f in dict.fromkeys(s.family for s in samples)]
    out_dir.mkdir(parents=True, exist_ok=True)
    for s in chosen:
        if conditions and not conditions_for(s.family, _split_list(conditions)):
            continue  # none of the requested conditions applies to this family
        path = out_dir / f"{s.id}.png"
        save_preview(s, path, seed=seed, pools=pools, conditions=_split_list(conditions))
        out.print(str(path))


@app.command()
def models() -> None:
    """List the supported model families and how a checkpoint is recognised."""
    from modint.models.specs import SPECS

    table = Table("model_type (config.json)", "family", "example hub ids")
    for spec in SPECS.values():
        table.add_row(spec.model_type, spec.display_name, ", ".join(spec.hub_examples))
    out.print(table)
    out.print("Built in: tiny-random-<model_type> (random weights, for trying the pipeline).")


@zoo_app.command("tiny")
def zoo_tiny(family: str = typer.Argument(..., help="A transformers model_type (llava, qwen2_vl, idefics3, ...), "
                                         "or blip-2-t5 / instructblip-t5 for the Flan-T5 variants, or llava-1.5-geometry "
                                         "(336 px, 576 image tokens, LM 512 wide)."),
             out_dir: Path = typer.Option(..., "--out", help="Directory to write."),
             seed: int = typer.Option(0)) -> None:
    """Write a tiny random model of FAMILY with an offline processor (standard HF layout)."""
    from modint.models.tiny import save_tiny

    try:
        path = save_tiny(family, out_dir, seed=seed)
    except KeyError as exc:
        usage_error(str(exc.args[0]))
    out.print(f"wrote {path}")


@zoo_app.command("train-demo")
def zoo_train_demo(out_dir: Path = typer.Option(..., "--out", help="Directory to write the model to."),
                   scale: float = typer.Option(1.0, min=0.001, help="Multiply every stage's steps (0.01: a smoke run)."),
                   seed: int = typer.Option(0)) -> None:
    """Train the demo model from scratch on the mini training split (about 1 hour 50 minutes on 2 CPU cores)."""
    from modint.zoo.demo import DemoConfig, train_demo

    cfg = DemoConfig(seed=seed).scaled(scale)
    with _progress() as bar:
        task = bar.add_task("train", total=None)

        def report(stage: str, step: int, total: int, loss: float) -> None:
            bar.update(task, description=f"{stage} loss {loss:.3f}", completed=step, total=total)

        path = train_demo(out_dir, cfg, progress=report)
    out.print(f"wrote {path}")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run directory (records.jsonl, summary.json, manifest.json)."),
    fmt: str = typer.Option("html", "--format", help="html: re-write the run's report.html (samples rebuilt from "
                            "the manifest's benchmark for thumbnails); md, csv, tex: the family x condition table."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write here instead (default: RUN/report.html for "
                                            "html, standard output for the tables)."),
    by_task: bool = typer.Option(False, "--by-task", help="md, csv: a row per task of each family x condition."),
) -> None:
    """Write a run's report: the self-contained HTML page, or its table (accuracy with CI, delta with
    CI, flip rate, followed-distractor %) as Markdown, CSV or LaTeX for pasting into papers."""
    from modint.report.tables import run_report

    try:
        text, path, note = run_report(run_dir, fmt, out_file, by_task=by_task)
    except ValueError as exc:
        usage_error(str(exc))
    if note:
        print(f"modint: note: {note}", file=sys.stderr)
    if text is not None:
        sys.stdout.write(text)
    else:
        out.print(f"wrote {path}")


@app.command()
def compare(
    run_dirs: list[Path] = typer.Argument(..., help="Two or more run directories; later ones are tested against "
                                          "the first."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Also write a self-contained HTML comparison here."),
    targets: bool = typer.Option(False, "--targets", help="The first run is the base, the others mitigated runs "
                                 "(seeds): mean ± sd per family x condition, gap reductions against the targets "
                                 "(misleading text >= 70%, switched image >= 40%), references within 1 point, "
                                 "McNemar per run."),
    json_file: Optional[Path] = typer.Option(None, "--json", help="With --targets: also write the figures as JSON."),
) -> None:
    """Runs side by side: accuracy per family x condition per run, and for each later run an exact
    McNemar test against the first on the (id, condition) records they share (* marks p < 0.05).
    Attack sweeps are tested per eps over samples, Holm-corrected across each sweep's eps."""
    from modint.report.compare import (RunError, compare_runs, comparison_table, per_eps_table, robustness_verdict,
                                       write_comparison)

    if json_file is not None and not targets:
        usage_error("--json writes the --targets figures: add --targets")
    try:
        cmp = compare_runs(run_dirs)
    except RunError as exc:
        usage_error(str(exc))
    if targets:
        import json

        from modint.report.targets import mitigation_targets, targets_tables

        result = mitigation_targets(cmp)
        for part in targets_tables(result, cmp.labels):
            out.print(part, highlight=False)
        if json_file is not None:
            json_file.parent.mkdir(parents=True, exist_ok=True)
            json_file.write_text(json.dumps(result, indent=1))
            out.print(f"wrote {json_file}")
    else:
        out.print(comparison_table(cmp))
        if cmp.robustness:
            out.print(per_eps_table(cmp))
        for curve in cmp.robustness:
            for i in range(1, len(cmp.runs)):
                out.print(robustness_verdict(curve, cmp.labels, i), highlight=False)
    if out_file is not None:
        out.print(f"wrote {write_comparison(cmp, out_file)}")


def _loader_options(items: list[str], fmt: Optional[str]) -> dict:
    """--option KEY=VALUE (repeatable) and --format as loader options."""
    options: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            usage_error(f"--option expects KEY=VALUE, got {item!r}")
        options[key.strip()] = value.strip()
    if fmt:
        options["format"] = fmt
    return options


@data_app.command("inspect")
def data_inspect(
    path: str = typer.Argument(..., help="A dataset folder or file (options may follow '?': PATH?format=mmbench)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Format instead of detection (see README, "
                                      "'Real benchmarks')."),
    split: Optional[str] = typer.Option(None, help="One split (default: every split)."),
    option: list[str] = typer.Option([], "--option", "-o", help="Loader option KEY=VALUE (repeatable), e.g. "
                                     "scienceqa_imageless=skip, classnames=FILE."),
    images: bool = typer.Option(True, "--images/--no-images", help="Decode every image once (default) or skip that."),
    show: int = typer.Option(5, "--show", min=0, help="How many error messages to print."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """What a dataset holds: samples per split and family, options per question, and every bad row
    (unreadable, invalid, or with an image that does not decode), with the first messages."""
    import json

    from modint.data.formats.tools import inspect_dataset

    try:
        report = inspect_dataset(path, split=split, images=images, max_messages=max(show, 10),
                                 **_loader_options(option, fmt))
    except (KeyError, ValueError) as exc:
        usage_error(str(exc.args[0]) if exc.args else str(exc))
    if as_json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return
    table = Table("split", "family", "samples", "with image", "errors", title=f"{path} ({report['format']})")
    for split_name, families in report["splits"].items():
        for family, cell in sorted(families.items()):
            table.add_row(split_name, family, str(cell["samples"]), str(cell["with_image"]), str(cell["errors"]))
    out.print(table)
    hist = ", ".join(f"{k} options: {v}" for k, v in report["options_histogram"].items()) or "none"
    print(f"questions by number of options: {hist}")
    for reason, n in report["skipped"].items():
        print(f"skipped: {n} x {reason}")
    for message in report["warnings"]:
        print(f"warning: {message}")
    print(f"images decoded: {report['images_decoded']}" if images else "images: not decoded (--no-images)")
    print(f"errors: {report['errors']}")
    for message in report["error_messages"][:show]:
        print(f"  {message}")
    if report["errors"] > min(show, len(report["error_messages"])):
        print(f"  ... {report['errors'] - min(show, len(report['error_messages']))} more")


@data_app.command("convert")
def data_convert(
    path: str = typer.Argument(..., help="A dataset folder or file (options may follow '?')."),
    out_file: Path = typer.Option(..., "--out", help="The generic JSONL file to write."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Format instead of detection."),
    split: Optional[str] = typer.Option(None, help="One split (default: every split, recorded per row)."),
    option: list[str] = typer.Option([], "--option", "-o", help="Loader option KEY=VALUE (repeatable)."),
    show: int = typer.Option(5, "--show", min=0, help="How many error messages to print."),
) -> None:
    """Write a dataset in the generic JSONL schema: images by absolute path, embedded (base64) ones
    written to a folder next to the JSONL. Rows with errors are left out and listed."""
    from modint.data.formats.tools import convert_dataset

    try:
        result = convert_dataset(path, out_file, split=split, max_messages=max(show, 10),
                                 **_loader_options(option, fmt))
    except (KeyError, ValueError) as exc:
        usage_error(str(exc.args[0]) if exc.args else str(exc))
    except OSError as exc:
        failure(f"cannot write {out_file}: {exc.strerror or exc}")
    print(f"wrote {result['written']} samples ({result['format']}) to {result['out']}")
    if result["images_written"]:
        print(f"wrote {result['images_written']} embedded images to {result['images_folder']}")
    if result["duplicates"]:
        print(f"left out {result['duplicates']} samples already written from an earlier split")
    for message in result["warnings"]:
        print(f"warning: {message}")
    if result["errors"]:
        print(f"left out {result['errors']} rows with errors:")
        for message in result["error_messages"][:show]:
            print(f"  {message}")


def _register_interop() -> None:
    from modint import cli_interop

    app.command("score")(cli_interop.score)
    app.command("export")(cli_interop.export)


_register_interop()


def main() -> None:
    import errno

    from modint.diagnose.rundir import RunDirBusy

    logging.basicConfig(level=os.environ.get("MODINT_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except RunDirBusy as exc:
        print(f"modint: failed: {exc}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:  # a full disk or a read-only --out: one line; what was written stays valid
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        where = f"cannot write {exc.filename}: " if exc.filename else ""
        print(f"modint: failed: {where}{exc.strerror or exc} (what was written is kept; re-run the same "
              f"command to resume)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
