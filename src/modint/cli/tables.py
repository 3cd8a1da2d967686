"""The tables the commands print: a run's summary and its robustness curves."""

from __future__ import annotations

from rich.table import Table


def robustness_table(summary: dict) -> Table:
    from modint.report.format import percent

    table = Table(title="Robustness under PGD on the irrelevant modality")
    for name in ("family", "space", "eps", "unit", "n", "acc %", "attack success %"):
        table.add_column(name, justify="left" if name in ("family", "space", "unit") else "right")
    for curve in summary.get("robustness", []):
        for p in curve["points"]:
            asr = p["attack_success_rate"]
            unit = {"pixel": "/255", "embed": "x RMS"}.get(curve["space"], curve["eps_unit"])
            table.add_row(curve["family"], curve["space"], f"{p['eps']:g}", unit, str(p["n"]),
                          percent(p["accuracy"]), percent(asr))
    return table


def summary_table(summary: dict) -> Table:
    """Family x condition: accuracy with CI, delta with CI, flips, errors."""
    table = Table(title=f"{summary.get('model')} on {summary.get('benchmark')}/{summary.get('split')}")
    for name, justify in [("family", "left"), ("condition", "left"), ("n", "right"), ("acc %", "right"),
                          ("95% CI", "right"), ("delta", "right"), ("delta 95% CI", "right"),
                          ("flips %", "right"), ("harm/benef %", "right"), ("followed %", "right"),
                          ("err", "right")]:
        table.add_column(name, justify=justify)

    from modint.report.format import percent as pct, percent_ci as ci

    for c in summary["conditions"]:
        table.add_row(c["family"], c["condition"], str(c["n"]), pct(c["accuracy"]), ci(c["accuracy_ci95"]),
                      pct(c["delta"], signed=True), ci(c["delta_ci95"]), pct(c["flip_rate"]),
                      f"{pct(c['harmful_flip_rate'])}/{pct(c['beneficial_flip_rate'])}",
                      pct(c.get("followed_distractor_rate")), str(c["errors"]))
    return table
