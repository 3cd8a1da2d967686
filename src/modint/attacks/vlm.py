"""PGD against a vision-language model through the adapter: the model-facing half of ``pgd``.

``attack(adapter, samples, space, config)`` perturbs each sample's irrelevant modality and
returns option probabilities under the attack. The model's parameters are frozen for the
duration (gradients flow only to the perturbation).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from modint.attacks import SPACES, PGDConfig, pgd
from modint.data.sample import IMAGE_HEAVY, TEXT_HEAVY, Sample
from modint.perturb import check_pixel_eps
from modint.seeding import derive_seed

# Which modality is irrelevant, per family and space (VQA needs both: never attacked).
ATTACKED = {"pixel": (TEXT_HEAVY,), "embed": (IMAGE_HEAVY, TEXT_HEAVY)}


@dataclass
class AttackOutcome:
    probs: np.ndarray  # option probabilities under the attack
    pred: int
    target: int | None  # the option a targeted attack pushed toward
    image: Image.Image | None = None  # pixel space: the adversarial image that was scored
    perturbation: float = 0.0  # L-inf of the delta actually applied (pixel: in 1/255; embed: x RMS)


@contextmanager
def frozen(model: torch.nn.Module) -> Iterator[None]:
    """No parameter gradients while attacking; restores each parameter's flag afterwards."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _option_loss(adapter: Any, logits: torch.Tensor, samples: Sequence[Sample], labels: torch.Tensor,
                 sign: torch.Tensor) -> torch.Tensor:
    """Per-row cross-entropy over each sample's own options, times ``sign`` (+1 push away from
    the label, -1 pull toward it)."""
    losses = []
    for i, s in enumerate(samples):
        scores = adapter.option_logits(logits[i], len(s.options)).float()
        losses.append(torch.nn.functional.cross_entropy(scores[None], labels[i:i + 1].to(scores.device)))
    return torch.stack(losses) * sign.to(scores.device)


def _to_probs(adapter: Any, logits: torch.Tensor, samples: Sequence[Sample]) -> list[np.ndarray]:
    return [torch.softmax(adapter.option_logits(logits[i], len(s.options)).float(), -1).double().cpu().numpy()
            for i, s in enumerate(samples)]


def check_applicable(sample: Sample, space: str) -> None:
    if space not in SPACES:
        raise ValueError(f"unknown attack space {space!r}; use one of {', '.join(SPACES)}")
    if sample.family not in ATTACKED[space]:
        raise ValueError(f"{space} attacks apply to {', '.join(ATTACKED[space])} samples, not {sample.family!r}")
    if sample.image is None:
        raise ValueError(f"sample {sample.id!r} has no image to attack ({space} space)")


def attack(adapter: Any, samples: Sequence[Sample], space: str, config: PGDConfig) -> list[AttackOutcome]:
    """PGD on a batch of samples (decoded images, all with an image)."""
    samples = list(samples)
    for s in samples:
        check_applicable(s, space)
    config.check()
    if space == "pixel":
        check_pixel_eps(config.eps)
    batch = adapter.encode(samples)
    device = adapter.device
    gold = torch.tensor([s.answer for s in samples], device=device)
    with frozen(adapter.model):
        with torch.no_grad():
            clean_probs = _to_probs(adapter, adapter.answer_logits(batch), samples)
        if config.targeted:  # the most likely wrong option under no attack
            labels = torch.tensor([int(np.argmax(np.where(np.arange(len(p)) == s.answer, -1.0, p)))
                                   for p, s in zip(clean_probs, samples)], device=device)
            sign = -torch.ones(len(samples), device=device)
        else:
            labels, sign = gold, torch.ones(len(samples), device=device)

        def success_of(probs: list[np.ndarray]) -> torch.Tensor:
            # How far a restart got: wrong first (a wrong answer is never traded for a right one),
            # then, targeted, the target reached.
            preds = torch.tensor([int(np.argmax(p)) for p in probs], device=device)
            return (preds != gold).long() + ((preds == labels).long() if config.targeted else 0)

        if space == "pixel":
            return _pixel(adapter, batch, samples, config, labels, sign, success_of)
        return _embed(adapter, batch, samples, config, labels, sign, success_of)


def _row_noise(samples: Sequence[Sample], shapes: list[tuple[int, ...]], full: tuple[int, ...], seed: int):
    """Random starts drawn per sample from (seed, sample id, restart) on the sample's own shape,
    so an attacked sample gets the same result whatever batch it is in (and on whatever device:
    drawn on the CPU, ``pgd`` moves them)."""
    def noise(restart: int) -> torch.Tensor:
        out = torch.zeros(full, device="cpu")
        for i, (s, shape) in enumerate(zip(samples, shapes)):
            g = torch.Generator().manual_seed(derive_seed("pgd", seed, s.id, restart) % 2**63)
            region = tuple(slice(0, n) for n in shape)
            out[(i, *region)] = torch.rand(shape, generator=g, device="cpu") * 2 - 1
        return out
    return noise


def _image_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)


def _pixel(adapter, batch, samples, config, labels, sign, success_of) -> list[AttackOutcome]:
    device = adapter.device  # the differentiable preprocessing runs beside the model
    images = [_image_tensor(s.image).to(device) for s in samples]
    height = max(x.shape[1] for x in images)
    width = max(x.shape[2] for x in images)
    # Images differ in size: one padded delta, masked to each image's own area.
    base = torch.zeros(len(images), 3, height, width, device=device)
    mask = torch.zeros(len(images), 1, height, width, device=device)
    for i, x in enumerate(images):
        base[i, :, :x.shape[1], :x.shape[2]] = x
        mask[i, :, :x.shape[1], :x.shape[2]] = 1

    def pixel_values(delta: torch.Tensor) -> torch.Tensor:
        adv = base + delta
        return adapter.differentiable_pixel_values(
            [adv[i, :, :x.shape[1], :x.shape[2]] for i, x in enumerate(images)]).to(adapter.device)

    def logits_for(delta: torch.Tensor) -> torch.Tensor:
        inputs = {**batch.inputs, "pixel_values": pixel_values(delta)}
        return adapter.answer_logits(type(batch)(inputs, batch.answer_index, batch.image_token_mask, batch.samples))

    def loss_fn(delta: torch.Tensor) -> torch.Tensor:
        return _option_loss(adapter, logits_for(delta), samples, labels, sign)

    def success(delta: torch.Tensor) -> torch.Tensor:
        return success_of(_to_probs(adapter, logits_for(delta), samples))

    def project(delta: torch.Tensor) -> torch.Tensor:  # keep base + delta a valid image
        return (base + delta).clamp(0, 1) - base

    eps = torch.full((len(samples),), config.eps / 255.0, device=device)
    noise = _row_noise(samples, [tuple(x.shape) for x in images], tuple(base.shape), config.seed)
    delta = pgd(loss_fn, tuple(base.shape), eps, mask, config, project=project, success=success, noise=noise)
    # The adversarial image is saved as 8-bit pixels and scored through the model's own
    # processor, like every other condition: the perturbation is a real image.
    adv_images = []
    for i, x in enumerate(images):
        adv = base[i, :, :x.shape[1], :x.shape[2]] + delta[i, :, :x.shape[1], :x.shape[2]]
        arr = (adv.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        adv_images.append(Image.fromarray(arr))
    scored = adapter.score([s.replace(image=im) for s, im in zip(samples, adv_images)])
    outcomes = []
    for i, (s, r, im) in enumerate(zip(samples, scored, adv_images)):
        applied = np.abs(np.asarray(im, dtype=np.int16) - np.asarray(samples[i].image.convert("RGB"), dtype=np.int16))
        outcomes.append(AttackOutcome(r.probs, r.pred, int(labels[i]) if config.targeted else None, im,
                                      float(applied.max()) if applied.size else 0.0))
    return outcomes


def irrelevant_mask(batch, samples: Sequence[Sample]) -> torch.Tensor:
    """[B, L] positions of the irrelevant modality in the LLM input: image-heavy -> the text
    tokens (everything that is not an image token or padding); text-heavy -> the image tokens."""
    image = batch.image_token_mask
    text = batch.inputs["attention_mask"].bool() & ~image
    rows = [text[i] if s.family == IMAGE_HEAVY else image[i] if s.family == TEXT_HEAVY else torch.zeros_like(image[i])
            for i, s in enumerate(samples)]
    return torch.stack(rows)


def _embed(adapter, batch, samples, config, labels, sign, success_of) -> list[AttackOutcome]:
    embeds = adapter.embed(batch).float()
    positions = irrelevant_mask(batch, samples)
    if embeds.shape[1] != positions.shape[1]:
        raise NotImplementedError(f"{adapter.spec.model_type}: the LLM input is not aligned with the token ids "
                                  "(embedding-space masks need one embedding per input token)")
    positions = positions.to(embeds.device)  # a model spread over devices may differ from the batch's
    mask = positions[..., None].float()
    counts = positions.sum(1).clamp_min(1)
    rms = ((embeds ** 2).mean(-1) * positions).sum(1).div(counts).sqrt()  # [B]
    eps = config.eps * rms  # on the embeddings' device, so delta is made there

    def logits_for(delta: torch.Tensor) -> torch.Tensor:
        return adapter.answer_logits_from_embeds(batch, embeds + delta)

    def loss_fn(delta: torch.Tensor) -> torch.Tensor:
        return _option_loss(adapter, logits_for(delta), samples, labels, sign)

    def success(delta: torch.Tensor) -> torch.Tensor:
        return success_of(_to_probs(adapter, logits_for(delta), samples))

    lengths = batch.inputs["attention_mask"].sum(1).tolist()  # padding is never perturbed
    noise = _row_noise(samples, [(int(n), embeds.shape[2]) for n in lengths], tuple(embeds.shape), config.seed)
    delta = pgd(loss_fn, tuple(embeds.shape), eps, mask, config, success=success, noise=noise)
    with torch.no_grad():
        probs = _to_probs(adapter, logits_for(delta), samples)
    size = (delta.abs().amax(dim=(1, 2)) / rms.clamp_min(1e-12)).tolist()
    return [AttackOutcome(p, int(np.argmax(p)), int(labels[i]) if config.targeted else None, None, float(size[i]))
            for i, p in enumerate(probs)]
