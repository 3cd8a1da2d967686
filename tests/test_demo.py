"""The embedded demo model: it ships, plain transformers loads it, and the recipe runs."""

import pytest

from modint.models.loading import DEMO_DIR

needs_demo = pytest.mark.skipif(not (DEMO_DIR / "config.json").exists(), reason="demo weights not in the package")


@needs_demo
def test_shipped_weights_load_with_plain_transformers_and_answer():
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from modint.data.mini import load_mini
    from modint.data.sample import load_image
    from modint.models.adapter import VLMAdapter
    from modint.models.prompts import parse_answer

    size = sum(p.stat().st_size for p in DEMO_DIR.iterdir())
    assert size < 40e6
    model = AutoModelForImageTextToText.from_pretrained(DEMO_DIR).float().eval()
    processor = AutoProcessor.from_pretrained(DEMO_DIR)
    samples = [s.replace(image=load_image(s)) for s in load_mini("test", limit=12) if s.family == "image_heavy"]
    right = 0
    for s in samples:
        prompt = VLMAdapter(model, processor).prompt(s)
        inputs = processor(text=[prompt], images=[s.image], return_tensors="pt")
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
        text = processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        right += parse_answer(text, s.options) == s.answer
    assert right >= 3  # of 4 clean image-heavy samples


@needs_demo
def test_demo_is_the_default_model():
    from modint.cli import DEFAULT_MODEL
    from modint.models.loading import load_adapter

    assert DEFAULT_MODEL == "demo"
    adapter = load_adapter("demo")
    assert adapter.model.dtype.is_floating_point and str(adapter.model.dtype) == "torch.float32"  # cast at load


@pytest.mark.slow
def test_recipe_runs_at_ci_size(tmp_path):
    from modint.models.loading import load_adapter
    from modint.data.mini import load_mini
    from modint.data.sample import load_image
    from modint.zoo.demo import DemoConfig, train_demo

    import dataclasses
    import json

    cfg = DemoConfig(train_per_family=30, batch_size=6, vision_batch=6, text_hidden=64, text_layers=2,
                     vision_hidden=64, vision_layers=2, vocab_size=600, checkpoints=True,
                     binding_steps=600, attention_layer=1, side_flags=True, vision_vqa_rate=0.5,
                     patch_stages="naming,binding", patch_scenes=2, attention_stages="naming,mixture,binding",
                     pointer_attention_weight=0.5, pointer_attention_layer=1, mismatched_picture_rate=0.5,
                     drill_examples=2, drill_stages="mixture,binding").scaled(0.002)
    assert cfg.binding_steps == 1
    out = train_demo(tmp_path / "demo", cfg)
    assert (out / "model.safetensors").exists() and (out / "training.json").exists()
    assert sorted(p.name for p in (out / "stages").iterdir()) == ["binding", "mixture", "naming", "pointer", "vision"]
    # Resuming after the pointer stage runs the mixture and the binding stage only.
    resumed = train_demo(tmp_path / "resumed", dataclasses.replace(cfg, resume_from=str(out / "stages" / "pointer")))
    history = json.loads((resumed / "training.json").read_text())["history"]
    assert {h["stage"] for h in history} == {"mixture", "binding"}
    adapter = load_adapter(str(out))
    samples = [s.replace(image=load_image(s)) for s in load_mini("test", limit=3)]
    scored = adapter.score(samples)
    assert all(abs(r.probs.sum() - 1) < 1e-6 for r in scored)


def test_mixture_draws_fresh_training_samples_beyond_the_pool():
    from modint.zoo.demo import DemoConfig, batches

    cfg = DemoConfig(batch_size=6)
    pool = {"image_heavy": ["pooled"], "text_heavy": ["pooled"], "vqa": ["pooled"]}
    take = lambda sample, rng, cfg, step: sample  # noqa: E731
    first = [s.id for b in batches(pool, take, cfg, "mixture", 3, fresh_pool=100000) for s in b]
    again = [s.id for b in batches(pool, take, cfg, "mixture", 3, fresh_pool=100000) for s in b]
    assert first == again  # seeded
    assert all(i.startswith("train-") for i in first)
    assert max(int(i.rsplit("-", 1)[1]) for i in first) >= cfg.train_per_family  # not the small pool
    assert [b for b in batches(pool, take, cfg, "mixture", 1)] == [["pooled"] * 6]


def test_family_slots_in_turn_or_with_a_vqa_share():
    from modint.zoo.demo import family_slots

    fams = ["image_heavy", "text_heavy", "vqa"]
    assert family_slots(fams, 6) == fams * 2
    assert family_slots(fams, 6, vqa_share=0.5) == ["vqa"] * 3 + ["image_heavy", "text_heavy", "image_heavy"]
    assert family_slots(fams, 4, vqa_share=0.0) == ["image_heavy", "text_heavy"] * 2


def test_scaling_keeps_a_switched_off_stage_off():
    from modint.zoo.demo import DemoConfig

    small = DemoConfig(binding_steps=0, mixture_steps=3000).scaled(0.001)
    assert small.binding_steps == 0 and small.mixture_steps == 3


def test_weak_image_rate_rises_over_the_mixture(monkeypatch):
    import numpy as np

    from modint.data.mini import load_mini
    from modint.zoo.demo import DemoConfig, data

    cfg = DemoConfig(mixture_steps=11, weak_image_rate=0.0, weak_image_rate_end=1.0, caption_rate=1.0)
    rates = []
    monkeypatch.setattr(data, "mixture_example", lambda s, rng, c, rate: rates.append(rate))
    sample = load_mini("train", limit=1)[0]
    for step in (0, 5, 10):
        data.mixture_make(sample, np.random.default_rng(1), cfg, step)  # u = 0.51: a mixture example
    assert [round(r, 6) for r in rates] == [0.0, 0.5, 1.0]


@needs_demo
def test_recipe_defaults_are_the_shipped_weights_recipe():
    import json
    from dataclasses import asdict

    from modint.zoo.demo import DemoConfig

    shipped = json.loads((DEMO_DIR / "training.json").read_text())["config"]
    bookkeeping = {"checkpoints", "checkpoint_every", "resume_from", "threads"}
    defaults = asdict(DemoConfig())
    assert {k: v for k, v in shipped.items() if k not in bookkeeping} == \
        {k: v for k, v in defaults.items() if k not in bookkeeping}


def test_projector_patch_loss_trains_the_tower_and_projector_not_the_lm():
    import numpy as np
    import torch

    from modint.data.mini import load_mini
    from modint.models.tokenizer import train_bpe_tokenizer
    from modint.zoo.demo import (DEMO_CHAT_TEMPLATE, DemoConfig, build_demo, corpus_for_tokenizer, patch_heads,
                                 projector_patch_loss)

    cfg = DemoConfig(batch_size=2, text_hidden=32, text_layers=2, vision_hidden=32, vision_layers=1, vocab_size=400,
                     mixture_pool=50, side_flags=True)
    tok = train_bpe_tokenizer(corpus_for_tokenizer(load_mini("train", limit=30), np.random.default_rng(0)),
                              vocab_size=cfg.vocab_size, chat_template=DEMO_CHAT_TEMPLATE)
    model, processor = build_demo(cfg, tok)
    heads = torch.nn.ModuleDict({k: torch.nn.Linear(cfg.text_hidden, n) for k, n in patch_heads(cfg).items()})
    assert set(heads) == {"shape", "colour", "side"}
    loss = projector_patch_loss(model, processor, heads, cfg, "naming", step=0)
    again = projector_patch_loss(model, processor, heads, cfg, "naming", step=0)
    assert torch.isfinite(loss) and loss.item() == again.item()  # seeded scenes
    assert loss.item() != projector_patch_loss(model, processor, heads, cfg, "mixture", step=0).item()
    loss.backward()
    grads = lambda module: [p.grad for p in module.parameters()]  # noqa: E731
    assert all(g is not None and g.abs().sum() > 0 for g in grads(model.model.multi_modal_projector))
    assert any(g is not None and g.abs().sum() > 0 for g in grads(model.model.vision_tower))
    assert all(g is None for g in grads(model.model.language_model))


def test_asked_patches_cover_the_asked_shape_only():
    from modint.data.mini import make_sample
    from modint.zoo.demo import asked_patches, scene_labels, shape_class

    for i in range(6):  # count, colour_of, position twice
        s = make_sample("vqa", "train", i)
        mask = asked_patches(s, 8)
        shapes = scene_labels(s.image.args[0], 8)["shape"]
        asked = s.meta.get("target") or s.options[s.answer]
        assert mask is not None and mask.any()
        assert (shapes[mask] == shape_class(asked)).all() and not (shapes[~mask] == shape_class(asked)).any()
    assert asked_patches(make_sample("image_heavy", "train", 0), 8) is None


def test_attention_loss_is_minus_log_share_on_the_asked_patches():
    import math

    import numpy as np
    import torch

    from modint.zoo.demo import Example, attention_loss

    # one layer, one head, sequence: [text, img, img, img, answer-position]
    att = torch.zeros(2, 1, 5, 5)
    att[0, 0, 4] = torch.tensor([0.2, 0.4, 0.2, 0.2, 0.0])  # 0.4 of the image attention 0.8 on patch 0
    att[1, 0, 4] = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0])
    ids = torch.tensor([[1, 9, 9, 9, 2]] * 2)
    examples = [Example("q", None, " A", attend=np.array([True, False, False])), Example("q", None, " A")]
    loss = attention_loss((att,), {"input_ids": ids}, torch.tensor([4, 4]), examples, 9, 0, 0)
    assert math.isclose(loss.item(), -math.log(0.5), rel_tol=1e-6)  # the second example has no target
    att.requires_grad_(True)
    attention_loss((att,), {"input_ids": ids}, torch.tensor([4, 4]), examples, 9, 0, 0).backward()
    assert att.grad[0, 0, 4, 1] < 0 < att.grad[0, 0, 4, 2]  # more on the asked patch, less elsewhere
    assert attention_loss((att,), {"input_ids": ids}, torch.tensor([4, 4]), examples[1:], 9, 0, 0) is None


def test_side_flags_mark_the_patches_of_each_extreme_object():
    from modint.data.mini import Item, Scene
    from modint.zoo.demo import SIDES, shape_class, scene_labels

    # a star at the top left, a circle at the bottom right: 4 x 4 patches of 32 px
    scene = Scene(background=(200, 200, 200), noise=0.0, size=128, noise_seed=0,
                  items=(Item("star", (200, 30, 30), 0.2, 0.2, 0.15, 0.0), Item("circle", (30, 30, 200), 0.8, 0.8, 0.15, 0.0)))
    labels = scene_labels(scene, 4)
    star, circle = labels["shape"] == shape_class("star"), labels["shape"] == shape_class("circle")
    assert star.any() and circle.any()
    side = labels["side"]
    assert side.shape == (16, len(SIDES))
    for j, name in enumerate(SIDES):
        owner = star if name in ("left", "top") else circle
        assert (side[:, j] == owner).all(), name
    assert list(labels["extreme"]) == [shape_class(k) for k in ("star", "circle", "star", "circle")]


def test_side_head_loss_is_scored_on_object_patches_only():
    import numpy as np
    import torch

    from modint.zoo.demo import SIDES, head_loss

    targets = [{"shape": np.array([0, 3]), "side": np.array([[1, 1, 1, 1], [1, 0, 1, 0]])}]
    head = torch.nn.Linear(2, 2 * len(SIDES), bias=False)
    with torch.no_grad():  # "yes" on every side for every patch
        head.weight.zero_()
        head.weight[1::2, 0] = 1.0
    feats = torch.tensor([[[5.0, 0.0], [5.0, 0.0]]])
    loss, accuracy = head_loss(feats, torch.nn.ModuleDict({"side": head}), targets)
    # only patch 1 (an object) counts: yes is right on 2 of its 4 sides
    assert accuracy["side"] == 0.5
    p_yes = torch.sigmoid(torch.tensor(5.0)).item()
    import math
    expected = -(2 * math.log(p_yes) + 2 * math.log(1 - p_yes)) / 4
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)


def test_attention_targets_only_on_vqa_examples_with_a_picture():
    import numpy as np

    from modint.data.mini import make_sample
    from modint.zoo.demo import DemoConfig, Example, asked_patches, with_attention_targets

    vqa, text = make_sample("vqa", "train", 0), make_sample("text_heavy", "train", 0)
    make = lambda sample, rng, cfg, step: Example("q", sample.image, " A")  # noqa: E731
    wrapped = with_attention_targets(make, 8)
    rng, cfg = np.random.default_rng(0), DemoConfig()
    assert (wrapped(vqa, rng, cfg, 0).attend == asked_patches(vqa, 8)).all()
    assert wrapped(text, rng, cfg, 0).attend is None  # no picture
    no_image = with_attention_targets(lambda sample, rng, cfg, step: Example("q", None, " A"), 8)
    assert no_image(vqa, rng, cfg, 0).attend is None


def test_option_positions_find_the_right_options_text():
    import numpy as np

    from modint.data.mini import load_mini
    from modint.models.tokenizer import train_bpe_tokenizer
    from modint.zoo.demo import (DEMO_CHAT_TEMPLATE, DemoConfig, build_demo, corpus_for_tokenizer, encode_examples,
                                 mixture_example, option_positions, pointer_example)

    samples = load_mini("train", limit=60)
    tok = train_bpe_tokenizer(corpus_for_tokenizer(samples, np.random.default_rng(0)), vocab_size=600,
                              chat_template=DEMO_CHAT_TEMPLATE)
    cfg = DemoConfig(text_hidden=32, text_layers=2, vision_hidden=32, vision_layers=1, vocab_size=600)
    _, processor = build_demo(cfg, tok)
    rng = np.random.default_rng(0)
    examples = [mixture_example(s, rng, cfg) for s in samples[::6]]
    examples += [pointer_example(s, rng, cfg) for s in samples[1::6]]
    inputs = encode_examples(processor, examples)
    found = 0
    for i, ex in enumerate(examples):
        where = inputs["point_positions"][i]
        if ex.point is None:  # "What is option B?" names no option to point at
            assert where is None
            continue
        found += 1
        assert tok.decode(inputs["input_ids"][i, where]) == " " + ex.point[1]
        assert tok.decode(inputs["input_ids"][i, where[0] - 2]) == ex.point[0]  # "B", ":", then the text
        assert max(where) < int(inputs["answer_positions"][i])
        links = inputs["letter_links"][i]
        assert len(links) == len(ex.choices) >= 2
        for (text, letter), (name, choice) in zip(links, zip("ABCD", ex.choices)):
            assert tok.decode(inputs["input_ids"][i, letter]) == name
            assert tok.decode(inputs["input_ids"][i, text]) == tok.decode(tok.encode(" " + choice)[:1])
    assert found >= 8
    assert option_positions(tok, [1, 2, 3], ("A", "star")) is None
    assert option_positions(tok, [1, 2, 3], None) is None


def test_pointer_attention_loss_is_minus_log_share_on_the_option():
    import math

    import torch

    from modint.zoo.demo import pointer_attention_loss

    att = torch.zeros(2, 2, 4, 4)
    att[0, 1, 3] = torch.tensor([0.1, 0.2, 0.3, 0.4])
    loss = pointer_attention_loss((att,), torch.tensor([3, 3]), [[1, 2], None], 0, 1)
    assert math.isclose(loss.item(), -math.log(0.5), rel_tol=1e-6)
    assert pointer_attention_loss((att,), torch.tensor([3, 3]), [None, None], 0, 1) is None


def test_letter_attention_loss_is_minus_log_attention_on_the_letter():
    import math

    import torch

    from modint.zoo.demo import letter_attention_loss

    att = torch.zeros(1, 1, 5, 5)
    att[0, 0, 2, 0], att[0, 0, 4, 2] = 0.5, 0.25
    loss = letter_attention_loss((att,), [[(2, 0), (4, 2)]], 0, 0)
    assert math.isclose(loss.item(), (-math.log(0.5) - math.log(0.25)) / 2, rel_tol=1e-6)
    assert letter_attention_loss((att,), [[]], 0, 0) is None


def test_mismatched_picture_shows_another_answer_of_the_same_task():
    import numpy as np

    from modint.data.mini import load_mini, make_sample
    from modint.zoo.demo import DemoConfig, fresh_pool, mixture_example, other_picture

    sample = make_sample("image_heavy", "train", 0)
    rng = np.random.default_rng(0)
    picture = other_picture(sample, rng, fresh_pool(DemoConfig()))
    assert picture.size == sample.image().size and np.asarray(picture).tobytes() != np.asarray(sample.image()).tobytes()
    # every captioned prompt gets another picture; the answer stays the sample's (the caption's)
    cfg = DemoConfig(caption_rate=1.0, mismatched_picture_rate=1.0)
    image_heavy = [s for s in load_mini("train", limit=30) if s.family == "image_heavy"]
    assert len(image_heavy) >= 5
    for s in image_heavy:
        ex = mixture_example(s, np.random.default_rng(1), cfg)
        assert ex.concept == s.options[s.answer]
        assert np.asarray(ex.image).tobytes() != np.asarray(s.image()).tobytes()
    # off (and no degraded pictures): every captioned prompt shows the sample's own picture
    off = DemoConfig(caption_rate=1.0, mismatched_picture_rate=0.0)
    for s in image_heavy:
        ex = mixture_example(s, np.random.default_rng(1), off, weak_image_rate=0.0)
        assert np.asarray(ex.image).tobytes() == np.asarray(s.image()).tobytes()


def test_drill_naming_examples_are_right_text_only_sums_of_the_training_split():
    import re

    from modint.zoo.demo import DemoConfig, drill_examples

    cfg = DemoConfig(drill_examples=40, drill_choice_rate=0.0)
    examples = drill_examples(cfg, "binding", 7)
    assert len(examples) == 40 and drill_examples(cfg, "binding", 7) == examples  # seeded by (stage, step)
    assert [e.text for e in drill_examples(cfg, "binding", 8)] != [e.text for e in examples]
    for ex in examples:
        a, op, b = re.fullmatch(r"What is (\d) ([+-]) (\d)\?", ex.text).groups()
        value = int(a) + int(b) if op == "+" else int(a) - int(b)
        assert ex.image is None and ex.target == f" {value}" and ex.concept == str(value)
    assert len({e.text for e in examples}) > 20  # fresh questions, not one repeated
    assert drill_examples(DemoConfig(drill_examples=0), "binding", 0) == []  # 0: off


def test_drill_choice_rate_poses_the_sums_as_multiple_choice_questions():
    import re

    from modint.data.sample import OPTION_LETTERS
    from modint.zoo.demo import DemoConfig, drill_examples

    examples = drill_examples(DemoConfig(drill_examples=40, drill_choice_rate=0.5), "binding", 3)
    choice = [ex for ex in examples if ex.choices]
    assert 8 <= len(choice) <= 32 and len(choice) < len(examples)  # a share, not all or none
    for ex in choice:
        a, op, b = re.search(r"What is (\d) ([+-]) (\d)\?", ex.text).groups()
        value = str(int(a) + int(b) if op == "+" else int(a) - int(b))
        letter = OPTION_LETTERS[ex.choices.index(value)]  # the right sum is an option ...
        assert ex.target == f" {letter}" and ex.point == (letter, value) and ex.concept == value  # ... and the target
        assert f"{letter}: {value}" in ex.text
    only = drill_examples(DemoConfig(drill_examples=10, drill_choice_rate=1.0), "binding", 3)
    assert all(ex.choices for ex in only)
