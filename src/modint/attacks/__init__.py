"""PGD on the irrelevant modality, in pixel space and in the LLM's input-embedding space.

ONE implementation (``pgd``) serves diagnosis (``modint diagnose --conditions pgd_pixel``,
``modint attack``) and adversarial training. It knows nothing about models: it maximises a
per-row loss of a perturbation ``delta`` inside an eps-ball, on a mask. The two "spaces" only
say what delta is added to:

- ``pixel``: the raw image in [0, 1] (text-heavy samples: the image is the irrelevant modality),
  through the family's differentiable preprocessing, so the result is a real image; eps in /255;
- ``embed``: the language model's input embeddings after the image features are merged in,
  masked to the irrelevant modality's positions (image-heavy: the text tokens, in diagnosis by
  default only those after the image, ``modint.attacks.vlm.attack``; text-heavy: the image
  tokens); eps relative to the RMS of the embeddings being perturbed.

Step rules: ``sign`` (L-inf PGD, Madry et al.), ``l2`` (normalised gradient step, projection
onto the L2 ball of radius eps * sqrt(number of perturbed elements), so eps is a per-element
RMS in both), ``raw`` (the published code's ``delta + alpha * grad``, clipped to [-eps, eps]).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

STEP_RULES = ("sign", "l2", "raw")
SPACES = ("pixel", "embed")


@dataclass
class PGDConfig:
    eps: float  # pixel: in 1/255 units; embed: relative to the embeddings' RMS
    steps: int = 10
    # sign / l2: step size as a fraction of eps (None: 2.5 / steps, Madry's rule);
    # raw: the absolute multiplier of the gradient (None: 0.1, as published)
    alpha: float | None = None
    step_rule: str = "sign"
    restarts: int = 1
    random_start: bool = True
    targeted: bool = False  # toward the most likely wrong option instead of away from the gold one
    seed: int = 0

    def check(self) -> None:
        if self.eps < 0:
            raise ValueError(f"eps must be >= 0, got {self.eps}")
        if self.steps < 0 or self.restarts < 1:
            raise ValueError("steps must be >= 0 and restarts >= 1")
        if self.step_rule not in STEP_RULES:
            raise ValueError(f"unknown step rule {self.step_rule!r}; use one of {', '.join(STEP_RULES)}")



LossFn = Callable[[torch.Tensor], torch.Tensor]  # delta [B, ...] -> per-row loss to maximise [B]


def pgd(loss_fn: LossFn, shape: tuple[int, ...], eps: torch.Tensor, mask: torch.Tensor, config: PGDConfig,
        project: Callable[[torch.Tensor], torch.Tensor] | None = None,
        success: Callable[[torch.Tensor], torch.Tensor] | None = None,
        noise: Callable[[int], torch.Tensor] | None = None) -> torch.Tensor:
    """Projected gradient ascent on ``loss_fn``; returns the best delta per row.

    ``eps`` is per row ([B]) in the units of delta; ``mask`` (broadcastable to ``shape``) is 1
    where delta may be non-zero. ``project`` applies extra constraints after each step (valid
    pixel range). With restarts, a row keeps the delta that got furthest (``success(delta)`` [B],
    bool or an integer rank: higher is further, e.g. wrong, then the target reached), then the
    one with the highest loss. Deterministic for a given ``config.seed``;
    ``noise(restart)`` may supply the random start (uniform in [-1, 1], shape ``shape``) instead,
    e.g. seeded per sample so a row's result does not depend on its batch. Delta lives on the
    device of ``eps``; random starts are drawn on the CPU, so a seed gives the same start anywhere.
    """
    config.check()
    device = eps.device
    generator = torch.Generator().manual_seed(config.seed)
    rows = shape[0]
    eps_b = eps.reshape(rows, *([1] * (len(shape) - 1))).float()
    mask = mask.float().to(device).expand(shape)
    n_free = mask.reshape(rows, -1).sum(1).clamp_min(1)
    if config.step_rule == "raw":
        alpha = torch.full_like(eps_b, config.alpha if config.alpha is not None else 0.1)
    else:
        alpha = (config.alpha if config.alpha is not None else 2.5 / max(1, config.steps)) * eps_b

    def clip(delta: torch.Tensor) -> torch.Tensor:
        if config.step_rule == "l2":
            radius = eps.float() * n_free.sqrt()
            norm = delta.reshape(rows, -1).norm(dim=1).clamp_min(1e-12)
            delta = delta * (radius / norm).clamp(max=1.0).reshape_as(eps_b)
        else:
            delta = torch.maximum(torch.minimum(delta, eps_b), -eps_b)
        delta = delta * mask
        return project(delta) if project is not None else delta

    best = torch.zeros(shape, device=device)
    best_loss = torch.full((rows,), -float("inf"), device=device)
    best_ok = torch.zeros(rows, dtype=torch.long, device=device)
    for restart in range(config.restarts):
        if config.random_start:
            unit = noise(restart) if noise is not None else torch.rand(shape, generator=generator, device="cpu") * 2 - 1
            delta = unit.to(device) * eps_b
            if config.step_rule == "l2":  # a random point of the same RMS scale, inside the ball
                delta = delta / 3 ** 0.5
        else:
            delta = torch.zeros(shape, device=device)
        delta = clip(delta)
        for _ in range(config.steps):
            with torch.enable_grad():  # callers may sit under no_grad (evaluation loops)
                delta.requires_grad_(True)
                loss = loss_fn(delta)
                (grad,) = torch.autograd.grad(loss.sum(), delta)
            with torch.no_grad():
                if config.step_rule == "sign":
                    step = grad.sign()
                elif config.step_rule == "l2":
                    step = grad * mask
                    step = step / step.reshape(rows, -1).norm(dim=1).clamp_min(1e-12).reshape_as(eps_b)
                    step = step * n_free.sqrt().reshape_as(eps_b)  # per-element RMS 1, like sign
                else:
                    step = grad
                delta = clip(delta.detach() + alpha * step)
        with torch.no_grad():
            loss = loss_fn(delta).float().to(device)
            ok = (success(delta).long().to(device) if success is not None
                  else torch.zeros(rows, dtype=torch.long, device=device))
        better = (ok > best_ok) | ((ok == best_ok) & (loss > best_loss))
        best[better] = delta.detach()[better]
        best_loss = torch.where(better, loss, best_loss)
        best_ok = torch.maximum(best_ok, ok)
    return best
