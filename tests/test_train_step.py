"""The training step at its cost floor: length buckets and answer-only logits give the loss and
gradients of the padded full-logit step; the free adversarial variant (Shafahi et al. 2019) takes
delta's gradient from the training backward, keeps delta in its eps ball and on the modality
mask, carries it to the next step and through a resume."""

import json

import pytest
import torch

from modint.attacks.vlm import irrelevant_mask
from modint.data.mini import load_mini
from modint.mitigate.adversarial import FreeAdversary, adversarial_logits
from modint.mitigate.forward import length_buckets
from modint.mitigate.objectives import answer_ce, consistency, paired_answer_states, preservation
from modint.mitigate.vision_cache import vision_towers
from modint.mitigate.train import TrainConfig, build_sequences, prepare_trainable, reference_model, step_loss, train
from modint.perturb import default_pools
from modint.seeding import derive_seed


@pytest.fixture(scope="module")
def train_samples():
    return load_mini("train", limit=24, sizes={"train": 40})


@pytest.fixture(scope="module")
def pools(train_samples):
    return default_pools(train_samples)


def _anchors(samples):
    return [next(s for s in samples if s.family == f) for f in ("image_heavy", "text_heavy", "vqa")]


def _lora_adapter(cfg):
    from modint.models import load_adapter

    adapter = load_adapter("tiny-random-llava")
    params = prepare_trainable(adapter, cfg)
    with torch.no_grad():  # LoRA starts as the identity (B = 0): give it a value, so gradients are generic
        for p in params:
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.05)
    return adapter, params, reference_model(adapter, cfg)


def test_length_buckets_by_hand():
    assert length_buckets([105, 283, 104, 146, 106, 280]) == [[2, 0, 4], [3], [5, 1]]
    assert length_buckets([10, 10, 10]) == [[0, 1, 2]]
    assert length_buckets([10, 12, 13], growth=1.2) == [[0, 1], [2]]
    assert length_buckets([]) == []


def _padded_step(adapter, anchors, cfg, pools, reference):
    """The step as it was computed before buckets: every row right-padded into one full-logit
    forward, the adversarial views in a forward of their own."""
    seqs, rows, pairs = build_sequences(anchors, cfg, pools, 0)
    batch = adapter.encode(seqs, with_answers=True)
    logits = adapter.forward(batch).logits
    loss = answer_ce(logits, batch.labels)
    terms, n_views = [], len(pairs)
    if pairs:
        view, anchor = paired_answer_states(logits, batch.labels, pairs)
        terms.append(consistency(view, anchor) * len(pairs))
    attacked = [r for r in rows if seqs[r].family != "vqa"] if cfg.recipe == "aug_kl_pgd" else []
    if attacked:
        adv_batch, adv_logits = adversarial_logits(adapter, [seqs[r] for r in attacked], cfg,
                                                   derive_seed("train-pgd", cfg.seed, 0))
        loss = loss + cfg.adv_weight * answer_ce(adv_logits, adv_batch.labels)
        view = paired_answer_states(adv_logits, adv_batch.labels, [(j, j) for j in range(len(attacked))])[0]
        anchor = paired_answer_states(logits, batch.labels, [(r, r) for r in attacked])[0]
        terms.append(consistency(view, anchor) * len(attacked))
        n_views += len(attacked)
    if terms:
        loss = loss + cfg.consistency_weight * torch.stack(terms).sum() / n_views
    clean = [seqs[r] for r in rows]
    ref_batch = adapter.encode(clean, with_answers=True)
    with torch.no_grad(), reference():
        ref_logits = adapter.forward(ref_batch).logits
    student = paired_answer_states(logits, batch.labels, [(r, r) for r in rows])[0]
    before = paired_answer_states(ref_logits, ref_batch.labels, [(j, j) for j in range(len(clean))])[0]
    return loss + cfg.preserve_weight * preservation(student, before)


@pytest.mark.parametrize("recipe", ["sft", "aug_kl_pgd"])
def test_step_equals_the_padded_full_logit_step(train_samples, pools, recipe):
    cfg = TrainConfig(recipe=recipe, trainable="lora", lora_r=2, lora_alpha=4, preserve_weight=0.5,
                      pgd_eps=0.3, pgd_eps_image=0.5, adv_weight=0.7, consistency_weight=0.3)
    adapter, params, reference = _lora_adapter(cfg)
    anchors = _anchors(train_samples)
    old = _padded_step(adapter, anchors, cfg, pools, reference)
    old_grads = torch.autograd.grad(old, params)
    new, parts = step_loss(adapter, anchors, cfg, pools, 0, 0, reference)
    new_grads = torch.autograd.grad(new, params)
    assert new.item() == pytest.approx(old.item(), rel=1e-5)
    assert parts["preserve"] > 1e-4 and (recipe == "sft" or parts["adv_ce"] > 0)  # every term is live
    for a, b in zip(new_grads, old_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def _free_step(adapter, anchors, cfg, pools, adversary, step=0):
    fed = []  # what the language model receives, per forward (the buckets)
    handle = adapter.language_model().register_forward_hook(
        lambda m, a, kw, o: fed.append(kw["inputs_embeds"].detach().clone()), with_kwargs=True)
    try:
        loss, parts = step_loss(adapter, anchors, cfg, pools, 0, step, None, adversary)
    finally:
        handle.remove()
    return loss, parts, fed


def test_free_delta_gets_its_gradient_from_the_training_backward(train_samples, pools):
    cfg = TrainConfig(recipe="aug_kl_pgd", adv_mode="free", trainable="lora", lora_r=2, lora_alpha=4,
                      pgd_eps=0.2, pgd_eps_image=0.5)
    adapter, params, _ = _lora_adapter(cfg)
    anchors = _anchors(train_samples)[:2]  # image-heavy, text-heavy: both attacked
    adversary = FreeAdversary(cfg, seed=1)
    loss, parts, _ = _free_step(adapter, anchors, cfg, pools, adversary)
    (slots, positions, unit, delta), = adversary._pending  # rows in bucket order
    assert sorted(slots) == [("image_heavy", 0), ("text_heavy", 0)] and delta.grad is None
    loss.backward()  # ONE backward: the weights' gradient and delta's
    assert all(p.grad is not None for p in params) and any(p.grad.abs().sum() > 0 for p in params)
    assert delta.grad is not None and all(delta.grad[row, where].abs().sum() > 0 for row, where in enumerate(positions))
    # delta: zero off the mask, inside each row's ball (pgd_eps x RMS; the image tokens: pgd_eps_image x RMS)
    rows = build_sequences(anchors, TrainConfig(recipe="sft"), pools, 0)[0]  # the anchors as trained (TH: noise image)
    batch = adapter.encode(rows, with_answers=True)
    clean = adapter.embed(batch)
    mask = irrelevant_mask(batch, rows) & ~batch.answer_input_mask
    for row, ((family, _), where) in enumerate(zip(slots, positions)):
        a, radius = (0, 0.2) if family == "image_heavy" else (1, 0.5)
        assert torch.equal(where, torch.nonzero(mask[a]).flatten())
        rms = clean[a][mask[a]].pow(2).mean().sqrt()
        values = delta.detach()[row, where]
        assert values.abs().max() <= radius * rms * (1 + 1e-5)
        assert values.abs().max() > 0.5 * radius * rms  # a uniform start fills the ball
        off = torch.ones(delta.shape[1], dtype=torch.bool)
        off[where] = False
        assert not delta.detach()[row, off].any()
    grad = delta.grad.clone()
    adversary.ascend()
    for row, slot in enumerate(slots):  # one signed step of eps (unit 1), clipped to the ball
        expected = (unit[row] + grad[row].sign()).clamp(-1, 1)[positions[row]]
        torch.testing.assert_close(adversary.carried[slot], expected)
    assert adversary._pending == []


def test_free_delta_is_carried_to_the_next_step(train_samples, pools):
    cfg = TrainConfig(recipe="aug_kl_pgd", adv_mode="free", trainable="lora", lora_r=2, lora_alpha=4, pgd_eps_image=0.5)
    adapter, _, _ = _lora_adapter(cfg)
    anchors = _anchors(train_samples)[:2]
    adversary = FreeAdversary(cfg, seed=1)
    loss, _, _ = _free_step(adapter, anchors, cfg, pools, adversary)
    loss.backward()
    adversary.ascend()
    carried = {k: v.clone() for k, v in adversary.carried.items()}
    _, _, fed = _free_step(adapter, anchors, cfg, pools, adversary, step=1)
    (slots, positions, unit, delta), = adversary._pending
    for row, slot in enumerate(slots):
        torch.testing.assert_close(unit[row, positions[row]], carried[slot])
    # the language model got E + delta on the adversarial rows: some fed row differs from every clean one
    # by exactly delta at the masked positions
    batch = adapter.encode(build_sequences(anchors, TrainConfig(recipe="sft"), pools, 0)[0], with_answers=True)
    clean = adapter.embed(batch)
    for row, (family, _) in enumerate(slots):
        a = 0 if family == "image_heavy" else 1
        length = int(batch.inputs["attention_mask"][a].sum())
        target = clean[a, :length] + delta.detach()[row, :length]
        assert any(f.shape[1] >= length and torch.allclose(f[k, :length], target, atol=1e-5)
                   for f in fed for k in range(f.shape[0]))


def test_free_mode_settings_are_checked():
    with pytest.raises(ValueError, match="adv_mode"):
        TrainConfig(adv_mode="fast").check()
    with pytest.raises(ValueError, match="gaussian"):
        TrainConfig(adv_mode="free", adv_noise="gaussian").check()


def test_demo_free_preset_is_the_demo_preset_with_the_free_step():
    from modint.mitigate.config import from_sources, preset_dir, presets

    known = presets()
    assert {k: v for k, v in known["demo-free"].items() if k != "adv_mode"} == known["demo"]
    assert from_sources("demo", preset_dir() / "demo-free.yaml").adv_mode == "free"


def test_free_run_resumes_with_its_carried_delta(tmp_path, train_samples):
    from modint.models import load_adapter

    cfg = dict(recipe="aug_kl_pgd", adv_mode="free", max_steps=2, lr=1e-3, trainable="lora", lora_r=2, lora_alpha=4,
               quotas={"image_heavy": 1, "text_heavy": 1})
    straight = load_adapter("tiny-random-llava")
    train(straight, train_samples, tmp_path / "a", TrainConfig(**cfg))
    interrupted = load_adapter("tiny-random-llava")  # runs on past its step-1 checkpoint
    train(interrupted, train_samples, tmp_path / "b", TrainConfig(**cfg, checkpoint_every=1))
    resumed = load_adapter("tiny-random-llava")
    train(resumed, train_samples, tmp_path / "b", TrainConfig(**cfg, checkpoint_every=1), resume=True)
    for (n, p), (_, q) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=n)
    log = [json.loads(line) for line in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2]


def test_frozen_vision_tower_encodes_each_distinct_image_once_per_step(train_samples, pools):
    cfg = TrainConfig(recipe="aug_kl_pgd", trainable="lora", lora_r=2, lora_alpha=4, preserve_weight=0.5)
    adapter, _, reference = _lora_adapter(cfg)
    anchors = _anchors(train_samples)
    tower = vision_towers(adapter.model)[0]
    patches = next(m for n, m in tower.named_modules() if n.endswith("embeddings"))
    encoded = []
    handle = patches.register_forward_pre_hook(lambda m, args: encoded.append(args[0].shape[0]))
    try:
        step_loss(adapter, anchors, cfg, pools, 0, 0, reference)
    finally:
        handle.remove()
    seqs = build_sequences(anchors, cfg, pools, 0)[0]
    pixels = adapter.encode(seqs).inputs["pixel_values"]
    distinct = len({row.numpy().tobytes() for row in pixels})
    # rows: 3 anchors + 5 views (the image-heavy image three times); then 2 adversarial copies, two PGD
    # iterations and the reference forward show the tower the same images again
    assert len(pixels) == 8 and distinct == 6 and sum(encoded) == distinct
    assert "forward" not in vars(tower)  # the cache goes with the step
    encoded.clear()
    handle = patches.register_forward_pre_hook(lambda m, args: encoded.append(args[0].shape[0]))
    try:
        adapter.forward(adapter.encode(seqs))  # outside a step: every row, as before
    finally:
        handle.remove()
    assert sum(encoded) == 8
