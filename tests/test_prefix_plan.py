"""The prefix cache's plan admission (PrefixCache.expect, diagnose.prefix_plan): a prefix is kept
exactly when a later call uses it and dropped after its last call, past the byte cap the prefix
needed last goes, the
counts come from the engine's batches (a resumed run: from the work that remains), and scores stay
those of the reference path."""

import json

import numpy as np
from PIL import Image

from conftest import make_image
from modint.data.sample import Sample
from modint.diagnose.engine import SHARED_CALL_BATCHES, DiagnoseConfig, _batches, _call_size, plan, run_diagnosis
from modint.diagnose.prefix_plan import prefix_calls
from modint.models.sharing import PrefixCache, PrefixEntry, SharedScorer, use_key
from modint.perturb import CANVAS, default_pools

CANVAS_USE, PHOTO_USE, ONCE_USE = (False, "canvas"), (False, "photo"), (False, "once")


def _entry(nbytes):
    return PrefixEntry(cache=None, length=1, nbytes=nbytes)


def test_the_plan_admits_what_a_later_call_uses_and_releases_it_after_its_last_call():
    cache = PrefixCache(max_bytes=1000)
    cache.expect({CANVAS_USE: [0, 1, 2], PHOTO_USE: [1, 2], ONCE_USE: [0]})
    cache.at_call(0)  # the canvas (calls 1 and 2 to come) is kept, the single-use image is not
    cache.put(("canvas",), _entry(10), use=CANVAS_USE)
    cache.put(("once",), _entry(20), use=ONCE_USE)
    assert (len(cache), cache.nbytes, cache.not_admitted) == (1, 10, 1)
    cache.at_call(1)  # the canvas is found, the photo (call 2 to come) is kept
    assert cache.get(("canvas",)) is not None and cache.get(("photo",)) is None
    cache.put(("photo",), _entry(30), use=PHOTO_USE)
    assert (len(cache), cache.nbytes, cache.released) == (2, 40, 0)
    cache.at_call(2)  # the last call of both: found
    assert cache.get(("canvas",)) and cache.get(("photo",))
    cache.at_call(3)  # the run is done: both dropped
    assert (len(cache), cache.nbytes, cache.released, cache.evictions) == (0, 0, 2, 0)
    assert (cache.hits, cache.misses) == (3, 1)
    # a use key the plan does not know has no later call: never kept
    cache.put(("stranger",), _entry(1), use=(False, "stranger"))
    assert len(cache) == 0 and cache.not_admitted == 2


def test_past_the_byte_cap_the_prefix_needed_last_goes_first():
    cache = PrefixCache(max_bytes=100)
    soon, late, later = (False, "soon"), (False, "late"), (False, "later")
    cache.expect({soon: [0, 1], late: [0, 5], later: [0, 9]})
    cache.at_call(0)
    cache.put(("later",), _entry(40), use=later)
    cache.put(("soon",), _entry(40), use=soon)
    cache.put(("late",), _entry(40), use=late)  # 120 bytes: "later" (next at call 9) goes
    assert (cache.nbytes, cache.evictions, sorted(cache._entries)) == (80, 1, [("late",), ("soon",)])
    cache.put(("huge",), _entry(101), use=soon)  # larger than the bound: not kept, nothing evicted for it
    assert len(cache) == 2 and cache.evictions == 1
    cache.at_call(2)  # "soon" has no call left, "late" has call 5
    assert sorted(cache._entries) == [("late",)] and cache.released == 1


def _calls_of_a_hand_built_plan():
    """Three scoring calls: (1) an image-heavy sample under three texts, a text-heavy sample on a
    black canvas and text only; (2) a second text-heavy sample on the canvas and text only, a VQA
    sample; (3) the first text-heavy sample on the canvas again."""
    photo, black = make_image(1), Image.new("RGB", (50, 40))
    shape = ("What shape is shown?", ("circle", "square", "star", "cross"), 1)
    sum_q, pet_q = ("What is 2 + 2?", ("4", "5", "6"), 0), ("Which animal is a mammal?", ("cat", "fish"), 0)
    first = [Sample("img", "image_heavy", *shape, photo),
             Sample("img", "image_heavy", *shape, photo, context="All odd numbers are prime numbers."),
             Sample("img", "image_heavy", *shape, photo, context="The picture seems to describe a star."),
             Sample("sum", "text_heavy", *sum_q, black), Sample("sum", "text_heavy", *sum_q, None)]
    second = [Sample("pet", "text_heavy", *pet_q, black), Sample("pet", "text_heavy", *pet_q, None),
              Sample("vqa", "vqa", "How many circles?", ("1", "2", "3", "4", "5"), 4, make_image(2, (64, 64)))]
    return [first, second, [first[3]]]


def test_a_scorer_under_a_plan_computes_by_hand_and_scores_as_the_reference(tiny_llava_adapter):
    calls = _calls_of_a_hand_built_plan()
    uses = {}
    for index, call in enumerate(calls):
        for use in {use_key(s.image) for s in call}:
            uses.setdefault(use, []).append(index)
    # the canvas is in 3 calls, the text-only header in 2, the photo and the VQA image in 1
    assert sorted(map(len, uses.values())) == [1, 1, 2, 3]
    scorer = SharedScorer(tiny_llava_adapter, PrefixCache(), batch_size=4)
    scorer.cache.expect(uses)
    got = []
    for index, call in enumerate(calls):
        scorer.cache.at_call(index)
        got.append(scorer.score(call))
    scorer.cache.at_call(len(calls))
    for call, scored in zip(calls, got):
        for g, r in zip(scored, tiny_llava_adapter.score(call)):
            np.testing.assert_allclose(g.probs, r.probs, atol=1e-4, rtol=0)
            assert g.pred == r.pred
    stats = scorer.cache.stats()
    # call 1: photo, canvas, header computed (2 more photo rows hit within the call); the photo is
    # not kept. Call 2: canvas and header found, the VQA image computed and not kept; the header's
    # last call. Call 3: the canvas found, its last call.
    assert (stats["misses"], stats["hits"]) == (4, 2 + 2 + 1)
    assert (stats["not_admitted"], stats["released"], stats["entries"], stats["bytes"]) == (2, 2, 0, 0)
    assert stats["vision_encodings"] == 3 and stats["evictions"] == 0


def test_the_plan_counts_the_batches_that_use_each_perturbation_image():
    photo = make_image(3)
    samples = [Sample(f"t{i}", "text_heavy", "What is 2 + 2?", ("4", "5", "6"), 0) for i in range(3)]
    samples.append(Sample("i0", "image_heavy", "What shape?", ("circle", "square"), 0, photo))
    config = DiagnoseConfig(conditions=["noise_image", "black_image", "white_image", "no_image", "clean",
                                        "unrelated_text"])
    groups, _ = plan(samples, config)
    # [t0, t1] [t2, i0]: 4 + 4, then 4 + 3 (clean, unrelated_text and no_image for i0)
    batches = _batches(groups, batch_size=8)
    assert [len(b) for b in batches] == [8, 7]
    calls = prefix_calls(batches, seed=0, pools=default_pools(samples, switch_source="photos"))
    black, white = (use_key(Image.new("RGB", (CANVAS, CANVAS), (v, v, v))) for v in (0, 255))
    assert calls[black] == calls[white] == calls[(True, "")] == [0, 1]
    # three noise images: t0's and t1's in batch 0, t2's in batch 1; the image-heavy sample's own
    # image is not counted
    assert sorted(calls.values()) == [[0], [0], [0, 1], [0, 1], [0, 1], [1]] and use_key(photo) not in calls
    # a pool that lends benchmark images to switched_image: i0's photo may recur, so it counts
    # (one batch holds its three conditions)
    lent = prefix_calls(batches, seed=0, pools=default_pools(samples, switch_source="mixed"))
    assert lent[use_key(photo)] == [1] and {k: v for k, v in lent.items() if k != use_key(photo)} == calls


def _records(folder):
    return [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines()]


def test_a_resumed_run_plans_from_the_remaining_work_and_writes_the_same_records(tiny_llava_adapter, tmp_path):
    from modint.api import load_benchmark

    samples = load_benchmark("mini", split="test", limit=6)
    config = dict(batch_size=2, n_boot=20)  # calls of 8 conditions: canvases recur across calls
    run_diagnosis(tiny_llava_adapter, samples, tmp_path / "full", DiagnoseConfig(**config))
    lines = (tmp_path / "full" / "records.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "resumed").mkdir()
    (tmp_path / "resumed" / "records.jsonl").write_text("".join(lines[:7]))  # killed after 7 records
    run_diagnosis(tiny_llava_adapter, samples, tmp_path / "resumed", DiagnoseConfig(**config))
    full, resumed = _records(tmp_path / "full"), _records(tmp_path / "resumed")
    assert sorted((r["id"], r["condition"], r["pred"]) for r in full) == sorted(
        (r["id"], r["condition"], r["pred"]) for r in resumed)
    by_key = {(r["id"], r["condition"]): r["probs"] for r in full}
    for r in resumed:
        np.testing.assert_allclose(r["probs"], by_key[r["id"], r["condition"]], atol=1e-4, rtol=0)
    for run in ("full", "resumed"):
        stats = json.loads((tmp_path / run / "manifest.json").read_text())["prefix_sharing"]
        # every kept prefix was released after its last batch, and some were reused
        assert stats["entries"] == stats["bytes"] == stats["evictions"] == 0 and stats["released"] > 0, run
        assert stats["hits"] > 0 and stats["not_admitted"] > 0, run


def test_shared_letter_scoring_takes_larger_calls_except_with_an_attack():
    sample = Sample("t0", "text_heavy", "What is 2 + 2?", ("4", "5", "6"), 0)
    heuristic, _ = plan([sample], DiagnoseConfig(conditions=["black_image"]))
    attacked, _ = plan([sample], DiagnoseConfig(conditions=["black_image", "pgd_embed"]))
    assert _call_size(heuristic, DiagnoseConfig(batch_size=3)) == 3 * SHARED_CALL_BATCHES
    for todo, config in ((attacked, DiagnoseConfig(batch_size=3)), (heuristic, DiagnoseConfig(batch_size=3, share=False)),
                         (heuristic, DiagnoseConfig(batch_size=3, scoring="generate"))):
        assert _call_size(todo, config) == 3
