"""The embedded default model: a small LLaVA trained from scratch on the `mini` training split.

It is a "model organism" of modality interference, so its training mixture copies how real MLLMs
come to be distracted (see docs/demo-model.md):

1. naming: short questions answered with the concept itself ("Which shape is shown?" -> "star"),
   for all three families. This warms up the vision tower (it must name shapes, colours, digits,
   counts) and the language model (sums, comparisons, the toy knowledge base) with a vocabulary-
   sized target instead of a 4-way letter that sits at chance for a long time.
2. pointer: "Which option is X?" over real option lists -> the letter. Teaches the answer format.
3. instruction mixture, in the diagnosis prompt format, with the habits that make real MLLMs
   vulnerable:
   - image-heavy prompts often carry a caption that agrees with the image (web alt-text), so the
     model learns that text about the picture is a reliable shortcut; filler sentences that merely
     mention concepts teach it that incidental mentions are not about the picture;
   - text-heavy questions always arrive with some image: mostly uninformative (blurred noise,
     solid colours, gradients), sometimes one that shows the answer (as illustrated textbooks
     do), sometimes none; so the model learns to look at images even for text questions;
   - VQA questions need both.
4. binding: the mixture's examples at its final habits, a third of every batch VQA; some captioned
   prompts show another scene of the same task with the caption right (noisy web pairs), so the
   caption wins a conflict, the habit misleading text probes; and fresh arithmetic questions
   (named, or as multiple choice), the task the mixture left weakest.

Training-only losses steer the small model to the circuits real MLLMs form from far more data
(dropped from the shipped weights): the answer's concept named at the LM's middle layer, per-patch
shape / colour / side heads on the projector's output, one head attending to the asked shape,
one to the right option's text and one carrying each option's letter onto its text.

No diagnosis condition is trained on: the captions use other wording than the misleading text,
the filler is not the unrelated-text pool, the uninformative images are not the i.i.d. 336x336
noise / black / white canvases of the diagnosis, and no text question is shown a switched-in
benchmark picture or photo.

Everything is seeded; the same config gives the same weights on the same machine and torch.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image, ImageFilter

from modint.data import facts
from modint.data.mini import IMAGE_SIZE, TASKS, Item, Scene, item_masks, load_mini, make_sample, render
from modint.data.sample import IMAGE_HEAVY, OPTION_LETTERS, TEXT_HEAVY, VQA, Sample
from modint.models.prompts import user_text
from modint.models.tokenizer import llava_chat_template
from modint.seeding import derive_seed

log = logging.getLogger(__name__)

# LLaVA-1.5's conversation format without the system turn: the demo model is small and the
# published system prompt would only add 35 tokens to every input (documented in the README).
DEMO_CHAT_TEMPLATE = llava_chat_template(with_system=False)


@dataclass
class DemoConfig:
    seed: int = 0
    image_size: int = 96
    patch_size: int = 12
    vision_hidden: int = 192
    vision_layers: int = 4
    text_hidden: int = 256
    text_layers: int = 6
    # Deep supervision: the LM layer whose output, read through the final norm and the tied
    # unembedding at the answer position, must already name the answer's concept ("star"), so
    # the layers above it only have to find that concept's option letter (see _concept_loss).
    concept_layer: int | None = None  # None: half the LM's depth (3 of 6)
    concept_weight: float = 0.5
    vocab_size: int = 2048
    train_per_family: int = 3000
    batch_size: int = 24
    vision_steps: int = 1500
    vision_batch: int = 48
    naming_steps: int = 1200
    pointer_steps: int = 1000
    mixture_steps: int = 3000
    vision_lr: float = 2e-3
    lr: float = 1e-3
    mixture_lr: float = 3e-4
    pointer_naming_rate: float = 0.3
    vision_lr_factor: float = 0.3
    weight_decay: float = 0.01
    warmup: int = 50
    # mixture knobs (fractions within a family)
    caption_rate: float = 0.6
    weak_image_rate: float = 0.5  # of captioned image-heavy prompts: the caption carries the answer
    # ... rising linearly to this by the mixture's end (-1: constant). The caption shortcut fades
    # as the tower gets better at reading pictures (run 6); leaning harder on captions late keeps it.
    weak_image_rate_end: float = 0.9
    # ... and of captioned image-heavy prompts, the share whose picture shows another scene of the
    # same task (a noisy web pair: the text right, the picture not), so the caption wins a
    # conflict. Run 10 read pictures so well (degraded or not) that agreeing captions alone no
    # longer taught caption trust (misleading text -4.7 points at mixture step 1500).
    mismatched_picture_rate: float = 0.3
    # The mixture draws fresh samples of the training split (indices < this, per family, made on
    # demand) instead of the train_per_family pool: with 3000 per family run 6 scored 90% on
    # training VQA and 43% on test VQA (it memorised scenes).
    mixture_pool: int = 100000  # 0: the train_per_family pool
    filler_rate: float = 0.15
    # Binding stage (after the mixture; 0 steps: off): the mixture's examples at its final habits,
    # a third of every batch VQA, the tower at 0.3 x the lr. It is where mismatched pictures
    # teach caption trust: in the mixture that habit did not form (run 10), here it forms
    # within 100 steps (experiment 11), and 600 steps also raise VQA (run 11: 78 -> 87%).
    binding_steps: int = 600
    binding_lr: float = 3e-4
    binding_vqa_share: float = 0.34
    binding_vision_lr_factor: float = 0.3
    # Training-only supervision of binding, in the stages named (comma-separated; "" = none).
    # recipes/probe_binding.py: the projector kept 37% of per-patch shape, and the LM's attention
    # at the answer position spread over all objects (docs/demo-model.md, "Where VQA is lost").
    # - patch heads: from what the LM reads (the projector's output, RMS-normalised as the LM's
    #   first norm sees it) per-patch heads name the shape and colour covering each patch, on
    #   `patch_scenes` fresh VQA training scenes per step (0: batch_size);
    patch_weight: float = 0.5
    patch_stages: str = "naming,pointer,mixture,binding"
    patch_scenes: int = 8
    # - attention: on VQA examples, one head's attention from the answer position onto the
    #   image must fall on the asked shape's patches (the renderer knows them).
    attention_weight: float = 0.5
    attention_layer: int = 2
    attention_head: int = 3
    attention_stages: str = "naming,pointer,mixture,binding"
    # - pointer attention: on multiple-choice examples, one head's attention from the answer
    #   position must fall on the right option's text, and a head in a lower layer must carry
    #   each option's letter onto its text: the circuit that turns the concept (deep
    #   supervision) into its letter. Runs 8 and 9 sat at chance on pointing without it.
    pointer_attention_weight: float = 0.5
    pointer_attention_layer: int = 4
    pointer_attention_head: int = 0
    letter_attention_layer: int = 1
    letter_attention_head: int = 0
    pointer_attention_stages: str = "pointer,mixture,binding"
    # Vision warm-up: the share of scenes drawn fresh from VQA training scenes (several objects;
    # 0: only the pool's and single-concept scenes), and per-patch side flags (does the patch
    # belong to the leftmost / rightmost / topmost / bottommost object: what `position` asks).
    vision_vqa_rate: float = 0.5
    side_flags: bool = True
    # Arithmetic drill: per step of the stages named, this many fresh arithmetic questions of the
    # training split join the batch, as text-only naming ("What is 7 - 3?" -> "4") or as the
    # multiple-choice question. After run 10's mixture the LM named only 30% of sums right
    # (text-heavy arithmetic 58% in multiple choice): 155 facts drowned in the mixture. Naming
    # alone (experiment 13) raised naming to 55% and left multiple-choice arithmetic at 56%; half
    # of them as multiple choice (run 12) lifted it to 78%.
    drill_examples: int = 16
    drill_stages: str = "binding"
    # ... of which this share is posed as the multiple-choice question itself (its picture and
    # context as the mixture draws them), which trains the sum and the pointer to its option.
    drill_choice_rate: float = 0.5
    agreeing_image_rate: float = 0.35  # text-heavy questions illustrated with their answer
    no_image_rate: float = 0.1
    threads: int = 2
    checkpoints: bool = False  # keep the model after each stage in OUT/stages/<stage>
    checkpoint_every: int = 0  # with checkpoints: also every N steps, in OUT/stages/<stage>-<step>
    resume_from: str | None = None  # a stage checkpoint: run only the stages after it

    def scaled(self, scale: float) -> "DemoConfig":
        """The same recipe with every stage ``scale`` times as long (tests use a tiny scale)."""
        out = DemoConfig(**asdict(self))
        for name in ("vision_steps", "naming_steps", "pointer_steps", "mixture_steps", "binding_steps", "warmup"):
            if getattr(out, name):  # a stage switched off (0 steps) stays off
                setattr(out, name, max(1, int(round(getattr(out, name) * scale))))
        return out


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
    teaches real MLLMs to (a fixed, easily recognised degradation taught run 4 nothing of the kind)."""
    strength = float(rng.uniform(0.2, 1.0))
    side = max(4, int(round(40 - 36 * strength)))
    small = image.convert("RGB").resize((side, side), Image.BILINEAR)
    arr = np.asarray(small.resize(image.size, Image.BILINEAR).filter(ImageFilter.GaussianBlur(3 * strength)),
                     dtype=np.float32)
    arr = arr + 0.9 * strength * (arr.mean(axis=2, keepdims=True) - arr)  # desaturate
    arr = arr + 0.85 * strength * (arr.mean() - arr)  # wash out
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


# ------------------------------------------------------------------------------ vision warm-up
# Naming through the language model alone leaves a from-scratch vision tower near chance for a
# long time. So the tower first learns, per patch, what covers it (shape, colour, digit) and
# where objects are centred (what counting needs), from the label maps the renderer knows.

_NAMED_COLOURS = {**facts.COLOURS, "white": (250, 250, 250), "black": (10, 10, 10), "grey": (128, 128, 128)}
_COLOUR_NAMES = list(_NAMED_COLOURS)
_DIGITS = [str(n) for n in range(21)]
N_SHAPES = len(facts.SHAPES) + 1  # + the digit glyph
# Per-patch heads (what covers the patch) and global heads on the mean patch feature (what the
# questions ask: how many of each shape, the colour of each shape, which shape is leftmost...).
# The global heads push scene-level facts into every patch token, where the LM will read them.
PATCH_HEADS = {"shape": 1 + N_SHAPES, "colour": 1 + len(_COLOUR_NAMES)}
GLOBAL_HEADS = {"count": (N_SHAPES, 7), "colour_of": (N_SHAPES, 1 + len(_COLOUR_NAMES)), "digit": (1, 1 + len(_DIGITS)),
                "extreme": (4, 1 + N_SHAPES)}
SIDES = ("left", "right", "top", "bottom")


def patch_heads(cfg: "DemoConfig") -> dict[str, int]:
    """Output sizes of the per-patch heads: shape and colour classes, and with ``side_flags``
    a yes/no pair per side (does the patch belong to the leftmost object, ...)."""
    return {**PATCH_HEADS, **({"side": 2 * len(SIDES)} if cfg.side_flags else {})}


def _colour_class(rgb: tuple[int, int, int]) -> int:
    dists = [sum((a - b) ** 2 for a, b in zip(rgb, ref)) for ref in _NAMED_COLOURS.values()]
    return 1 + int(np.argmin(dists))


def _shape_class(kind: str) -> int:
    return 1 + (facts.SHAPES.index(kind) if kind in facts.SHAPES else len(facts.SHAPES))


def scene_labels(scene: Scene, grid: int) -> dict[str, np.ndarray]:
    """Per-patch classes ([grid*grid]) and scene-level classes for a scene; 0 = none."""
    masks = item_masks(scene)
    cell = scene.size // grid
    shape = np.zeros((grid, grid), dtype=np.int64)
    colour = np.zeros((grid, grid), dtype=np.int64)
    count = np.zeros(N_SHAPES, dtype=np.int64)
    colour_of = np.zeros(N_SHAPES, dtype=np.int64)
    digit = np.zeros(1, dtype=np.int64)
    extreme = np.zeros(4, dtype=np.int64)
    side = np.zeros((grid * grid, len(SIDES)), dtype=np.int64)
    if len(masks):
        cover = masks[:, :cell * grid, :cell * grid].reshape(len(masks), grid, cell, grid, cell).mean((2, 4))
        best = cover.argmax(0)
        present = cover.max(0) >= 0.15
        owner = np.where(present, best, -1).reshape(-1)
        for i, it in enumerate(scene.items):
            k = _shape_class(it.kind)
            where = present & (best == i)
            shape[where] = k
            colour[where] = _colour_class(it.colour)
            count[k - 1] = min(6, count[k - 1] + 1)
            colour_of[k - 1] = _colour_class(it.colour)
            if it.kind.startswith("digit:"):
                digit[0] = 1 + _DIGITS.index(it.kind.split(":", 1)[1])
        items = scene.items
        for j, key in enumerate((lambda it: it.cx, lambda it: -it.cx, lambda it: it.cy, lambda it: -it.cy)):
            first = min(range(len(items)), key=lambda i: key(items[i]))  # left, right, top, bottom
            extreme[j] = _shape_class(items[first].kind)
            side[:, j] = owner == first
    return {"shape": shape.reshape(-1), "colour": colour.reshape(-1), "count": count, "colour_of": colour_of,
            "digit": digit, "extreme": extreme, "side": side}


def _head_loss(feats: torch.Tensor, heads: torch.nn.ModuleDict, targets: list[dict[str, np.ndarray]]
               ) -> tuple[torch.Tensor, dict[str, float]]:
    """Summed cross-entropy of the per-patch heads on ``feats`` [batch, patches, hidden] and of the
    global heads on their mean, with each head's accuracy (on foreground targets)."""
    pooled = feats.mean(1)
    loss, accuracy = feats.new_zeros(()), {}
    for name, head in heads.items():
        y = torch.from_numpy(np.stack([t[name] for t in targets])).reshape(-1)
        if name == "side":  # yes / no per side, scored on the patches an object covers
            shape = torch.from_numpy(np.stack([t["shape"] for t in targets])).reshape(-1)
            logits = head(feats).reshape(-1, len(SIDES), 2)[shape > 0].reshape(-1, 2)
            y = y.reshape(-1, len(SIDES))[shape > 0].reshape(-1)
            weight = None
        elif name in PATCH_HEADS:
            logits = head(feats).reshape(-1, PATCH_HEADS[name])
            weight = torch.ones(PATCH_HEADS[name])
            weight[0] = 0.3  # most patches are background
        else:
            logits = head(pooled).reshape(-1, GLOBAL_HEADS[name][1])
            weight = None
        loss = loss + torch.nn.functional.cross_entropy(logits, y, weight=weight)
        fg = (y > 0) if name not in ("count", "side") else torch.ones_like(y, dtype=torch.bool)
        accuracy[name] = float((logits[fg].argmax(-1) == y[fg]).float().mean()) if fg.any() else float("nan")
    return loss, accuracy


def _warmup_scene(pool: list[Sample], rng: np.random.Generator, cfg: "DemoConfig") -> Scene:
    if cfg.vision_vqa_rate > 0 and rng.random() < cfg.vision_vqa_rate:  # (no draw when off: same stream)
        return make_sample(VQA, "train", int(rng.integers(cfg.mixture_pool or cfg.train_per_family))).image.args[0]
    if rng.random() < 0.25:
        concept = str(rng.choice(list(facts.SHAPES) + list(_NAMED_COLOURS) + _DIGITS))
        return concept_scene(concept, rng)
    return pool[int(rng.integers(len(pool)))].image.args[0]  # the Scene behind a mini image


def warm_up_vision(model, processor, pool: list[Sample], cfg: "DemoConfig",
                   progress: Callable[[str, int, int, float], None] | None = None) -> list[dict]:
    tower = model.model.vision_tower
    grid = cfg.image_size // cfg.patch_size
    heads = torch.nn.ModuleDict({k: torch.nn.Linear(cfg.vision_hidden, n) for k, n in patch_heads(cfg).items()})
    heads.update({k: torch.nn.Linear(cfg.vision_hidden, a * b) for k, (a, b) in GLOBAL_HEADS.items()})
    params = list(tower.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.vision_lr, weight_decay=cfg.weight_decay)
    steps = cfg.vision_steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50) * max(0.1, 1 - s / max(1, steps)))
    history, running = [], None
    for step in range(steps):
        rng = np.random.default_rng(derive_seed("demo", cfg.seed, "vision", step))
        scenes = [_warmup_scene(pool, rng, cfg) for _ in range(cfg.vision_batch)]
        pixels = processor.image_processor([render(s) for s in scenes], return_tensors="pt")["pixel_values"]
        feats = tower(pixel_values=pixels, output_hidden_states=True).hidden_states[model.config.vision_feature_layer][:, 1:]
        loss, accuracy = _head_loss(feats, heads, [scene_labels(s, grid) for s in scenes])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if progress:
            progress("vision", step + 1, steps, running)
        if (step + 1) % 50 == 0 or step + 1 == steps:
            log.info("vision %d/%d loss %.4f accuracy %s", step + 1, steps, running,
                     {k: round(v, 3) for k, v in accuracy.items()})
            history.append({"stage": "vision", "step": step + 1, "loss": round(running, 5)})
    return history



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


# ------------------------------------------------------------------------------ model

def corpus_for_tokenizer(samples: list[Sample], rng: np.random.Generator) -> Iterator[str]:
    for s in samples:
        yield user_text(s) + " " + " ".join(s.options)
    for _ in range(3000):
        yield filler_sentence(rng)
    for concept, pair in facts.CONCEPT_FACTS.items():
        yield " ".join(pair)
    yield " ".join(f"Which option is {c}?" for c in facts.SHAPES + facts.KB_COLOURS)


def build_demo(cfg: DemoConfig, tokenizer) -> tuple:
    from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    vision = CLIPVisionConfig(hidden_size=cfg.vision_hidden, intermediate_size=4 * cfg.vision_hidden,
                              num_hidden_layers=cfg.vision_layers, num_attention_heads=4,
                              image_size=cfg.image_size, patch_size=cfg.patch_size, projection_dim=cfg.vision_hidden)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=cfg.text_hidden, intermediate_size=3 * cfg.text_hidden,
                       num_hidden_layers=cfg.text_layers, num_attention_heads=4, num_key_value_heads=4,
                       max_position_embeddings=1024, pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       tie_word_embeddings=True)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=image_token_id,
                         vision_feature_layer=-1, vision_feature_select_strategy="default",
                         projector_hidden_act="gelu", tie_word_embeddings=True)
    torch.manual_seed(cfg.seed)
    model = LlavaForConditionalGeneration(config)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": cfg.image_size}, crop_size={"height": cfg.image_size, "width": cfg.image_size},
        do_center_crop=True, image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711])
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=cfg.patch_size,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=DEMO_CHAT_TEMPLATE)
    return model, processor


def encode_examples(processor, examples: list[Example]) -> dict[str, torch.Tensor]:
    """Inputs with labels only on the answer tokens (and the end-of-turn token), plus
    ``concept_targets``: per example, the first token of its concept, or -100 (see _concept_loss)."""
    tok = processor.tokenizer
    texts, targets = [], []
    for ex in examples:
        content = ([{"type": "image"}] if ex.image is not None else []) + [{"type": "text", "text": ex.text}]
        prompt = processor.apply_chat_template([{"role": "user", "content": content}],
                                               add_generation_prompt=True, tokenize=False)
        target_ids = tok.encode(ex.target, add_special_tokens=False) + [tok.eos_token_id]
        texts.append(prompt + ex.target + tok.eos_token)
        targets.append(target_ids)
    images = [ex.image for ex in examples if ex.image is not None]
    tok.padding_side = "right"
    inputs = dict(processor(text=texts, images=images or None, padding=True, return_tensors="pt"))
    labels = torch.full_like(inputs["input_ids"], -100)
    lengths = inputs["attention_mask"].sum(1)
    for i, ids in enumerate(targets):
        end = int(lengths[i])
        got = inputs["input_ids"][i, end - len(ids):end].tolist()
        if got != ids:  # the answer must tokenise the same inside the sequence as alone
            raise RuntimeError(f"target tokens differ in context: {got} vs {ids}")
        labels[i, end - len(ids):end] = torch.tensor(ids)
    inputs["labels"] = labels
    inputs["answer_positions"] = lengths - torch.tensor([len(t) for t in targets]) - 1
    inputs["concept_targets"] = torch.tensor(
        [tok.encode(" " + ex.concept, add_special_tokens=False)[0] if ex.concept else -100 for ex in examples])
    ids = [inputs["input_ids"][i].tolist() for i in range(len(examples))]
    inputs["point_positions"] = [option_positions(tok, ids[i], ex.point) for i, ex in enumerate(examples)]
    # (first text token, letter token) of every option line: "B", ":", " purple"
    inputs["letter_links"] = [[(where[0], where[0] - 2) for where in
                               (option_positions(tok, ids[i], (letter, text)) for letter, text in
                                zip(OPTION_LETTERS, ex.choices)) if where]
                              for i, ex in enumerate(examples)]
    return inputs


def option_positions(tok, ids: list[int], point: tuple[str, str] | None) -> list[int] | None:
    """Token positions of the text of option line ``point`` = (letter, text) ("\nB: purple")
    in ``ids`` (its last occurrence), or None."""
    if point is None:
        return None
    letter, text = point
    line = tok.encode(f"\n{letter}: {text}", add_special_tokens=False)
    n_text = len(tok.encode(f" {text}", add_special_tokens=False))
    for start in range(len(ids) - len(line), -1, -1):
        if ids[start:start + len(line)] == line:
            return list(range(start + len(line) - n_text, start + len(line)))
    return None


def _concept_loss(model, hidden_states: tuple[torch.Tensor, ...], positions: torch.Tensor,
                  targets: torch.Tensor, layer: int) -> torch.Tensor:
    """Cross-entropy of the answer's concept read off layer ``layer`` at the answer position.

    A small LM trained only on "question + options -> letter" sits at chance: it must compute the
    answer and find its letter in one pass. Asking a middle layer to already hold the concept
    (what naming teaches the last layer) splits the work into the two circuits naming and the
    pointer curriculum build, so they compose. Training-only: the model stays a plain LLaVA.
    """
    h = hidden_states[layer][torch.arange(len(positions)), positions]
    logits = model.lm_head(model.model.language_model.norm(h))
    return torch.nn.functional.cross_entropy(logits, targets, ignore_index=-100)


# ------------------------------------------------------------------------------ training

def family_slots(families: list[str], batch_size: int, vqa_share: float | None = None) -> list[str]:
    """The family of each position in a batch: families in turn, or with ``vqa_share``, that share
    of the batch VQA and the rest the other families in turn."""
    if vqa_share is None:
        return [families[j % len(families)] for j in range(batch_size)]
    n_vqa = int(round(vqa_share * batch_size))
    others = [f for f in families if f != VQA]
    return [VQA] * n_vqa + [others[j % len(others)] for j in range(batch_size - n_vqa)]


def _batches(samples_by_family: dict[str, list[Sample]], make: Callable, cfg: DemoConfig, stage: str,
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


def _naming_make(sample: Sample, rng: np.random.Generator, cfg: DemoConfig, step: int) -> Example:
    return naming_example(sample, rng, cfg)


def _mixture_make(sample: Sample, rng: np.random.Generator, cfg: DemoConfig, step: int) -> Example:
    u = rng.random()
    if u < 0.1:
        return naming_example(sample, rng, cfg)
    if u < 0.15:
        return pointer_example(sample, rng, cfg)
    rate = cfg.weak_image_rate
    if cfg.weak_image_rate_end >= 0:
        rate += (cfg.weak_image_rate_end - rate) * step / max(1, cfg.mixture_steps - 1)
    return mixture_example(sample, rng, cfg, rate)


def asked_patches(sample: Sample, grid: int) -> np.ndarray | None:
    """The patches of a VQA sample's picture that its question is about: the asked shape's
    (count, colour_of) or the answer shape's (position); None if there are none."""
    shape = sample.meta.get("target") or sample.options[sample.answer]
    if sample.family != VQA or shape not in facts.SHAPES:
        return None
    mask = scene_labels(sample.image.args[0], grid)["shape"] == _shape_class(shape)
    return mask if mask.any() else None


def _pointer_attention_loss(attentions: tuple[torch.Tensor, ...], positions: torch.Tensor,
                            targets: list[list[int] | None], layer: int, head: int) -> torch.Tensor | None:
    """-log of the share of one head's answer-position attention on the right option's text,
    averaged over the examples that have one."""
    losses = [-torch.log(attentions[layer][i, head, positions[i], where].sum().clamp_min(1e-6))
              for i, where in enumerate(targets) if where]
    return torch.stack(losses).mean() if losses else None


def _letter_attention_loss(attentions: tuple[torch.Tensor, ...], links: list[list[tuple[int, int]]], layer: int,
                           head: int) -> torch.Tensor | None:
    """-log of one head's attention from each option's first text token onto its letter,
    averaged over all options of all examples."""
    losses = [-torch.log(attentions[layer][i, head, text, letter].clamp_min(1e-6))
              for i, pairs in enumerate(links) for text, letter in pairs]
    return torch.stack(losses).mean() if losses else None


def _binding_make(sample: Sample, rng: np.random.Generator, cfg: DemoConfig, step: int) -> Example:
    return _mixture_make(sample, rng, cfg, cfg.mixture_steps - 1)  # the mixture's final habits


def _stages(names: str) -> set[str]:
    return {n.strip() for n in names.split(",") if n.strip()}


def with_attention_targets(make: Callable, grid: int) -> Callable:
    """``make`` whose VQA examples with a picture carry the asked shape's patches (``attend``);
    VQA pictures are never altered, so the scene's label map is the picture's."""
    def wrapped(sample: Sample, rng: np.random.Generator, cfg: DemoConfig, step: int) -> Example:
        example = make(sample, rng, cfg, step)
        if example.image is not None and sample.family == VQA:
            example.attend = asked_patches(sample, grid)
        return example
    return wrapped


def _attention_loss(attentions: tuple[torch.Tensor, ...], inputs: dict, positions: torch.Tensor,
                    examples: list[Example], image_token_id: int, layer: int, head: int) -> torch.Tensor | None:
    """-log of the share of one head's answer-position attention on the image that falls on
    each example's ``attend`` patches, averaged over the examples that have them."""
    losses = []
    for i, ex in enumerate(examples):
        if ex.attend is None:
            continue
        row = attentions[layer][i, head, positions[i]]
        on_image = row[inputs["input_ids"][i] == image_token_id]
        share = on_image[torch.from_numpy(ex.attend.reshape(-1))].sum() / on_image.sum().clamp_min(1e-9)
        losses.append(-torch.log(share.clamp_min(1e-6)))
    return torch.stack(losses).mean() if losses else None


def _projector_patch_loss(model, processor, heads: torch.nn.ModuleDict, cfg: DemoConfig, stage: str,
                          step: int) -> torch.Tensor:
    """The per-patch heads' loss on fresh VQA training scenes, read from the projector's output
    normalised as the LM's first layer norm sees it (without its learned gain)."""
    rng = np.random.default_rng(derive_seed("demo", cfg.seed, f"{stage}-patches", step))
    scenes = [make_sample(VQA, "train", int(rng.integers(cfg.mixture_pool or cfg.train_per_family))).image.args[0]
              for _ in range(cfg.patch_scenes or cfg.batch_size)]
    pixels = processor.image_processor([render(sc) for sc in scenes], return_tensors="pt")["pixel_values"]
    tower = model.model.vision_tower(pixel_values=pixels, output_hidden_states=True
                                     ).hidden_states[model.config.vision_feature_layer][:, 1:]
    projected = model.model.multi_modal_projector(tower)
    normed = projected * torch.rsqrt(projected.pow(2).mean(-1, keepdim=True) + 1e-6)
    grid = cfg.image_size // cfg.patch_size
    return _head_loss(normed, heads, [scene_labels(sc, grid) for sc in scenes])[0]


def train_demo(out_dir: str | Path, cfg: DemoConfig | None = None,
               progress: Callable[[str, int, int, float], None] | None = None) -> Path:
    """Train the demo model and write it (fp16 safetensors, tokenizer, processor) to ``out_dir``."""
    from modint.models.tokenizer import train_bpe_tokenizer

    cfg = cfg or DemoConfig()
    torch.set_num_threads(cfg.threads)
    started = time.time()
    train = load_mini("train", sizes={"train": cfg.train_per_family})
    by_family = {f: [s for s in train if s.family == f] for f in (IMAGE_HEAVY, TEXT_HEAVY, VQA)}
    if cfg.resume_from:  # continue a run from a stage checkpoint (OUT/stages/<stage>), its tokenizer too
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        model = LlavaForConditionalGeneration.from_pretrained(cfg.resume_from, dtype=torch.float32)
        processor = AutoProcessor.from_pretrained(cfg.resume_from)
    else:
        tokenizer = train_bpe_tokenizer(corpus_for_tokenizer(train, np.random.default_rng(cfg.seed)),
                                        vocab_size=cfg.vocab_size, chat_template=DEMO_CHAT_TEMPLATE)
        model, processor = build_demo(cfg, tokenizer)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    log.info("demo model: %.2fM parameters", n_params / 1e6)
    stages = [("naming", _naming_make, cfg.naming_steps, cfg.lr),
              ("pointer", pointer_curriculum(cfg.pointer_steps), cfg.pointer_steps, cfg.lr),
              ("mixture", _mixture_make, cfg.mixture_steps, cfg.mixture_lr),
              ("binding", _binding_make, cfg.binding_steps, cfg.binding_lr)]
    pool = [s for s in train if s.image is not None]
    done = ["vision", *(name for name, *_ in stages)]
    done = done[:done.index(Path(cfg.resume_from).name) + 1] if cfg.resume_from else []
    stages = [st for st in stages if st[0] not in done and st[2] > 0]  # 0 steps: a stage switched off
    history = [] if "vision" in done else warm_up_vision(model, processor, pool, cfg, progress)
    if cfg.checkpoints and "vision" not in done:
        model.save_pretrained(Path(out_dir) / "stages" / "vision")
        processor.save_pretrained(Path(out_dir) / "stages" / "vision")
    tower_params = {id(p) for p in model.model.vision_tower.parameters()}
    patch_stages = _stages(cfg.patch_stages) if cfg.patch_weight > 0 else set()
    attention_stages = _stages(cfg.attention_stages) if cfg.attention_weight > 0 else set()
    pointer_stages = _stages(cfg.pointer_attention_stages) if cfg.pointer_attention_weight > 0 else set()
    drill_stages = _stages(cfg.drill_stages) if cfg.drill_examples > 0 else set()
    heads = None  # training-only per-patch heads on the projector's output, dropped at the end
    if patch_stages & {name for name, *_ in stages}:
        torch.manual_seed(derive_seed("demo", cfg.seed, "patch-heads"))
        heads = torch.nn.ModuleDict({k: torch.nn.Linear(cfg.text_hidden, n) for k, n in patch_heads(cfg).items()})
    for stage, make, steps, lr in stages:
        binding = stage == "binding"
        # The warmed-up tower keeps learning, but slower than the projector and the LM.
        factor = cfg.binding_vision_lr_factor if binding else cfg.vision_lr_factor
        groups = [{"params": [p for p in model.parameters() if id(p) in tower_params], "lr": lr * factor},
                  {"params": [p for p in model.parameters() if id(p) not in tower_params], "lr": lr}]
        supervise_patches = stage in patch_stages
        if supervise_patches:
            groups.append({"params": list(heads.parameters()), "lr": lr * 10})
        opt = torch.optim.AdamW(groups, lr=lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
        warm = min(cfg.warmup, max(1, steps // 10))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warm) * (0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, steps))))
                                                      * 0.9 + 0.1))
        running = None
        fresh = cfg.mixture_pool if stage in ("mixture", "binding") else 0
        share = cfg.binding_vqa_share if binding else None
        supervise_attention, supervise_pointer = stage in attention_stages, stage in pointer_stages
        attn_implementation = model.config._attn_implementation
        if supervise_attention or supervise_pointer:  # attention weights: eager implementation only
            model.set_attn_implementation("eager")
        if supervise_attention:
            make = with_attention_targets(make, cfg.image_size // cfg.patch_size)
        for step, batch in enumerate(_batches(by_family, make, cfg, stage, steps, fresh, share)):
            if stage in drill_stages:
                batch = batch + drill_examples(cfg, stage, step)
            inputs = encode_examples(processor, batch)
            positions, concepts = inputs.pop("answer_positions"), inputs.pop("concept_targets")
            options, letters = inputs.pop("point_positions"), inputs.pop("letter_links")
            out = model(**inputs, output_hidden_states=cfg.concept_weight > 0,
                        output_attentions=supervise_attention or supervise_pointer)
            loss = out.loss
            if cfg.concept_weight > 0:
                layer = cfg.concept_layer or max(1, cfg.text_layers // 2)
                loss = loss + cfg.concept_weight * _concept_loss(model, out.hidden_states, positions, concepts, layer)
            if supervise_patches:
                loss = loss + cfg.patch_weight * _projector_patch_loss(model, processor, heads, cfg, stage, step)
            if supervise_attention:
                attention = _attention_loss(out.attentions, inputs, positions, batch, model.config.image_token_id,
                                            cfg.attention_layer, cfg.attention_head)
                if attention is not None:
                    loss = loss + cfg.attention_weight * attention
            if supervise_pointer:
                pointing = _pointer_attention_loss(out.attentions, positions, options, cfg.pointer_attention_layer,
                                                   cfg.pointer_attention_head)
                if pointing is not None:
                    loss = loss + cfg.pointer_attention_weight * pointing
                carrying = _letter_attention_loss(out.attentions, letters, cfg.letter_attention_layer,
                                                  cfg.letter_attention_head)
                if carrying is not None:
                    loss = loss + cfg.pointer_attention_weight * carrying
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            if progress:
                progress(stage, step + 1, steps, running)
            if (step + 1) % 50 == 0 or step + 1 == steps:
                log.info("%s %d/%d loss %.4f (%.0fs)", stage, step + 1, steps, running, time.time() - started)
                history.append({"stage": stage, "step": step + 1, "loss": round(running, 5)})
            if cfg.checkpoints and cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < steps:
                model.save_pretrained(Path(out_dir) / "stages" / f"{stage}-{step + 1}")
                processor.save_pretrained(Path(out_dir) / "stages" / f"{stage}-{step + 1}")
        if supervise_attention or supervise_pointer:
            model.set_attn_implementation(attn_implementation)
        if cfg.checkpoints:
            model.save_pretrained(Path(out_dir) / "stages" / stage)
            processor.save_pretrained(Path(out_dir) / "stages" / stage)
    model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16).save_pretrained(out)  # fp16 on disk; loaders cast to fp32 on CPU
    processor.save_pretrained(out)
    import json

    (out / "training.json").write_text(json.dumps({"config": asdict(cfg), "parameters": n_params,
                                                   "seconds": round(time.time() - started, 1),
                                                   "history": history}, indent=1))
    return out
