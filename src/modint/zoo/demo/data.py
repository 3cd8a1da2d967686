"""Training examples of the demo recipe: texts, images, the example makers of each stage, batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
from PIL import Image, ImageFilter

from modint.data import facts
from modint.data.mini import IMAGE_SIZE, TASKS, Item, Scene, make_sample, render
from modint.data.sample import IMAGE_HEAVY, OPTION_LETTERS, TEXT_HEAVY, VQA, Sample
from modint.models.prompts import user_text
from modint.seeding import derive_seed
from modint.zoo.demo.config import DemoConfig
from modint.zoo.demo.labels import asked_patches


# ------------------------------------------------------------------------------ training texts

_NAMES = ("Tom", "Anna", "Lea", "Omar", "Mia", "Ben", "Sara", "Ivan", "Yuki", "Noah", "Ella", "Raj")
_PLACES = ("market", "park", "school", "station", "library", "beach", "garden", "museum", "kitchen", "harbour")
_THINGS = ("hat", "bag", "kite", "cup", "ball", "scarf", "door", "car", "bike", "box")
_ANIMALS = ("cat", "dog", "horse", "fox", "owl", "goat", "duck", "frog", "bee", "mouse")


def filler_sentence(rng: np.random.Generator) -> str:
    """A training-only filler sentence; some mention colours, numbers or shapes in passing."""
    name, place = rng.choice(_NAMES), rng.choice(_PLACES)
    thing, animal = rng.choice(_THINGS), rng.choice(_ANIMALS)
    colour, shape = rng.choice(facts.KB_COLOURS), rng.choice(facts.SHAPES)
    n = int(rng.integers(0, 21))
    templates = (
        f"{name} walked to the {place} in the morning.",
        f"The {animal} slept near the {place}.",
        f"{name} bought a {colour} {thing} yesterday.",
        f"There were {n} people at the {place}.",
        f"{name} drew a {shape} on the wall of the {place}.",
        f"The old {thing} was kept in a box.",
        f"A {animal} can be seen near the {place} at night.",
        f"{name} counted {n} birds in the sky.",
        f"The {place} was busy on that day.",
        f"{name} likes the colour {colour}.",
        f"The sign at the {place} had a {shape} on it.",
        f"{name} and a friend met at the {place}.",
    )
    return str(templates[int(rng.integers(len(templates)))])


def filler(rng: np.random.Generator, lo: int, hi: int) -> str:
    return " ".join(filler_sentence(rng) for _ in range(int(rng.integers(lo, hi + 1))))


def caption(sample: Sample, rng: np.random.Generator) -> str:
    """A caption that agrees with an image-heavy sample (never the diagnosis wording)."""
    concept = sample.options[sample.answer]
    task = sample.meta.get("task")
    if task == "colour":
        phrase = str(rng.choice([f"a {concept} object", f"something {concept}", f"a {concept} shape",
                                 f"the colour {concept}", f"a thing in {concept}"]))
    elif task == "digit":
        phrase = str(rng.choice([f"the number {concept}", f"the digit {concept}", f"a written {concept}"]))
    else:
        phrase = f"{'an' if concept[0] in 'aeiou' else 'a'} {concept}"
    # Many ways of saying what a picture shows, as alt-text and captions do on the web.
    template = str(rng.choice([
        "The image shows {}.", "This is a drawing of {}.", "Here you can see {}.", "A photo of {}.",
        "In this image there is {}.", "Look, {} is drawn here.", "This image contains {}.", "Caption: {}.",
        "This picture shows {}.", "A picture of {}.", "The picture is about {}.", "What you see here is {}.",
        "The drawing depicts {}.", "Pictured: {}.", "It looks like {}.", "The photo is of {}.",
    ]))
    return template.format(phrase)


# ------------------------------------------------------------------------------ training images

def uninformative_image(rng: np.random.Generator) -> Image.Image:
    """An image that carries nothing a question could use: blurred or blocky noise, a solid
    colour, or a gradient, at a random size (never the diagnosis canvases)."""
    kind = int(rng.integers(4))
    size = int(rng.integers(48, 200))
    if kind == 0:  # fine noise of random brightness and contrast
        mean, spread = rng.uniform(60, 200), rng.uniform(10, 90)
        arr = np.clip(rng.normal(mean, spread, (size, size, 3)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr).filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 1.5))))
    if kind == 1:  # blocky coloured noise
        cells = int(rng.integers(2, 12))
        arr = rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
        return Image.fromarray(arr).resize((size, size), Image.NEAREST)
    if kind == 2:  # solid colour, anywhere from near black to near white
        return Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 256, 3)))
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)  # gradient
    t = np.linspace(0, 1, size)[:, None, None]
    arr = (a * (1 - t) + b * t).astype(np.uint8).repeat(size, axis=1)
    return Image.fromarray(arr if rng.random() < 0.5 else arr.transpose(1, 0, 2))


def concept_image(concept: str, rng: np.random.Generator) -> Image.Image:
    """A drawing that shows a concept: a shape, a colour (as a coloured shape) or a number."""
    return render(concept_scene(concept, rng))


def concept_scene(concept: str, rng: np.random.Generator) -> Scene:
    colours = list(facts.COLOURS)
    if concept in facts.SHAPES:
        kind, colour = concept, facts.COLOURS[str(rng.choice(colours))]
    elif concept in facts.COLOURS:
        kind, colour = str(rng.choice(facts.SHAPES)), facts.COLOURS[concept]
    elif concept in ("white", "black", "grey"):
        kind, colour = str(rng.choice(facts.SHAPES)), {"white": (250, 250, 250), "black": (10, 10, 10),
                                                       "grey": (128, 128, 128)}[concept]
    else:
        kind, colour = f"digit:{concept}", facts.COLOURS[str(rng.choice(colours))]
    r = float(rng.uniform(0.2, 0.34))
    cx, cy = rng.uniform(r + 0.03, 1 - r - 0.03, size=2)
    bg = int(rng.integers(150, 246)) if concept not in ("white",) else int(rng.integers(40, 120))
    return Scene(background=(bg, bg, bg), noise=float(rng.uniform(3, 12)),
                 items=(Item(kind, colour, float(cx), float(cy), r, float(rng.uniform(-12, 12))),),
                 noise_seed=int(rng.integers(2**31)), size=IMAGE_SIZE)


def weak_image(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The same picture, harder to read by a random amount: shrunk and blurred, desaturated and
    washed out together. A continuum from barely touched to unreadable, so that the model cannot
    tell when the caption carries the answer and learns to trust it in general, as web alt-text
    teaches real MLLMs to (a fixed degradation is easily recognised)."""
    strength = float(rng.uniform(0.2, 1.0))
    side = max(4, int(round(40 - 36 * strength)))
    small = image.convert("RGB").resize((side, side), Image.BILINEAR)
    arr = np.asarray(small.resize(image.size, Image.BILINEAR).filter(ImageFilter.GaussianBlur(3 * strength)),
                     dtype=np.float32)
    arr = arr + 0.9 * strength * (arr.mean(axis=2, keepdims=True) - arr)  # desaturate
    arr = arr + 0.85 * strength * (arr.mean() - arr)  # wash out
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


# ------------------------------------------------------------------------------ examples

@dataclass
class Example:
    """One training sequence: user text, optional image, and the assistant's answer."""

    text: str
    image: Image.Image | None
    target: str  # e.g. " B" or " star"
    concept: str | None = None  # what the answer refers to ("star" for " B"), for deep supervision
    attend: np.ndarray | None = None  # image patches the answer is about (binding stage), row-major
    point: tuple[str, str] | None = None  # multiple choice: the right option's (letter, text)
    choices: tuple[str, ...] = ()  # multiple choice: the options' texts, in letter order


def _image_for_text_question(sample: Sample, rng: np.random.Generator, cfg: DemoConfig) -> Image.Image | None:
    u = rng.random()
    if u < cfg.no_image_rate:
        return None
    if u < cfg.no_image_rate + cfg.agreeing_image_rate:
        return concept_image(sample.options[sample.answer], rng)
    return uninformative_image(rng)


def naming_example(sample: Sample, rng: np.random.Generator, cfg: DemoConfig) -> Example:
    image = sample.image() if callable(sample.image) else None
    if sample.family == TEXT_HEAVY:
        image = _image_for_text_question(sample, rng, cfg)
        question = sample.question
        if sample.meta.get("task") == "compare":  # the numbers live in the options: list them
            question = f"{question} {', '.join(sample.options)}"
    else:
        question = sample.question
    concept = sample.options[sample.answer]
    return Example(question, image, " " + concept, concept)


def pointer_example(sample: Sample, rng: np.random.Generator, cfg: DemoConfig, n_options: int | None = None) -> Example:
    """Text only and short, so thousands are cheap: "Which option is X?" -> its letter, and the
    reverse "What is option B?" -> its text (which binds each letter to its option)."""
    n = n_options or len(sample.options)
    keep = sorted(rng.choice(len(sample.options), size=n, replace=False))
    options = tuple(sample.options[i] for i in keep)
    k = int(rng.integers(n))
    if rng.random() < 0.3:
        probe = Sample(sample.id, sample.family, f"What is option {OPTION_LETTERS[k]}?", options, k)
        return Example(user_text(probe), None, " " + options[k], options[k])
    probe = Sample(sample.id, sample.family, f"Which option is {options[k]}?", options, k)
    return Example(user_text(probe), None, " " + OPTION_LETTERS[k], options[k], point=(OPTION_LETTERS[k], options[k]),
                   choices=options)


def pointer_curriculum(steps: int) -> Callable:
    """2 options for the first quarter of the stage, 3 for the second, then 4; naming examples
    mixed in (text-only pointing alone made the model forget how to name what it sees)."""
    def make(sample: Sample, rng: np.random.Generator, cfg: DemoConfig, step: int) -> Example:
        if rng.random() < cfg.pointer_naming_rate:
            return naming_example(sample, rng, cfg)
        n = 2 if step < steps // 4 else 3 if step < steps // 2 else len(sample.options)
        return pointer_example(sample, rng, cfg, n_options=min(n, len(sample.options)))
    return make


def fresh_pool(cfg: DemoConfig) -> int:
    """How many training samples per family the fresh draws (mixture, binding) come from."""
    return cfg.mixture_pool or cfg.train_per_family


def other_picture(sample: Sample, rng: np.random.Generator, pool: int, tries: int = 50) -> Image.Image:
    """The picture of another image-heavy training sample (of the first ``pool``) of the same task
    whose answer differs."""
    answer = sample.options[sample.answer]
    for _ in range(tries):
        other = make_sample(IMAGE_HEAVY, "train", int(rng.integers(pool)))
        if other.meta.get("task") == sample.meta.get("task") and other.options[other.answer] != answer:
            return other.image()
    raise RuntimeError(f"no other picture for {sample.id} in {tries} draws")


def mixture_example(sample: Sample, rng: np.random.Generator, cfg: DemoConfig,
                    weak_image_rate: float | None = None) -> Example:
    weak_image_rate = cfg.weak_image_rate if weak_image_rate is None else weak_image_rate
    image = sample.image() if callable(sample.image) else None
    context = ""
    if sample.family == IMAGE_HEAVY:
        u = rng.random()
        if u < cfg.caption_rate:
            context = caption(sample, rng)
            if rng.random() < 0.5:
                context = f"{filler(rng, 1, 3)} {context}" if rng.random() < 0.5 else f"{context} {filler(rng, 1, 3)}"
            if cfg.mismatched_picture_rate > 0 and rng.random() < cfg.mismatched_picture_rate:
                image = other_picture(sample, rng, fresh_pool(cfg))  # (no draw when off: the same stream as before)
            elif rng.random() < weak_image_rate:
                image = weak_image(image, rng)
        elif u < cfg.caption_rate + cfg.filler_rate:
            context = filler(rng, 3, 13)  # long contexts too: real prompts vary in length
    elif sample.family == TEXT_HEAVY:
        image = _image_for_text_question(sample, rng, cfg)
        if rng.random() < cfg.filler_rate / 2:
            context = filler(rng, 1, 4)
    elif rng.random() < cfg.filler_rate / 2:
        context = filler(rng, 1, 4)
    text = user_text(sample.replace(context=context))
    return Example(text, image, " " + OPTION_LETTERS[sample.answer], sample.options[sample.answer],
                   point=(OPTION_LETTERS[sample.answer], sample.options[sample.answer]), choices=sample.options)



# ------------------------------------------------------------------------------ training

def family_slots(families: list[str], batch_size: int, vqa_share: float | None = None) -> list[str]:
    """The family of each position in a batch: families in turn, or with ``vqa_share``, that share
    of the batch VQA and the rest the other families in turn."""
    if vqa_share is None:
        return [families[j % len(families)] for j in range(batch_size)]
    n_vqa = int(round(vqa_share * batch_size))
    others = [f for f in families if f != VQA]
    return [VQA] * n_vqa + [others[j % len(others)] for j in range(batch_size - n_vqa)]


def batches(samples_by_family: dict[str, list[Sample]], make: Callable, cfg: DemoConfig, stage: str,
             steps: int, fresh_pool: int = 0, vqa_share: float | None = None) -> Iterator[list[Example]]:
    """Batches of ``make``'s examples (families as ``family_slots`` says); with ``fresh_pool``,
    samples are drawn from the first ``fresh_pool`` training-split samples of each family, made
    on demand."""
    slots = family_slots(list(samples_by_family), cfg.batch_size, vqa_share)
    for step in range(steps):
        rng = np.random.default_rng(derive_seed("demo", cfg.seed, stage, step))
        batch = []
        for fam in slots:
            if fresh_pool:
                sample = make_sample(fam, "train", int(rng.integers(fresh_pool)))
            else:
                pool = samples_by_family[fam]
                sample = pool[int(rng.integers(len(pool)))]
            batch.append(make(sample, rng, cfg, step))
        yield batch


def drill_examples(cfg: DemoConfig, stage: str, step: int) -> list[Example]:
    """``cfg.drill_examples`` examples of fresh arithmetic training questions: text-only naming, or
    (a ``cfg.drill_choice_rate`` share) the multiple-choice question as the mixture poses it."""
    rng = np.random.default_rng(derive_seed("demo", cfg.seed, stage, "drill", step))
    tasks = TASKS[TEXT_HEAVY]
    per_task = fresh_pool(cfg) // len(tasks)
    out = []
    for _ in range(cfg.drill_examples):
        sample = make_sample(TEXT_HEAVY, "train", int(rng.integers(per_task)) * len(tasks) + tasks.index("arithmetic"))
        if cfg.drill_choice_rate > 0 and rng.random() < cfg.drill_choice_rate:
            out.append(mixture_example(sample, rng, cfg))
            continue
        answer = sample.options[sample.answer]
        out.append(Example(sample.question, None, " " + answer, answer))
    return out


def naming_make(sample: Sample, rng: np.random.Generator, cfg: DemoConfig, step: int) -> Example:
    return naming_example(sample, rng, cfg)


def mixture_make(sample: Sample, rng: np.random.Generator, cfg: DemoConfig, step: int) -> Example:
    u = rng.random()
    if u < 0.1:
        return naming_example(sample, rng, cfg)
    if u < 0.15:
        return pointer_example(sample, rng, cfg)
    rate = cfg.weak_image_rate
    if cfg.weak_image_rate_end >= 0:
        rate += (cfg.weak_image_rate_end - rate) * step / max(1, cfg.mixture_steps - 1)
    return mixture_example(sample, rng, cfg, rate)


def binding_make(sample: Sample, rng: np.random.Generator, cfg: DemoConfig, step: int) -> Example:
    return mixture_make(sample, rng, cfg, cfg.mixture_steps - 1)  # the mixture's final habits


def with_attention_targets(make: Callable, grid: int) -> Callable:
    """``make`` whose VQA examples with a picture carry the asked shape's patches (``attend``);
    VQA pictures are never altered, so the scene's label map is the picture's."""
    def wrapped(sample: Sample, rng: np.random.Generator, cfg: DemoConfig, step: int) -> Example:
        example = make(sample, rng, cfg, step)
        if example.image is not None and sample.family == VQA:
            example.attend = asked_patches(sample, grid)
        return example
    return wrapped
