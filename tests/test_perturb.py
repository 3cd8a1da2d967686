"""Perturbations: family rules, determinism from (seed, id, condition), ids kept, what they record."""

import numpy as np
import pytest

from modint.data.mini import load_mini, make_sample
from modint.data.sample import IMAGE_HEAVY, TEXT_HEAVY, VQA, load_image
from modint.perturb import (CONDITIONS, REFERENCE_CONDITION, apply_condition, conditions_for, default_pools,
                            get_condition, save_preview)
from modint.perturb.pools import FALSE_NUMBER_FACTS, UNRELATED_SENTENCES, photo_pool


@pytest.fixture(scope="module")
def samples():
    return load_mini("test", limit=30)


@pytest.fixture(scope="module")
def pools(samples):
    return default_pools(samples)


def test_family_rules():
    assert conditions_for(IMAGE_HEAVY) == ["clean", "unrelated_text", "misleading_text"]
    assert conditions_for(TEXT_HEAVY) == ["noise_image", "switched_image", "black_image", "white_image", "no_image"]
    assert conditions_for(VQA) == ["clean"]
    assert conditions_for(TEXT_HEAVY, ["clean", "no_image"]) == ["no_image"]
    for fam, ref in REFERENCE_CONDITION.items():
        assert fam in CONDITIONS[ref].families
    with pytest.raises(KeyError, match="unknown condition 'blurry'"):
        get_condition("blurry")
    with pytest.raises(ValueError, match="does not apply"):
        apply_condition(make_sample(VQA, "test", 0), "misleading_text", 0, default_pools())


def _fingerprint(s):
    img = load_image(s)
    return (s.id, s.context, s.question, s.options, s.answer, s.meta.get("distractor"), s.meta.get("switched_from"),
            None if img is None else (img.size, np.asarray(img).tobytes()))


def test_every_condition_is_deterministic_and_keeps_the_id(samples, pools):
    for s in samples:
        for name in conditions_for(s.family):
            a, b = apply_condition(s, name, 3, pools), apply_condition(s, name, 3, pools)
            assert a.id == s.id and a.answer == s.answer and a.options == s.options
            assert _fingerprint(a) == _fingerprint(b)
            assert a.meta["condition"] == name


def test_seed_changes_the_draw(samples, pools):
    s = next(x for x in samples if x.family == IMAGE_HEAVY)
    assert apply_condition(s, "unrelated_text", 0, pools).context != apply_condition(s, "unrelated_text", 1, pools).context
    t = next(x for x in samples if x.family == TEXT_HEAVY)
    n0 = np.asarray(apply_condition(t, "noise_image", 0, pools).image)
    n1 = np.asarray(apply_condition(t, "noise_image", 1, pools).image)
    assert not np.array_equal(n0, n1)


def test_unrelated_text_is_ten_pool_sentences_before_the_question(samples, pools):
    assert len(UNRELATED_SENTENCES) >= 80 and len(FALSE_NUMBER_FACTS) == 20
    s = next(x for x in samples if x.family == IMAGE_HEAVY)
    out = apply_condition(s, "unrelated_text", 0, pools)
    assert out.question == s.question and out.image is s.image
    rest, count = out.context, 0
    while rest:
        match = next(p for p in UNRELATED_SENTENCES if rest.startswith(p))
        rest, count = rest[len(match):].lstrip(), count + 1
    assert count == 10


def test_misleading_text_names_a_wrong_option_and_records_it(samples, pools):
    chosen = set()
    for s in [x for x in load_mini("test", limit=120) if x.family == IMAGE_HEAVY]:
        out = apply_condition(s, "misleading_text", 0, pools)
        d = out.meta["distractor"]
        assert d != s.answer and out.context == s.meta["facts"][s.options[d]]
        chosen.add(d)
    assert chosen == {0, 1, 2, 3}


def test_canvases(samples, pools):
    t = next(x for x in samples if x.family == TEXT_HEAVY)
    black = np.asarray(apply_condition(t, "black_image", 0, pools).image)
    white = np.asarray(apply_condition(t, "white_image", 0, pools).image)
    noise = np.asarray(apply_condition(t, "noise_image", 0, pools).image)
    assert black.shape == white.shape == noise.shape == (336, 336, 3)
    assert black.max() == 0 and white.min() == 255
    assert 120 < noise.mean() < 135 and noise.std() > 70  # uniform on 0..255: mean 127.5, std 73.9
    assert apply_condition(t, "no_image", 0, pools).image is None


def test_switched_image_is_never_the_sample_own_and_is_recorded(samples):
    bench_only = default_pools(samples, switch_source="benchmark")
    img_sample = next(x for x in samples if x.family == IMAGE_HEAVY)
    # Even applied to a sample with an image, the switch never draws that sample's own image.
    for seed in range(30):
        out = get_condition("switched_image").apply(img_sample, np.random.default_rng(seed), bench_only)
        assert out.meta["switched_from"] != f"sample:{img_sample.id}"
    t = next(x for x in samples if x.family == TEXT_HEAVY)
    photos = default_pools(samples, switch_source="photos")
    out = apply_condition(t, "switched_image", 0, photos)
    assert out.meta["switched_from"].startswith("skimage:")
    assert load_image(out).mode == "RGB"
    with pytest.raises(ValueError, match="unknown switch source"):
        default_pools(samples, switch_source="web")


def test_photo_pool_loads_offline_with_licences():
    pool = photo_pool()
    assert len(pool) >= 10 and all(p.licence for p in pool)
    img = pool[0].load()
    assert img.mode == "RGB" and min(img.size) > 100


def test_preview_png(tmp_path, samples, pools):
    path = tmp_path / "p.png"
    names = save_preview(samples[1], path, pools=pools)
    assert names == conditions_for(TEXT_HEAVY) + ["injected_instruction"]  # the opt-in ones too: no model needed
    from PIL import Image

    with Image.open(path) as im:
        assert im.width >= 5 * 200


def test_adversarial_conditions_are_opt_in_and_take_an_eps(samples, pools):
    assert "pgd_pixel" not in conditions_for(TEXT_HEAVY)
    assert conditions_for(TEXT_HEAVY, ["pgd_pixel@4", "noise_image", "pgd_pixel@1", "pgd_embed"]) == [
        "noise_image", "pgd_pixel@1", "pgd_pixel@4", "pgd_embed"]
    assert conditions_for(IMAGE_HEAVY, ["pgd_pixel", "pgd_embed@2"]) == ["pgd_embed@2"]
    assert conditions_for(VQA, ["pgd_pixel", "pgd_embed"]) == []
    assert get_condition("pgd_pixel@4.0").name == "pgd_pixel@4" and get_condition("pgd_pixel@4").parameters["eps"] == 4
    assert get_condition("pgd_embed").parameters["eps"] == 0.1
    for bad, why in [("clean@2", "takes no eps"), ("pgd_pixel@x", "not a number"), ("pgd_pixel@-1", ">= 0"),
                     ("pgd_nothing@1", "unknown condition")]:
        with pytest.raises(KeyError, match=why):
            get_condition(bad)


def test_adversarial_condition_starts_from_the_reference_input(samples, pools):
    text = next(s for s in samples if s.family == TEXT_HEAVY)
    ref = apply_condition(text, "noise_image", 3, pools)
    adv = apply_condition(text, "pgd_pixel@2", 3, pools)
    assert np.array_equal(np.asarray(load_image(ref)), np.asarray(load_image(adv)))
    assert adv.meta["condition"] == "pgd_pixel@2" and adv.meta["eps"] == 2 and adv.meta["attack_space"] == "pixel"
    image = next(s for s in samples if s.family == IMAGE_HEAVY)
    assert apply_condition(image, "pgd_embed", 3, pools).context == image.context
