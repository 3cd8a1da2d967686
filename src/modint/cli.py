"""The `modint` command line: argument parsing and printing only; the work is in the library."""

from __future__ import annotations

import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Optional

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
    trust_remote_code: bool = REMOTE_CODE_OPTION,
    quiet: bool = typer.Option(False, help="Print no table."),
) -> None:
    """Run a model over a benchmark under clean and perturbed conditions; write records.jsonl,
    summary.json, manifest.json and report.html into --out and print a table."""
    from modint.diagnose.engine import DiagnoseConfig

    config = DiagnoseConfig(conditions=_split_list(conditions), seed=seed, batch_size=batch_size,
                            scoring=scoring, strict=strict, switch_source=switch_source,
                            attack={"steps": pgd_steps, "step_rule": pgd_step_rule, "restarts": pgd_restarts,
                                    "targeted": pgd_targeted},
                            save_adversarial=save_adversarial)
    summary = _run(config, model, benchmark, split, limit, out_dir, device, dtype, device_map, trust_remote_code,
                   facts_model=facts_model)
    if summary and not quiet:
        out.print(summary_table(summary))
        if summary.get("robustness"):
            out.print(robustness_table(summary))
        out.print(f"Run directory: {out_dir}  (report: {Path(out_dir) / 'report.html'})")


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


def _run(config, model, benchmark, split, limit, out_dir, device, dtype, device_map, trust_remote_code,
         keep=None, facts_model=None) -> dict:
    """Load the benchmark and the model (a usage error for anything missing), then diagnose."""
    from modint.data.registry import load_benchmark
    from modint.data.sample import SampleError
    from modint.diagnose.engine import run_diagnosis
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
                                 "checkpoint/, diagnosis/."),
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
    eval_split: str = typer.Option("test", help="Split the final model is diagnosed on."),
    eval_limit: Optional[int] = typer.Option(None, min=1, help="At most this many samples in the final diagnosis."),
    eval_seed: int = typer.Option(0, help="Seed of the final diagnosis (perturbation draws, CIs). The default is "
                                  "`modint diagnose`'s, so the result pairs with a diagnosis of the model before; "
                                  "--seed only changes the training."),
    diagnose_after: bool = typer.Option(True, "--diagnose/--no-diagnose", help="Diagnose the trained model into "
                                        "OUT/diagnosis."),
    device: str = DEVICE_OPTION,
    dtype: str = DTYPE_OPTION,
    trust_remote_code: bool = REMOTE_CODE_OPTION,
) -> None:
    """Fine-tune a model with the mitigation framework (heuristic views + embedding PGD +
    consistency), save it in the Hugging Face layout, and diagnose it. Runs under
    `accelerate launch` for data parallelism."""
    from modint.data.registry import load_benchmark
    from modint.diagnose.engine import DiagnoseConfig, run_diagnosis
    from modint.mitigate.train import train as run_training
    from modint.models.adapter import LetterScoringError
    from modint.models.loading import ModelLoadError, load_adapter

    cfg = _train_config(model, config_file, set_, {"recipe": recipe, "epochs": epochs, "max_steps": max_steps,
                                                   "lr": lr, "trainable": trainable,
                                                   "checkpoint_every": checkpoint_every}, seed)
    try:
        samples = load_benchmark(benchmark, split=split, limit=limit)
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
    with _progress() as bar:
        task = bar.add_task(f"train {cfg.recipe}", total=None)

        def report(step: int, total: int, parts: dict) -> None:
            bar.update(task, completed=step, total=total, description=f"train {cfg.recipe} loss {parts['loss']:.3f}")

        try:
            model_dir = run_training(adapter, samples, out_dir, cfg, progress=report, resume=resume)
        except ValueError as exc:
            failure(str(exc))
    out.print(f"Model: {model_dir}")
    if diagnose_after:
        eval_samples = load_benchmark(benchmark, split=eval_split, limit=eval_limit)
        with _progress() as bar:
            task = bar.add_task("diagnose", total=None)
            summary = run_diagnosis(adapter, eval_samples, Path(out_dir) / "diagnosis", DiagnoseConfig(seed=eval_seed),
                                    progress=lambda d, t: bar.update(task, completed=d, total=t),
                                    run_info={"model": str(model_dir), "benchmark": benchmark, "split": eval_split,
                                              "trained_from": model, "recipe": cfg.recipe})
        if summary:
            out.print(summary_table(summary))
            out.print(f"Diagnosis: {Path(out_dir) / 'diagnosis'}")


def _as_field_type(key: str, value: Any, annotation: str) -> Any:
    """YAML reads ``1e-3`` as a string (its floats need a dot): convert numbers for numeric
    fields, so ``--set lr=1e-3`` works; anything that is not a number is a usage error."""
    kinds = {k.strip() for k in annotation.split("|")}
    if value is None or isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return value
    try:
        if "float" in kinds:
            return float(value)
        if "int" in kinds and not isinstance(value, float):
            return int(value)
    except ValueError:
        usage_error(f"training setting {key}: expected a number, got {value!r}")
    return value


def _train_config(model: str, config_file: Optional[Path], set_: list[str], cli_values: dict, seed: int):
    """TrainConfig from, in increasing priority: the published defaults, the model's preset
    (`demo`), a YAML file, --set KEY=VALUE, explicit options. Bad settings are usage errors."""
    import dataclasses

    import yaml

    from modint.mitigate.train import PRESETS, TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values: dict = dict(PRESETS.get(model, {}))
    if config_file is not None:
        try:
            loaded = yaml.safe_load(config_file.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            usage_error(f"{config_file}: cannot read the config: {exc}".replace("\n", " "))
        if not isinstance(loaded, dict):
            usage_error(f"{config_file}: expected a mapping of TrainConfig fields")
        values.update(loaded)
    for item in set_:
        key, sep, raw = item.partition("=")
        if not sep:
            usage_error(f"--set expects KEY=VALUE, got {item!r}")
        values[key.strip()] = yaml.safe_load(raw)
    values.update({k: v for k, v in cli_values.items() if v is not None})
    values["seed"] = seed
    unknown = sorted(set(values) - fields)
    if unknown:
        usage_error(f"unknown training setting(s): {', '.join(unknown)} (known: {', '.join(sorted(fields))})")
    types = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
    for key, value in values.items():
        values[key] = _as_field_type(key, value, types[key])
    try:
        cfg = TrainConfig(**values)
        cfg.check()
    except (ValueError, TypeError) as exc:
        usage_error(str(exc))
    if model in PRESETS:  # said once the settings are known to be valid
        err.print(f"modint: using the {model!r} preset {PRESETS[model]} (override with --set or options)")
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
    eval_seed: int = typer.Option(0, help="Seed of every diagnosis (the base model's too); --seed only changes "
                                  "the training."),
) -> None:
    """The paper's ablation on one model: train each recipe, diagnose each, print a Markdown
    table of accuracy under every condition (written to OUT/ablation.md)."""
    from modint.mitigate.ablate import ablate as run_ablation
    from modint.mitigate.train import RECIPES
    from modint.models.loading import ModelLoadError, load_adapter

    names = _split_list(recipes) or list(RECIPES)
    for name in names:
        if name not in RECIPES:
            usage_error(f"unknown recipe {name!r}; use some of {', '.join(RECIPES)}")
    cfg = _train_config(model, config_file, set_, {"max_steps": max_steps}, seed)
    try:
        load_adapter(model, seed=seed)
    except (ModelLoadError, ValueError) as exc:
        usage_error(str(exc))
    table = run_ablation(lambda: load_adapter(model, seed=seed), out_dir, cfg, names, train_limit=limit,
                         eval_limit=eval_limit, eval_seed=eval_seed, progress=lambda msg: err.print(f"modint: {msg}"))
    out.print(table)


def robustness_table(summary: dict) -> Table:
    table = Table(title="Robustness under PGD on the irrelevant modality")
    for name in ("family", "space", "eps", "unit", "n", "acc %", "attack success %"):
        table.add_column(name, justify="left" if name in ("family", "space", "unit") else "right")
    for curve in summary.get("robustness", []):
        for p in curve["points"]:
            asr = p["attack_success_rate"]
            unit = {"pixel": "/255", "embed": "x RMS"}.get(curve["space"], curve["eps_unit"])
            table.add_row(curve["family"], curve["space"], f"{p['eps']:g}", unit, str(p["n"]),
                          "–" if p["accuracy"] is None else f"{100 * p['accuracy']:.1f}",
                          "–" if asr is None else f"{100 * asr:.1f}")
    return table


def summary_table(summary: dict) -> Table:
    """Family x condition: accuracy with CI, delta with CI, flips, errors."""
    table = Table(title=f"{summary.get('model')} on {summary.get('benchmark')}/{summary.get('split')}")
    for name, justify in [("family", "left"), ("condition", "left"), ("n", "right"), ("acc %", "right"),
                          ("95% CI", "right"), ("delta", "right"), ("delta 95% CI", "right"),
                          ("flips %", "right"), ("harm/benef %", "right"), ("followed %", "right"),
                          ("err", "right")]:
        table.add_column(name, justify=justify)

    def pct(v, signed=False):
        return "–" if v is None else (f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}")

    def ci(pair):
        return "" if not pair or pair[0] is None else f"[{100 * pair[0]:.1f}, {100 * pair[1]:.1f}]"

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
    from modint.perturb import CONDITIONS, REFERENCE_CONDITION

    table = Table("condition", "families", "description")
    for name, cond in CONDITIONS.items():
        fams = ", ".join(f + (" (reference)" if REFERENCE_CONDITION.get(f) == name else "") for f in sorted(cond.families))
        extra = "" if cond.default else f" [opt-in; default eps {cond.parameters['eps']:g}, or {name}@EPS]"
        table.add_row(name, fams, cond.description + extra)
    out.print(table)


@data_app.command("preview")
def data_preview(
    sample_id: Optional[str] = typer.Argument(None, help="Sample id (default: the first of each family)."),
    benchmark: str = typer.Option("mini"), split: str = typer.Option("test"),
    seed: int = typer.Option(0), out_dir: Path = typer.Option(Path("previews"), "--out", help="Folder for PNGs."),
    switch_source: str = typer.Option("mixed"),
) -> None:
    """Write a PNG per sample showing it under every applicable condition."""
    from modint.data.registry import load_benchmark
    from modint.perturb import default_pools, save_preview

    try:
        samples = load_benchmark(benchmark, split=split)
        pools = default_pools(samples, switch_source=switch_source)
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
        path = out_dir / f"{s.id}.png"
        save_preview(s, path, seed=seed, pools=pools)
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
                                         "or blip-2-t5 / instructblip-t5 for the Flan-T5 variants."),
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
) -> None:
    """Write a run's report: the self-contained HTML page, or its table (accuracy with CI, delta with
    CI, flip rate, followed-distractor %) as Markdown, CSV or LaTeX for pasting into papers."""
    from modint.report.tables import run_report

    try:
        text, path, note = run_report(run_dir, fmt, out_file)
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
) -> None:
    """Runs side by side: accuracy per family x condition per run, and for each later run an exact
    McNemar test against the first on the (id, condition) records they share (* marks p < 0.05)."""
    from modint.report.compare import RunError, compare_runs, comparison_table, robustness_verdict, write_comparison

    try:
        cmp = compare_runs(run_dirs)
    except RunError as exc:
        usage_error(str(exc))
    out.print(comparison_table(cmp))
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
    if result["errors"]:
        print(f"left out {result['errors']} rows with errors:")
        for message in result["error_messages"][:show]:
            print(f"  {message}")


def main() -> None:
    logging.basicConfig(level=os.environ.get("MODINT_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
