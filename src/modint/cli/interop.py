"""`modint score` and `modint export`: other harnesses' predictions in, other harnesses' files out."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from modint.cli.common import out, usage_errors
from modint.cli.tables import summary_table


def score(
    predictions: list[str] = typer.Argument(..., help="Prediction files: VLMEvalKit TSV/xlsx, lmms-eval samples "
                                            "JSONL, the paper's {id: letter} JSONL, or JSONL of id, condition, "
                                            "prediction. FILE@CONDITION names a file's condition."),
    benchmark: str = typer.Option(..., help="The benchmark the predictions answer: a registered name or a path."),
    split: str = typer.Option("test", help="Benchmark split."),
    limit: Optional[int] = typer.Option(None, min=1, help="The --limit the predictions were made with (lmms-eval "
                                        "doc_id is a position in the benchmark as loaded)."),
    condition: Optional[str] = typer.Option(None, help="Condition of files that do not say theirs."),
    kind: Optional[str] = typer.Option(None, help="vlmevalkit, lmms-eval, published or generic (default: detected)."),
    model: str = typer.Option("external", help="The model's name, for the summary and the report."),
    seed: int = typer.Option(0, help="The perturbation seed the inputs were made with (which wrong option a "
                             "misleading text named); also seeds bootstrap CIs."),
    out_dir: Path = typer.Option(Path("runs/score"), "--out", help="New run directory."),
    quiet: bool = typer.Option(False, help="Print no table."),
) -> None:
    """Score predictions made elsewhere: records, summary and report as `modint diagnose --scoring
    generate` writes them (answers parsed by the same parser, paired by sample id)."""
    from modint.data.registry import load_benchmark
    from modint.predictions.readers import PredictionError, read_all
    from modint.predictions.score import score_predictions

    with usage_errors(PredictionError):
        samples = load_benchmark(benchmark, split=split, limit=limit)
        preds = read_all(predictions, default_condition=condition, kind=kind)
        run_info = {"model": model, "benchmark": benchmark, "split": split, "limit": limit,
                    "files": [str(p) for p in predictions],
                    "command": "modint " + " ".join(shlex.quote(a) for a in sys.argv[1:])}
        result = score_predictions(preds, samples, out_dir, run_info=run_info, seed=seed)
    for label, items in (("predictions name no sample of the benchmark", result.unknown),
                         ("repeat an answer already read (the first one is kept)", result.duplicates)):
        if items:
            print(f"modint: note: {len(items)} {label} (first: {items[0]})", file=sys.stderr)
    for cond, n in result.missing.items():
        print(f"modint: note: {n} samples have no answer under {cond}", file=sys.stderr)
    if not quiet:
        out.print(summary_table(result.summary))
        out.print(f"Run directory: {out_dir}  (report: {Path(out_dir) / 'report.html'})")


def export(
    run_dir: Path = typer.Argument(..., help="A run directory (records.jsonl, summary.json, manifest.json)."),
    to: str = typer.Option(..., "--to", help="lmms-eval or vlmevalkit."),
    out_dir: Path = typer.Argument(..., help="Folder to write into."),
    benchmark: Optional[str] = typer.Option(None, help="The run's benchmark, when the manifest's cannot be loaded "
                                            "here (questions and options for the files)."),
    split: Optional[str] = typer.Option(None, help="Its split (default: the manifest's)."),
) -> None:
    """Write a run as another harness writes its results: lmms-eval's --log_samples layout (a results
    JSON and a samples JSONL per condition, each a task <benchmark>@<condition>) or VLMEvalKit's
    prediction files (one TSV per condition, and xlsx where openpyxl is installed)."""
    from modint.export import ExportError, export_run

    with usage_errors(ExportError):
        written = export_run(run_dir, to, out_dir, benchmark=benchmark, split=split)
    for path in written:
        out.print(f"wrote {path}", highlight=False)
