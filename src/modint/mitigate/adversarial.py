"""The adversarial views of the training step: embedding-space perturbations of the irrelevant
modality of image-heavy and text-heavy anchors (answer tokens excluded).

Two ways to find the perturbation delta:

- ``pgd`` (the paper's, "exact"): k steps of projected gradient ascent on the anchors' answer
  loss with the model frozen (``pgd_delta``), then the adversarial view joins the training forward;
- ``free`` (Shafahi et al. 2019, "Adversarial Training for Free!"): delta is a leaf of the training
  forward itself, so the one backward gives the weights' gradient AND delta's; after it, delta takes
  one signed ascent step and is carried to the next step (``FreeAdversary``).

Either way the adversarial rows are fed as ``E.detach() + M * delta`` (E: the anchor's merged LLM
input embeddings, M: the irrelevant-modality mask), as published: no gradient reaches the clean
embeddings through the adversarial view.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from modint.attacks import PGDConfig, pgd
from modint.attacks.vlm import frozen, irrelevant_mask
from modint.data.sample import TEXT_HEAVY, Sample
from modint.mitigate.forward import answer_states

ADV_MODES = ("pgd", "free")


def perturbed_mask(batch: Any, samples: Sequence[Sample]) -> torch.Tensor:
    """[B, L] where delta may be non-zero: the irrelevant modality, never an answer token."""
    return irrelevant_mask(batch, samples) & ~batch.answer_input_mask


def radius(embeds: torch.Tensor, mask: torch.Tensor, samples: Sequence[Sample], cfg: Any) -> torch.Tensor:
    """[B] L-inf radius of each row's delta: ``pgd_eps`` (``pgd_eps_image`` for text-heavy rows,
    whose irrelevant modality is the image), times the RMS of the perturbed embeddings when
    ``pgd_eps_relative``."""
    counts = mask.sum(1).clamp_min(1)
    rms = ((embeds.float() ** 2).mean(-1) * mask).sum(1).div(counts).sqrt()
    eps = torch.tensor([cfg.pgd_eps_image if s.family == TEXT_HEAVY and cfg.pgd_eps_image is not None
                        else cfg.pgd_eps for s in samples], dtype=rms.dtype, device=rms.device)
    return eps * rms if cfg.pgd_eps_relative else eps


def pgd_delta(adapter: Any, batch: Any, samples: Sequence[Sample], embeds: torch.Tensor, cfg: Any,
              step_seed: int) -> torch.Tensor:
    """The exact method's delta [B, L, H] for ``batch`` (the anchors ``samples``, with answers)
    whose merged input embeddings are ``embeds``: PGD (or Gaussian noise, ``adv_noise``) on the
    answer loss, the model frozen. Detached."""
    embeds = embeds.float()
    mask = perturbed_mask(batch, samples).to(embeds.device)
    maskf = mask[..., None].float()
    eps = radius(embeds, mask, samples, cfg)
    if cfg.adv_noise == "gaussian":
        g = torch.Generator().manual_seed(step_seed % 2**63)
        return torch.randn(embeds.shape, generator=g, device="cpu").to(embeds.device) * eps.view(-1, 1, 1) * maskf

    def loss_fn(d: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            # pgd's closing no-grad forward only ranks restarts; with one restart and no success
            # test the last iterate wins whatever the loss, so that forward is skipped.
            return torch.zeros(d.shape[0], device=d.device)
        return answer_states(adapter, batch, cfg.shift_logits, embeds=embeds + d).ce_per_row()

    with frozen(adapter.model):  # only the perturbation gets gradients in the inner loop
        delta = pgd(loss_fn, tuple(embeds.shape), eps, maskf,  # eps on the embeddings' device: delta too
                    PGDConfig(eps=1.0, steps=cfg.pgd_steps, step_rule=cfg.pgd_step_rule, alpha=cfg.pgd_alpha,
                              restarts=1, seed=step_seed % 2**63))
    return delta.detach()


def adversarial_logits(adapter: Any, anchors: list[Sample], cfg: Any, step_seed: int):
    """Logits of the exact method's adversarial views of ``anchors`` in a forward of their own
    (``train.step_loss`` batches them with the other rows instead). Returns (batch, logits)."""
    batch = adapter.encode(anchors, with_answers=True)
    embeds = adapter.embed(batch).float()
    delta = pgd_delta(adapter, batch, anchors, embeds, cfg, step_seed)
    return batch, adapter.forward(batch, embeds=embeds + delta).logits


class FreeAdversary:
    """Free adversarial training (Shafahi et al. 2019, Algorithm 1) on the irrelevant modality's
    input embeddings.

    The paper keeps ONE delta of the minibatch's (fixed image) shape for the whole run: each
    step perturbs its batch with it, the one backward gives the weights' gradient and delta's, and
    delta takes a signed step of size eps before the next step (whose images are other images).
    Our rows differ in length and in where their irrelevant tokens sit, so what is carried is, per
    batch slot (the k-th attacked anchor of its family: the quota sampler gives every batch the
    same family layout), the perturbation of the slot's masked positions in their order, in units
    of the row's radius (so a new row gets a delta inside its own ball whatever its RMS). Text-heavy
    rows perturb their image tokens, a fixed count, so the carry-over is position for position, as
    in the paper; image-heavy rows perturb their text, whose length varies: a longer row gets fresh
    uniform noise on its extra positions, a shorter one drops the tail. The paper's minibatch
    replays are not done: every step takes a new batch, as the exact method's do, so the two see
    the same data and the same number of steps (the paper's m = 1).
    """

    def __init__(self, cfg: Any, seed: int):
        self.cfg = cfg
        self.generator = torch.Generator().manual_seed(seed % 2**63)
        self.carried: dict[tuple[str, int], torch.Tensor] = {}  # slot -> [positions, H] in units of eps
        self._pending: list[tuple[list[tuple[str, int]], list[torch.Tensor], torch.Tensor, torch.Tensor]] = []

    @staticmethod
    def slots(samples: Sequence[Sample]) -> list[tuple[str, int]]:
        """Each attacked row's slot: (its family, how many rows of that family came before it)."""
        seen: dict[str, int] = {}
        out = []
        for s in samples:
            out.append((s.family, seen.get(s.family, 0)))
            seen[s.family] = out[-1][1] + 1
        return out

    def delta(self, embeds: torch.Tensor, mask: torch.Tensor, samples: Sequence[Sample],
              slots: Sequence[tuple[str, int]] | None = None) -> torch.Tensor:
        """A delta [B, L, H] for rows ``samples`` (in batch slots ``slots``; default: their order)
        with clean embeddings ``embeds`` and perturbed positions ``mask`` [B, L]: a leaf that needs
        a gradient, zero off the mask, each row inside its eps ball. Call ``ascend`` after the
        backward of the loss that used it (several calls may share one backward)."""
        slots = list(slots) if slots is not None else self.slots(samples)
        eps = radius(embeds, mask, samples, self.cfg).detach()
        hidden = embeds.shape[-1]
        unit = torch.zeros(embeds.shape, dtype=torch.float32)
        positions = []
        for row, slot in enumerate(slots):
            where = torch.nonzero(mask[row].cpu()).flatten()
            before = self.carried.get(slot, torch.zeros(0, hidden))[:len(where)]
            fresh = torch.rand((len(where) - len(before), hidden), generator=self.generator) * 2 - 1
            unit[row, where] = torch.cat([before, fresh])
            positions.append(where)
        delta = (unit.to(embeds.device) * eps.view(-1, 1, 1)).requires_grad_(True)
        self._pending.append((slots, positions, unit, delta))
        return delta

    def ascend(self) -> None:
        """After the backward: one signed ascent step of size ``alpha`` x eps on each row's
        perturbation, clipped to its ball, carried to the next step. Without a gradient (the loss
        did not use it) the perturbation is carried unchanged."""
        alpha = self.cfg.pgd_alpha if self.cfg.pgd_alpha is not None else 1.0  # the paper's step: eps
        for slots, positions, unit, delta in self._pending:
            step = delta.grad.sign().cpu() if delta.grad is not None else torch.zeros_like(unit)
            moved = (unit + alpha * step).clamp(-1.0, 1.0)
            for row, (slot, where) in enumerate(zip(slots, positions)):
                self.carried[slot] = moved[row, where].clone()
        self._pending = []

    def state_dict(self) -> dict[str, Any]:
        return {"carried": {f"{f}/{k}": v for (f, k), v in self.carried.items()},
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.carried = {(key.rsplit("/", 1)[0], int(key.rsplit("/", 1)[1])): v for key, v in state["carried"].items()}
        self.generator.set_state(state["generator"])
