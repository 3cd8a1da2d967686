"""Embedding PGD on the text after the image, over the image prefix's cached keys and values.

An image-heavy sample's attacked text is what follows its image (``modint.attacks.vlm``), so the
chat header and the image tokens before it carry no perturbation and the model is frozen: their
keys and values are the same in every PGD iteration. ``CachedPrefix`` computes them once per batch
(without gradients) and runs each iteration's forward and backward on the suffix alone, against
a copy of that cache. The suffix tokens attend to exactly the keys and values a full forward gives
them, at the same positions (multimodal RoPE: the model's own position ids), so the loss and its
gradient equal the full forward's up to float error (``modint.models.sharing`` holds the same
argument for letter scoring, and names the families where it fails: they keep the full path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from modint.models.adapter import EncodedBatch
from modint.models.sharing import PER_POSITION, returned_cache, rope_positions, stack_caches


def text_start(batch: EncodedBatch, row: int) -> int:
    """The first position after the row's last image token (0 when it has none)."""
    image_at = torch.nonzero(batch.image_token_mask[row]).flatten()
    return int(image_at[-1]) + 1 if len(image_at) else 0


@dataclass
class CachedPrefix:
    """Rows that share one prefix length ``split`` (header + image), their prefix's key/value
    cache, and the clean LLM input embeddings of what follows it."""

    adapter: Any
    split: int
    cache: Any  # the prefixes' keys and values, batch of rows, never mutated
    suffix_inputs: dict[str, torch.Tensor]  # per-position inputs after the split; the mask covers both parts
    embeds: torch.Tensor  # [B, S, H] the suffix's clean input embeddings (float)
    answer: torch.Tensor  # [B] each row's answer position within the suffix

    @classmethod
    def build(cls, adapter: Any, batch: EncodedBatch, split: int) -> "CachedPrefix":
        """One forward of the prefixes (with the images) and one read of the full input
        embeddings; both without gradients. ``batch`` is right-padded, every row's image ends
        at ``split`` and is followed by at least one token."""
        inputs = dict(batch.inputs)
        positions = rope_positions(adapter, inputs)
        prefix = {k: (v[:, :split] if k in PER_POSITION else v) for k, v in inputs.items()}
        suffix = {k: inputs[k][:, split:] for k in PER_POSITION if k in inputs}
        suffix["attention_mask"] = torch.cat([torch.ones_like(inputs["attention_mask"][:, :split]),
                                              suffix["attention_mask"]], dim=1)
        if positions is not None:
            prefix["position_ids"] = positions[:, :, :split]
            suffix["position_ids"] = positions[:, :, split:]
        answer = batch.answer_index - split
        if split < 1 or int(answer.min()) < 0:
            row = 0 if split < 1 else int(torch.argmin(answer))
            raise ValueError(f"sample {batch.samples[row].id!r}: no image followed by text to split the prompt at")
        with torch.no_grad():
            embeds = adapter.embed(batch)
            if embeds.shape[1] != inputs["input_ids"].shape[1]:
                raise NotImplementedError(f"{adapter.spec.model_type}: the LLM input is not aligned with the token "
                                          "ids (embedding-space masks need one embedding per input token)")
            out = adapter.model(**prefix, cache=None, use_cache=True, logits_to_keep=1)
        return cls(adapter, split, returned_cache(out), suffix, embeds[:, split:].float(), answer)

    def answer_logits(self, embeds: torch.Tensor) -> torch.Tensor:
        """Answer-position logits [B, V] when the suffix's input embeddings are ``embeds``
        (differentiable with respect to them); the cached prefix is copied, never appended to."""
        adapter = self.adapter
        model = adapter.model
        inputs = self.suffix_inputs
        if adapter.spec.text_only_via_language_model:  # no pixels: the language model alone
            model = model.language_model
            inputs = {k: inputs[k] for k in ("input_ids", "attention_mask", "position_ids") if k in inputs}

        def feed(module, args, kwargs):
            kwargs["inputs_embeds"] = embeds.to(adapter.model.dtype)
            if kwargs.get("input_ids") is not None:  # called with token ids: the embeddings replace them
                kwargs["input_ids"] = None
            return args, kwargs

        keep = torch.unique(self.answer)
        handle = adapter.language_model().register_forward_pre_hook(feed, with_kwargs=True)
        try:
            out = model(**inputs, cache=stack_caches([self.cache]), use_cache=True, logits_to_keep=keep)
        finally:
            handle.remove()
        rows = torch.arange(len(self.answer), device=self.answer.device)
        return out.logits[rows, torch.searchsorted(keep, self.answer)].float()
