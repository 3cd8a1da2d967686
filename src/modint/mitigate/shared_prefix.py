"""Prefixes that rows of a training step share, computed once in the gradient graph.

The prompts put the image first (``modint.models.prompts``), so an image-heavy anchor and its
text views (unrelated / misleading text before the question) start with the same chat header and
the same image tokens, and the black (white) canvas views of two text-heavy anchors start with the
same header and canvas. ``shared_prefix_groups`` finds rows whose tokens up to their last image
token and whose image are equal; ``shared_states`` runs each group's prefix once (one forward over
the distinct prefixes of one length, the model's key/value cache kept with its graph), expands the
cache over the group's rows (an ``index_select``: the backward sums the rows' gradients into the
one prefix, as it would into their own copies) and runs only the suffixes against it.

A suffix token attends to the keys and values the full forward would give it, at the same
positions, so losses and gradients equal the one-forward-per-row step within float error. Rows are
never shared when that would not hold:
- the adversarial copies (their perturbation starts at the first token: the chat header is text);
- families ``models.sharing.sharing_blocker`` names (PaliGemma's bidirectional prefix, the Q-Former
  reading the instruction, encoder-decoder language models), the Q-Former families whose language
  model runs text-only rows on its own, and multimodal RoPE (Qwen-VL: a suffix's position ids
  follow the image grid, not its index);
- a language model with active dropout (one mask for the prefix instead of one per row).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from modint.mitigate.forward import AnswerStates, answer_states, length_buckets, select_rows
from modint.mitigate.vision_cache import deterministic
from modint.models.adapter import EncodedBatch
from modint.models.prefix_cache import image_digest
from modint.models.sharing import PER_POSITION, sharing_blocker


@dataclass
class PrefixGroup:
    """Rows (indices into the step's rows) whose first ``split`` tokens and image are equal."""

    split: int
    rows: list[int]


def prefix_sharing_blocker(adapter: Any) -> str | None:
    """Why the training step cannot share prefixes on this adapter's model, or None when it can."""
    reason = sharing_blocker(adapter)
    if reason is not None:
        return reason
    if adapter.spec.text_only_via_language_model:
        return "Q-Former family: a suffix carries no pixels, and such rows go to its language model alone"
    inner = getattr(getattr(adapter.model, "get_base_model", lambda: adapter.model)(), "model", None)
    if getattr(inner, "get_rope_index", None) is not None:
        return "multimodal RoPE: a suffix's position ids follow the image grid"
    if adapter.model.training and not deterministic(adapter.language_model()):
        return "the language model has active dropout"
    return None


def shared_prefix_groups(adapter: Any, batch: EncodedBatch, rows: Sequence[Any], shareable: int
                         ) -> list[PrefixGroup]:
    """Groups of two or more of the first ``shareable`` rows of ``batch`` (encoded with answers)
    whose tokens up to and including their last image token, and whose image, are equal; the
    prefix ends before the token that predicts the first answer token. Deterministic."""
    if prefix_sharing_blocker(adapter) is not None:
        return []
    ids, image_mask = batch.inputs["input_ids"].cpu(), batch.image_token_mask.cpu()
    labels = batch.labels.cpu()
    groups: dict[tuple, PrefixGroup] = {}
    for i in range(shareable):
        image_at = torch.nonzero(image_mask[i]).flatten()
        if rows[i].image is None or not len(image_at):
            continue
        split = int(image_at[-1]) + 1
        first_answer = int(torch.nonzero(labels[i] != -100).flatten()[0])
        if split >= first_answer:  # the suffix must hold every answer-predicting position
            continue
        key = (tuple(ids[i, :split].tolist()), image_digest(rows[i].image))
        groups.setdefault(key, PrefixGroup(split, [])).rows.append(i)
    return [g for g in groups.values() if len(g.rows) > 1]


def _cache_rows(cache: Any, index: torch.Tensor) -> Any:
    """A new cache whose batch rows are ``cache``'s rows ``index`` (differentiable; the forward
    appends to the new cache's own tensors, never to ``cache``'s)."""
    expanded = copy.copy(cache)
    expanded.layers = []
    for layer in cache.layers:
        fresh = copy.copy(layer)
        if isinstance(getattr(layer, "keys", None), torch.Tensor) and layer.keys.numel():
            fresh.keys = layer.keys.index_select(0, index.to(layer.keys.device))
            fresh.values = layer.values.index_select(0, index.to(layer.values.device))
        expanded.layers.append(fresh)
    return expanded


def _prefix_cache(adapter: Any, batch: EncodedBatch, rows: Sequence[Any], leaders: list[int], split: int) -> Any:
    """The key/value cache (with its graph) of the first ``split`` tokens of rows ``leaders``."""
    chosen = select_rows(batch, leaders)
    inputs = dict(chosen.inputs if chosen is not None else adapter.encode([rows[i] for i in leaders]).inputs)
    for name in PER_POSITION:
        if name in inputs:
            inputs[name] = inputs[name][:, :split]
    return adapter.model(**inputs, use_cache=True, logits_to_keep=1).cache


def _suffix_batch(batch: EncodedBatch, index: list[int], split: int, pad: int) -> EncodedBatch:
    """Rows ``index`` of ``batch`` from position ``split`` on, right-padded to the longest; the
    attention mask also covers the ``split`` cached positions."""
    lengths = batch.inputs["attention_mask"].sum(1).tolist()
    width = max(int(lengths[i]) for i in index) - split
    at = torch.tensor(index, device=batch.labels.device)
    inputs = {}
    for name in PER_POSITION:
        if name in batch.inputs:
            block = batch.inputs[name][at, split:split + width]
            inputs[name] = block.new_full((len(index), width), pad if name == "input_ids" else 0)
            inputs[name][:, :block.shape[1]] = block
    suffix_mask = batch.inputs["attention_mask"][at, split:split + width]
    inputs["attention_mask"] = torch.cat([suffix_mask.new_ones((len(index), split)), suffix_mask], dim=1)
    labels = batch.labels.new_full((len(index), width), -100)
    labels[:, :suffix_mask.shape[1]] = batch.labels[at, split:split + width]
    empty = torch.zeros((len(index), width), dtype=torch.bool, device=labels.device)
    return EncodedBatch(inputs, empty.sum(1), empty, [batch.samples[i] for i in index], labels)


def shared_states(adapter: Any, batch: EncodedBatch, rows: Sequence[Any], groups: list[PrefixGroup],
                  shift: bool = True, hidden: bool = False) -> list[tuple[list[int], AnswerStates]]:
    """The answer states of the rows of ``groups`` as (row indices, states) parts: per prefix
    length, one forward over the groups' prefixes, then the suffixes in length buckets."""
    pad = adapter.tokenizer.pad_token_id or 0
    lengths = batch.inputs["attention_mask"].sum(1).tolist()
    parts = []
    for split in sorted({g.split for g in groups}):
        same = [g for g in groups if g.split == split]
        cache = _prefix_cache(adapter, batch, rows, [g.rows[0] for g in same], split)
        members = [(i, k) for k, g in enumerate(same) for i in g.rows]
        for bucket in length_buckets([int(lengths[i]) - split for i, _ in members]):
            index = [members[b][0] for b in bucket]
            expanded = _cache_rows(cache, torch.tensor([members[b][1] for b in bucket], device=batch.labels.device))
            suffix = _suffix_batch(batch, index, split, pad)
            parts.append((index, answer_states(adapter, suffix, shift, hidden=hidden, cache=expanded,
                                               use_cache=True)))
    return parts
