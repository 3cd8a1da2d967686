"""The multimodal gain / leakage table (MMStar's MG and ML; see modint.diagnose.mmstar) as
Markdown and HTML. Accuracies in percent, MG and ML in points."""

from __future__ import annotations

from typing import Any

from modint.report.format import percent
from modint.report.svg import esc

HEADERS = ("family", "task", "n", "with image %", "without image %", "MG pts", "text model %", "ML pts")


def gain_rows(summary: dict[str, Any]) -> list[list[str]]:
    """One row per family (task "all") and per family and task, leakage joined in where known."""
    leak = {(r["family"], r["task"]): r for r in summary.get("multimodal_leakage") or []}
    rows = []
    for g in summary.get("multimodal_gain") or []:
        ml = leak.get((g["family"], g["task"]))
        rows.append([str(g["family"]), "all" if g["task"] is None else str(g["task"]), str(g["n"]),
                     percent(g["accuracy_with_image"]) + f" ({g['with_image']})", percent(g["accuracy_without_image"]),
                     percent(g["multimodal_gain"], True), percent(ml["text_model_accuracy"]) if ml else "–",
                     percent(ml["multimodal_leakage"], True) if ml else "–"])
    return rows


def gain_markdown(summary: dict[str, Any]) -> str:
    """The table under a heading, or "" when the run has no no_image records to compare."""
    rows = gain_rows(summary)
    if not rows:
        return ""
    model = f" (text model: {summary['text_model']})" if summary.get("text_model") else ""

    def cell(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    lines = [f"\nMultimodal gain (MG = with image - without) and leakage (ML = max(0, without image - text "
             f"model)){model}\n", "| " + " | ".join(HEADERS) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 6) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def gain_html(summary: dict[str, Any]) -> str:
    rows = gain_rows(summary)
    if not rows:
        return ""
    head = "".join(f"<th{' class=l' if i < 2 else ''}>{esc(h)}</th>" for i, h in enumerate(HEADERS))
    body = "".join("<tr>" + "".join(f"<td{' class=l' if i < 2 else ''}>{esc(c)}</td>" for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    model = f" The text model is <b>{esc(summary['text_model'])}</b>." if summary.get("text_model") else (
        " Pass --text-model (the LLM base, run text only) for the leakage.")
    return ('<p class="muted">As MMStar defines them: MG = accuracy with the image minus without it (same model); '
            f"ML = max(0, accuracy without the image minus the text model's), on the same samples.{model}</p>"
            f'<div class="scroll"><table class="data"><tr>{head}</tr>{body}</table></div>')
