"""Check mitigation runs against the mitigation targets, each against the base model's
diagnosis (both at the same eval seed, e.g. `make demo`'s runs/demo):

    python scripts/check_mitigation.py runs/demo runs/mitigate/diagnosis [more run dirs ...]

Targets (`modint.report.targets.mitigation_checks`): the clean - misleading_text gap on
image-heavy shrinks by >= 70% (relative); the noise_image - switched_image gap on text-heavy
shrinks by >= 50%; image-heavy clean, text-heavy noise_image and VQA clean accuracy fall by at
most 1 point. Exit status 0 when every run passes.
"""

import json
import sys
from pathlib import Path

from modint.report.targets import mitigation_checks


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
