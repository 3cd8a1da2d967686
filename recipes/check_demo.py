"""Check a diagnosis run of the demo model against the demo model's targets (issue 3):

    python recipes/check_demo.py runs/demo

reference accuracy >= 90% image-heavy, >= 85% text-heavy, >= 75% VQA; misleading_text lowers
image-heavy accuracy by >= 20 points and more than unrelated_text; switched_image lowers text-heavy
accuracy by >= 5 points and more than black_image and white_image."""

import json
import sys
from pathlib import Path


def main() -> int:
    summary = json.loads((Path(sys.argv[1]) / "summary.json").read_text())
    rows = {(c["family"], c["condition"]): c for c in summary["conditions"]}

    def acc(f, c):
        return rows[(f, c)]["accuracy"]

    def delta(f, c):
        return rows[(f, c)]["delta"]

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
        ("switched_image hurts more than black and white",
         delta("text_heavy", "switched_image") < min(delta("text_heavy", "black_image"), delta("text_heavy", "white_image")),
         min(delta("text_heavy", "black_image"), delta("text_heavy", "white_image"))),
    ]
    for name, ok, value in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}  ({100 * value:+.1f})")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
