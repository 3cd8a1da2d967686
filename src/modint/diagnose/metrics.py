"""Metrics over diagnosis records: accuracy with Wilson CIs, paired comparisons against each
family's reference condition (delta with a seeded paired-bootstrap CI, flips, exact McNemar,
Jensen-Shannon divergence, gold-probability shift), followed-distractor rate, worst case.

Pure functions of the records (numpy + scipy, no torch); results do not depend on record order.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np
from scipy.stats import binom

from modint.seeding import derive_seed

Z95 = 1.959963984540054
FAMILY_ORDER = ("image_heavy", "text_heavy", "vqa")


def wilson_ci(k: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """Wilson score interval for k successes out of n (good near 0 and 1, unlike the normal one)."""
    if n == 0:
        return (None, None)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def paired_bootstrap_ci(ref: Sequence[float], cond: Sequence[float], n_boot: int = 2000,
                        seed: int = 0) -> tuple[float | None, float | None]:
    """95% percentile CI of mean(cond - ref), resampling the paired samples jointly."""
    diff = np.asarray(cond, dtype=float) - np.asarray(ref, dtype=float)
    if diff.size == 0:
        return (None, None)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, diff.size, size=(n_boot, diff.size))
    means = diff[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return (float(lo), float(hi))


def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar test on the discordant counts (b: ref right / cond wrong,
    c: ref wrong / cond right)."""
    n = b + c
    if n == 0:
        return 1.0
    return float(min(1.0, 2 * binom.cdf(min(b, c), n, 0.5)))


def _entropy_bits(p: np.ndarray) -> float:
    nz = p[p > 0]
    return float(-(nz * np.log2(nz)).sum())


def js_divergence(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon divergence in bits (0 = same distribution, 1 = disjoint)."""
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    return max(0.0, _entropy_bits(m) - (_entropy_bits(p) + _entropy_bits(q)) / 2)


def _family_key(family: str) -> tuple[int, str]:
    return (FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER), family)


def _index(records: Iterable[dict]) -> dict[tuple[str, str], dict[str, dict]]:
    """(family, condition) -> id -> record; a repeated (id, condition) is an error."""
    table: dict[tuple[str, str], dict[str, dict]] = {}
    seen: set[tuple[str, str]] = set()
    for r in records:
        key = (r["id"], r["condition"])
        if key in seen:
            raise ValueError(f"duplicate record for sample {r['id']!r} under condition {r['condition']!r}")
        seen.add(key)
        table.setdefault((r["family"], r["condition"]), {})[r["id"]] = r
    return table


def _paired(ref: dict[str, dict], cond: dict[str, dict], family: str, condition: str, n_boot: int,
            seed: int) -> dict[str, Any]:
    ids = sorted(i for i in cond if i in ref and not cond[i]["error"] and not ref[i]["error"])
    none = {"delta": None, "delta_ci95": [None, None], "flip_rate": None, "harmful_flip_rate": None,
            "beneficial_flip_rate": None, "mcnemar_p": None, "js_mean": None, "gold_prob_shift": None, "paired_n": 0}
    if not ids:
        return none
    a = np.array([bool(ref[i]["correct"]) for i in ids], dtype=float)
    b = np.array([bool(cond[i]["correct"]) for i in ids], dtype=float)
    harmful = int(((a == 1) & (b == 0)).sum())
    beneficial = int(((a == 0) & (b == 1)).sum())
    flips = sum(ref[i]["pred"] != cond[i]["pred"] for i in ids)
    lo, hi = paired_bootstrap_ci(a, b, n_boot, derive_seed("bootstrap", seed, family, condition))
    js, shift = [], []
    for i in ids:
        p, q = ref[i].get("probs"), cond[i].get("probs")
        if p is not None and q is not None and len(p) == len(q):
            js.append(js_divergence(p, q))
            gold = cond[i]["gold"]
            shift.append(q[gold] - p[gold])
    n = len(ids)
    return {"delta": float(b.mean() - a.mean()), "delta_ci95": [lo, hi], "flip_rate": flips / n,
            "harmful_flip_rate": harmful / n, "beneficial_flip_rate": beneficial / n,
            "mcnemar_p": mcnemar_exact_p(harmful, beneficial),
            "js_mean": float(np.mean(js)) if js else None, "gold_prob_shift": float(np.mean(shift)) if shift else None,
            "paired_n": n}


def summarize(records: Iterable[dict], reference: dict[str, str], n_boot: int = 2000, seed: int = 0,
              condition_order: Sequence[str] = ()) -> dict[str, Any]:
    """``{"conditions": [...], "families": [...]}`` as in DESIGN section 3.

    Paired figures compare each condition with its family's reference condition on the samples
    that ran under both; on the reference row itself they are None.
    """
    table = _index(records)
    families = sorted({f for f, _ in table}, key=_family_key)
    rows: list[dict[str, Any]] = []
    family_rows: list[dict[str, Any]] = []
    for family in families:
        ref_name = reference.get(family)
        rank = {c: i for i, c in enumerate(condition_order)}
        names = sorted((c for f, c in table if f == family),
                       key=lambda c: (c != ref_name, rank.get(c, len(rank)), c))
        ref = table.get((family, ref_name), {})
        for name in names:
            recs = table[(family, name)]
            ok = [r for r in recs.values() if not r["error"]]
            k = sum(bool(r["correct"]) for r in ok)
            lo, hi = wilson_ci(k, len(ok))
            with_distractor = [r for r in ok if r.get("distractor") is not None]
            is_ref = name == ref_name
            row = {"family": family, "condition": name, "is_reference": is_ref, "reference": ref_name,
                   "n": len(ok), "accuracy": k / len(ok) if ok else None, "accuracy_ci95": [lo, hi]}
            row.update(_paired(ref, recs, family, name, n_boot, seed) if ref and not is_ref else
                       {**_paired({}, {}, family, name, n_boot, seed)})
            row["followed_distractor_rate"] = (sum(r["pred"] == r["distractor"] for r in with_distractor)
                                               / len(with_distractor)) if with_distractor else None
            row["unparsed"] = sum(r["pred"] is None for r in ok)
            row["errors"] = len(recs) - len(ok)
            rows.append(row)
        # Worst case: a sample counts only if it is right under every condition of its family.
        per_id: dict[str, list[bool]] = {}
        complete = set.intersection(*({i for i, r in table[(family, c)].items() if not r["error"]} for c in names))
        for c in names:
            for i in complete:
                per_id.setdefault(i, []).append(bool(table[(family, c)][i]["correct"]))
        k = sum(all(v) for v in per_id.values())
        lo, hi = wilson_ci(k, len(per_id))
        family_rows.append({"family": family, "reference": ref_name, "conditions": names,
                            "n_samples": len(complete), "worst_case_accuracy": k / len(per_id) if per_id else None,
                            "worst_case_ci95": [lo, hi]})
    return {"conditions": rows, "families": family_rows}
