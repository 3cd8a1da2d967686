"""Perturbation conditions, registered by name.

A condition is a pure function of (sample, rng, pools) -> sample. It declares the families it
applies to, keeps the sample id (what pairs a perturbed answer with its reference), and records
what it did in ``meta`` (``condition``, ``distractor`` for misleading text and the
out-of-distribution conditions of ``modint.perturb.ood``, ``switched_from``).
The rng comes from (seed, sample id, condition name): every run reproduces, in any order, on any
number of processes.

Adversarial conditions (``pgd_pixel``, ``pgd_embed``) are registered here too, so they get the
same records and metrics, but need the model: here they only hand the sample over in its
family's reference condition; the engine runs the attack (``modint.attacks``). Their eps is part
of the name when it is not the default: ``pgd_pixel@4`` is pixel PGD at 4/255.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from modint.data.sample import IMAGE_HEAVY, TEXT_HEAVY, VQA, Sample
from modint.perturb import ood
from modint.perturb.pools import ImageChoice, Pools, default_pools
from modint.seeding import rng_for

CANVAS = 336  # the paper's canvas size for noise / black / white images
N_UNRELATED = 10

# The condition each family's deltas and flips are measured against. Text-heavy questions have
# no image of their own; the paper's clean reference for them is the noise image.
REFERENCE_CONDITION = {IMAGE_HEAVY: "clean", TEXT_HEAVY: "noise_image", VQA: "clean"}


@dataclass(frozen=True)
class Condition:
    name: str
    families: tuple[str, ...]
    apply: Callable[[Sample, np.random.Generator, Pools], Sample]
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)
    attack_space: str | None = None  # "pixel" / "embed" for adversarial conditions
    default: bool = True  # run when no conditions are requested (adversarial ones are opt-in)
    default_families: tuple[str, ...] | None = None  # where it runs unrequested (None: every family it applies to)


def _clean(sample: Sample, rng: np.random.Generator, pools: Pools) -> Sample:
    return sample


def _unrelated_text(sample: Sample, rng: np.random.Generator, pools: Pools) -> Sample:
    picks = rng.integers(len(pools.sentences), size=N_UNRELATED)  # with replacement, as published
    text = " ".join(pools.sentences[i] for i in picks)
    return sample.replace(context=_join(text, sample.context))


def _misleading_text(sample: Sample, rng: np.random.Generator, pools: Pools) -> Sample:
    wrong = [i for i in range(len(sample.options)) if i != sample.answer]
    distractor = int(wrong[int(rng.integers(len(wrong)))])
    text = pools.misleading(sample.options[distractor], sample.meta.get("facts") or {}, rng)
    return sample.replace(context=_join(text, sample.context), meta={**sample.meta, "distractor": distractor})


def _canvas(value: int | None) -> Callable[[Sample, np.random.Generator, Pools], Sample]:
    def apply(sample: Sample, rng: np.random.Generator, pools: Pools) -> Sample:
        if value is None:
            seed = pools.noise_seed(rng)  # odd at eval, even in training: the parts share no noise image
            pixels = np.random.default_rng(seed).integers(0, 256, size=(CANVAS, CANVAS, 3), dtype=np.uint8)
            return sample.replace(image=Image.fromarray(pixels), meta={**sample.meta, "noise_seed": seed})
        return sample.replace(image=Image.new("RGB", (CANVAS, CANVAS), pools.canvas_colour(value, rng)))

    return apply


def _switched_image(sample: Sample, rng: np.random.Generator, pools: Pools) -> Sample:
    candidates = [c for c in pools.switch_images if c.source_id != sample.id]
    if not candidates:
        raise ValueError("the switch pool is empty")
    start = int(rng.integers(len(candidates)))
    # A broken image in the pool is another sample's problem (it gets its own error record):
    # take the next pool entry instead, deterministically.
    for offset in range(len(candidates)):
        choice: ImageChoice = candidates[(start + offset) % len(candidates)]
        try:
            image = pools.load_switch(choice)
        except Exception:
            continue
        return sample.replace(image=image, meta={**sample.meta, "switched_from": choice.name})
    raise ValueError("no image of the switch pool could be loaded")


def _no_image(sample: Sample, rng: np.random.Generator, pools: Pools) -> Sample:
    return sample.replace(image=None)


def _join(first: str, second: str) -> str:
    return f"{first} {second}".strip() if second else first


CONDITIONS: dict[str, Condition] = {c.name: c for c in (
    Condition("clean", (IMAGE_HEAVY, VQA), _clean, "the sample as the benchmark wrote it"),
    Condition("unrelated_text", (IMAGE_HEAVY,), _unrelated_text,
              f"{N_UNRELATED} sentences drawn with replacement from a pool of unrelated facts, before the question",
              {"sentences": N_UNRELATED}),
    Condition("misleading_text", (IMAGE_HEAVY,), _misleading_text,
              "a sentence naming a wrong option as the picture's content plus two facts about it",
              {"template": "The picture seems to describe {wrong}."}),
    Condition("noise_image", (TEXT_HEAVY,), _canvas(None), "i.i.d. uniform RGB noise image (text-heavy reference)",
              {"size": CANVAS}),
    Condition("switched_image", (TEXT_HEAVY,), _switched_image, "an unrelated real image from the switch pool"),
    Condition("black_image", (TEXT_HEAVY,), _canvas(0), "a black canvas", {"size": CANVAS}),
    Condition("white_image", (TEXT_HEAVY,), _canvas(255), "a white canvas", {"size": CANVAS}),
    # Requested for image-heavy and VQA samples, it measures the multimodal gain (MMStar).
    Condition("no_image", (TEXT_HEAVY, IMAGE_HEAVY, VQA), _no_image, "text only, the chat template without an image slot "
              "(image-heavy and VQA: when requested, for the multimodal gain)",
              default_families=(TEXT_HEAVY,)),
    # Out of distribution, beyond the paper (modint.perturb.ood): opt-in.
    Condition("typographic_image", (IMAGE_HEAVY,), ood.typographic_image,
              "a wrong option's name written on a label in the picture (typographic attack)",
              {"label_height": ood.LABEL_HEIGHT}, default=False),
    Condition("injected_text", (IMAGE_HEAVY,), ood.injected_text,
              "a sentence before the question telling the model to answer a wrong option's letter",
              {"template": ood.INJECTED_TEXT}, default=False),
    Condition("injected_instruction", (TEXT_HEAVY,), ood.injected_instruction,
              "an image whose only content is text saying that the answer is a wrong option's letter",
              {"template": ood.INSTRUCTION_IMAGE_TEXT, "size": ood.CANVAS}, default=False),
    Condition("pgd_pixel", (TEXT_HEAVY,), _clean,
              "PGD (L-inf, eps in 1/255) on the reference image's pixels, through the model's own "
              "preprocessing; scored as a real 8-bit image", {"eps": 8.0}, attack_space="pixel", default=False),
    Condition("pgd_embed", (IMAGE_HEAVY, TEXT_HEAVY), _clean,
              "PGD in the LLM's input embeddings on the irrelevant modality's positions (image-heavy: "
              "text tokens; text-heavy: image tokens); eps relative to their RMS", {"eps": 0.1},
              attack_space="embed", default=False),
)}


def check_pixel_eps(eps: float) -> None:
    """Pixel eps is counted in 1/255 steps and must be whole: the attacked image is saved and
    scored as 8-bit pixels, where 0.5/255 would round to 1/255 or to nothing."""
    if abs(eps - round(eps)) > 1e-9:
        raise ValueError(f"pixel eps {eps:g} is not a whole number of 1/255 steps (8-bit pixels would round it "
                         f"to {math.floor(eps):g} or {math.ceil(eps):g}); use a whole number")


def get_condition(name: str) -> Condition:
    """A registered condition; ``base@eps`` gives an adversarial condition at that eps."""
    base, _, eps = name.partition("@")
    if base not in CONDITIONS:
        raise KeyError(f"unknown condition {name!r} (known: {', '.join(CONDITIONS)})")
    condition = CONDITIONS[base]
    if not eps:
        return condition
    if condition.attack_space is None:
        raise KeyError(f"condition {base!r} takes no eps (only {', '.join(adversarial_conditions())} do)")
    try:
        value = float(eps)
    except ValueError:
        raise KeyError(f"condition {name!r}: eps {eps!r} is not a number") from None
    if not value >= 0:
        raise KeyError(f"condition {name!r}: eps must be >= 0")
    if condition.attack_space == "pixel":
        try:
            check_pixel_eps(value)
        except ValueError as exc:
            raise KeyError(f"condition {name!r}: {exc}") from None
    return replace(condition, name=f"{base}@{value:g}", parameters={**condition.parameters, "eps": value})


def adversarial_conditions() -> list[str]:
    return [n for n, c in CONDITIONS.items() if c.attack_space]


def condition_rank(name: str) -> tuple[int, float]:
    """Registry order, then eps: the order tables list conditions in."""
    condition = get_condition(name)
    base = name.partition("@")[0]
    return list(CONDITIONS).index(base), float(condition.parameters.get("eps", 0.0))


def conditions_for(family: str, requested: Sequence[str] | None = None) -> list[str]:
    """The conditions to run for a family, in registry (then eps) order: the default ones that
    apply, or the requested ones that apply (an unknown name raises KeyError)."""
    if requested is None:
        names = [n for n, c in CONDITIONS.items() if c.default and family in (c.default_families or c.families)]
    else:
        names = list(dict.fromkeys(get_condition(n).name for n in requested))
    return sorted((n for n in names if family in get_condition(n).families), key=condition_rank)


def apply_condition(sample: Sample, name: str, seed: int, pools: Pools) -> Sample:
    """The sample under a condition; same (seed, id, name) gives the same result. An
    adversarial condition returns the sample in its family's reference condition (same rng, so
    the same image): the attack starts from exactly what the reference records scored."""
    condition = get_condition(name)
    if sample.family not in condition.families:
        raise ValueError(f"condition {name!r} does not apply to family {sample.family!r}")
    if condition.attack_space:
        out = apply_condition(sample, REFERENCE_CONDITION[sample.family], seed, pools)
        return out.replace(meta={**out.meta, "condition": condition.name, "attack_space": condition.attack_space,
                                 "eps": condition.parameters["eps"]})
    out = condition.apply(sample, rng_for(seed, sample.id, name), pools)
    return out.replace(meta={**out.meta, "condition": name})


def save_preview(sample: Sample, path: str, seed: int = 0, pools: Pools | None = None,
                 conditions: Sequence[str] | None = None) -> list[str]:
    from modint.perturb.preview import render_preview

    pools = pools or default_pools([sample])
    # By default every condition the preview can draw: the opt-in out-of-distribution ones too,
    # not the attacks (they need the model).
    heuristic = [n for n, c in CONDITIONS.items() if not c.attack_space]
    names = conditions_for(sample.family, heuristic if conditions is None else conditions)
    variants = [(n, apply_condition(sample, n, seed, pools)) for n in names]
    render_preview(variants).save(path)
    return names


__all__ = ["CONDITIONS", "Condition", "Pools", "REFERENCE_CONDITION", "adversarial_conditions", "apply_condition",
           "condition_rank", "conditions_for", "default_pools", "get_condition", "save_preview"]
