"""Pool parts: train and eval share no string, image or seed; `train` draws only from the train
part; diagnosis uses the eval part by default and records the part and each pool's hash."""

import hashlib
import json
import re

import numpy as np
import pytest

from modint.data import facts
from modint.data.mini import load_mini
from modint.data.sample import IMAGE_HEAVY, TEXT_HEAVY, load_image
from modint.perturb import apply_condition, default_pools
from modint.perturb.pools import EVAL_PHRASING, UNRELATED_SENTENCES, Pools, photo_pool
from modint.perturb.texts import (TRAIN_GENERIC_FACTS, TRAIN_PHRASINGS, TRAIN_UNRELATED_SENTENCES,
                                  train_misleading_text)

IMAGE_HEAVY_CONCEPTS = list(facts.SHAPES) + list(facts.COLOURS) + [str(n) for n in range(10)]


def _sentences(text):
    return [s for s in re.split(r"(?<=\.)\s+", text.strip()) if s]


def _eval_sentences():
    """Every sentence the eval part can put before a question of `mini`."""
    out = set(UNRELATED_SENTENCES)
    for concept in IMAGE_HEAVY_CONCEPTS:
        out |= set(_sentences(facts.misleading_text(concept)))
    return out


def test_unrelated_sentences_of_the_parts_are_disjoint():
    assert len(TRAIN_UNRELATED_SENTENCES) == len(set(TRAIN_UNRELATED_SENTENCES)) == 80
    assert len(set(UNRELATED_SENTENCES)) == 80
    assert not set(TRAIN_UNRELATED_SENTENCES) & set(UNRELATED_SENTENCES)
    # The false number facts keep their share in both parts.
    assert len(TRAIN_UNRELATED_SENTENCES[-20:]) == 20 and "Five is an even number." in TRAIN_UNRELATED_SENTENCES[-20:]


def test_misleading_phrasings_and_facts_of_the_parts_are_disjoint():
    assert EVAL_PHRASING not in TRAIN_PHRASINGS and len(set(TRAIN_PHRASINGS)) == 8
    assert facts.misleading_text("circle").startswith(EVAL_PHRASING.format(wrong="a circle"))
    eval_facts = {s for pair in facts.CONCEPT_FACTS.values() for s in pair}
    train_facts = {s for group in facts.TRAIN_CONCEPT_FACTS.values() for s in group}
    assert not eval_facts & train_facts
    assert set(facts.TRAIN_CONCEPT_FACTS) >= set(IMAGE_HEAVY_CONCEPTS)
    # No train phrasing or generic fact, filled in with any concept, is an eval sentence.
    eval_sentences = _eval_sentences()
    for concept in IMAGE_HEAVY_CONCEPTS + ["goldfish", "apple"]:
        phrase = facts.concept_phrase(concept)
        filled = {p.format(wrong=phrase) for p in TRAIN_PHRASINGS}
        filled |= {f.format(wrong=phrase, Wrong=phrase.capitalize()) for f in TRAIN_GENERIC_FACTS}
        assert not filled & eval_sentences


def test_train_misleading_texts_never_contain_an_eval_sentence():
    eval_sentences = _eval_sentences()
    seen = set()
    for concept in IMAGE_HEAVY_CONCEPTS:
        for seed in range(40):
            text = train_misleading_text(concept, np.random.default_rng(seed))
            parts = _sentences(text)
            assert len(parts) == 3 and not set(parts) & eval_sentences, text
            assert facts.concept_phrase(concept) in parts[0]
            seen.add(parts[0].replace(facts.concept_phrase(concept), "{wrong}"))
    assert seen == set(TRAIN_PHRASINGS)  # every phrasing gets drawn
    # A concept the facts do not know gets the generic train facts, never the eval template alone.
    assert train_misleading_text("goldfish", np.random.default_rng(0)).count("a goldfish") == 3


def test_misleading_text_by_part_on_a_sample_with_data_facts():
    sample = next(s for s in load_mini("test", limit=9) if s.family == IMAGE_HEAVY)
    eval_out = apply_condition(sample, "misleading_text", 0, default_pools([sample]))
    train_out = apply_condition(sample, "misleading_text", 0, default_pools([sample], part="train"))
    wrong = sample.options[eval_out.meta["distractor"]]
    assert eval_out.context == sample.meta["facts"][wrong]  # the data's own facts at eval
    assert train_out.meta["distractor"] == eval_out.meta["distractor"]  # same draw of the wrong option
    assert not set(_sentences(train_out.context)) & set(_sentences(eval_out.context))


def _pixels_digest(photo):
    img = photo.load().convert("RGB")
    return hashlib.sha256(np.asarray(img).tobytes()).hexdigest()


def test_switch_photo_parts_share_no_image():
    eval_photos, train_photos = photo_pool("eval"), photo_pool("train")
    assert (len(eval_photos), len(train_photos)) == (14, 66)
    assert not {p.name for p in eval_photos} & {p.name for p in train_photos}
    assert all(p.licence for p in train_photos)
    eval_digests = {_pixels_digest(p) for p in eval_photos}
    train_digests = {_pixels_digest(p) for p in train_photos}
    assert len(eval_digests) == 14 and len(train_digests) == 66  # also: no photo twice within a part
    assert not eval_digests & train_digests
    with pytest.raises(ValueError, match="unknown pool part"):
        photo_pool("test")


def test_generated_scenes_are_deterministic_and_look_like_photos():
    from modint.perturb.scenes import SCENE_KINDS, scene

    for kind in SCENE_KINDS:
        a, b = np.asarray(scene(kind, 3)), np.asarray(scene(kind, 3))
        assert np.array_equal(a, b) and a.shape == (288, 384, 3)
        assert not np.array_equal(a, np.asarray(scene(kind, 4)))
        assert a.std() > 10  # not a flat canvas
    with pytest.raises(ValueError, match="unknown scene kind"):
        scene("desert", 0)


def test_noise_seeds_and_canvases_of_the_parts_never_meet():
    samples = [s for s in load_mini("test", limit=60) if s.family == TEXT_HEAVY]
    parts = {part: default_pools(samples, part=part) for part in ("eval", "train")}
    seeds = {part: set() for part in parts}
    for s in samples:
        for seed in range(3):
            for part, pools in parts.items():
                out = apply_condition(s, "noise_image", seed, pools)
                noise_seed = out.meta["noise_seed"]
                pixels = np.random.default_rng(noise_seed).integers(0, 256, size=(336, 336, 3), dtype=np.uint8)
                assert np.array_equal(np.asarray(out.image), pixels)  # the image is its seed's
                seeds[part].add(noise_seed)
    assert all(x % 2 == 1 for x in seeds["eval"]) and all(x % 2 == 0 for x in seeds["train"])
    assert len(seeds["eval"]) == len(seeds["train"]) == 3 * len(samples)
    for s in samples[:5]:
        black = np.asarray(apply_condition(s, "black_image", 0, parts["eval"]).image)
        white = np.asarray(apply_condition(s, "white_image", 0, parts["eval"]).image)
        assert black.max() == 0 and white.min() == 255
        black = np.asarray(apply_condition(s, "black_image", 0, parts["train"]).image)
        white = np.asarray(apply_condition(s, "white_image", 0, parts["train"]).image)
        assert 1 <= black.min() and black.max() <= 24 and 231 <= white.min() and white.max() <= 254


def test_benchmark_switch_images_come_from_the_run_own_split():
    train_samples, test_samples = load_mini("train", limit=12), load_mini("test", limit=12)
    train_ids = {c.source_id for c in default_pools(train_samples, part="train").switch_images if c.source_id}
    test_ids = {c.source_id for c in default_pools(test_samples).switch_images if c.source_id}
    assert train_ids and test_ids and not train_ids & test_ids
    assert all(i.startswith("train-") for i in train_ids) and all(i.startswith("test-") for i in test_ids)


def test_describe_gives_sizes_and_hashes_of_canonical_json():
    pools = Pools(sentences=["A b."], part="eval", switch_source="photos")
    described = pools.describe()
    assert described["part"] == "eval" and described["switch_source"] == "photos"
    expected = hashlib.sha256('["A b."]'.encode()).hexdigest()
    assert described["pools"]["unrelated_sentences"] == {"size": 1, "sha256": expected}
    samples = load_mini("test", limit=6)
    eval_pools, train_pools = default_pools(samples), default_pools(samples, part="train")
    ev, tr = eval_pools.describe()["pools"], train_pools.describe()["pools"]
    assert set(ev) == {"unrelated_sentences", "misleading_text", "switch_photos", "switch_benchmark", "noise_seeds",
                       "canvases"}
    assert (ev["unrelated_sentences"]["size"], tr["unrelated_sentences"]["size"]) == (80, 80)
    assert (ev["misleading_text"]["size"], tr["misleading_text"]["size"]) == (1, 8)
    assert (ev["switch_photos"]["size"], tr["switch_photos"]["size"]) == (14, 66)
    for name in ev:
        if name != "switch_benchmark":  # the same samples here, on purpose
            assert ev[name]["sha256"] != tr[name]["sha256"], name
    assert eval_pools.describe() == default_pools(samples).describe()  # stable


def test_train_never_draws_from_an_eval_part(tmp_path, monkeypatch):
    """A short `train` run, instrumented: every pool it builds is the train part, and every view
    it feeds the model holds only train-part strings, photos, seeds and canvases."""
    import modint.mitigate.train as train_module
    from modint.mitigate.train import TrainConfig, train
    from modint.models import load_adapter

    built, fed = [], []
    real_pools, real_decoded = train_module.default_pools, train_module._decoded
    monkeypatch.setattr(train_module, "default_pools", lambda *a, **k: built.append(real_pools(*a, **k)) or built[-1])
    monkeypatch.setattr(train_module, "_decoded", lambda s: fed.append(real_decoded(s)) or fed[-1])
    samples = load_mini("train", limit=18, sizes={"train": 40})
    cfg = TrainConfig(recipe="aug", max_steps=3, quotas={"image_heavy": 2, "text_heavy": 2, "vqa": 1},
                      switched_views=3, trainable="projector")
    train(load_adapter("tiny-random-llava"), samples, tmp_path, cfg)

    assert [p.part for p in built] == ["train"]
    assert json.loads((tmp_path / "pools.json").read_text())["part"] == "train"
    train_ids = {s.id for s in samples}
    train_photos = {p.name for p in photo_pool("train")}
    eval_sentences = _eval_sentences() | {f for s in samples for t in (s.meta.get("facts") or {}).values()
                                          for f in _sentences(t)}
    by_condition = {}
    for s in fed:
        by_condition.setdefault(s.meta["condition"], []).append(s)
        for sentence in _sentences(s.context or ""):
            assert sentence not in eval_sentences, sentence
    assert set(by_condition) >= {"clean", "misleading_text", "unrelated_text", "noise_image", "switched_image",
                                 "black_image", "white_image"}
    for s in by_condition["unrelated_text"]:
        assert set(_sentences(s.context)) <= set(TRAIN_UNRELATED_SENTENCES)
    for s in by_condition["switched_image"]:
        name = s.meta["switched_from"]
        assert name in train_photos or (name.startswith("sample:") and name[len("sample:"):] in train_ids)
    assert all(s.meta["noise_seed"] % 2 == 0 for s in by_condition["noise_image"])
    assert all(np.asarray(load_image(s)).max() > 0 for s in by_condition["black_image"])
    assert all(np.asarray(load_image(s)).min() < 255 for s in by_condition["white_image"])


def test_diagnosis_uses_the_eval_part_by_default_and_records_the_part(tmp_path, tiny_llava_adapter):
    from modint.diagnose.engine import DiagnoseConfig, run_diagnosis

    samples = [s for s in load_mini("test", limit=6) if s.family == TEXT_HEAVY][:1]
    for part in ("eval", "train"):
        cfg = DiagnoseConfig(conditions=["noise_image"], n_boot=10, pool_part=part, batch_size=2)
        run_diagnosis(tiny_llava_adapter, samples, tmp_path / part, cfg)
        manifest = json.loads((tmp_path / part / "manifest.json").read_text())
        assert manifest["config"]["pool_part"] == part and manifest["pools"]["part"] == part
        assert manifest["pools"]["pools"] == default_pools(samples, part=part).describe()["pools"]
    assert DiagnoseConfig().pool_part == "eval"
    with pytest.raises(ValueError, match="unknown pool part"):
        DiagnoseConfig(pool_part="test").check()
