"""PGD against a vision-language model through the adapter: the model-facing half of ``pgd``.

``attack(adapter, samples, space, config)`` perturbs each sample's irrelevant modality and
returns option probabilities under the attack. The model's parameters are frozen for the
duration (gradients flow only to the perturbation).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from modint.attacks import SPACES, PGDConfig, pgd
from modint.attacks.prefix import CachedPrefix, text_start
from modint.data.sample import IMAGE_HEAVY, TEXT_HEAVY, Sample
from modint.models.sharing import sharing_blocker
from modint.perturb import check_pixel_eps
from modint.seeding import derive_seed

# Which modality is irrelevant, per family and space (VQA needs both: never attacked).
ATTACKED = {"pixel": (TEXT_HEAVY,), "embed": (IMAGE_HEAVY, TEXT_HEAVY)}
# Which text of an image-heavy sample the embedding attack perturbs (see ``attack``).
EMBED_TEXT = ("after_image", "all")


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


def attack(adapter: Any, samples: Sequence[Sample], space: str, config: PGDConfig,
           embed_text: str = "after_image", share: bool = True) -> list[AttackOutcome]:
    """PGD on a batch of samples (decoded images, all with an image).

    ``embed_text`` says which text of an image-heavy sample the embedding attack perturbs:
    ``after_image`` (the sample's text: everything after its image, the question and the
    template's closing tokens; the chat header before the image is left alone) or ``all`` (every
    text token, header included). With ``after_image`` and ``share``, the header + image
    prefix's keys and values are computed once per batch and every PGD iteration runs on the
    text after them (``modint.attacks.prefix``); families where that cannot apply
    (``modint.models.sharing.sharing_blocker``), text-heavy samples (their image is the attacked
    part) and ``share=False`` run full forwards. Every row's result is its own: the random start
    is drawn per sample, so a sample gets the same attack in any batch."""
    samples = list(samples)
    for s in samples:
        check_applicable(s, space)
    config.check()
    if embed_text not in EMBED_TEXT:
        raise ValueError(f"unknown embed text {embed_text!r}; use one of {', '.join(EMBED_TEXT)}")
    if space == "pixel":
        check_pixel_eps(config.eps)
    device = adapter.device
    gold = torch.tensor([s.answer for s in samples], device=device)
    with frozen(adapter.model):
        if config.targeted:  # toward the most likely wrong option under no attack
            with torch.no_grad():
                clean_probs = [r.probs for r in adapter.score(samples)]
            labels = torch.tensor([int(np.argmax(np.where(np.arange(len(p)) == s.answer, -1.0, p)))
                                   for p, s in zip(clean_probs, samples)], device=device)
            sign = -torch.ones(len(samples), device=device)
        else:
            labels, sign = gold, torch.ones(len(samples), device=device)

        def success_of(probs: list[np.ndarray], rows: list[int]) -> torch.Tensor:
            # How far a restart got: wrong first (a wrong answer is never traded for a right one),
            # then, targeted, the target reached.
            preds = torch.tensor([int(np.argmax(p)) for p in probs], device=device)
            return (preds != gold[rows]).long() + ((preds == labels[rows]).long() if config.targeted else 0)

        if space == "pixel":
            return _pixel(adapter, adapter.encode(samples), samples, config, labels, sign,
                          lambda probs: success_of(probs, list(range(len(samples)))))
        return _embed(adapter, samples, config, labels, sign, success_of, embed_text, share)


def _row_noise(samples: Sequence[Sample], shapes: list[tuple[int, ...]], full: tuple[int, ...], seed: int,
               starts: Sequence[int] | None = None):
    """Random starts drawn per sample from (seed, sample id, restart) on the sample's own shape,
    placed from its row's position ``starts[i]`` (default 0) along the first axis, so an attacked
    sample gets the same result whatever batch it is in, and with or without a cached prefix
    (and on whatever device: drawn on the CPU, ``pgd`` moves them)."""
    starts = list(starts) if starts is not None else [0] * len(samples)

    def noise(restart: int) -> torch.Tensor:
        out = torch.zeros(full, device="cpu")
        for i, (s, shape, start) in enumerate(zip(samples, shapes, starts)):
            g = torch.Generator().manual_seed(derive_seed("pgd", seed, s.id, restart) % 2**63)
            region = (slice(start, start + shape[0]), *(slice(0, n) for n in shape[1:]))
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


def attack_mask(batch, samples: Sequence[Sample], embed_text: str = "after_image") -> torch.Tensor:
    """[B, L] the positions the embedding attack perturbs: ``irrelevant_mask``, with an
    image-heavy row's text limited to what follows its last image token under ``after_image``."""
    mask = irrelevant_mask(batch, samples)
    if embed_text == "after_image":
        index = torch.arange(mask.shape[1], device=mask.device)
        for i, s in enumerate(samples):
            if s.family == IMAGE_HEAVY:
                mask[i] &= index >= text_start(batch, i)
    return mask


@dataclass
class _EmbedTarget:
    """What embedding PGD perturbs for some rows and how a perturbation is scored: the clean
    embeddings, the perturbed positions, where each row's random start begins and how long it
    is, and the answer logits for perturbed embeddings."""

    embeds: torch.Tensor  # [B, L, H]
    positions: torch.Tensor  # [B, L] bool
    starts: list[int]
    lengths: list[int]
    answer_logits: Callable[[torch.Tensor], torch.Tensor]


def _full_target(adapter, samples: list[Sample], embed_text: str) -> _EmbedTarget:
    """Full forwards: every PGD iteration runs the whole prompt."""
    batch = adapter.encode(samples)
    embeds = adapter.embed(batch).float()
    positions = attack_mask(batch, samples, embed_text)
    if embeds.shape[1] != positions.shape[1]:
        raise NotImplementedError(f"{adapter.spec.model_type}: the LLM input is not aligned with the token ids "
                                  "(embedding-space masks need one embedding per input token)")
    lengths = [int(n) for n in batch.inputs["attention_mask"].sum(1).tolist()]  # padding is never perturbed
    # After-image text: the random start covers the text only, as on the cached path.
    starts = [text_start(batch, i) if embed_text == "after_image" and s.family == IMAGE_HEAVY else 0
              for i, s in enumerate(samples)]
    return _EmbedTarget(embeds, positions.to(embeds.device), starts, [n - a for n, a in zip(lengths, starts)],
                        lambda perturbed: adapter.answer_logits_from_embeds(batch, perturbed))


def _cached_targets(adapter, samples: list[Sample]) -> list[tuple[list[int], _EmbedTarget]]:
    """Image-heavy rows over cached prefixes: one target per prefix length (rows whose image
    ends at the same position share a forward), with the rows (indices into ``samples``) it holds."""
    batch = adapter.encode(samples)
    splits = [text_start(batch, i) for i in range(len(samples))]
    out = []
    for split in sorted(set(splits)):
        rows = [i for i, n in enumerate(splits) if n == split]
        group = batch if len(rows) == len(samples) else adapter.encode([samples[i] for i in rows])
        prefix = CachedPrefix.build(adapter, group, split)
        positions = prefix.suffix_inputs["attention_mask"][:, split:].bool().to(prefix.embeds.device)
        lengths = [int(n) for n in positions.sum(1).tolist()]
        out.append((rows, _EmbedTarget(prefix.embeds, positions, [0] * len(rows), lengths, prefix.answer_logits)))
    return out


def _embed(adapter, samples, config, labels, sign, success_of, embed_text, share) -> list[AttackOutcome]:
    cache_prefix = share and embed_text == "after_image" and sharing_blocker(adapter) is None
    cached = [i for i, s in enumerate(samples) if cache_prefix and s.family == IMAGE_HEAVY]
    full = [i for i in range(len(samples)) if i not in cached]
    groups = _cached_targets(adapter, [samples[i] for i in cached]) if cached else []
    groups = [([cached[j] for j in rows], target) for rows, target in groups]
    if full:
        groups.append((full, _full_target(adapter, [samples[i] for i in full], embed_text)))
    outcomes: list = [None] * len(samples)
    for rows, target in groups:
        for i, outcome in zip(rows, _embed_pgd(adapter, target, [samples[i] for i in rows], config, labels[rows],
                                               sign[rows], lambda probs, rows=rows: success_of(probs, rows))):
            outcomes[i] = outcome
    return outcomes


def _embed_pgd(adapter, target: _EmbedTarget, samples, config, labels, sign, success_of) -> list[AttackOutcome]:
    embeds = target.embeds
    mask = target.positions[..., None].float()
    counts = target.positions.sum(1).clamp_min(1)
    rms = ((embeds ** 2).mean(-1) * target.positions).sum(1).div(counts).sqrt()  # [B]
    eps = config.eps * rms  # on the embeddings' device, so delta is made there

    def logits_for(delta: torch.Tensor) -> torch.Tensor:
        return target.answer_logits(embeds + delta)

    def loss_fn(delta: torch.Tensor) -> torch.Tensor:
        return _option_loss(adapter, logits_for(delta), samples, labels, sign)

    def success(delta: torch.Tensor) -> torch.Tensor:
        return success_of(_to_probs(adapter, logits_for(delta), samples))

    noise = _row_noise(samples, [(n, embeds.shape[2]) for n in target.lengths], tuple(embeds.shape), config.seed,
                       target.starts)
    delta = pgd(loss_fn, tuple(embeds.shape), eps, mask, config, success=success, noise=noise)
    with torch.no_grad():
        probs = _to_probs(adapter, logits_for(delta), samples)
    size = (delta.abs().amax(dim=(1, 2)) / rms.clamp_min(1e-12)).tolist()
    return [AttackOutcome(p, int(np.argmax(p)), int(labels[i]) if config.targeted else None, None, float(size[i]))
            for i, p in enumerate(probs)]
