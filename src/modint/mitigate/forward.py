"""The training step's forwards, at the cost of what the objectives read.

The objectives read each row's logits (or last hidden states) at the positions that predict its
answer tokens, nothing else. So:

- rows are grouped into buckets of similar length (``length_buckets``) and each bucket runs as
  its own forward, instead of right-padding every row to the longest (an unrelated-text view is
  three times a clean anchor). The loss is a sum over rows, so one backward over all buckets gives
  the same gradients;
- the LM head runs only at the answer positions (``logits_to_keep``), and a row's answer states are
  kept as a short [n, V] tensor (``AnswerStates``).

Both change which numbers are added in which order, not which numbers: results equal the padded
full-logit forward within float error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from modint.mitigate.objectives import answer_positions
from modint.models.adapter import EncodedBatch
from modint.models.sharing import PER_POSITION

BUCKET_GROWTH = 1.25  # a bucket takes rows up to this many times its shortest one


def length_buckets(lengths: Sequence[int], growth: float = BUCKET_GROWTH) -> list[list[int]]:
    """Row indices grouped by length: sorted by (length, index), a new bucket whenever a row is
    longer than ``growth`` times its bucket's shortest row. Deterministic."""
    buckets: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: (lengths[i], i)):
        if not buckets or lengths[i] > growth * lengths[buckets[-1][0]]:
            buckets.append([i])
        else:
            buckets[-1].append(i)
    return buckets


@dataclass
class AnswerStates:
    """Per row: the logits that predict its answer tokens [n_i, V] (in answer order), those tokens
    [n_i], and, when asked for, the last hidden states at the same positions [n_i, H]."""

    logits: list[torch.Tensor]
    targets: list[torch.Tensor]
    hidden: list[torch.Tensor] | None = None

    def ce(self, rows: Sequence[int]) -> torch.Tensor:
        """Mean cross-entropy over all answer tokens of ``rows`` (``objectives.answer_ce``)."""
        logits = torch.cat([self.logits[r] for r in rows]).float()
        return F.cross_entropy(logits, torch.cat([self.targets[r] for r in rows]))

    def ce_per_row(self) -> torch.Tensor:
        """[B] each row's mean cross-entropy over its answer tokens (``objectives.answer_ce_per_row``)."""
        return torch.stack([F.cross_entropy(lg.float(), t) for lg, t in zip(self.logits, self.targets)])

    def paired(self, pairs: Sequence[tuple[int, int]], hidden: bool = False,
               other: "AnswerStates | None" = None) -> tuple[torch.Tensor, torch.Tensor]:
        """([N, D] view, [N, D] anchor) states of (view row, anchor row) pairs on their answers'
        common prefix (``objectives.paired_answer_states``); anchor rows are read from ``other``
        when given."""
        second = other or self
        mine, theirs = (self.hidden, second.hidden) if hidden else (self.logits, second.logits)
        views, anchors = [], []
        for v, a in pairs:
            n = min(len(mine[v]), len(theirs[a]))
            views.append(mine[v][:n])
            anchors.append(theirs[a][:n])
        if not views:
            empty = mine[0].new_zeros((0, mine[0].shape[-1])) if mine else torch.zeros(0, 0)
            return empty, empty
        return torch.cat(views), torch.cat(anchors)

    @staticmethod
    def gather(parts: Sequence[tuple[Sequence[int], "AnswerStates"]], rows: int) -> "AnswerStates":
        """One ``AnswerStates`` for ``rows`` rows from buckets (their row indices, their states)."""
        logits: list[Any] = [None] * rows
        targets: list[Any] = [None] * rows
        hidden: list[Any] | None = [None] * rows if parts and parts[0][1].hidden is not None else None
        for index, states in parts:
            for k, i in enumerate(index):
                logits[i], targets[i] = states.logits[k], states.targets[k]
                if hidden is not None:
                    hidden[i] = states.hidden[k]
        return AnswerStates(logits, targets, hidden)


def select_rows(batch: EncodedBatch, index: Sequence[int]) -> EncodedBatch | None:
    """Rows ``index`` of ``batch`` (right-padded), trimmed to their longest: what encoding their
    samples again would give. None when the inputs are not laid out one row per sample (flattened
    patches, tiles, rows without an image): then encode them again."""
    rows, width = len(batch.samples), batch.inputs["attention_mask"].shape[1]
    if "decoder_input_ids" in batch.inputs:  # labels follow the decoder, not the trimmed prompt
        return None
    for name, value in batch.inputs.items():
        if not isinstance(value, torch.Tensor) or value.dim() == 0 or value.shape[0] != rows:
            return None
        if name not in PER_POSITION and (value.dim() == 2 and value.shape[1] == width
                                         or name == "pixel_values" and value.dim() != 4):
            return None  # an input of unknown layout, or several images per row
    at = torch.tensor(list(index), device=batch.inputs["attention_mask"].device)
    keep = int(batch.inputs["attention_mask"][at].sum(1).max())
    inputs = {k: v[at, :keep] if k in PER_POSITION else v[at] for k, v in batch.inputs.items()}
    return EncodedBatch(inputs, batch.answer_index[at], batch.image_token_mask[at, :keep],
                        [batch.samples[i] for i in index], None if batch.labels is None else batch.labels[at, :keep])


def answer_states(adapter: Any, batch: Any, shift: bool = True, hidden: bool = False,
                  edit: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  embeds: torch.Tensor | None = None, **forward_kwargs: Any) -> AnswerStates:
    """One forward of ``batch`` (encoded with answers) keeping only the answer-predicting
    positions. ``edit`` / ``embeds``: as ``VLMAdapter.forward``'s ``edit_embeds`` / ``embeds``;
    ``forward_kwargs`` go to the model (a key/value cache the batch continues)."""
    positions = answer_positions(batch.labels, shift)
    targets = [batch.labels[i, torch.nonzero(row != -100).flatten()] for i, row in enumerate(batch.labels)]
    kwargs: dict[str, Any] = dict(forward_kwargs)
    columns = positions
    if not adapter.encoder_decoder:  # the decoder-only LM head runs on the kept positions only
        keep = torch.unique(torch.cat(positions)) if positions else torch.zeros(0, dtype=torch.long)
        kwargs["logits_to_keep"] = keep.to(batch.labels.device)
        columns = [torch.searchsorted(keep, p) for p in positions]
    out = adapter.forward(batch, embeds=embeds, output_hidden_states=hidden, edit_embeds=edit, **kwargs)
    logits = [out.logits[i, c] for i, c in enumerate(columns)]
    states = [out.hidden_states[-1][i, p] for i, p in enumerate(positions)] if hidden else None
    return AnswerStates(logits, targets, states)
