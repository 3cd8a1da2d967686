"""Check mitigation runs against the mitigation targets (issue 5), each against the base model's
diagnosis (both at the same eval seed, e.g. `make demo`'s runs/demo):

    python recipes/check_mitigation.py runs/demo runs/mitigate/diagnosis [more run dirs ...]

Targets: the clean - misleading_text gap on image-heavy shrinks by >= 70% (relative); the
noise_image - switched_image gap on text-heavy shrinks by >= 50%; image-heavy clean, text-heavy
noise_image and VQA clean accuracy fall by at most 1 point. Exit status 0 when every run passes.
"""

import json
import sys
from pathlib import Path

REFERENCES = (("image_heavy", "clean"), ("text_heavy", "noise_image"), ("vqa", "clean"))
GAPS = ((("image_heavy", "clean"), ("image_heavy", "misleading_text"), 0.70),
        (("text_heavy", "noise_image"), ("text_heavy", "switched_image"), 0.50))


def accuracies(summary: dict) -> dict:
    return {(c["family"], c["condition"]): 100 * c["accuracy"] for c in summary["conditions"]}


def mitigation_checks(base: dict, run: dict) -> list[tuple[str, bool, str]]:
    """(target, passed, figure) per target; ``base`` and ``run`` are summary.json contents."""
    b, r = accuracies(base), accuracies(run)
    checks = []
    for key in REFERENCES:
        change = r[key] - b[key]
        checks.append((f"{key[0]} {key[1]} falls by <= 1 point", change >= -1.0 - 1e-9, f"{change:+.1f}"))
    for ref, cond, target in GAPS:
        before, after = b[ref] - b[cond], r[ref] - r[cond]
        shrink = 1 - after / before if before else 0.0
        checks.append((f"{ref[0]} {cond[1]} gap shrinks by >= {target:.0%}", shrink >= target - 1e-9,
                       f"{before:.1f} -> {after:.1f} ({-shrink:+.0%})"))
    return checks


def main() -> int:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    base = json.loads((Path(sys.argv[1]) / "summary.json").read_text())
    all_ok = True
    for run_dir in sys.argv[2:]:
        checks = mitigation_checks(base, json.loads((Path(run_dir) / "summary.json").read_text()))
        print(run_dir)
        for name, ok, figure in checks:
            print(f"  {'PASS' if ok else 'FAIL'}  {name}  ({figure})")
        all_ok &= all(ok for _, ok, _ in checks)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
