"""Every metric against values computed by hand (or by an independent implementation)."""

import json
import random

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from modint.diagnose.metrics import js_divergence, mcnemar_exact_p, paired_bootstrap_ci, summarize, wilson_ci

REF = {"image_heavy": "clean", "text_heavy": "noise_image", "vqa": "clean"}
ROW_KEYS = {"family", "condition", "n", "accuracy", "accuracy_ci95", "delta", "delta_ci95", "flip_rate",
            "harmful_flip_rate", "beneficial_flip_rate", "mcnemar_p", "js_mean", "gold_prob_shift",
            "followed_distractor_rate", "errors", "unparsed", "is_reference", "n_paired", "by_task"}


def rec(id, cond, gold, pred, probs=None, distractor=None, error=None, family="image_heavy", task=None):
    return {"id": id, "family": family, "condition": cond, "gold": gold, "pred": pred,
            "correct": pred == gold and error is None, "probs": probs, "error": error, "distractor": distractor,
            "task": task}


# Four image-heavy samples, clean (3/4 right) vs misleading text (2/4 right).
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
    # p = .8, z^2/n = .384146: centre = (.8 + .192073) / 1.384146 = .716740, half = .226578
    lo, hi = wilson_ci(8, 10)
    assert lo == pytest.approx(0.4901625, abs=1e-6) and hi == pytest.approx(0.9433178, abs=1e-6)
    # p = .5 is symmetric about .5: centre .5, half = z * sqrt(.0625 + z^2/64) / (1 + z^2/4) = .349961
    assert wilson_ci(2, 4) == pytest.approx((0.1500390, 0.8499610), abs=1e-6)
    assert wilson_ci(0, 5)[0] == 0.0 and wilson_ci(5, 5)[1] == 1.0
    assert wilson_ci(0, 0) == (None, None)


def test_mcnemar_by_hand():
    assert mcnemar_exact_p(1, 5) == pytest.approx(0.21875)  # 2 * (C(6,0) + C(6,1)) / 2^6 = 14/64
    assert mcnemar_exact_p(5, 1) == pytest.approx(0.21875)  # symmetric in b, c
    assert mcnemar_exact_p(2, 1) == 1.0  # 2 * (1 + 3) / 8 = 1, capped
    assert mcnemar_exact_p(0, 10) == pytest.approx(2 / 1024)
    assert mcnemar_exact_p(0, 0) == 1.0


def test_js_by_hand():
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_divergence([.25, .75], [.25, .75]) == pytest.approx(0.0, abs=1e-12)
    # M = [.75, .25]: H(M) = .811278; (H(p) + H(q)) / 2 = (1 + 0) / 2 -> .311278
    assert js_divergence([.5, .5], [1, 0]) == pytest.approx(0.311278124, abs=1e-8)
    assert js_divergence([2, 2], [4, 0]) == pytest.approx(0.311278124, abs=1e-8)  # renormalised
    # An independent implementation (scipy returns the square root of the divergence).
    rng = np.random.default_rng(1)
    for _ in range(5):
        p, q = rng.random(5), rng.random(5)
        assert js_divergence(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-12)


def test_bootstrap_is_seeded_and_brackets_the_delta():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    ci1, ci2 = paired_bootstrap_ci(a, b, 500, seed=3), paired_bootstrap_ci(a, b, 500, seed=3)
    assert ci1 == ci2 and ci1 != paired_bootstrap_ci(a, b, 500, seed=4)
    assert ci1[0] < (b - a).mean() < ci1[1]
    assert ci1[1] - ci1[0] < 0.3  # about 4 standard errors of a 200-pair difference, not [-1, 1]
    assert paired_bootstrap_ci([1, 1, 1], [0, 0, 0], 100) == (-1.0, -1.0)  # no variation: a point
    assert paired_bootstrap_ci([], [], 100) == (None, None)


def test_summary_by_hand():
    s = summarize(RECORDS, REF, n_boot=300)
    clean, mis = row(s, "image_heavy", "clean"), row(s, "image_heavy", "misleading_text")
    assert set(clean) == ROW_KEYS and set(mis) == ROW_KEYS
    assert clean["accuracy"] == 0.75 and mis["accuracy"] == 0.5 and mis["n"] == 4
    assert mis["accuracy_ci95"] == pytest.approx([0.1500390, 0.8499610], abs=1e-6)  # Wilson 2/4
    assert mis["delta"] == pytest.approx(-0.25)
    assert mis["flip_rate"] == 0.75  # a 0->1, c 2->0, d 3->2; b stays
    assert mis["harmful_flip_rate"] == 0.5  # a, d
    assert mis["beneficial_flip_rate"] == 0.25  # c
    assert mis["mcnemar_p"] == 1.0  # b=2, c=1
    assert mis["followed_distractor_rate"] == 0.5  # a and d chose the named wrong option
    assert mis["gold_prob_shift"] == pytest.approx((-.4 + .1 + .3 - .6) / 4)  # q[gold] - p[gold] per id
    assert mis["js_mean"] == pytest.approx(0.18006685, abs=1e-7)  # mean of the four pairs' JS
    assert mis["delta_ci95"][0] <= -0.25 <= mis["delta_ci95"][1]
    assert clean["is_reference"] and not mis["is_reference"]
    assert all(clean[k] is None for k in ("delta", "flip_rate", "harmful_flip_rate", "beneficial_flip_rate",
                                          "mcnemar_p", "js_mean", "gold_prob_shift"))
    assert clean["delta_ci95"] == [None, None] and clean["followed_distractor_rate"] is None
    assert clean["n_paired"] is None and mis["n_paired"] == 4
    assert clean["by_task"] == {} and mis["by_task"] == {}  # no record names a task
    assert s["families"] == [{"family": "image_heavy", "n_samples": 4, "conditions": ["clean", "misleading_text"],
                              "n_worst_case": 4, "worst_case_accuracy": 0.25,  # only b is right under both
                              "worst_case_ci95": list(wilson_ci(1, 4)), "by_task": {}}]
    assert s["families"][0]["worst_case_ci95"] == pytest.approx([0.0455873, 0.6993582], abs=1e-6)


def test_order_independent():
    shuffled = RECORDS[:]
    random.Random(1).shuffle(shuffled)
    assert shuffled != RECORDS
    assert json.dumps(summarize(shuffled, REF, n_boot=300)) == json.dumps(summarize(RECORDS, REF, n_boot=300))


def test_bootstrap_seed_comes_from_run_seed():
    # 40 ids so the bootstrap distribution is not degenerate; the CI must move with the run seed only.
    recs = [rec(f"s{i}", c, 0, int(i % k == 0)) for i in range(40) for c, k in (("clean", 3), ("blur", 2))]
    first = row(summarize(recs, REF, n_boot=200, seed=0), "image_heavy", "blur")["delta_ci95"]
    assert first == row(summarize(recs[::-1], REF, n_boot=200, seed=0), "image_heavy", "blur")["delta_ci95"]
    assert first != row(summarize(recs, REF, n_boot=200, seed=1), "image_heavy", "blur")["delta_ci95"]


def test_errors_unparsed_and_duplicates():
    records = RECORDS + [rec("e", "clean", 0, None, error="sample 'e': image not found"),
                         rec("f", "clean", 1, None, [.25, .25, .25, .25])]
    s = summarize(records, REF, n_boot=100)
    clean = row(s, "image_heavy", "clean")
    assert clean["errors"] == 1 and clean["n"] == 5 and clean["unparsed"] == 1
    assert clean["accuracy"] == pytest.approx(3 / 5)  # an unparsed answer stays in the denominator
    mis = row(s, "image_heavy", "misleading_text")
    assert mis["delta"] == pytest.approx(-0.25) and mis["errors"] == 0  # e, f have no misleading record
    fam = s["families"][0]
    assert fam["n_samples"] == 5 and fam["n_worst_case"] == 4 and fam["worst_case_accuracy"] == 0.25
    with pytest.raises(ValueError, match="duplicate record for sample 'a' under condition 'clean'"):
        summarize(RECORDS + [RECORDS[0]], REF)


def test_error_under_one_condition_drops_the_pair():
    records = [r for r in RECORDS if not (r["id"] == "a" and r["condition"] == "misleading_text")]
    records.append(rec("a", "misleading_text", 0, None, error="boom"))
    mis = row(summarize(records, REF, n_boot=50), "image_heavy", "misleading_text")
    # pairs b, c, d: ref 1,0,1 vs cond 1,1,0 -> delta 0; flips c, d
    assert mis["n"] == 3 and mis["errors"] == 1 and mis["delta"] == pytest.approx(0.0)
    assert mis["flip_rate"] == pytest.approx(2 / 3) and mis["harmful_flip_rate"] == pytest.approx(1 / 3)


def test_unparsed_flips_and_distractor():
    records = [rec("x", "clean", 0, None), rec("x", "blur", 0, None, distractor=1),
               rec("y", "clean", 0, None), rec("y", "blur", 0, 2, distractor=2)]
    blur = row(summarize(records, REF, n_boot=20), "image_heavy", "blur")
    assert blur["flip_rate"] == 0.5  # None -> None is no flip, None -> 2 is
    assert blur["accuracy"] == 0.0 and blur["unparsed"] == 1 and blur["followed_distractor_rate"] == 0.5
    assert blur["js_mean"] is None and blur["gold_prob_shift"] is None  # no probs (generate scoring)


def test_reference_missing_gives_no_paired_figures_and_families_are_ordered():
    records = [rec("t1", "black_image", 0, 0, family="text_heavy"), rec("t1", "no_image", 0, 1, family="text_heavy"),
               rec("z1", "clean", 0, 0, family="zeta"), rec("q1", "clean", 0, 0, family="alpha"),
               rec("v1", "clean", 0, 0, family="vqa")]
    s = summarize(records + RECORDS, REF, n_boot=50)
    assert [f["family"] for f in s["families"]] == ["image_heavy", "text_heavy", "vqa", "alpha", "zeta"]
    assert [c["family"] for c in s["conditions"]][:2] == ["image_heavy", "image_heavy"]
    black = row(s, "text_heavy", "black_image")
    assert black["accuracy"] == 1.0 and not black["is_reference"]
    assert black["delta"] is None and black["delta_ci95"] == [None, None] and black["mcnemar_p"] is None
    assert row(s, "text_heavy", "no_image")["accuracy"] == 0.0
    text_family = next(f for f in s["families"] if f["family"] == "text_heavy")
    assert text_family["worst_case_accuracy"] == 0.0


def test_condition_order_reference_first():
    records = [rec("t1", c, 0, 0, family="text_heavy") for c in ("white_image", "noise_image", "switched_image")]
    s = summarize(records, REF, n_boot=10)
    assert [c["condition"] for c in s["conditions"]] == ["noise_image", "switched_image", "white_image"]
    s = summarize(records, REF, n_boot=10, condition_order=["white_image", "switched_image"])
    assert [c["condition"] for c in s["conditions"]] == ["noise_image", "white_image", "switched_image"]


def test_numpy_inputs_give_json_ready_output():
    records = [{**r, "gold": np.int64(r["gold"]), "pred": np.int64(r["pred"]), "correct": np.bool_(r["correct"]),
                "probs": np.asarray(r["probs"], dtype=np.float32),
                "distractor": None if r["distractor"] is None else np.int64(r["distractor"])} for r in RECORDS]
    s = summarize(records, REF, n_boot=50)
    assert json.loads(json.dumps(s)) == s
    assert row(s, "image_heavy", "misleading_text")["flip_rate"] == 0.75


def test_robustness_curves_by_hand():
    from modint.diagnose.metrics import robustness_curves

    def adv(id, eps, gold, pred, error=None):
        r = rec(id, f"pgd_pixel@{eps:g}", gold, pred, error=error, family="text_heavy")
        r.update(attack_space="pixel", eps=float(eps)) if error is None else None
        return r

    records = [rec(i, "noise_image", 0, p, family="text_heavy") for i, p in zip("abcd", [0, 0, 0, 1])]
    records += [adv("a", 0, 0, 0), adv("b", 0, 0, 0), adv("c", 0, 0, 0), adv("d", 0, 0, 1)]
    # eps 4: a broken, b holds, c is an error (left out), d was already wrong and stays wrong
    records += [adv("a", 4, 0, 2), adv("b", 4, 0, 0), adv("c", 4, 0, None, error="boom"), adv("d", 4, 0, 3)]
    records += [adv(i, 1, 0, p) for i, p in zip("abcd", [0, 1, 0, 0])]  # d fixed by the attack
    curves = robustness_curves(records, REF)
    assert len(curves) == 1
    curve = curves[0]
    assert (curve["family"], curve["space"], curve["eps_unit"]) == ("text_heavy", "pixel", "1/255")
    assert [p["eps"] for p in curve["points"]] == [0, 1, 4]
    assert curve["points"][0] == {"eps": 0, "accuracy": 0.75, "attack_success_rate": 0.0, "n": 4,
                                  "n_reference_correct": 3}
    assert curve["points"][1]["accuracy"] == 0.75 and curve["points"][1]["attack_success_rate"] == pytest.approx(1 / 3)
    assert curve["points"][2] == {"eps": 4, "accuracy": pytest.approx(1 / 3), "attack_success_rate": 0.5, "n": 3,
                                  "n_reference_correct": 2}
    assert robustness_curves(RECORDS, REF) == []


def test_n_paired_counts_the_samples_under_both_conditions():
    recs = RECORDS + [rec("e", "clean", 0, 0), rec("f", "misleading_text", 0, 0),
                      rec("g", "clean", 0, 0), rec("g", "misleading_text", 0, None, error="broken image")]
    s = summarize(recs, REF, n_boot=100)
    clean, mis = row(s, "image_heavy", "clean"), row(s, "image_heavy", "misleading_text")
    assert (clean["n"], clean["n_paired"]) == (6, None)  # a-e, g; the reference row pairs with nothing
    assert (mis["n"], mis["n_paired"], mis["errors"]) == (5, 4, 1)  # f has no clean record, g failed
    assert mis["delta"] == pytest.approx(-0.25)  # over a-d only
    assert row(summarize([rec("a", "misleading_text", 0, 0)], REF, n_boot=10), "image_heavy",
               "misleading_text")["n_paired"] == 0  # no reference at all


def test_by_task_by_hand():
    """a, b are `shape`, c, d `digit` (RECORDS), e names no task, and d's digit twin h failed."""
    tasks = {"a": "shape", "b": "shape", "c": "digit", "d": "digit"}
    recs = [{**r, "task": tasks[r["id"]]} for r in RECORDS] + [
        rec("e", "clean", 0, 0), rec("e", "misleading_text", 0, 0, distractor=1),
        rec("h", "clean", 1, 1, task="digit"), rec("h", "misleading_text", 1, None, error="x", task="digit")]
    s = summarize(recs, REF, n_boot=300)
    clean, mis = row(s, "image_heavy", "clean"), row(s, "image_heavy", "misleading_text")
    assert (mis["n"], mis["n_paired"], mis["accuracy"]) == (5, 5, 0.6)  # the whole row keeps e
    assert list(mis["by_task"]) == ["digit", "shape"] and list(clean["by_task"]) == ["digit", "shape"]
    assert set(mis["by_task"]["shape"]) == ROW_KEYS - {"family", "condition", "is_reference", "by_task"}
    shape, digit = mis["by_task"]["shape"], mis["by_task"]["digit"]
    # shape: clean a, b right; misleading a wrong (followed its distractor), b right
    assert clean["by_task"]["shape"]["accuracy"] == 1.0 and clean["by_task"]["shape"]["n_paired"] is None
    assert (shape["n"], shape["n_paired"], shape["accuracy"], shape["delta"]) == (2, 2, 0.5, -0.5)
    assert (shape["flip_rate"], shape["harmful_flip_rate"], shape["beneficial_flip_rate"]) == (0.5, 0.5, 0.0)
    assert shape["mcnemar_p"] == 1.0 and shape["followed_distractor_rate"] == 0.5
    assert shape["accuracy_ci95"] == pytest.approx(list(wilson_ci(1, 2)))
    assert -1.0 <= shape["delta_ci95"][0] <= shape["delta_ci95"][1] <= 0.0  # the pair differences are -1 and 0
    # digit: clean c wrong, d right, h right; misleading c right, d wrong (followed), h an error
    assert clean["by_task"]["digit"]["n"] == 3 and clean["by_task"]["digit"]["accuracy"] == pytest.approx(2 / 3)
    assert (digit["n"], digit["n_paired"], digit["errors"], digit["accuracy"], digit["delta"]) == (2, 2, 1, 0.5, 0.0)
    assert (digit["flip_rate"], digit["harmful_flip_rate"], digit["beneficial_flip_rate"]) == (1.0, 0.5, 0.5)
    assert digit["followed_distractor_rate"] == 0.5 and digit["mcnemar_p"] == 1.0
    assert digit["gold_prob_shift"] == pytest.approx(((.5 - .2) + (.1 - .7)) / 2)  # c: q[0]-p[0]; d: q[3]-p[3]
    fam = s["families"][0]["by_task"]
    assert fam["shape"]["worst_case_accuracy"] == 0.5 and fam["shape"]["n_worst_case"] == 2  # b only
    assert fam["digit"]["worst_case_accuracy"] == 0.0 and fam["digit"]["n_worst_case"] == 2  # h failed once


def test_bootstrap_in_blocks_equals_one_block_of_resamples(monkeypatch):
    """Memory stays flat in the sample count: resamples come in blocks, with the same draws (and
    so the same CI) as one (n_boot, n) block."""
    import modint.diagnose.metrics as metrics

    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 2, 50).astype(float), rng.integers(0, 2, 50).astype(float)
    idx = np.random.default_rng(7).integers(0, 50, size=(333, 50))
    expected = tuple(float(x) for x in np.percentile((b - a)[idx].mean(axis=1), [2.5, 97.5]))
    monkeypatch.setattr(metrics, "BOOTSTRAP_BLOCK", 50 * 40)  # 40 resamples a block: 9 blocks, the last short
    assert metrics.paired_bootstrap_ci(a, b, 333, seed=7) == expected
