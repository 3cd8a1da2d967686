"""A single self-contained report.html per run directory (no network, all text escaped)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from modint.diagnose import rundir

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.neg{color:#b00020}.pos{color:#1b7f3b}
.bar{display:inline-block;height:.8rem;background:#4c78a8;vertical-align:middle}
"""


def _fmt(value: Any, pct: bool = True, signed: bool = False) -> str:
    if value is None:
        return "–"
    if pct:
        return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"
    return f"{value:.3g}"


def _ci(pair: list | None) -> str:
    if not pair or pair[0] is None:
        return ""
    return f"[{100 * pair[0]:.1f}, {100 * pair[1]:.1f}]"


def render_report(summary: dict[str, Any], manifest: dict[str, Any] | None = None) -> str:
    esc = html.escape
    rows = []
    for c in summary.get("conditions", []):
        delta = c.get("delta")
        cls = "neg" if (delta or 0) < -1e-12 else ("pos" if (delta or 0) > 1e-12 else "")
        width = int(round(100 * (c.get("accuracy") or 0)))
        rows.append(
            "<tr>" + "".join([
                f"<td class=l>{esc(str(c['family']))}</td>", f"<td class=l>{esc(str(c['condition']))}</td>",
                f"<td>{c['n']}</td>",
                f"<td>{_fmt(c.get('accuracy'))} <span class=bar style='width:{width}px'></span></td>",
                f"<td>{_ci(c.get('accuracy_ci95'))}</td>",
                f"<td class={cls}>{_fmt(delta, signed=True)}</td>", f"<td>{_ci(c.get('delta_ci95'))}</td>",
                f"<td>{_fmt(c.get('flip_rate'))}</td>", f"<td>{_fmt(c.get('harmful_flip_rate'))}</td>",
                f"<td>{_fmt(c.get('beneficial_flip_rate'))}</td>", f"<td>{_fmt(c.get('mcnemar_p'), pct=False)}</td>",
                f"<td>{_fmt(c.get('js_mean'), pct=False)}</td>", f"<td>{_fmt(c.get('followed_distractor_rate'))}</td>",
                f"<td>{c.get('errors', 0)}</td>"]) + "</tr>")
    head = ("<tr><th class=l>family</th><th class=l>condition</th><th>n</th><th>accuracy %</th><th>95% CI</th>"
            "<th>delta pts</th><th>delta 95% CI</th><th>flips %</th><th>harmful %</th><th>beneficial %</th>"
            "<th>McNemar p</th><th>JS</th><th>followed distractor %</th><th>errors</th></tr>")
    fam_rows = "".join(
        f"<tr><td class=l>{esc(str(f['family']))}</td><td>{f.get('n_worst_case')}</td>"
        f"<td>{_fmt(f.get('worst_case_accuracy'))}</td></tr>" for f in summary.get("families", []))
    meta = esc(json.dumps(manifest or {}, indent=2))
    title = f"modint diagnosis: {summary.get('model')} on {summary.get('benchmark')}"
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{esc(title)}</title><style>{_CSS}</style>"
            f"</head><body><h1>{esc(title)}</h1>"
            f"<p>Split {esc(str(summary.get('split')))}, scoring {esc(str(summary.get('scoring')))}, seed "
            f"{esc(str(summary.get('seed')))}. Deltas and flips compare each condition with its family's "
            f"reference condition on the same samples.</p>"
            f"<table>{head}{''.join(rows)}</table>"
            f"<h2>Worst case per family</h2><table><tr><th class=l>family</th><th>samples</th>"
            f"<th>correct under every condition %</th></tr>{fam_rows}</table>"
            f"<h2>Manifest</h2><pre>{meta}</pre></body></html>")


def write_report(run_dir: str | Path) -> Path:
    run = Path(run_dir)
    summary = json.loads((run / rundir.SUMMARY).read_text(encoding="utf-8"))
    manifest_path = run / rundir.MANIFEST
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else None
    path = run / rundir.REPORT
    path.write_text(render_report(summary, manifest), encoding="utf-8")
    return path
