"""Aggregates of the per-record reliance measures (``modint.diagnose.reliance``).

Per family x condition and per measure: the mean with a bootstrap CI; the paired shift against
the family's reference condition (mean of condition minus reference over the samples measured
under both, paired-bootstrap CI); the measure's mean over flipped and over kept samples (the
prediction differs from / equals the reference's); and how well the measure, read under the
condition, separates the samples that flip harmfully (right under the reference, wrong under
the condition) from those that stay right: the AUROC (Mann-Whitney, ties count half) with a
bootstrap CI. An AUROC below 0.5 means harmful flips go with LOW values of the measure.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np

from modint.diagnose.metrics import family_key, paired_bootstrap_ci
from modint.seeding import derive_seed

MEASURES: dict[str, Callable[[dict], Any]] = {
    "attn_image": lambda m: m["attention"]["image"],
    "attn_context": lambda m: m["attention"]["context"],
    "attn_question": lambda m: m["attention"]["question"],
    "attn_other": lambda m: m["attention"]["other"],
    "knockout_image": lambda m: m["knockout_image"],
    "knockout_context": lambda m: m["knockout_context"],
    "lens_answer_layer": lambda m: m["lens_answer_layer"],
    "lens_overtake_layer": lambda m: m["lens_overtake_layer"],
}
MEASURE_HELP = {
    "attn_image": "attention mass of the answer position on the image tokens (mean over layers and heads)",
    "attn_context": "attention mass on the added context text",
    "attn_question": "attention mass on the question and its options",
    "attn_other": "attention mass on the rest (system prompt, template)",
    "knockout_image": "gold option's log-probability with the image tokens masked out, minus the full input's",
    "knockout_context": "the same with the context text masked out",
    "lens_answer_layer": "logit lens: first layer from which the final answer stays the top option",
    "lens_overtake_layer": "logit lens: first layer from which the named distractor stays above the gold option",
}


def measure_values(record: dict) -> dict[str, float | None]:
    """The record's scalar reliance measures (None where a measure does not apply); {} for a
    record without reliance measures or with an error."""
    rel = record.get("reliance")
    if not rel or record.get("error"):
        return {}
    values = {}
    for name, read in MEASURES.items():
        value = read(rel)
        values[name] = None if value is None else float(value)
    return values


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """P(score of a positive > score of a negative), ties counting half; None without both classes."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def auroc_ci(scores: Sequence[float], labels: Sequence[bool], n_boot: int, seed: int) -> tuple[float | None, float | None]:
    """95% percentile bootstrap CI of the AUROC (samples resampled; draws with one class only are skipped)."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    if s.size == 0 or y.all() or not y.any():
        return (None, None)
    rng = np.random.default_rng(seed)
    values = []
    for idx in rng.integers(0, s.size, size=(n_boot, s.size)):
        value = auroc(s[idx], y[idx])
        if value is not None:
            values.append(value)
    if not values:
        return (None, None)
    lo, hi = np.percentile(values, [2.5, 97.5])
    return (float(lo), float(hi))


def mean_ci(values: Sequence[float], n_boot: int, seed: int) -> tuple[float | None, float | None]:
    """95% percentile bootstrap CI of a mean."""
    return paired_bootstrap_ci([0.0] * len(values), values, n_boot, seed)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _measure_row(name: str, cond: dict[str, dict], ref: dict[str, dict] | None, n_boot: int,
                 seed: int) -> dict[str, Any]:
    """Figures of one measure over one condition's records (id -> record), paired with ``ref``."""
    own = {i: measure_values(r).get(name) for i, r in cond.items()}
    own = {i: v for i, v in own.items() if v is not None}
    ordered = [own[i] for i in sorted(own)]
    row: dict[str, Any] = {"n": len(ordered), "mean": _mean(ordered),
                           "ci95": list(mean_ci(ordered, n_boot, seed)) if ordered else [None, None]}
    if ref is None:
        return row
    theirs = {i: measure_values(r).get(name) for i, r in ref.items()}
    ids = sorted(i for i in own if theirs.get(i) is not None)
    before, after = [theirs[i] for i in ids], [own[i] for i in ids]
    row.update({"n_paired": len(ids), "shift": _mean([a - b for a, b in zip(after, before)]),
                "shift_ci95": list(paired_bootstrap_ci(before, after, n_boot, seed)) if ids else [None, None]})
    both = [i for i in sorted(own) if i in ref and ref[i].get("pred") is not None and cond[i].get("pred") is not None]
    flipped = [own[i] for i in both if cond[i]["pred"] != ref[i]["pred"]]
    kept = [own[i] for i in both if cond[i]["pred"] == ref[i]["pred"]]
    at_risk = [i for i in both if ref[i].get("correct")]
    labels = [not cond[i].get("correct") for i in at_risk]
    scores = [own[i] for i in at_risk]
    row.update({"n_flipped": len(flipped), "flipped_mean": _mean(flipped), "n_kept": len(kept), "kept_mean": _mean(kept),
                "n_at_risk": len(at_risk), "n_harmful": int(sum(labels)), "auroc_harmful": auroc(scores, labels),
                "auroc_ci95": list(auroc_ci(scores, labels, n_boot, seed))})
    return row


def reliance_summary(records: Iterable[dict], reference: dict[str, str], n_boot: int = 2000,
                     seed: int = 0) -> list[dict[str, Any]]:
    """One row per (family, condition) with reliance measures: ``{"family", "condition",
    "reference", "is_reference", "n", "measures": {name: figures}}``; paired figures (shift,
    flipped / kept, AUROC) only on non-reference rows whose reference was run."""
    table: dict[tuple[str, str], dict[str, dict]] = {}
    for r in records:
        if measure_values(r):
            table.setdefault((str(r["family"]), str(r["condition"])), {})[str(r["id"])] = r
    rows = []
    for family, condition in sorted(table, key=lambda k: (family_key(k[0]), k[1] != reference.get(k[0]), k[1])):
        ref_name = reference.get(family)
        is_ref = condition == ref_name
        ref = None if is_ref else table.get((family, ref_name))
        cond = table[(family, condition)]
        measures = {name: _measure_row(name, cond, ref, n_boot, derive_seed("reliance", seed, family, condition, name))
                    for name in MEASURES}
        rows.append({"family": family, "condition": condition, "reference": ref_name, "is_reference": is_ref,
                     "n": len(cond), "measures": measures})
    return rows
