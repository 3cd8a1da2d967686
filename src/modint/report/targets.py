"""Targets a diagnosis is checked against: the demo model's interference targets, and the
mitigation targets of a fine-tuned model against its base model. Plain functions of
``summary.json`` contents; each check is (target, passed, figure)."""

from __future__ import annotations

# The reference condition of each family, and the gaps mitigation must shrink (relative).
MITIGATION_REFERENCES = (("image_heavy", "clean"), ("text_heavy", "noise_image"), ("vqa", "clean"))
MITIGATION_GAPS = ((("image_heavy", "clean"), ("image_heavy", "misleading_text"), 0.70),
                   (("text_heavy", "noise_image"), ("text_heavy", "switched_image"), 0.50))
# A reference accuracy may fall by at most this many points.
MAX_REFERENCE_DROP = 1.0

Check = tuple[str, bool, str]


def accuracies(summary: dict) -> dict[tuple[str, str], float]:
    """Accuracy in percent per (family, condition) of a ``summary.json``."""
    return {(c["family"], c["condition"]): 100 * c["accuracy"] for c in summary["conditions"]}


def mitigation_checks(base: dict, run: dict) -> list[Check]:
    """(target, passed, figure) per mitigation target of ``run`` against ``base`` (both
    ``summary.json`` contents, diagnosed at the same eval seed): each reference accuracy falls by
    at most one point; the image-heavy misleading-text gap shrinks by >= 70%, the text-heavy
    switched-image gap by >= 50%."""
    b, r = accuracies(base), accuracies(run)
    checks = []
    for key in MITIGATION_REFERENCES:
        change = r[key] - b[key]
        checks.append((f"{key[0]} {key[1]} falls by <= {MAX_REFERENCE_DROP:g} point",
                       change >= -MAX_REFERENCE_DROP - 1e-9, f"{change:+.1f}"))
    for ref, cond, target in MITIGATION_GAPS:
        before, after = b[ref] - b[cond], r[ref] - r[cond]
        shrink = 1 - after / before if before else 0.0
        checks.append((f"{ref[0]} {cond[1]} gap shrinks by >= {target:.0%}", shrink >= target - 1e-9,
                       f"{before:.1f} -> {after:.1f} ({-shrink:+.0%})"))
    return checks


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
