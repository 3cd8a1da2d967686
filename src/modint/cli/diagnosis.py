"""`modint diagnose` and `modint attack`: load a benchmark and a model, diagnose, print the tables."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from modint.cli.common import (DEFAULT_MODEL, DEVICE_MAP_OPTION, DEVICE_OPTION, DTYPE_OPTION, LIMIT_OPTION,
                               MAX_ERROR_RATE_OPTION, REMOTE_CODE_OPTION, SHARE_OPTION, claim, err, failure, out, progress_bar,
                               split_list, usage_error, usage_errors)
from modint.cli.tables import robustness_table, summary_table


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
    share: bool = SHARE_OPTION,
    prefix_cache_mb: int = typer.Option(64, min=0, help="Memory for cached prefixes (header + image keys and values) "
                                        "reused across batches; past it the one needed last goes."),
    reliance: bool = typer.Option(False, help="Add per-record reliance measures: attention mass by region, image / "
                                  "context knockout, logit-lens layers (docs/reliance.md)."),
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

    config = DiagnoseConfig(conditions=split_list(conditions), seed=seed, batch_size=batch_size,
                            scoring=scoring, strict=strict, switch_source=switch_source, pool_part=pool_part,
                            attack={"steps": pgd_steps, "step_rule": pgd_step_rule, "restarts": pgd_restarts,
                                    "targeted": pgd_targeted},
                            save_adversarial=save_adversarial, share=share, prefix_cache_mb=prefix_cache_mb,
                            reliance=reliance)
    summary = _run(config, model, benchmark, split, limit, out_dir, device, dtype, device_map, trust_remote_code,
                   facts_model=facts_model)
    if summary and text_model:
        summary = leakage(text_model, config, benchmark, split, limit, out_dir, device, dtype, trust_remote_code)
    if summary and not quiet:
        out.print(summary_table(summary))
        if summary.get("robustness"):
            out.print(robustness_table(summary))
        out.print(f"Run directory: {out_dir}  (report: {Path(out_dir) / 'report.html'})")
    _fail_on_errors(summary, out_dir, max_error_rate)


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
    embed_text: str = typer.Option("after-image", help="Image-heavy embed attacks: after-image (the sample's text, "
                                   "what follows its image) or all (every text token, the chat header before the "
                                   "image included: the earlier default, kept for comparison)."),
    save_images: bool = typer.Option(False, help="Write attacked images to OUT/adversarial/."),
    share: bool = typer.Option(True, "--share/--no-share", help="Compute each shared prompt prefix (header + image) "
                               "once: letter scoring, and every PGD iteration of an after-image embed attack; "
                               "--no-share: full forwards (the reference path)."),
    limit: Optional[int] = LIMIT_OPTION,
    batch_size: int = typer.Option(16, min=1, help="Samples per batch: each attack condition runs PGD over up to "
                                   "this many samples at once (lower it if memory runs short). Results do not "
                                   "depend on it: random starts are drawn per sample."),
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

    spaces = split_list(space) or ["pixel", "embed"]
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
    if embed_text not in ("after-image", "all"):
        usage_error(f"unknown --embed-text {embed_text!r}; use after-image or all")
    config = DiagnoseConfig(conditions=conditions, seed=seed, batch_size=batch_size,
                            attack={"steps": steps, "step_rule": step_rule, "restarts": restarts, "targeted": targeted},
                            save_adversarial=save_images, share=share, embed_text=embed_text.replace("-", "_"),
                            batch_unit="samples")
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


def _run(config, model, benchmark, split, limit, out_dir, device, dtype, device_map, trust_remote_code,
         keep=None, facts_model=None) -> dict:
    """Load the benchmark and the model (a usage error for anything missing), then diagnose."""
    with claim(out_dir):
        return _run_claimed(config, model, benchmark, split, limit, out_dir, device, dtype, device_map,
                            trust_remote_code, keep, facts_model)


def _run_claimed(config, model, benchmark, split, limit, out_dir, device, dtype, device_map, trust_remote_code,
                 keep=None, facts_model=None) -> dict:
    from modint.api import run_diagnosis
    from modint.data.registry import load_benchmark
    from modint.data.sample import SampleError
    from modint.models.adapter import LetterScoringError
    from modint.models.loading import ModelLoadError, load_adapter

    with usage_errors():
        config.check()
        # Filtered runs take --limit of the samples they keep (images are loaded lazily).
        samples = load_benchmark(benchmark, split=split, limit=None if keep else limit)
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
    with progress_bar() as bar:
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


def leakage(text_model: str, config, benchmark: str, split: str, limit: Optional[int], out_dir: Path, device: str,
            dtype: str, trust_remote_code: bool) -> dict:
    """`diagnose --text-model`: the text model's no_image answers (run here into OUT/text_model,
    or a run directory given), MMStar's leakage added to the summary, the report re-written."""
    from dataclasses import replace

    from modint.diagnose.mmstar import NO_IMAGE, add_leakage
    from modint.report.tables import run_report

    text_run = Path(text_model)
    if not (text_run / "records.jsonl").is_file():
        text_run = Path(out_dir) / "text_model"
        _run(replace(config, conditions=[NO_IMAGE]), text_model, benchmark, split, limit, text_run, device, dtype,
             None, trust_remote_code)
    try:
        summary = add_leakage(out_dir, text_run, text_model=text_model)
    except ValueError as exc:
        usage_error(str(exc))
    run_report(out_dir, "html")
    return summary
