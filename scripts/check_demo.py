"""Check a diagnosis run of the demo model against the demo model's targets:

    python scripts/check_demo.py runs/demo

Targets (`modint.report.targets.demo_model_checks`): reference accuracy >= 90% image-heavy,
>= 85% text-heavy, >= 75% VQA; misleading_text lowers image-heavy accuracy by >= 20 points and
more than unrelated_text; switched_image lowers text-heavy accuracy by >= 5 points and more than
black_image and white_image."""

import json
import sys
from pathlib import Path

from modint.report.targets import demo_model_checks


def main() -> int:
    checks = demo_model_checks(json.loads((Path(sys.argv[1]) / "summary.json").read_text()))
    for name, ok, figure in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}  ({figure})")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
