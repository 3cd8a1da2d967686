"""`modint report` and `modint compare`: a run's report and tables, runs side by side."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from modint.cli.common import out, usage_error


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
        if cmp.reliance:
            from modint.report.compare_reliance import reliance_table

            for table in reliance_table(cmp.reliance, cmp.labels):
                out.print(table)
    if out_file is not None:
        out.print(f"wrote {write_comparison(cmp, out_file)}")
