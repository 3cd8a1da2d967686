"""Every metric against values computed by hand."""

import json
import random

import numpy as np
import pytest

from modint.diagnose.metrics import js_divergence, mcnemar_exact_p, paired_bootstrap_ci, summarize, wilson_ci

REF = {"image_heavy": "clean", "text_heavy": "noise_image", "vqa": "clean"}


def rec(id, cond, gold, pred, probs=None, distractor=None, error=None, family="image_heavy"):
    return {"id": id, "family": family, "condition": cond, "gold": gold, "pred": pred,
            "correct": pred == gold and error is None, "probs": probs, "error": error, "distractor": distractor}


# Four image-heavy samples, clean vs misleading (see the hand computation in each test).
RECORDS = [
    rec("a", "clean", 0, 0, [.7, .1, .1, .1]),
    rec("b", "clean", 1, 1, [.1, .6, .2, .1]),
    rec("c", "clean", 0, 2, [.2, .1, .6, .1]),
    rec("d", "clean", 3, 3, [.1, .1, .1, .7]),
    rec("a", "misleading_text", 0, 1, [.3, .6, .05, .05], distractor=1),
    rec("b", "misleading_text", 1, 1, [.2, .7, .05, .05], distractor=0),
    rec("c", "misleading_text", 0, 0, [.5, .1, .3, .1], distractor=2),
    rec("d", "misleading_text", 3, 2, [.1, .1, .7, .1], distractor=2),
]


def row(summary, family, condition):
    return next(c for c in summary["conditions"] if c["family"] == family and c["condition"] == condition)


def test_wilson_by_hand():
    # p = .8, z^2 = 3.8415: centre = (.8 + .19207) / 1.38415 = .71674, half = .22658
    lo, hi = wilson_ci(8, 10)
    assert lo == pytest.approx(0.4901625, abs=1e-6) and hi == pytest.approx(0.9433178, abs=1e-6)
    assert wilson_ci(0, 5)[0] == 0.0 and wilson_ci(5, 5)[1] == 1.0
    assert wilson_ci(0, 0) == (None, None)


def test_mcnemar_by_hand():
    assert mcnemar_exact_p(1, 5) == pytest.approx(14 / 64)  # 2 * (C(6,0) + C(6,1)) / 2^6
    assert mcnemar_exact_p(2, 1) == 1.0  # 2 * (1 + 3) / 8 capped at 1
    assert mcnemar_exact_p(0, 10) == pytest.approx(2 / 1024)
    assert mcnemar_exact_p(0, 0) == 1.0


def test_js_by_hand():
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_divergence([.25, .75], [.25, .75]) == pytest.approx(0.0, abs=1e-12)
    # M = [.75, .25]: H(M) = .811278; (H(p) + H(q)) / 2 = (1 + 0) / 2
    assert js_divergence([.5, .5], [1, 0]) == pytest.approx(0.311278124, abs=1e-8)
    assert js_divergence([2, 2], [4, 0]) == pytest.approx(0.311278124, abs=1e-8)  # renormalised


def test_bootstrap_is_seeded_and_brackets_the_delta():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    ci1, ci2 = paired_bootstrap_ci(a, b, 500, seed=3), paired_bootstrap_ci(a, b, 500, seed=3)
    assert ci1 == ci2 and ci1 != paired_bootstrap_ci(a, b, 500, seed=4)
    assert ci1[0] < (b - a).mean() < ci1[1]
    assert paired_bootstrap_ci([1, 1, 1], [0, 0, 0], 100) == (-1.0, -1.0)  # no variation: a point
    assert paired_bootstrap_ci([], [], 100) == (None, None)


def test_summary_by_hand():
    s = summarize(RECORDS, REF, n_boot=300)
    clean, mis = row(s, "image_heavy", "clean"), row(s, "image_heavy", "misleading_text")
    assert clean["accuracy"] == 0.75 and mis["accuracy"] == 0.5 and mis["n"] == 4
    assert mis["delta"] == pytest.approx(-0.25)
    assert mis["flip_rate"] == 0.75  # a 0->1, c 2->0, d 3->2; b stays
    assert mis["harmful_flip_rate"] == 0.5  # a, d
    assert mis["beneficial_flip_rate"] == 0.25  # c
    assert mis["mcnemar_p"] == 1.0  # b=2, c=1
    assert mis["followed_distractor_rate"] == 0.5  # a and d chose the named wrong option
    assert mis["gold_prob_shift"] == pytest.approx((-.4 + .1 + .3 - .6) / 4)
    expected_js = np.mean([js_divergence(p["probs"], q["probs"]) for p, q in zip(RECORDS[:4], RECORDS[4:])])
    assert mis["js_mean"] == pytest.approx(expected_js) and mis["js_mean"] > 0.1
    assert mis["delta_ci95"][0] <= -0.25 <= mis["delta_ci95"][1]
    assert clean["delta"] is None and clean["flip_rate"] is None and clean["is_reference"]
    assert clean["followed_distractor_rate"] is None
    fam = s["families"][0]
    assert fam["worst_case_accuracy"] == 0.25 and fam["n_samples"] == 4  # only b is right under both
    json.dumps(s)


def test_order_independent():
    shuffled = RECORDS[:]
    random.Random(1).shuffle(shuffled)
    assert summarize(shuffled, REF, n_boot=300) == summarize(RECORDS, REF, n_boot=300)


def test_errors_unparsed_and_duplicates():
    records = RECORDS + [rec("e", "clean", 0, None, error="sample 'e': image not found"),
                         rec("f", "clean", 1, None, [.25, .25, .25, .25])]
    s = summarize(records, REF, n_boot=100)
    clean = row(s, "image_heavy", "clean")
    assert clean["errors"] == 1 and clean["n"] == 5 and clean["unparsed"] == 1
    assert clean["accuracy"] == pytest.approx(3 / 5)  # an unparsed answer stays in the denominator
    mis = row(s, "image_heavy", "misleading_text")
    assert mis["delta"] == pytest.approx(-0.25)  # e and f have no misleading record: not paired
    with pytest.raises(ValueError, match="duplicate record for sample 'a' under condition 'clean'"):
        summarize(RECORDS + [RECORDS[0]], REF)


def test_reference_missing_gives_no_paired_figures_and_families_are_separate():
    records = [rec("t1", "black_image", 0, 0, family="text_heavy"), rec("t1", "no_image", 0, 1, family="text_heavy")]
    s = summarize(records + RECORDS, REF, n_boot=50)
    assert [c["family"] for c in s["conditions"]][:2] == ["image_heavy", "image_heavy"]
    black = row(s, "text_heavy", "black_image")
    assert black["accuracy"] == 1.0 and black["delta"] is None and black["delta_ci95"] == [None, None]
    assert row(s, "text_heavy", "no_image")["accuracy"] == 0.0
    text_family = next(f for f in s["families"] if f["family"] == "text_heavy")
    assert text_family["worst_case_accuracy"] == 0.0


def test_condition_order_reference_first_then_given_order():
    records = [rec("t1", c, 0, 0, family="text_heavy") for c in ("white_image", "noise_image", "switched_image")]
    s = summarize(records, REF, n_boot=10, condition_order=["noise_image", "switched_image", "white_image"])
    assert [c["condition"] for c in s["conditions"]] == ["noise_image", "switched_image", "white_image"]
    s = summarize(records, REF, n_boot=10)
    assert [c["condition"] for c in s["conditions"]] == ["noise_image", "switched_image", "white_image"]
