"""The training step's forward: every row of a step (anchors, views, adversarial copies) in
length buckets, rows that share a chat header and image over one prefix computed once."""

from __future__ import annotations

from typing import Any, Callable

import torch

from modint.mitigate.forward import AnswerStates, answer_states, length_buckets, select_rows
from modint.mitigate.shared_prefix import shared_prefix_groups, shared_states


def bucketed_states(adapter: Any, rows: list[Any], n: int, shift: bool = True, hidden: bool = False,
                    make_delta: Callable[..., torch.Tensor] | None = None, share: bool = True) -> AnswerStates:
    """The answer states of every row of ``rows`` (samples), one forward per length bucket. Rows
    ``n``.. are adversarial copies: ``make_delta(adv_index, local, batch, samples, clean)`` gives the
    perturbation added to their clean merged embeddings (``train._adversarial_deltas``). Rows of
    the first ``n`` that share a prefix (chat header and image) compute it once, with its
    gradient (``mitigate.shared_prefix``), unless ``share`` is False."""
    batch = adapter.encode(rows, with_answers=True)
    groups = shared_prefix_groups(adapter, batch, rows, n) if share else []
    in_groups = {i for g in groups for i in g.rows}
    plain = [i for i in range(len(rows)) if i not in in_groups]
    lengths = batch.inputs["attention_mask"].sum(1).tolist()
    buckets = [[plain[k] for k in b] for b in length_buckets([lengths[i] for i in plain])]
    if len(buckets) == 1 and len(plain) == len(rows):  # the batch as encoded, in its own row order
        buckets = [list(range(len(rows)))]
    parts = shared_states(adapter, batch, rows, groups, shift, hidden) if groups else []
    for index in buckets:
        samples = [rows[i] for i in index]
        sub = batch if len(index) == len(rows) else select_rows(batch, index) or adapter.encode(samples, with_answers=True)
        local = [k for k, i in enumerate(index) if i >= n]
        edit = None
        if local and make_delta is not None:
            edit = _edit_rows(local, [index[k] - n for k in local], sub, samples, make_delta)
        parts.append((index, answer_states(adapter, sub, shift, hidden=hidden, edit=edit)))
    return AnswerStates.gather(parts, len(rows))


def _edit_rows(local: list[int], adv_index: list[int], batch: Any, samples: list[Any],
               make_delta: Callable[..., torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    def edit(embeds: torch.Tensor) -> torch.Tensor:
        at = torch.tensor(local, device=embeds.device)
        clean = embeds[at].detach()
        delta = make_delta(adv_index, local, batch, samples, clean.float())
        return embeds.index_copy(0, at, clean + delta.to(embeds.dtype))
    return edit
