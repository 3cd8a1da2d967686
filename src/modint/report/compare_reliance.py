"""Reliance measures before and after (``modint compare``): for each later run against the first,
per family x condition and measure, the paired difference over the (id, condition) records that
carry the measure in both runs, with a two-sided Wilcoxon signed-rank test (zero differences
dropped, as Wilcoxon's original test does) and a paired-bootstrap 95% CI of the mean difference."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from modint.diagnose.metrics import family_key, paired_bootstrap_ci
from modint.diagnose.reliance_metrics import MEASURES, measure_values
from modint.report.reliance import PANEL_MEASURES, figure, interval
from modint.report.svg import esc
from modint.seeding import derive_seed

TEST_NAME = "Wilcoxon signed-rank (two-sided), paired by (id, condition)"
KINDS = {"attn_other": "share", **{m: kind for m, (_, kind) in PANEL_MEASURES.items()}}


def wilcoxon_p(differences: Sequence[float]) -> float | None:
    """Two-sided Wilcoxon signed-rank p of paired differences; 1.0 when every difference is 0,
    None without pairs."""
    from scipy.stats import wilcoxon

    d = np.asarray(differences, dtype=float)
    if d.size == 0:
        return None
    if not np.any(d != 0):
        return 1.0
    return float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def _values(records: Sequence[dict]) -> dict[tuple[str, str], tuple[str, dict[str, float | None]]]:
    out = {}
    for r in records:
        values = measure_values(r)
        if values:
            out[(str(r.get("id")), str(r.get("condition")))] = (str(r.get("family")), values)
    return out


def reliance_changes(records_per_run: Sequence[Sequence[dict]], n_boot: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """Rows ``{"run": i, "family", "condition", "measure", "n", "first", "later", "diff", "diff_ci95", "p"}``
    for each later run i (1-based index into the runs) against the first; [] when the first run or
    every later one has no reliance measures."""
    first = _values(records_per_run[0])
    rows = []
    for i, records in enumerate(records_per_run[1:], start=1):
        later = _values(records)
        groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for key in sorted(set(first) & set(later)):
            groups.setdefault((first[key][0], key[1]), []).append(key)
        for family, condition in sorted(groups, key=lambda k: (family_key(k[0]), k[1])):
            keys = groups[(family, condition)]
            for measure in MEASURES:
                pairs = [(first[k][1][measure], later[k][1][measure]) for k in keys]
                pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
                if not pairs:
                    continue
                a, b = np.array(pairs).T
                rows.append({"run": i, "family": family, "condition": condition, "measure": measure, "n": len(pairs),
                             "first": float(a.mean()), "later": float(b.mean()), "diff": float((b - a).mean()),
                             "diff_ci95": list(paired_bootstrap_ci(a, b, n_boot,
                                                                   derive_seed("reliance-compare", seed, i, family,
                                                                               condition, measure))),
                             "p": wilcoxon_p(b - a)})
    return rows


def _cells(row: dict[str, Any]) -> list[str]:
    kind = KINDS.get(row["measure"], "layer")
    p = "" if row["p"] is None else f"{row['p']:.3g}" + (" *" if row["p"] < 0.05 else "")
    return [row["family"], row["condition"], row["measure"], str(row["n"]), figure(row["first"], kind),
            figure(row["later"], kind), figure(row["diff"], kind, signed=True),
            interval(row["diff_ci95"], kind, signed=True), p]


HEADERS = ["family", "condition", "measure", "n", "first", "later", "diff", "diff 95% CI", "p"]


def reliance_table(rows: Sequence[dict[str, Any]], labels: Sequence[str]) -> Any:
    """A rich table per later run (returned as a list of tables)."""
    from rich.table import Table

    tables = []
    for i in sorted({r["run"] for r in rows}):
        table = Table(title=f"Reliance, {labels[i]} vs {labels[0]}: {TEST_NAME}; * p < 0.05")
        for j, h in enumerate(HEADERS):
            table.add_column(h, justify="left" if j < 3 else "right")
        for r in rows:
            if r["run"] == i:
                table.add_row(*_cells(r))
        tables.append(table)
    return tables


def reliance_html(rows: Sequence[dict[str, Any]], labels: Sequence[str]) -> str:
    """The comparison page's reliance section body ("" without rows)."""
    if not rows:
        return ""
    parts = [f'<p class="muted">Measures as in a run\'s reliance panel (attention shares in %, knockouts as '
             f'Δlog p of the gold option, lens layers). Paired test: {esc(TEST_NAME)}; the CI is a paired '
             f'bootstrap of the mean difference (later minus first); * marks p &lt; 0.05, not corrected for the '
             f'number of measures.</p>']
    for i in sorted({r["run"] for r in rows}):
        head = "".join(f"<th{' class=l' if j < 3 else ''}>{esc(h)}</th>" for j, h in enumerate(HEADERS))
        body = "".join("<tr>" + "".join(f"<td{' class=l' if j < 3 else ''}>{esc(c)}</td>"
                                        for j, c in enumerate(_cells(r))) + "</tr>" for r in rows if r["run"] == i)
        parts.append(f"<h3>{esc(labels[i])} vs {esc(labels[0])}</h3><div class=\"scroll\"><table class=\"data\">"
                     f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")
    return "".join(parts)
