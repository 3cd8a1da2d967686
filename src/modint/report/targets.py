"""The mitigation targets, checked for a base run against several mitigated runs (one per
training seed), all diagnosed on the same split at the same diagnosis seed.

Per family x condition: the base accuracy, the mitigated runs' mean ± sd (sample sd, n - 1), and
per run its paired change against the base with the exact McNemar p (``compare``'s test, on the
(id, condition) records both runs have without error).

Gap of a condition: its family's reference accuracy minus its accuracy, in the same run
(misleading-text gap = image-heavy clean - misleading_text; switched gap = text-heavy
noise_image - switched_image). Reduction of run i: 1 - gap_i / gap_base. Its mean over runs
equals the reduction of the mean gap (the reduction is linear in gap_i). A target is met when the
MEAN reduction reaches it, and a reference is "within tolerance" when its MEAN change against the
base is >= -tolerance. Without a base gap (gap_base <= 0) there is no reduction and the target is
missed.
"""

from __future__ import annotations

from typing import Any, Sequence

from modint.diagnose.aggregate import format_mean_sd, mean_sd
from modint.report.compare import Comparison, Paired
from modint.report.html import references

# Issue 24's targets (demo model, mean of 3 seeds): relative gap reductions, and the references
# within one point of the base.
GAP_TARGETS: dict[tuple[str, str], float] = {("image_heavy", "misleading_text"): 0.70,
                                              ("text_heavy", "switched_image"): 0.40}
REFERENCE_TOLERANCE = 0.01


def _paired(p: Paired | None) -> dict[str, Any] | None:
    if p is None or not p.n:
        return None
    return {"n": p.n, "b": p.b, "c": p.c, "delta": p.delta, "mcnemar_p": p.p}


def mitigation_targets(cmp: Comparison, gap_targets: dict[tuple[str, str], float] | None = None,
                       tolerance: float = REFERENCE_TOLERANCE) -> dict[str, Any]:
    """The figures of the module docstring as a JSON-ready dict: ``conditions`` (every family x
    condition), ``gaps`` (every non-reference condition whose family has its reference; ``target``
    None where none is set), ``references`` and ``passed`` (every set target and reference).
    Run 0 of ``cmp`` is the base; runs 1.. are the mitigated ones. Accuracies are fractions."""
    if len(cmp.runs) < 2:
        raise ValueError("the targets need a base run and at least one mitigated run")
    targets = GAP_TARGETS if gap_targets is None else gap_targets
    base = cmp.runs[0]
    refs = references(base.summary, base.manifest)
    later = range(1, len(cmp.runs))
    acc = {key: [cmp.accuracy(key, i) for i in range(len(cmp.runs))] for key in cmp.keys}
    conditions = []
    for key in cmp.keys:
        values = acc[key][1:]
        changes = [None if v is None or acc[key][0] is None else v - acc[key][0] for v in values]
        mean, sd = mean_sd(values)
        change_mean, change_sd = mean_sd(changes)
        conditions.append({"family": key[0], "condition": key[1], "is_reference": refs.get(key[0]) == key[1],
                           "base": acc[key][0], "runs": values, "mean": mean, "sd": sd, "changes": changes,
                           "change_mean": change_mean, "change_sd": change_sd,
                           "paired": [_paired(cmp.per_key[i - 1].get(key)) for i in later]})
    gaps = []
    for key in cmp.keys:
        ref_key = (key[0], refs.get(key[0]))
        if key == ref_key or ref_key not in acc:
            continue

        def gap(i: int) -> float | None:
            a, r = acc[key][i], acc[ref_key][i]
            return None if a is None or r is None else r - a

        base_gap = gap(0)
        run_gaps = [gap(i) for i in later]
        reductions = [None if g is None or base_gap is None or base_gap <= 0 else 1 - g / base_gap for g in run_gaps]
        red_mean, red_sd = mean_sd(reductions)
        target = targets.get(key)
        gaps.append({"family": key[0], "condition": key[1], "reference": ref_key[1], "base_gap": base_gap,
                     "gaps": run_gaps, "gap_mean": mean_sd(run_gaps)[0], "gap_sd": mean_sd(run_gaps)[1],
                     "reductions": reductions, "reduction_mean": red_mean, "reduction_sd": red_sd,
                     "target": target,
                     "passed": None if target is None else red_mean is not None and red_mean >= target - 1e-12})
    checked = [c for c in conditions if c["is_reference"]]
    refs_out = [{"family": c["family"], "condition": c["condition"], "base": c["base"], "changes": c["changes"],
                 "change_mean": c["change_mean"], "change_sd": c["change_sd"], "tolerance": tolerance,
                 "passed": c["change_mean"] is not None and c["change_mean"] >= -tolerance - 1e-12} for c in checked]
    verdicts = [g["passed"] for g in gaps if g["passed"] is not None] + [r["passed"] for r in refs_out]
    missing = [f"{f} {c}" for f, c in targets if not any((g["family"], g["condition"]) == (f, c) for g in gaps)]
    return {"base": str(base.path), "runs": [str(cmp.runs[i].path) for i in later], "conditions": conditions,
            "gaps": gaps, "references": refs_out, "missing_targets": missing,
            "passed": bool(verdicts) and all(verdicts) and not missing}


def _points(v: float | None, signed: bool = False) -> str:
    return "–" if v is None else (f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}")


def targets_tables(result: dict[str, Any], labels: Sequence[str]) -> list:
    """Rich tables (accuracy, gaps, references) and a closing verdict line, for the CLI to print.
    ``labels``: the runs' labels, the base's first."""
    from rich.table import Table

    n = len(result["runs"])
    acc = Table(title=f"accuracy %: base and the mean ± sd of {n} mitigated run(s); per run its paired change "
                      f"against the base (points) and exact McNemar p (* p < 0.05)")
    for name in ("family", "condition", f"{labels[0]} (base)", "mitigated mean ± sd", "change"):
        acc.add_column(name, justify="left" if name in ("family", "condition") else "right")
    for label in labels[1:]:
        acc.add_column(label, justify="right")
    for c in result["conditions"]:
        per_run = ["–" if p is None else f"{100 * p['delta']:+.1f} p={p['mcnemar_p']:.3g}"
                   + (" *" if p["mcnemar_p"] < 0.05 else "") for p in c["paired"]]
        acc.add_row(c["family"], c["condition"] + (" (ref.)" if c["is_reference"] else ""), _points(c["base"]),
                    format_mean_sd(c["mean"], c["sd"]), format_mean_sd(c["change_mean"], c["change_sd"], True),
                    *per_run)
    gaps = Table(title="gaps (reference - condition, points) and their reduction (1 - gap / base gap)")
    for name in ("family", "condition", "base gap", "gap mean ± sd", "reduction mean ± sd", "per run", "target", ""):
        gaps.add_column(name, justify="left" if name in ("family", "condition", "") else "right")
    for g in result["gaps"]:
        per_run = " ".join("–" if r is None else f"{100 * r:.0f}%" for r in g["reductions"])
        mean, sd = g["reduction_mean"], g["reduction_sd"]
        reduction = "–" if mean is None else f"{100 * mean:.1f}%" + ("" if sd is None else f" ± {100 * sd:.1f}")
        target = "" if g["target"] is None else f">= {100 * g['target']:.0f}%"
        verdict = "" if g["passed"] is None else ("PASS" if g["passed"] else "FAIL")
        gaps.add_row(g["family"], g["condition"], _points(g["base_gap"]), format_mean_sd(g["gap_mean"], g["gap_sd"]),
                     reduction, per_run, target, verdict)
    refs = Table(title="references: change against the base (points), mean ± sd and per run")
    for name in ("family", "condition", "base", "change mean ± sd", "per run", "within", ""):
        refs.add_column(name, justify="left" if name in ("family", "condition", "") else "right")
    for r in result["references"]:
        refs.add_row(r["family"], r["condition"], _points(r["base"]),
                     format_mean_sd(r["change_mean"], r["change_sd"], True),
                     " ".join(_points(v, True) for v in r["changes"]), f"-{100 * r['tolerance']:g} pt",
                     "PASS" if r["passed"] else "FAIL")
    failed = [f"{g['family']} {g['condition']} gap" for g in result["gaps"] if g["passed"] is False]
    failed += [f"{r['family']} {r['condition']}" for r in result["references"] if not r["passed"]]
    failed += [f"{m} (no such rows)" for m in result["missing_targets"]]
    verdict = "all targets met" if result["passed"] else "targets missed: " + ", ".join(failed)
    return [acc, gaps, refs, verdict]


__all__ = ["GAP_TARGETS", "REFERENCE_TOLERANCE", "mitigation_targets", "targets_tables"]


Check = tuple[str, bool, str]


def demo_model_checks(summary: dict) -> list[Check]:
    """(target, passed, figure) per target of the demo model's diagnosis: reference accuracy
    >= 90% image-heavy, >= 85% text-heavy, >= 75% VQA; misleading_text lowers image-heavy accuracy
    by >= 20 points and more than unrelated_text; switched_image lowers text-heavy accuracy by >= 5
    points and more than black_image and white_image. Figures in points."""
    rows = {(c["family"], c["condition"]): c for c in summary["conditions"]}

    def acc(family: str, condition: str) -> float:
        return rows[(family, condition)]["accuracy"]

    def delta(family: str, condition: str) -> float:
        return rows[(family, condition)]["delta"]

    blank = min(delta("text_heavy", "black_image"), delta("text_heavy", "white_image"))
    checks = [
        ("image-heavy clean >= 90%", acc("image_heavy", "clean") >= 0.90, acc("image_heavy", "clean")),
        ("text-heavy noise_image >= 85%", acc("text_heavy", "noise_image") >= 0.85, acc("text_heavy", "noise_image")),
        ("VQA clean >= 75%", acc("vqa", "clean") >= 0.75, acc("vqa", "clean")),
        ("misleading_text delta <= -20 pts", delta("image_heavy", "misleading_text") <= -0.20,
         delta("image_heavy", "misleading_text")),
        ("misleading_text hurts more than unrelated_text",
         delta("image_heavy", "misleading_text") < delta("image_heavy", "unrelated_text"),
         delta("image_heavy", "unrelated_text")),
        ("switched_image delta <= -5 pts", delta("text_heavy", "switched_image") <= -0.05,
         delta("text_heavy", "switched_image")),
        ("switched_image hurts more than black and white", delta("text_heavy", "switched_image") < blank, blank),
    ]
    return [(name, ok, f"{100 * value:+.1f}") for name, ok, value in checks]
