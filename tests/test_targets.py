"""The targets a diagnosis is checked against (modint.report.targets), by hand."""

import subprocess
import sys
from pathlib import Path

from modint.report.targets import demo_model_checks, mitigation_checks


def _summary(ih, mis, th, sw, vqa):
    return {"conditions": [{"family": f, "condition": c, "accuracy": a} for f, c, a in [
        ("image_heavy", "clean", ih), ("image_heavy", "misleading_text", mis), ("text_heavy", "noise_image", th),
        ("text_heavy", "switched_image", sw), ("vqa", "clean", vqa)]]}


def test_mitigation_targets_by_hand():
    base = _summary(0.90, 0.30, 0.80, 0.40, 0.50)  # gaps 60 and 40 points
    # references -1.0 (on the limit), -1.5, +2; gaps 60 -> 17 (-72%) and 40 -> 21.5 (-46%)
    run = _summary(0.89, 0.72, 0.785, 0.57, 0.52)
    checks = mitigation_checks(base, run)
    assert [ok for _, ok, _ in checks] == [True, False, True, True, False]
    assert [figure for *_, figure in checks] == ["-1.0", "-1.5", "+2.0", "60.0 -> 17.0 (-72%)", "40.0 -> 21.5 (-46%)"]


def test_demo_model_targets_by_hand():
    summary = {"conditions": [
        {"family": "image_heavy", "condition": "clean", "accuracy": 0.95, "delta": 0.0},
        {"family": "text_heavy", "condition": "noise_image", "accuracy": 0.84, "delta": 0.0},
        {"family": "vqa", "condition": "clean", "accuracy": 0.75, "delta": 0.0},
        {"family": "image_heavy", "condition": "misleading_text", "delta": -0.20},  # on the limit
        {"family": "image_heavy", "condition": "unrelated_text", "delta": -0.03},
        {"family": "text_heavy", "condition": "switched_image", "delta": -0.04},  # 4 points: short of 5
        {"family": "text_heavy", "condition": "black_image", "delta": -0.01},
        {"family": "text_heavy", "condition": "white_image", "delta": 0.02},
    ]}
    checks = demo_model_checks(summary)
    # 95% >= 90; 84% < 85; 75% on the limit; -20 on the limit; -20 < -3; -4 > -5; -4 < min(-1, +2)
    assert [ok for _, ok, _ in checks] == [True, False, True, True, True, False, True]
    assert [figure for *_, figure in checks] == ["+95.0", "+84.0", "+75.0", "-20.0", "-3.0", "-4.0", "-1.0"]


def test_check_mitigation_script_exits_1_on_a_missed_target(tmp_path):
    import json

    runs = {"base": _summary(0.90, 0.30, 0.80, 0.40, 0.50), "run": _summary(0.89, 0.72, 0.785, 0.57, 0.52)}
    for name, summary in runs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
    script = Path(__file__).resolve().parents[1] / "scripts" / "check_mitigation.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "base"), str(tmp_path / "run")],
                          capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert "FAIL  text_heavy switched_image gap shrinks by >= 50%  (40.0 -> 21.5 (-46%))" in done.stdout
