"""Metrics over diagnosis records: accuracy with Wilson CIs, paired comparisons against each
family's reference condition (delta with a seeded paired-bootstrap CI, flips, exact McNemar,
Jensen-Shannon divergence, gold-probability shift), followed-distractor rate, worst case.

Pure functions of the records (numpy + scipy, no torch); results do not depend on record order,
and every number is a plain Python int/float/None so the summary goes straight to json.dumps.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np
from scipy.stats import binom

from modint.seeding import derive_seed

Z95 = 1.959963984540054
FAMILY_ORDER = ("image_heavy", "text_heavy", "vqa")
PAIRED_KEYS = ("delta", "delta_ci95", "flip_rate", "harmful_flip_rate", "beneficial_flip_rate",
               "mcnemar_p", "js_mean", "gold_prob_shift")


def wilson_ci(k: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """Wilson score interval for k successes out of n (sane near 0 and 1, unlike the normal one)."""
    if n == 0:
        return (None, None)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Clamp: at k = 0 or k = n the bound is 0 or 1 analytically but may miss by rounding.
    return (max(0.0, centre - half), min(1.0, centre + half))


BOOTSTRAP_BLOCK = 1 << 20  # indices per block of bootstrap resamples


def paired_bootstrap_ci(ref_correct: Sequence[float], cond_correct: Sequence[float], n_boot: int = 2000,
                        seed: int = 0) -> tuple[float | None, float | None]:
    """95% percentile CI of mean(cond - ref); samples are resampled jointly to keep the pairing."""
    diff = np.asarray(cond_correct, dtype=float) - np.asarray(ref_correct, dtype=float)
    if diff.size == 0:
        return (None, None)
    rng = np.random.default_rng(seed)
    # Resamples drawn in blocks of about a million indices, so memory stays flat in the sample
    # count; the draws (and so the CI) are those of one (n_boot, n) block.
    rows = max(1, BOOTSTRAP_BLOCK // diff.size)
    means = np.concatenate([diff[rng.integers(0, diff.size, size=(min(rows, n_boot - start), diff.size))].mean(axis=1)
                            for start in range(0, n_boot, rows)])
    lo, hi = np.percentile(means, [2.5, 97.5])
    return (float(lo), float(hi))


def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p on the discordant counts (b: ref right / cond wrong,
    c: ref wrong / cond right); exact because discordant counts are often tiny."""
    if b + c == 0:
        return 1.0
    return float(min(1.0, 2 * binom.cdf(min(b, c), b + c, 0.5)))


def _entropy_bits(p: np.ndarray) -> float:
    nz = p[p > 0]  # 0 * log 0 = 0
    return float(-(nz * np.log2(nz)).sum())


def js_divergence(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon divergence in bits: 0 for equal distributions, 1 for disjoint ones."""
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    p, q = p / p.sum(), q / q.sum()
    js = _entropy_bits((p + q) / 2) - (_entropy_bits(p) + _entropy_bits(q)) / 2
    return min(1.0, max(0.0, js))  # clamp rounding noise to the true range


def family_key(family: str) -> tuple[int, str]:
    """Sort key of a family: FAMILY_ORDER first, then any other family alphabetically."""
    return (FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER), family)


def _index(records: Iterable[dict]) -> dict[tuple[str, str], dict[str, dict]]:
    """(family, condition) -> id -> record; a repeated (id, condition) is an error, not an overwrite."""
    table: dict[tuple[str, str], dict[str, dict]] = {}
    seen: set[tuple[str, str]] = set()
    for r in records:
        key = (str(r["id"]), str(r["condition"]))
        if key in seen:
            raise ValueError(f"duplicate record for sample {key[0]!r} under condition {key[1]!r}")
        seen.add(key)
        table.setdefault((str(r["family"]), key[1]), {})[key[0]] = r
    return table


def _ok(recs: dict[str, dict]) -> dict[str, dict]:
    return {i: r for i, r in recs.items() if not r.get("error")}


def _pred(r: dict) -> int | None:
    return None if r.get("pred") is None else int(r["pred"])


def _paired(ref: dict[str, dict], cond: dict[str, dict], n_boot: int, seed: int) -> dict[str, Any]:
    """Paired figures over the ids with a non-error record under both ref and cond."""
    ids = sorted(set(ref) & set(cond))  # sorted: arrays (and so the bootstrap) ignore record order
    if not ids:
        return {k: [None, None] if k == "delta_ci95" else None for k in PAIRED_KEYS}
    a = np.array([bool(ref[i]["correct"]) for i in ids], dtype=float)
    b = np.array([bool(cond[i]["correct"]) for i in ids], dtype=float)
    harmful = int(((a == 1) & (b == 0)).sum())
    beneficial = int(((a == 0) & (b == 1)).sum())
    flips = sum(_pred(ref[i]) != _pred(cond[i]) for i in ids)  # None is a value of its own
    js, shift = [], []
    for i in ids:
        p, q = ref[i].get("probs"), cond[i].get("probs")
        if p is None or q is None or len(p) != len(q):
            continue
        js.append(js_divergence(p, q))
        gold = cond[i].get("gold")
        if gold is not None and 0 <= int(gold) < len(q):
            shift.append(float(q[int(gold)]) - float(p[int(gold)]))
    n = len(ids)
    return {"delta": float(b.mean() - a.mean()), "delta_ci95": list(paired_bootstrap_ci(a, b, n_boot, seed)),
            "flip_rate": flips / n, "harmful_flip_rate": harmful / n, "beneficial_flip_rate": beneficial / n,
            "mcnemar_p": mcnemar_exact_p(harmful, beneficial),
            "js_mean": float(np.mean(js)) if js else None, "gold_prob_shift": float(np.mean(shift)) if shift else None}


def _figures(recs: dict[str, dict], ref_ok: dict[str, dict] | None, n_boot: int, seed: int) -> dict[str, Any]:
    """The figures of one (family, condition) cell, or of one task in it: ``ref_ok`` is None on
    the reference row (no paired figures), else the reference's non-error records."""
    ok = _ok(recs)
    k = sum(bool(r["correct"]) for r in ok.values())
    paired = _paired(ref_ok or {}, ok, n_boot, seed)
    named = [r for r in ok.values() if r.get("distractor") is not None]
    followed = sum(_pred(r) == int(r["distractor"]) for r in named)
    return {"n": len(ok), "n_paired": None if ref_ok is None else len(set(ref_ok) & set(ok)),
            "accuracy": k / len(ok) if ok else None, "accuracy_ci95": list(wilson_ci(k, len(ok))),
            **paired, "followed_distractor_rate": followed / len(named) if named else None,
            "unparsed": sum(r.get("pred") is None for r in ok.values()), "errors": len(recs) - len(ok)}


def _by_task(recs: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """task -> id -> record, for the records that name a task (others are in no task)."""
    out: dict[str, dict[str, dict]] = {}
    for i, r in recs.items():
        if r.get("task") is not None:
            out.setdefault(str(r["task"]), {})[i] = r
    return dict(sorted(out.items()))


def _worst_case(ok_by_cond: list[dict[str, dict]]) -> dict[str, Any]:
    """Among ids that ran cleanly under every condition, those right under all of them."""
    complete = set.intersection(*(set(o) for o in ok_by_cond))
    k = sum(all(bool(o[i]["correct"]) for o in ok_by_cond) for i in complete)
    return {"n_samples": len(set().union(*ok_by_cond)), "n_worst_case": len(complete),
            "worst_case_accuracy": k / len(complete) if complete else None,
            "worst_case_ci95": list(wilson_ci(k, len(complete)))}


def summarize(records: Iterable[dict], reference: dict[str, str], n_boot: int = 2000, seed: int = 0,
              condition_order: Sequence[str] = ()) -> dict[str, Any]:
    """``{"conditions": [...], "families": [...]}``: one row per (family, condition) present.

    Paired figures compare a condition with its family's reference condition on the samples with a
    non-error record under both (``n_paired`` of them); they are None on the reference row (and
    ``n_paired`` too) and when the reference is absent.
    Rows: families in FAMILY_ORDER then alphabetically; the reference condition first, then the
    others in ``condition_order`` (the engine passes the registry order), then alphabetically.
    Each row and each family row has ``by_task``: task -> the same figures over the records of
    that task (records name their task; records without one are in no task).
    """
    table = _index(records)
    rank = {c: i for i, c in enumerate(condition_order)}
    rows: list[dict[str, Any]] = []
    family_rows: list[dict[str, Any]] = []
    for family in sorted({f for f, _ in table}, key=family_key):
        ref_name = reference.get(family)
        names = sorted((c for f, c in table if f == family),
                       key=lambda c: (c != ref_name, rank.get(c, len(rank)), c))
        ref_recs = table.get((family, ref_name), {})
        ref_ok = _ok(ref_recs)
        ref_tasks = _by_task(ref_ok)
        for name in names:
            recs = table[(family, name)]
            is_ref = name == ref_name
            # Seed from (seed, family, condition[, task]), not from position, so rows are reproducible alone.
            figures = _figures(recs, None if is_ref else ref_ok, n_boot, derive_seed("bootstrap", seed, family, name))
            by_task = {task: _figures(mine, None if is_ref else ref_tasks.get(task, {}), n_boot,
                                      derive_seed("bootstrap", seed, family, name, task))
                       for task, mine in _by_task(recs).items()}
            rows.append({"family": family, "condition": name, "is_reference": is_ref, **figures, "by_task": by_task})
        ok_by_cond = [_ok(table[(family, c)]) for c in names]
        tasks = sorted({t for o in ok_by_cond for t in _by_task(o)})
        family_rows.append({"family": family, "conditions": names, **_worst_case(ok_by_cond),
                            "by_task": {t: _worst_case([_by_task(o).get(t, {}) for o in ok_by_cond]) for t in tasks}})
    return {"conditions": rows, "families": family_rows}


EPS_UNITS = {"pixel": "1/255", "embed": "x RMS of the perturbed embeddings"}


def robustness_curves(records: Iterable[dict], reference: dict[str, str]) -> list[dict[str, Any]]:
    """Accuracy and attack success rate against eps, per (family, attack space).

    Attack success rate at an eps: among samples answered correctly under the family's reference
    condition (and not errors under the attack), the fraction the attack made wrong. Each curve:
    ``{"family", "space", "eps_unit", "points": [{"eps", "accuracy", "attack_success_rate", "n",
    "n_reference_correct"}, ...]}`` with points in increasing eps; ``[]`` without attack records.
    """
    table = _index(records)
    curves = []
    for family in sorted({f for f, _ in table}, key=family_key):
        ref_ok = _ok(table.get((family, reference.get(family)), {}))
        by_space: dict[str, list[tuple[float, dict]]] = {}
        for (f, name), recs in table.items():
            tagged = [r for r in recs.values() if r.get("attack_space") is not None]
            if f != family or not tagged:
                continue
            by_space.setdefault(tagged[0]["attack_space"], []).append((float(tagged[0]["eps"]), _ok(recs)))
        for space in sorted(by_space):
            points = []
            for eps, ok in sorted(by_space[space], key=lambda t: t[0]):
                k = sum(bool(r["correct"]) for r in ok.values())
                right = [i for i in ok if i in ref_ok and ref_ok[i]["correct"]]
                broken = sum(not ok[i]["correct"] for i in right)
                points.append({"eps": eps, "accuracy": k / len(ok) if ok else None,
                               "attack_success_rate": broken / len(right) if right else None,
                               "n": len(ok), "n_reference_correct": len(right)})
            curves.append({"family": family, "space": space, "eps_unit": EPS_UNITS.get(space, ""),
                           "points": points})
    return curves
