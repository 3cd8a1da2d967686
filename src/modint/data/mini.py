"""`mini`: the bundled benchmark, generated procedurally from a fixed seed.

Three families, each with tasks a small model can learn from data:

- image-heavy (the image alone decides): `shape`, `colour`, `digit` of the one object drawn;
- text-heavy (the text alone decides): `arithmetic`, `compare` (largest / smallest option),
  `knowledge` (a toy knowledge base, see ``facts.KNOWLEDGE``);
- VQA (needs both): `count` a named shape, `colour_of` a named shape, `position` (which shape is
  on the left / right / top / bottom).

Every question has 4 options: the answer plus 3 distinct wrong ones from the same answer space, at
a random position. Images are drawn with PIL when first loaded (a sample holds a small recipe, not
pixels), so a 10,000-sample split costs no memory. A sample's content depends only on
(data seed, split, family, index): splits have disjoint ids and ``limit`` takes a prefix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Iterable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from modint.data import facts
from modint.data.sample import IMAGE_HEAVY, TEXT_HEAVY, VQA, Sample
from modint.seeding import derive_seed, rng_for

SPLITS = ("train", "val", "test")
# Per family. Val is as large as test: a setting chosen on val is then as precise as the figure
# it is reported with on test. Ids come from (split, family, index), so growing val left test
# and val's first 150 per family unchanged.
DEFAULT_SIZES = {"train": 3000, "val": 300, "test": 300}
TASKS = {
    IMAGE_HEAVY: ("shape", "colour", "digit"),
    TEXT_HEAVY: ("arithmetic", "compare", "knowledge"),
    VQA: ("count", "colour_of", "position"),
}
_SHORT = {IMAGE_HEAVY: "img", TEXT_HEAVY: "txt", VQA: "vqa"}
IMAGE_SIZE = 128
N_OPTIONS = 4


# --------------------------------------------------------------------------------------- drawing

@dataclass(frozen=True)
class Item:
    """One thing drawn on the canvas: a shape (or a digit) of a colour at a place and size."""

    kind: str  # a shape name, or "digit:7"
    colour: tuple[int, int, int]
    cx: float  # centre, as a fraction of the canvas
    cy: float
    radius: float  # fraction of the canvas
    angle: float  # degrees


@dataclass(frozen=True)
class Scene:
    background: tuple[int, int, int]
    noise: float  # std of Gaussian pixel noise
    items: tuple[Item, ...]
    noise_seed: int
    size: int = IMAGE_SIZE


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    def ring(n: int, start: float, radii: Iterable[float]) -> list[tuple[float, float]]:
        radii = list(radii)
        return [(cx + radii[i % len(radii)] * math.cos(math.radians(start + angle + i * 360 / n)),
                 cy + radii[i % len(radii)] * math.sin(math.radians(start + angle + i * 360 / n)))
                for i in range(n)]

    if kind == "square":
        return ring(4, 45, [r])
    if kind == "triangle":
        return ring(3, -90, [r])
    if kind == "star":
        return ring(10, -90, [r, r * 0.42])
    w = r * 0.36
    if kind == "cross":
        pts = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w), (-r, w), (-r, -w), (-w, -w)]
    elif kind == "arrow":
        pts = [(-r, -w), (0.1 * r, -w), (0.1 * r, -r * 0.8), (r, 0), (0.1 * r, r * 0.8), (0.1 * r, w), (-r, w)]
    else:
        raise ValueError(f"unknown shape {kind!r}")
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]


_FONT_CACHE: dict[int, ImageFont.FreeTypeFont] = {}


def _font(size: int) -> ImageFont.FreeTypeFont:
    if size not in _FONT_CACHE:
        _FONT_CACHE[size] = ImageFont.load_default(size=size)
    return _FONT_CACHE[size]


def _draw_item(draw: ImageDraw.ImageDraw, it: Item, n: int, fill) -> None:
    cx, cy, r = it.cx * n, it.cy * n, it.radius * n
    if it.kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif it.kind.startswith("digit:"):
        size = max(8, int(2.2 * r))
        # A stroke makes the glyph bold enough to survive a resize to a small vision tower.
        draw.text((cx, cy), it.kind.split(":", 1)[1], fill=fill, font=_font(size), anchor="mm",
                  stroke_width=max(1, size // 18), stroke_fill=fill)
    else:
        draw.polygon(_polygon(it.kind, cx, cy, r, it.angle), fill=fill)


def render(scene: Scene) -> Image.Image:
    """Draw a scene: pale background, the items, then pixel noise and a slight blur."""
    n = scene.size
    img = Image.new("RGB", (n, n), scene.background)
    draw = ImageDraw.Draw(img)
    for it in scene.items:
        _draw_item(draw, it, n, it.colour)
    img = img.filter(ImageFilter.GaussianBlur(0.6))
    if scene.noise > 0:
        rng = np.random.default_rng(scene.noise_seed)
        arr = np.asarray(img, dtype=np.float32) + rng.normal(0, scene.noise, (n, n, 1)).astype(np.float32)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return img


def item_masks(scene: Scene) -> np.ndarray:
    """[items, size, size] boolean masks of what each item covers (later items paint over
    earlier ones, as in ``render``)."""
    n = scene.size
    canvas = Image.new("L", (n, n), 0)
    draw = ImageDraw.Draw(canvas)
    for i, it in enumerate(scene.items):
        _draw_item(draw, it, n, i + 1)
    labels = np.asarray(canvas)
    return np.stack([labels == i + 1 for i in range(len(scene.items))]) if scene.items else np.zeros((0, n, n), bool)


def _background(rng: np.random.Generator) -> tuple[int, int, int]:
    base = int(rng.integers(180, 246))
    return tuple(int(np.clip(base + rng.integers(-12, 13), 0, 255)) for _ in range(3))  # type: ignore[return-value]


def _jitter_colour(rgb: tuple[int, int, int], rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-18, 19), 0, 255)) for c in rgb)  # type: ignore[return-value]


def _place(rng: np.random.Generator, radii: list[float], margin: float = 0.04) -> list[tuple[float, float]] | None:
    """Non-overlapping centres for circles of the given radii (fractions), or None."""
    centres: list[tuple[float, float]] = []
    for r in radii:
        for _ in range(200):
            x, y = rng.uniform(r + margin, 1 - r - margin, size=2)
            if all(math.hypot(x - a, y - b) > r + rb + margin for (a, b), rb in zip(centres, radii)):
                centres.append((float(x), float(y)))
                break
        else:
            return None
    return centres


# --------------------------------------------------------------------------------------- options

def _choices(rng: np.random.Generator, answer: str, pool: Iterable[str], k: int = N_OPTIONS) -> tuple[tuple[str, ...], int]:
    """The answer plus k-1 distinct wrong options from ``pool``, the answer at a random position."""
    wrong = [p for p in dict.fromkeys(pool) if p != answer]
    picked = [wrong[i] for i in rng.choice(len(wrong), size=k - 1, replace=False)]
    pos = int(rng.integers(k))
    picked.insert(pos, answer)
    return tuple(picked), pos


def _near_numbers(answer: int, rng: np.random.Generator, lo: int = 0, hi: int = 20) -> list[str]:
    """Plausible wrong numbers: mostly close to the answer, so guessing by size does not work."""
    near = [n for n in range(max(lo, answer - 4), min(hi, answer + 4) + 1) if n != answer]
    rng.shuffle(near)
    far = [n for n in range(lo, hi + 1) if n != answer and n not in near]
    return [str(n) for n in near + far]


# --------------------------------------------------------------------------------------- tasks

def _scene(rng: np.random.Generator, items: list[Item], sample_key: str, size: int) -> Scene:
    return Scene(background=_background(rng), noise=float(rng.uniform(3, 14)), items=tuple(items),
                 noise_seed=derive_seed("mini-noise", sample_key), size=size)


def _single(rng: np.random.Generator, kind: str, colour: tuple[int, int, int]) -> Item:
    r = float(rng.uniform(0.2, 0.36))
    cx, cy = rng.uniform(r + 0.03, 1 - r - 0.03, size=2)
    return Item(kind, _jitter_colour(colour, rng), float(cx), float(cy), r, float(rng.uniform(-12, 12)))


def _image_heavy(task: str, rng: np.random.Generator, key: str, size: int):
    colour_name = str(rng.choice(list(facts.COLOURS)))
    if task == "shape":
        answer = str(rng.choice(facts.SHAPES))
        item = _single(rng, answer, facts.COLOURS[colour_name])
        question = "Which shape is shown in the image?"
        pool = facts.SHAPES
    elif task == "colour":
        answer = colour_name
        item = _single(rng, str(rng.choice(facts.SHAPES)), facts.COLOURS[colour_name])
        question = "What colour is the object in the image?"
        pool = tuple(facts.COLOURS)
    else:  # digit
        answer = str(int(rng.integers(10)))
        item = _single(rng, f"digit:{answer}", facts.COLOURS[colour_name])
        question = "Which number is written in the image?"
        pool = tuple(str(n) for n in range(10))
    options, pos = _choices(rng, answer, pool)
    meta = {"task": task, "concept": answer,
            "facts": {o: facts.misleading_text(o) for i, o in enumerate(options) if i != pos}}
    return question, options, pos, _scene(rng, [item], key, size), meta


def _text_heavy(task: str, rng: np.random.Generator):
    if task == "arithmetic":
        a, b = (int(x) for x in rng.integers(0, 10, size=2))
        if rng.random() < 0.5:
            question, value = f"What is {a} + {b}?", a + b
        else:
            a, b = max(a, b), min(a, b)
            question, value = f"What is {a} - {b}?", a - b
        answer = str(value)
        options, pos = _choices(rng, answer, _near_numbers(value, rng)[:8])
    elif task == "compare":
        numbers = [str(n) for n in rng.choice(21, size=N_OPTIONS, replace=False)]
        largest = rng.random() < 0.5
        question = f"Which of these numbers is the {'largest' if largest else 'smallest'}?"
        values = [int(n) for n in numbers]
        pos = int(np.argmax(values) if largest else np.argmin(values))
        options, answer = tuple(numbers), numbers[pos]
    else:  # knowledge
        templates, answer, kind = facts.KNOWLEDGE[int(rng.integers(len(facts.KNOWLEDGE)))]
        question = str(templates[int(rng.integers(len(templates)))])
        pool = facts.answer_space(kind)
        if kind == "number":
            pool = _near_numbers(int(answer), rng)[:8]
        options, pos = _choices(rng, answer, pool)
    return question, options, pos, None, {"task": task, "concept": answer}


def _vqa(task: str, rng: np.random.Generator, key: str, size: int):
    colours = list(facts.COLOURS)
    if task == "count":
        target, other = (str(s) for s in rng.choice(facts.SHAPES, size=2, replace=False))
        count = int(rng.integers(1, 6))
        n_other = int(rng.integers(0, 3))
        radius = float(rng.uniform(0.08, 0.11))
        radii = [radius] * (count + n_other)
        centres = _place(rng, radii) or _place(rng, [0.07] * (count + n_other), margin=0.02)
        kinds = [target] * count + [other] * n_other
        items = [Item(k, _jitter_colour(facts.COLOURS[str(rng.choice(colours))], rng), x, y, r, float(rng.uniform(-12, 12)))
                 for k, (x, y), r in zip(kinds, centres, radii)]
        question = f"How many {_plural(target)} are in the image?"
        answer = str(count)
        options, pos = _choices(rng, answer, [str(n) for n in rng.permutation(np.arange(1, 9)) if n != count])
        meta = {"task": task, "concept": answer, "target": target}
    elif task == "colour_of":
        n = int(rng.integers(2, 4))
        kinds = [str(s) for s in rng.choice(facts.SHAPES, size=n, replace=False)]
        names = [str(c) for c in rng.choice(colours, size=n, replace=False)]
        radii = [float(rng.uniform(0.12, 0.17))] * n
        centres = _place(rng, radii) or _place(rng, [0.11] * n, margin=0.02)
        items = [Item(k, _jitter_colour(facts.COLOURS[c], rng), x, y, r, float(rng.uniform(-12, 12)))
                 for k, c, (x, y), r in zip(kinds, names, centres, radii)]
        asked = int(rng.integers(n))
        question = f"What colour is the {kinds[asked]}?"
        answer = names[asked]
        # The other colours in the picture are the hardest wrong options: include them first.
        pool = names[:asked] + names[asked + 1:] + [str(c) for c in rng.permutation(colours)]
        options, pos = _choices_keep_order(rng, answer, pool)
        meta = {"task": task, "concept": answer, "target": kinds[asked]}
    else:  # position
        kinds = [str(s) for s in rng.choice(facts.SHAPES, size=2, replace=False)]
        horizontal = rng.random() < 0.5
        r = float(rng.uniform(0.12, 0.18))
        a = float(rng.uniform(r + 0.03, 0.5 - 0.05))
        b = float(rng.uniform(0.5 + 0.05, 1 - r - 0.03))
        across = [float(x) for x in rng.uniform(r + 0.03, 1 - r - 0.03, size=2)]
        coords = [(a, across[0]), (b, across[1])] if horizontal else [(across[0], a), (across[1], b)]
        items = [Item(k, _jitter_colour(facts.COLOURS[str(c)], rng), x, y, r, float(rng.uniform(-12, 12)))
                 for k, c, (x, y) in zip(kinds, rng.choice(colours, size=2, replace=False), coords)]
        first = rng.random() < 0.5
        side = ("left" if first else "right") if horizontal else ("top" if first else "bottom")
        answer = kinds[0] if first else kinds[1]
        question = f"Which shape is on the {side}?"
        pool = [kinds[1] if first else kinds[0]] + [str(s) for s in rng.permutation(facts.SHAPES)]
        options, pos = _choices_keep_order(rng, answer, pool)
        meta = {"task": task, "concept": answer, "side": side}
    return question, options, pos, _scene(rng, items, key, size), meta


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("s", "x", "sh", "ch")) else "s")


def _choices_keep_order(rng: np.random.Generator, answer: str, pool: list[str]) -> tuple[tuple[str, ...], int]:
    """Like ``_choices`` but the wrong options are the first distinct ones of ``pool``."""
    wrong = [p for p in dict.fromkeys(pool) if p != answer][: N_OPTIONS - 1]
    order = rng.permutation(N_OPTIONS - 1)
    wrong = [wrong[i] for i in order]
    pos = int(rng.integers(N_OPTIONS))
    wrong.insert(pos, answer)
    return tuple(wrong), pos


def make_sample(family: str, split: str, index: int, data_seed: int = 0, image_size: int = IMAGE_SIZE) -> Sample:
    """The ``index``-th sample of a family in a split (tasks cycle so every prefix is balanced)."""
    tasks = TASKS[family]
    task = tasks[index % len(tasks)]
    key = f"{split}-{_SHORT[family]}-{index:05d}"
    rng = rng_for("mini", data_seed, key)
    if family == IMAGE_HEAVY:
        question, options, pos, scene, meta = _image_heavy(task, rng, key, image_size)
    elif family == TEXT_HEAVY:
        question, options, pos, scene, meta = _text_heavy(task, rng)
    else:
        question, options, pos, scene, meta = _vqa(task, rng, key, image_size)
    image = partial(render, scene) if scene is not None else None
    return Sample(id=key, family=family, question=question, options=tuple(options), answer=int(pos),
                  image=image, meta=meta)


def load_mini(split: str = "test", limit: int | None = None, sizes: dict[str, int] | None = None,
              data_seed: int = 0, image_size: int = IMAGE_SIZE, families: Iterable[str] | None = None) -> list[Sample]:
    """The samples of one split, families interleaved (img, txt, vqa, img, ...) so that ``limit``
    keeps the families balanced."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} for benchmark 'mini' (use one of {', '.join(SPLITS)})")
    per_family = (sizes or {}).get(split, DEFAULT_SIZES[split])
    fams = list(families or TASKS)
    out: list[Sample] = []
    for i in range(per_family):
        for fam in fams:
            if limit is not None and len(out) >= limit:
                return out
            out.append(make_sample(fam, split, i, data_seed, image_size))
    return out
