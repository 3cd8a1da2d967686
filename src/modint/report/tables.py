"""The family x condition table of a run as Markdown, CSV or LaTeX, for pasting into papers.

Columns: family, condition, n, accuracy with its 95% CI, delta against the family's reference
with its 95% CI (points), flip rate and followed-distractor rate (percent). Reference rows have
no delta; a missing figure is empty (CSV), "–" (Markdown) or "--" (LaTeX).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Callable

from modint.report.safe import latex_escape, spreadsheet_cell

FORMATS = ("md", "csv", "tex")
CSV_HEADER = ("family", "condition", "reference", "n", "accuracy", "accuracy_ci_low", "accuracy_ci_high",
              "delta", "delta_ci_low", "delta_ci_high", "flip_rate", "followed_distractor_rate")


def _p(v: Any, signed: bool = False) -> str | None:
    if v is None:
        return None
    return f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}"


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


def markdown(summary: dict[str, Any]) -> str:
    def cell(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 5) + "|"]
    for row in summary.get("conditions", []):
        lines.append("| " + " | ".join(cell(c) for c in _cells(row, "–", lambda a, b: f" [{a}, {b}]")) + " |")
    return "\n".join(lines) + "\n"


def csv_table(summary: dict[str, Any]) -> str:
    """Numbers in percent (one decimal), CIs in their own columns, empty where missing."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in summary.get("conditions", []):
        alo, ahi = _ci_pair(row.get("accuracy_ci95"))
        dlo, dhi = _ci_pair(row.get("delta_ci95"))
        values = [row.get("family"), row.get("condition"), int(bool(row.get("is_reference"))), row.get("n"),
                  _p(row.get("accuracy")), _p(alo), _p(ahi), _p(row.get("delta"), True), _p(dlo, True),
                  _p(dhi, True), _p(row.get("flip_rate")), _p(row.get("followed_distractor_rate"))]
        writer.writerow(["" if v is None else spreadsheet_cell(v) for v in values])
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


def render_table(summary: dict[str, Any], fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r} (use one of {', '.join(FORMATS)})")
    return {"md": markdown, "csv": csv_table, "tex": latex}[fmt](summary)


def run_report(run_dir: str | Path, fmt: str = "html",
               out: str | Path | None = None) -> tuple[str | None, Path | None, str]:
    """``modint report``: (table text or None, path written or None, a note for the user).

    html re-writes RUN/report.html (or ``out``) with the samples rebuilt from the manifest's
    benchmark and split when that works, else without thumbnails; md / csv / tex return the
    table, or write it to ``out``. A bad format or run directory raises ValueError (RunError).
    """
    from modint.report.load import load_run, samples_for_run

    if fmt not in ("html", *FORMATS):
        raise ValueError(f"unknown report format {fmt!r} (use html, {', '.join(FORMATS)})")
    run = load_run(run_dir, need_summary=True)
    if fmt == "html":
        from modint.report.html import write_report

        samples = samples_for_run(run.manifest, run.records)
        note = "" if samples else "the samples could not be rebuilt from the manifest: no thumbnails or texts"
        return None, write_report(run.path, samples=samples, path=out), note
    text = render_table(run.summary or {}, fmt)
    if out is None:
        return text, None, ""
    target = Path(out)
    target.write_text(text, encoding="utf-8")
    return None, target, ""
