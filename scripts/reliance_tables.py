"""Markdown tables of reliance runs (`modint diagnose --reliance`): per run, the family x condition
means with their paired shift against the reference; the flipped / kept split and harmful-flip
AUROC of chosen measures; and, given two runs, the paired before/after differences.
Usage: python scripts/reliance_tables.py RUN [LATER_RUN]"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from modint.diagnose import rundir
from modint.report.compare_reliance import KINDS, TEST_NAME, reliance_changes
from modint.report.reliance import PANEL_MEASURES, figure, interval

SPLIT_MEASURES = ("attn_image", "attn_context", "knockout_image", "knockout_context", "lens_answer_layer")


def _md(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def run_tables(run: Path) -> str:
    summary = json.loads((run / rundir.SUMMARY).read_text())
    rows = summary.get("reliance") or []
    accuracy = {(c["family"], c["condition"]): c for c in summary["conditions"]}
    means = []
    for r in rows:
        acc = accuracy.get((r["family"], r["condition"]), {})
        cells = [r["family"], r["condition"], str(r["n"]), f"{100 * acc.get('accuracy', 0):.1f}"]
        for m, (_, kind) in PANEL_MEASURES.items():
            fig = r["measures"][m]
            text = figure(fig["mean"], kind)
            if fig.get("shift") is not None:
                text += f" ({figure(fig['shift'], kind, signed=True)})"
            cells.append(text)
        means.append(cells)
    split = []
    for r in rows:
        for m in SPLIT_MEASURES:
            fig, kind = r["measures"][m], KINDS[m]
            if r["is_reference"] or not fig.get("n_paired"):
                continue
            auc = "–" if fig["auroc_harmful"] is None else f"{fig['auroc_harmful']:.2f} {interval(fig['auroc_ci95'], 'layer')}"
            split.append([r["family"], r["condition"], m, interval(fig["shift_ci95"], kind, signed=True),
                          f"{figure(fig['flipped_mean'], kind)} ({fig['n_flipped']})",
                          f"{figure(fig['kept_mean'], kind)} ({fig['n_kept']})", auc,
                          f"{fig['n_harmful']}/{fig['n_at_risk']}"])
    return (f"### {run}\n\n" + _md(["family", "condition", "n", "acc %"] + [t for t, _ in PANEL_MEASURES.values()],
                                   means)
            + "\n\n" + _md(["family", "condition", "measure", "shift 95% CI", "flipped (n)", "kept (n)",
                            "AUROC harmful [95% CI]", "harmful/at risk"], split) + "\n")


def compare_table(first: Path, later: Path) -> str:
    rows = reliance_changes([rundir.read_records(first / rundir.RECORDS), rundir.read_records(later / rundir.RECORDS)])
    body = [[r["family"], r["condition"], r["measure"], str(r["n"]), figure(r["first"], KINDS[r["measure"]]),
             figure(r["later"], KINDS[r["measure"]]), figure(r["diff"], KINDS[r["measure"]], signed=True),
             interval(r["diff_ci95"], KINDS[r["measure"]], signed=True), f"{r['p']:.3g}"] for r in rows]
    return f"### {later} vs {first} ({TEST_NAME})\n\n" + _md(
        ["family", "condition", "measure", "n", "before", "after", "diff", "diff 95% CI", "p"], body) + "\n"


def main() -> None:
    runs = [Path(a) for a in sys.argv[1:]]
    if not 1 <= len(runs) <= 2:
        sys.exit(__doc__)
    for run in runs:
        print(run_tables(run))
    if len(runs) == 2:
        print(compare_table(*runs))


if __name__ == "__main__":
    main()
