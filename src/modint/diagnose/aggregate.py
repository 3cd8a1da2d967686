"""Figures over several runs of one recipe (training seeds): mean and standard deviation per
family x condition, from the runs' summaries.

The standard deviation is the sample one (n - 1 in the denominator), the spread a reader expects
from "mean ± sd over 3 seeds"; it is None with fewer than two values. A run that lacks a row
(or whose figure is None) is left out of that row's mean and sd, and ``n_runs`` says how many
runs it has.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from modint.diagnose.metrics import FAMILY_ORDER

AGGREGATED = ("accuracy", "delta")


def mean_sd(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """(mean, sample standard deviation) of the values that are not None; (None, None) if none,
    sd None with a single value."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None, None
    mean = sum(xs) / len(xs)
    if len(xs) < 2:
        return mean, None
    return mean, math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))


def _row_key(row: dict[str, Any]) -> tuple[str, str]:
    return str(row["family"]), str(row["condition"])


def across_runs(summaries: Sequence[dict[str, Any]], figures: Sequence[str] = AGGREGATED) -> list[dict[str, Any]]:
    """One row per (family, condition) of any summary, in the first summary's row order (then the
    order met): ``{"family", "condition", "is_reference", "n_runs", "<figure>_by_run": [per run, None
    where absent], "<figure>_mean", "<figure>_sd"}`` for each of ``figures``."""
    order: dict[tuple[str, str], bool] = {}
    by_run = []
    for summary in summaries:
        rows = {_row_key(r): r for r in summary.get("conditions", [])}
        for key, r in rows.items():
            order[key] = order.get(key, False) or bool(r.get("is_reference"))
        by_run.append(rows)
    families = {f: i for i, f in enumerate(FAMILY_ORDER)}
    keys = sorted(order, key=lambda k: families.get(k[0], len(families)))  # stable: keeps the row order within
    out = []
    for key in keys:
        row: dict[str, Any] = {"family": key[0], "condition": key[1], "is_reference": order[key],
                               "n_runs": sum(key in rows for rows in by_run)}
        for name in figures:
            values = [rows[key].get(name) if key in rows else None for rows in by_run]
            row[f"{name}_by_run"] = values
            row[f"{name}_mean"], row[f"{name}_sd"] = mean_sd(values)
        out.append(row)
    return out


def format_mean_sd(mean: float | None, sd: float | None, signed: bool = False) -> str:
    """Percent points, one decimal: "92.3 ± 1.2", "92.3" (one run), "–" (none)."""
    if mean is None:
        return "–"
    text = f"{100 * mean:+.1f}" if signed else f"{100 * mean:.1f}"
    return text if sd is None else f"{text} ± {100 * sd:.1f}"
