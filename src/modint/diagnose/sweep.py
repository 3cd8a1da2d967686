"""An eps sweep's records: at each eps, the strongest attack found within that ball."""

from __future__ import annotations

import math


def attack_strength(record: dict) -> tuple[bool, bool, float]:
    """How far an attack got, compared in order: the answer is wrong (robustness lost: a wrong
    outcome always beats a right one, targeted or not), then the target is reached (targeted),
    then the attack's own objective (the gold option's loss; targeted: the target's log-probability)."""
    probs = record["probs"]
    wrong = record["pred"] != record["gold"]
    target = record.get("attack_target")
    if target is not None:
        return wrong, record["pred"] == target, math.log(max(probs[target], 1e-12))
    return wrong, False, -math.log(max(probs[record["gold"]], 1e-12))


# What a weaker attack's record carries over when it is the strongest one within a larger ball.
OUTCOME_FIELDS = ("probs", "pred", "correct", "attack_target", "perturbation", "adversarial_image")


def strongest_within_ball(records: list[dict]) -> None:
    """In place: an eps sweep reports, at each eps, the strongest attack found within that ball
    (``attack_strength``: a wrong answer is never replaced by a right one).

    A perturbation found at a smaller eps is also inside every larger ball, so when PGD at the
    larger eps ends weaker (PGD is a local search), the smaller one's outcome is the better
    estimate of robustness there. Such records keep their own condition and eps and say where
    the outcome came from in ``found_at_eps``. This makes accuracy non-increasing in eps for every
    sample, as it is for the true worst case (AutoAttack reports the worst case over attacks in
    the same way). It combines the records of one batch, which holds all of a sample's
    conditions; eps values added to an existing run directory later are not combined with the
    records already written."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for rec in records:
        if rec.get("error") is None and rec.get("probs") is not None:
            groups.setdefault((rec["id"], rec["attack_space"]), []).append(rec)
    for group in groups.values():
        best = None
        for rec in sorted(group, key=lambda r: r["eps"]):
            if best is not None and attack_strength(best) > attack_strength(rec):
                for key in OUTCOME_FIELDS:
                    if key in best:
                        rec[key] = best[key]
                    else:
                        rec.pop(key, None)
                rec["found_at_eps"] = best.get("found_at_eps", best["eps"])
            else:
                best = rec
