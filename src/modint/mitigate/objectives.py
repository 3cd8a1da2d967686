"""The training objectives, as plain functions of logits, labels and masks (no model code).

L = L_sft + L_adv + lambda * L_consistency, with the published code's
defects fixed: the logit at position t predicts token t + 1 (``shift=True``; ``shift=False``
reproduces the published off-by-one for comparison), reductions are explicit means (over answer
tokens, then over views), views whose answers differ in length are compared on their common
prefix, and no precision is forced (everything runs in the logits' own dtype, reductions in fp32).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CONSISTENCY_KINDS = ("kl", "js", "skl", "mse")


def answer_positions(labels: torch.Tensor, shift: bool = True) -> list[torch.Tensor]:
    """Per row, the positions whose logits predict the answer tokens (in answer order)."""
    rows = []
    for row in labels:
        where = torch.nonzero(row != -100).flatten()
        rows.append(where - 1 if shift else where)
    return rows


def answer_ce(logits: torch.Tensor, labels: torch.Tensor, shift: bool = True) -> torch.Tensor:
    """Mean cross-entropy over all answer tokens of the batch."""
    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100)


def answer_ce_per_row(logits: torch.Tensor, labels: torch.Tensor, shift: bool = True) -> torch.Tensor:
    """[B] mean cross-entropy over each row's answer tokens (what PGD maximises per sample)."""
    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    per_token = F.cross_entropy(logits.transpose(1, 2).float(), labels, ignore_index=-100, reduction="none")
    counts = (labels != -100).sum(1).clamp_min(1)
    return per_token.sum(1) / counts


def _kl(q_log: torch.Tensor, p_log: torch.Tensor) -> torch.Tensor:
    """KL(q || p) per row, from log-probabilities."""
    return (q_log.exp() * (q_log - p_log)).sum(-1)


def consistency(view: torch.Tensor, anchor: torch.Tensor, kind: str = "kl", temperature: float = 1.0) -> torch.Tensor:
    """Mean divergence of a view's answer distributions from its anchor's, anchor stop-gradient.

    ``view`` and ``anchor`` are [N, V] logits at matching answer positions (or [N, H] last hidden
    states for ``mse``). kinds: ``kl`` = KL(q || sg(p)) (the published default), ``js`` = textbook
    Jensen-Shannon between q and sg(p), ``skl`` = KL(q || sg p) + KL(sg p || q), ``mse`` = mean
    squared error of hidden states. No T^2 factor: the temperature only softens both sides.
    """
    if kind not in CONSISTENCY_KINDS:
        raise ValueError(f"unknown consistency {kind!r}; use one of {', '.join(CONSISTENCY_KINDS)}")
    anchor = anchor.detach()
    if view.shape[0] == 0:
        return view.sum() * 0
    if kind == "mse":
        return F.mse_loss(view.float(), anchor.float())
    q_log = F.log_softmax(view.float() / temperature, -1)
    p_log = F.log_softmax(anchor.float() / temperature, -1)
    if kind == "kl":
        return _kl(q_log, p_log).mean()
    if kind == "skl":
        return (_kl(q_log, p_log) + _kl(p_log, q_log)).mean()
    m_log = torch.logsumexp(torch.stack([q_log, p_log]), 0) - math.log(2.0)
    return (0.5 * _kl(q_log, m_log) + 0.5 * _kl(p_log, m_log)).mean()


def preservation(student: torch.Tensor, reference: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(p_reference || q_student), mean over rows: distillation from the model before
    fine-tuning on the clean anchors' answers (learning without forgetting). ``student`` and
    ``reference`` are [N, V] logits at the same answer positions; no gradient reaches the reference."""
    if student.shape[0] == 0:
        return student.sum() * 0
    q_log = F.log_softmax(student.float() / temperature, -1)
    p_log = F.log_softmax(reference.detach().float() / temperature, -1)
    return _kl(p_log, q_log).mean()


def paired_answer_states(states: torch.Tensor, labels: torch.Tensor, pairs: list[tuple[int, int]],
                         shift: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack the answer-position rows of (view, anchor) pairs: ([N, D] view, [N, D] anchor).

    ``states`` is [B, L, D] (logits or hidden states), ``pairs`` (view row, anchor row). Answers
    of different lengths are compared on their common prefix.
    """
    pos = answer_positions(labels, shift)
    views, anchors = [], []
    for v, a in pairs:
        n = min(len(pos[v]), len(pos[a]))
        views.append(states[v, pos[v][:n]])
        anchors.append(states[a, pos[a][:n]])
    if not views:
        empty = states.new_zeros((0, states.shape[-1]))
        return empty, empty
    return torch.cat(views), torch.cat(anchors)
