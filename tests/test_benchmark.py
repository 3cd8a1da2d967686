"""The bundled benchmark: sizes, splits, option rules, determinism, family rules."""

import numpy as np
import pytest

from modint.data import facts
from modint.data.mini import DEFAULT_SIZES, TASKS, load_mini, make_sample
from modint.data.registry import BenchmarkError, list_benchmarks, load_benchmark
from modint.data.sample import IMAGE_HEAVY, TEXT_HEAVY, VQA, validate_sample


def test_default_test_split_has_300_per_family_and_every_task():
    samples = load_mini("test")
    for fam in (IMAGE_HEAVY, TEXT_HEAVY, VQA):
        fam_samples = [s for s in samples if s.family == fam]
        assert len(fam_samples) == DEFAULT_SIZES["test"] >= 300
        assert {s.meta["task"] for s in fam_samples} == set(TASKS[fam])
        assert len(TASKS[fam]) >= 2


def test_splits_have_disjoint_ids():
    sizes = {"train": 40, "val": 10, "test": 10}
    ids = {split: {s.id for s in load_mini(split, sizes=sizes)} for split in sizes}
    assert len(ids["train"]) == 120 and len(ids["val"]) == 30
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]


def test_four_distinct_options_answer_anywhere_and_valid():
    samples = load_mini("val")
    positions = np.bincount([s.answer for s in samples], minlength=4)
    for s in samples:
        validate_sample(s)
        assert len(s.options) == 4 and len(set(s.options)) == 4
    assert positions.min() > len(samples) / 4 * 0.7  # the answer letter is no shortcut


def test_images_only_where_the_family_has_them_and_deterministic():
    a, b = load_mini("test", limit=30), load_mini("test", limit=30)
    for x, y in zip(a, b):
        assert x.id == y.id and x.options == y.options and x.answer == y.answer
        if x.family == TEXT_HEAVY:
            assert x.image is None
        else:
            assert np.array_equal(np.asarray(x.image()), np.asarray(y.image()))
            assert x.image().size == (128, 128)


def test_limit_is_a_balanced_prefix():
    full = load_mini("test")
    assert [s.id for s in load_mini("test", limit=7)] == [s.id for s in full[:7]]
    fams = [s.family for s in load_mini("test", limit=9)]
    assert fams.count(IMAGE_HEAVY) == fams.count(TEXT_HEAVY) == fams.count(VQA) == 3


def test_answers_are_right():
    for i in range(60):
        s = make_sample(TEXT_HEAVY, "test", i)
        task, q, ans = s.meta["task"], s.question, s.options[s.answer]
        if task == "arithmetic":
            a, op, b = q.removeprefix("What is ").rstrip("?").split()
            assert int(ans) == (int(a) + int(b) if op == "+" else int(a) - int(b))
        elif task == "compare":
            values = [int(o) for o in s.options]
            assert int(ans) == (max(values) if "largest" in q else min(values))
        else:
            assert any(q in templates and ans == answer for templates, answer, _ in facts.KNOWLEDGE)


def test_image_heavy_samples_carry_misleading_facts_for_wrong_options():
    s = make_sample(IMAGE_HEAVY, "test", 0)
    wrong = [o for i, o in enumerate(s.options) if i != s.answer]
    assert sorted(s.meta["facts"]) == sorted(wrong)
    for o in wrong:
        text = s.meta["facts"][o]
        assert text.startswith("The picture seems to describe") and o in text
        assert text.count(".") >= 3  # the claim plus two sentences about the concept


def test_shape_and_colour_are_visible_in_pixels():
    # The object's colour must actually be drawn: the most saturated pixels are near the named colour.
    for i in range(1, 30, 3):
        s = make_sample(IMAGE_HEAVY, "test", i)
        assert s.meta["task"] == "colour"
        px = np.asarray(s.image(), dtype=float).reshape(-1, 3)
        sat = px.max(1) - px.min(1)
        mean = px[sat >= np.percentile(sat, 95)].mean(0)
        dists = {name: np.linalg.norm(mean - np.array(rgb)) for name, rgb in facts.COLOURS.items()}
        assert min(dists, key=dists.get) == s.options[s.answer]


def test_registry_errors_are_clear():
    assert "mini" in [b.name for b in list_benchmarks()]
    with pytest.raises(BenchmarkError, match="unknown benchmark 'nope'"):
        load_benchmark("nope")
    with pytest.raises(BenchmarkError, match="no split 'dev'"):
        load_benchmark("mini", split="dev")
    assert len(load_benchmark("mini", limit=5)) == 5


def _content_digest(samples, images=6):
    """What a diagnosis of the samples reads: ids, texts, options, answers, tasks, first images."""
    import hashlib
    import json

    from modint.data.sample import load_image

    h = hashlib.sha256()
    for s in samples:
        h.update(json.dumps([s.id, s.family, s.question, list(s.options), s.answer, s.context,
                             s.meta.get("task")], default=str).encode())
    for s in samples[:images]:
        if s.image is not None:
            h.update(load_image(s).tobytes())
    return len(samples), h.hexdigest()


def test_val_is_as_large_as_test_and_enlarging_it_left_test_and_the_old_val_alone():
    assert DEFAULT_SIZES["val"] == DEFAULT_SIZES["test"] == 300
    # Digests of the splits before val grew from 150 to 300 per family (commit ce0b7cf).
    assert _content_digest(load_mini("test")) == (
        900, "55c2d2aa439e3ad2905121bb2007867ea1957d10bccf5dbc26b568f373c6a49b")
    assert _content_digest(load_mini("val", limit=450)) == (
        450, "f7438f993c613dbca05e17f0fab7c797b00c050e0024b0979f871a5dbd7273cf")
    assert len(load_mini("val")) == 900


def test_val_diagnosis_runs_every_condition_as_test_does():
    from collections import Counter

    from modint.diagnose.engine import DiagnoseConfig, plan

    def cells(split):
        groups, errors = plan(load_mini(split), DiagnoseConfig())
        assert not errors
        return Counter((item.sample.family, item.condition) for group in groups for item in group)

    val, test = cells("val"), cells("test")
    assert val == test and set(val.values()) == {300}
