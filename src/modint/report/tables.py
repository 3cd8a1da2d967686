"""The family x condition table of a run as Markdown, CSV or LaTeX, for pasting into papers.

Columns: family, condition, n, accuracy with its 95% CI, delta against the family's reference
with its 95% CI (points), flip rate and followed-distractor rate (percent). Reference rows have
no delta; a missing figure is empty (CSV), "–" (Markdown) or "--" (LaTeX). ``by_task`` gives
the same table with a row per task of each family x condition (Markdown and CSV).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Callable

from modint.report.format import percent
from modint.report.rows import task_rows
from modint.report.safe import latex_escape, spreadsheet_cell

FORMATS = ("md", "csv", "tex")
CSV_HEADER = ("family", "condition", "reference", "n", "accuracy", "accuracy_ci_low", "accuracy_ci_high",
              "delta", "delta_ci_low", "delta_ci_high", "flip_rate", "followed_distractor_rate")


def _p(v: Any, signed: bool = False) -> str | None:
    return percent(v, signed, missing=None)  # None: each table marks a missing figure its own way


def _ci_pair(pair: Any) -> tuple[Any, Any]:
    if not pair or len(pair) < 2:
        return (None, None)
    return pair[0], pair[1]


def _cells(row: dict[str, Any], dash: str, ci: Callable[[str, str], str]) -> list[str]:
    """family, condition, n, accuracy [CI], delta [CI], flips, followed: formatted text."""
    acc, (alo, ahi) = _p(row.get("accuracy")), _ci_pair(row.get("accuracy_ci95"))
    delta, (dlo, dhi) = _p(row.get("delta"), True), _ci_pair(row.get("delta_ci95"))
    acc_text = dash if acc is None else acc + (ci(_p(alo), _p(ahi)) if alo is not None and ahi is not None else "")
    if row.get("is_reference"):
        delta_text = "ref."
    else:
        delta_text = dash if delta is None else delta + (
            ci(_p(dlo, True), _p(dhi, True)) if dlo is not None and dhi is not None else "")
    flips, followed = _p(row.get("flip_rate")), _p(row.get("followed_distractor_rate"))
    return [str(row.get("family")), str(row.get("condition")), str(row.get("n", "")), acc_text, delta_text,
            dash if flips is None else flips, dash if followed is None else followed]


HEADERS = ("family", "condition", "n", "accuracy % [95% CI]", "delta pts [95% CI]", "flips %", "followed %")


def _with_task(cells: list[str], row: dict[str, Any], by_task: bool) -> list[str]:
    return cells[:2] + [str(row["task"])] + cells[2:] if by_task else cells


def markdown(summary: dict[str, Any], by_task: bool = False) -> str:
    def cell(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    headers = _with_task(list(HEADERS), {"task": "task"}, by_task)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * (len(headers) - 5) + ["---:"] * 5) + "|"]
    for row in task_rows(summary) if by_task else summary.get("conditions", []):
        cells = _with_task(_cells(row, "–", lambda a, b: f" [{a}, {b}]"), row, by_task)
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    from modint.report.gain import gain_markdown

    return "\n".join(lines) + "\n" + ("" if by_task else gain_markdown(summary))


def csv_table(summary: dict[str, Any], by_task: bool = False) -> str:
    """Numbers in percent (one decimal), CIs in their own columns, empty where missing."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_with_task(list(CSV_HEADER), {"task": "task"}, by_task))
    for row in task_rows(summary) if by_task else summary.get("conditions", []):
        alo, ahi = _ci_pair(row.get("accuracy_ci95"))
        dlo, dhi = _ci_pair(row.get("delta_ci95"))
        values = [row.get("family"), row.get("condition"), int(bool(row.get("is_reference"))), row.get("n"),
                  _p(row.get("accuracy")), _p(alo), _p(ahi), _p(row.get("delta"), True), _p(dlo, True),
                  _p(dhi, True), _p(row.get("flip_rate")), _p(row.get("followed_distractor_rate"))]
        writer.writerow(["" if v is None else spreadsheet_cell(v) for v in _with_task(values, row, by_task)])
    return buf.getvalue()


def tex_escape(text: str) -> str:
    return latex_escape(text)


def latex(summary: dict[str, Any]) -> str:
    """A booktabs tabular (needs \\usepackage{booktabs}); a rule between families; signed numbers
    in math mode so that their minus signs are real minus signs."""
    def math(text: str) -> str:
        return f"${text}$"

    head = " & ".join(tex_escape(h) for h in HEADERS)
    lines = [r"\begin{tabular}{llrrrrr}", r"\toprule", head + r" \\", r"\midrule"]
    previous = None
    for row in summary.get("conditions", []):
        if previous is not None and row.get("family") != previous:
            lines.append(r"\midrule")
        previous = row.get("family")
        family, condition, n, acc, delta, flips, followed = _cells(
            row, "--", lambda a, b: f" [{math(a)}, {math(b)}]" if a.startswith(("+", "-")) else f" [{a}, {b}]")
        if delta not in ("--", "ref."):
            value, _, rest = delta.partition(" ")
            delta = math(value) + (" " + rest if rest else "")
        lines.append(" & ".join([tex_escape(family), tex_escape(condition), tex_escape(n), acc, delta, flips,
                                 followed]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def render_table(summary: dict[str, Any], fmt: str, by_task: bool = False) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r} (use one of {', '.join(FORMATS)})")
    if by_task:
        if fmt == "tex":
            raise ValueError("the per-task table comes as md or csv (--format md --by-task)")
        return {"md": markdown, "csv": csv_table}[fmt](summary, by_task=True)
    return {"md": markdown, "csv": csv_table, "tex": latex}[fmt](summary)


def run_report(run_dir: str | Path, fmt: str = "html", out: str | Path | None = None,
               by_task: bool = False) -> tuple[str | None, Path | None, str]:
    """``modint report``: (table text or None, path written or None, a note for the user).

    html re-writes RUN/report.html (or ``out``) with the samples rebuilt from the manifest's
    benchmark and split when that works, else without thumbnails; md / csv / tex return the
    table, or write it to ``out``. A bad format or run directory raises ValueError (RunError).
    """
    from modint.report.load import load_run, samples_for_run

    if fmt not in ("html", *FORMATS):
        raise ValueError(f"unknown report format {fmt!r} (use html, {', '.join(FORMATS)})")
    if by_task and fmt not in ("md", "csv"):
        raise ValueError("--by-task prints a table: use --format md or csv (the HTML report always has it)")
    run = load_run(run_dir, need_summary=True)
    if fmt == "html":
        from modint.report.html import write_report

        samples = samples_for_run(run.manifest, run.records)
        note = "" if samples else "the samples could not be rebuilt from the manifest: no thumbnails or texts"
        return None, write_report(run.path, samples=samples, path=out), note
    if by_task and not any(row.get("by_task") for row in (run.summary or {}).get("conditions", [])):
        raise ValueError(f"{run.path}: the summary has no per-task figures (records name no task, or the run "
                         f"predates them: its `modint diagnose` command run again with the same --out refreshes "
                         f"summary.json)")
    text = render_table(run.summary or {}, fmt, by_task)
    if out is None:
        return text, None, ""
    target = Path(out)
    target.write_text(text, encoding="utf-8")
    return None, target, ""
