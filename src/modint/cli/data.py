"""`modint data ...`, `modint zoo ...` and `modint models`: benchmarks, perturbed previews, models."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from modint.cli.common import failure, out, progress_bar, split_list, usage_error, usage_errors


def data_list() -> None:
    """List the registered benchmarks."""
    from modint.data.registry import list_benchmarks

    table = Table("benchmark", "splits", "description")
    for bench in list_benchmarks():
        table.add_row(bench.name, ", ".join(bench.splits), bench.description)
    out.print(table)


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

    with usage_errors():
        samples = load_benchmark(benchmark, split=split)
        pools = default_pools(samples, switch_source=switch_source, part=pool_part)
        for name in split_list(conditions) or []:
            get_condition(name)
    if sample_id is not None:
        chosen = [s for s in samples if s.id == sample_id]
        if not chosen:
            usage_error(f"no sample {sample_id!r} in {benchmark}/{split}")
    else:
        chosen = [next(s for s in samples if s.family == f) for f in dict.fromkeys(s.family for s in samples)]
    out_dir.mkdir(parents=True, exist_ok=True)
    for s in chosen:
        if conditions and not conditions_for(s.family, split_list(conditions)):
            continue  # none of the requested conditions applies to this family
        path = out_dir / f"{s.id}.png"
        save_preview(s, path, seed=seed, pools=pools, conditions=split_list(conditions))
        out.print(str(path))


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

    with usage_errors():
        report = inspect_dataset(path, split=split, images=images, max_messages=max(show, 10),
                                 **_loader_options(option, fmt))
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
        with usage_errors():
            result = convert_dataset(path, out_file, split=split, max_messages=max(show, 10),
                                     **_loader_options(option, fmt))
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


def models() -> None:
    """List the supported model families and how a checkpoint is recognised."""
    from modint.models.specs import SPECS

    table = Table("model_type (config.json)", "family", "example hub ids")
    for spec in SPECS.values():
        table.add_row(spec.model_type, spec.display_name, ", ".join(spec.hub_examples))
    out.print(table)
    out.print("Built in: tiny-random-<model_type> (random weights, for trying the pipeline).")


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


def zoo_train_demo(out_dir: Path = typer.Option(..., "--out", help="Directory to write the model to."),
                   scale: float = typer.Option(1.0, min=0.001, help="Multiply every stage's steps (0.01: a smoke run)."),
                   seed: int = typer.Option(0)) -> None:
    """Train the demo model from scratch on the mini training split (about 1 hour 50 minutes on 2 CPU cores)."""
    from modint.zoo.demo import DemoConfig, train_demo

    cfg = DemoConfig(seed=seed).scaled(scale)
    with progress_bar() as bar:
        task = bar.add_task("train", total=None)

        def report(stage: str, step: int, total: int, loss: float) -> None:
            bar.update(task, description=f"{stage} loss {loss:.3f}", completed=step, total=total)

        path = train_demo(out_dir, cfg, progress=report)
    out.print(f"wrote {path}")
