"""The targets a diagnosis is checked against (modint.report.targets), by hand."""

from modint.report.targets import demo_model_checks


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
