"""Prefixes shared in the training step (``mitigate.shared_prefix``): an image-heavy anchor and its
text views, and the canvas views of different text-heavy anchors, compute header + image once;
losses and gradients (LoRA and full fine-tune) equal the step that computes every row whole, while
the language model runs fewer positions. Families where it cannot hold keep the whole rows."""

import pytest
import torch

from modint.data.mini import load_mini
from modint.mitigate.forward import select_rows
from modint.mitigate.step_forward import bucketed_states
from modint.mitigate.shared_prefix import prefix_sharing_blocker, shared_prefix_groups
from modint.mitigate.train import TrainConfig, build_sequences, prepare_trainable
from modint.models.adapter import VLMAdapter
from modint.models.tiny import build_tiny
from modint.perturb import default_pools


@pytest.fixture(scope="module")
def rows():
    """Two image-heavy anchors with their two text views each, two text-heavy anchors with their
    switched / black / white views, a VQA anchor (15 rows)."""
    samples = load_mini("train", limit=24, sizes={"train": 40})
    picked = [s for s in samples if s.family == "image_heavy"][:2] + [s for s in samples if s.family == "text_heavy"][:2]
    picked.append(next(s for s in samples if s.family == "vqa"))
    sequences, _, _ = build_sequences(picked, TrainConfig(recipe="aug_kl"), default_pools(samples), 0)
    return sequences


def _adapter(family, trainable):
    model, processor = build_tiny(family, seed=0)
    adapter = VLMAdapter(model.float(), processor)
    params = prepare_trainable(adapter, TrainConfig(trainable=trainable, lora_r=2, lora_alpha=4))
    if trainable == "lora":
        with torch.no_grad():  # LoRA starts as the identity (B = 0): give it a value, so gradients are generic
            for p in params:
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.05)
    adapter.model.train()
    return adapter, params


def _loss_grads_positions(adapter, params, rows, share, hidden=False):
    seen = []
    handle = adapter.language_model().register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["inputs_embeds"].shape[0] * kw["inputs_embeds"].shape[1]), with_kwargs=True)
    try:
        states = bucketed_states(adapter, rows, len(rows), hidden=hidden, share=share)
    finally:
        handle.remove()
    loss = states.ce(range(len(rows)))
    if hidden:  # the MSE consistency reads the last hidden states at the answer positions
        loss = loss + sum(h.square().mean() for h in states.hidden)
    return loss, torch.autograd.grad(loss, params), sum(seen)


@pytest.mark.parametrize("family,trainable", [("llava", "lora"), ("llava", "full"), ("idefics3", "lora")])
def test_shared_prefixes_give_the_loss_and_gradients_of_whole_rows(rows, family, trainable):
    adapter, params = _adapter(family, trainable)
    batch = adapter.encode(rows, with_answers=True)
    groups = shared_prefix_groups(adapter, batch, rows, len(rows))
    # each image-heavy anchor with its two text views; the black views, and the white ones, of
    # the two text-heavy anchors (switched photos and noise anchors differ by row)
    assert sorted(g.rows for g in groups) == [[0, 1, 2], [3, 4, 5], [8, 12], [9, 13]]
    last_image = [int(torch.nonzero(batch.image_token_mask[g.rows[0]]).flatten()[-1]) for g in groups]
    assert [g.split for g in groups] == [i + 1 for i in last_image]
    whole, whole_grads, whole_positions = _loss_grads_positions(adapter, params, rows, share=False)
    shared, shared_grads, shared_positions = _loss_grads_positions(adapter, params, rows, share=True)
    assert shared.item() == pytest.approx(whole.item(), rel=1e-6)
    for a, b in zip(shared_grads, whole_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert sum(float(g.abs().sum()) for g in whole_grads) > 0
    # each group computes its prefix once instead of once per row (padding aside)
    saved = sum(g.split * (len(g.rows) - 1) for g in groups)
    assert shared_positions <= whole_positions - saved // 2


def test_shared_prefixes_keep_the_answer_hidden_states(rows):
    adapter, params = _adapter("llava", "lora")
    whole, whole_grads, _ = _loss_grads_positions(adapter, params, rows, share=False, hidden=True)
    shared, shared_grads, _ = _loss_grads_positions(adapter, params, rows, share=True, hidden=True)
    assert shared.item() == pytest.approx(whole.item(), rel=1e-6)
    for a, b in zip(shared_grads, whole_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_adversarial_copies_are_never_grouped(rows):
    adapter, _ = _adapter("llava", "lora")
    with_copies = rows + [rows[0], rows[3]]  # rows n.. are the adversarial copies
    groups = shared_prefix_groups(adapter, adapter.encode(with_copies, with_answers=True), with_copies, len(rows))
    assert all(i < len(rows) for g in groups for i in g.rows) and groups


@pytest.mark.parametrize("family,reason", [("qwen2_vl", "multimodal RoPE"), ("blip-2", "Q-Former"),
                                           ("paligemma", "both directions")])
def test_families_that_cannot_share_say_why_and_keep_whole_rows(rows, family, reason):
    model, processor = build_tiny(family, seed=0)
    adapter = VLMAdapter(model.float(), processor)
    assert reason in prefix_sharing_blocker(adapter)
    if family == "qwen2_vl":  # the image comes first here too: only the blocker stops the grouping
        assert shared_prefix_groups(adapter, adapter.encode(rows, with_answers=True), rows, len(rows)) == []


def test_active_dropout_in_the_language_model_blocks_sharing():
    adapter, _ = _adapter("llava", "lora")
    assert prefix_sharing_blocker(adapter) is None
    adapter.language_model().config.attention_dropout = 0.1
    assert "dropout" in prefix_sharing_blocker(adapter)
    adapter.model.eval()  # not training: dropout is off
    assert prefix_sharing_blocker(adapter) is None


@pytest.mark.parametrize("family", ["llava", "gemma3", "idefics3", "blip-2-t5"])
def test_selected_rows_are_what_encoding_them_again_gives(rows, family):
    model, processor = build_tiny(family, seed=0)
    adapter = VLMAdapter(model.float(), processor)
    batch = adapter.encode(rows, with_answers=True)
    index = [14, 0, 6]  # a VQA anchor, an image-heavy anchor, a text-heavy anchor: not the longest rows
    chosen = select_rows(batch, index)
    if family in ("idefics3", "blip-2-t5"):  # tiles per row; labels on the decoder side
        assert chosen is None
        return
    again = adapter.encode([rows[i] for i in index], with_answers=True)
    assert chosen.inputs.keys() == again.inputs.keys() and chosen.samples == again.samples
    for name in again.inputs:
        torch.testing.assert_close(chosen.inputs[name], again.inputs[name], rtol=0, atol=0)
    for name in ("labels", "image_token_mask", "answer_index"):
        torch.testing.assert_close(getattr(chosen, name), getattr(again, name), rtol=0, atol=0)
