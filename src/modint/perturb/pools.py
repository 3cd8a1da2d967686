"""What perturbations draw from, in two disjoint parts: ``train`` for the
mitigation views, ``eval`` for diagnosis. No string, image or seed of one part is in the other:

| pool | eval part (diagnosis) | train part (``modint train``) |
|---|---|---|
| unrelated sentences | the 80 below | 80 others (``texts.TRAIN_UNRELATED_SENTENCES``) |
| misleading text | "The picture seems to describe {wrong}." + ``facts.CONCEPT_FACTS`` (or the data's own facts) | 8 other phrasings + other facts (``texts``) |
| switch photos | 14 scikit-image photos | 2 other scikit-image photos + 64 generated scenes (``scenes``) |
| benchmark switch images | the samples diagnosed (test split) | the training samples (train split) |
| noise-image seeds | odd | even |
| black / white canvases | exactly 0 / 255 | dark / light shades, never 0 or 255 |

``Pools.describe`` gives each pool's size and a SHA-256 of its canonical JSON (what the run
manifest records).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from modint.data.facts import CONCEPT_FACTS, TRAIN_CONCEPT_FACTS
from modint.data.facts import misleading_text as eval_misleading_text
from modint.perturb import scenes
from modint.perturb.texts import TRAIN_GENERIC_FACTS, TRAIN_PHRASINGS, TRAIN_UNRELATED_SENTENCES, train_misleading_text

PARTS = ("train", "eval")
EVAL_PHRASING = "The picture seems to describe {wrong}."

# ~80 "facts" unrelated to any question: science, history, daily life, fun
# facts, philosophy, maths, and 20 deliberately false number facts (the last block) that can pull
# a model's arithmetic the wrong way.
UNRELATED_SENTENCES: tuple[str, ...] = (
    # science
    "Water boils at one hundred degrees Celsius at sea level.",
    "Light from the Sun takes about eight minutes to reach the Earth.",
    "Plants turn sunlight, water and carbon dioxide into sugar.",
    "The heart pumps blood through the whole body.",
    "Sound travels faster in water than in air.",
    "The Moon has no air to breathe.",
    "Iron rusts when it meets water and oxygen.",
    "Bees help flowers by carrying pollen.",
    "Whales are mammals, not fish.",
    "Magnets attract pieces of iron.",
    "The Earth turns once around its axis every day.",
    "Ice floats because it is lighter than water.",
    # history
    "The first printed books in Europe appeared in the fifteenth century.",
    "Ancient Egyptians built pyramids as tombs for their kings.",
    "The Romans built long roads across their empire.",
    "The telephone was invented in the nineteenth century.",
    "People first walked on the Moon in 1969.",
    "The Great Wall of China was built over many centuries.",
    "Sailing ships once carried spices across the oceans.",
    "The first modern Olympic Games were held in Athens.",
    "Paper was first made in ancient China.",
    "Castles were built with thick stone walls for defence.",
    # daily life
    "Many people drink coffee in the morning.",
    "A good night of sleep helps the mind stay sharp.",
    "Washing hands with soap removes many germs.",
    "Bread is baked in an oven.",
    "Trains often run on a fixed timetable.",
    "An umbrella keeps you dry in the rain.",
    "Most shops close later on Fridays.",
    "A library lends books for free.",
    "Cooking with a lid saves energy.",
    "Walking every day is good for your health.",
    "Keys are easy to lose in a big bag.",
    "A kettle heats water quickly.",
    # fun facts
    "Octopuses can change the colour of their skin.",
    "Some parrots can learn to say words.",
    "Honey never spoils if it is kept sealed.",
    "Cats spend a large part of the day asleep.",
    "Penguins cannot fly but they swim very well.",
    "Giraffes sleep only a few hours a day.",
    "Sea otters hold hands while they sleep.",
    "Snails can sleep for a very long time.",
    "Bananas are berries, but strawberries are not.",
    "A group of crows is called a murder.",
    # philosophy
    "Socrates said that he knew that he knew nothing.",
    "Many thinkers have asked what makes a life good.",
    "Doubt can be the start of wisdom.",
    "Some philosophers say that time is an illusion.",
    "A promise binds the one who makes it.",
    "Kindness is often called the highest virtue.",
    "Every question hides another question.",
    "Habits shape character over many years.",
    # mathematics
    "A circle is the set of points at one distance from a centre.",
    "The angles of a triangle add up to one hundred and eighty degrees.",
    "Every even number can be divided by two.",
    "Zero is neither positive nor negative.",
    "The number pi is a little more than three.",
    "A prime number has exactly two divisors.",
    "Multiplying any number by one leaves it unchanged.",
    "The square of a number is that number times itself.",
    # false number facts (deliberately wrong)
    "All odd numbers are prime numbers.",
    "Two plus two makes five.",
    "Seven is an even number.",
    "Ten is smaller than three.",
    "A week has nine days.",
    "A triangle has four sides.",
    "Three times three is six.",
    "Every number ends with the digit zero.",
    "Eight minus five equals one.",
    "A spider has six legs.",
    "Twelve is the largest number.",
    "A square has five corners.",
    "Nine is smaller than four.",
    "Half of ten is two.",
    "One plus one makes eleven.",
    "A dog has three legs.",
    "Six is an odd number.",
    "The number after four is seven.",
    "A year has twenty months.",
    "Zero is larger than every other number.",
)
FALSE_NUMBER_FACTS = UNRELATED_SENTENCES[-20:]


@dataclass(frozen=True)
class Photo:
    name: str
    licence: str
    load: Callable[[], Image.Image]


def _skimage_photo(name: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        import numpy as np
        import skimage.data

        arr = np.asarray(getattr(skimage.data, name)())
        if arr.dtype == bool:
            arr = arr.astype(np.uint8) * 255
        img = Image.fromarray(arr)
        return img.convert("RGB")

    return load


# Photos that scikit-image ships inside its wheel (no download), with the licences stated in
# their docstrings (skimage.data.<name>.__doc__). These 14 are the eval part.
SKIMAGE_PHOTOS: tuple[tuple[str, str], ...] = (
    ("astronaut", "public domain (NASA)"),
    ("camera", "CC0 (Lav Varshney)"),
    ("chelsea", "CC0 (Stefan van der Walt)"),
    ("coffee", "CC0 (Rachel Michetti)"),
    ("rocket", "public domain (SpaceX)"),
    ("hubble_deep_field", "public domain (NASA)"),
    ("immunohistochemistry", "no known copyright restrictions"),
    ("coins", "no known copyright restrictions"),
    ("retina", "CC0 1.0"),
    ("brick", "CC0 (cc0textures)"),
    ("grass", "CC0 (cc0textures)"),
    ("gravel", "CC0 (cc0textures)"),
    ("cell", "CC0"),
    ("clock", "public domain (Stefan van der Walt)"),
)
# The other bundled photos with a stated licence: the train part's real photos.
TRAIN_SKIMAGE_PHOTOS: tuple[tuple[str, str], ...] = (
    ("text", "public domain"),
    ("microaneurysms", "CC0 (Andreas Maier)"),
)
SCENES_PER_KIND = 16


def _scene_loader(kind: str, index: int) -> Callable[[], Image.Image]:
    return lambda: scenes.scene(kind, index)


def photo_pool(part: str = "eval") -> list[Photo]:
    """The switch photos of a pool part (eval: 14; train: 2 + 4 x SCENES_PER_KIND generated)."""
    _check_part(part)
    if part == "eval":
        return [Photo(f"skimage:{name}", licence, _skimage_photo(name)) for name, licence in SKIMAGE_PHOTOS]
    photos = [Photo(f"skimage:{name}", licence, _skimage_photo(name)) for name, licence in TRAIN_SKIMAGE_PHOTOS]
    return photos + [Photo(f"scene:{kind}-{i:02d}", "generated by modint.perturb.scenes (Apache-2.0)",
                           _scene_loader(kind, i)) for kind in scenes.SCENE_KINDS for i in range(SCENES_PER_KIND)]


def _check_part(part: str) -> None:
    if part not in PARTS:
        raise ValueError(f"unknown pool part {part!r} (use train or eval)")


@dataclass(frozen=True)
class ImageChoice:
    """An entry of the switch pool: its name (recorded as ``switched_from``) and how to load it."""

    name: str
    load: Callable[[], Image.Image]
    source_id: str | None = None  # the benchmark sample it came from, never the sample itself


@dataclass
class Pools:
    """One part's pools. Conditions draw through it: ``sentences`` and ``switch_images`` directly,
    misleading texts, noise seeds and canvas shades through its methods."""

    sentences: Sequence[str] = UNRELATED_SENTENCES
    switch_images: Sequence[ImageChoice] = field(default_factory=list)
    part: str = "eval"
    switch_source: str = "mixed"
    _cache: dict[str, Image.Image] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        _check_part(self.part)

    def load_switch(self, choice: ImageChoice) -> Image.Image:
        # A photo is decoded once per run: the same few photos serve thousands of samples.
        # Benchmark images are cheap to redraw and many, so they are not kept.
        if choice.source_id is not None:
            return choice.load()
        if choice.name not in self._cache:
            self._cache[choice.name] = choice.load()
        return self._cache[choice.name]

    def misleading(self, option: str, known: dict, rng: np.random.Generator) -> str:
        """The misleading text naming ``option``. Eval: the data's own fact for it, else the
        published phrasing and facts. Train: a train phrasing and train facts, never the data's
        facts (a test sample of the same class would carry the same sentence)."""
        if self.part == "train":
            return train_misleading_text(option, rng)
        return known.get(option) or eval_misleading_text(option)

    def noise_seed(self, rng: np.random.Generator) -> int:
        """The seed of a noise image: odd in the eval part, even in the train part."""
        return 2 * int(rng.integers(2 ** 62)) + (self.part == "eval")

    def canvas_colour(self, value: int, rng: np.random.Generator) -> tuple[int, int, int]:
        """A black (0) or white (255) canvas's colour: exact in the eval part; in the train part a
        shade within 24 levels of it, never exact, so no canvas of one part is in the other."""
        if self.part == "eval":
            return (value, value, value)
        low, high = (1, 25) if value < 128 else (231, 255)
        return tuple(int(v) for v in rng.integers(low, high, size=3))  # type: ignore[return-value]

    def describe(self) -> dict[str, Any]:
        """The part, switch source, and per pool its size and SHA-256 (for the run manifest)."""
        return {"part": self.part, "switch_source": self.switch_source,
                "pools": {name: {"size": size, "sha256": _sha256(content)}
                          for name, (size, content) in self._contents().items()}}

    def _contents(self) -> dict[str, tuple[int, Any]]:
        photos = [c.name for c in self.switch_images if c.source_id is None]
        bench = [c.source_id for c in self.switch_images if c.source_id is not None]
        if self.part == "eval":
            misleading = {"phrasings": [EVAL_PHRASING], "facts": CONCEPT_FACTS,
                          "first": "the data's own facts for the option"}
            canvases = {"black": [0, 0], "white": [255, 255]}
        else:
            misleading = {"phrasings": list(TRAIN_PHRASINGS), "facts": TRAIN_CONCEPT_FACTS,
                          "generic_facts": list(TRAIN_GENERIC_FACTS)}
            canvases = {"black": [1, 24], "white": [231, 254]}
        return {
            "unrelated_sentences": (len(self.sentences), list(self.sentences)),
            "misleading_text": (len(misleading["phrasings"]), misleading),
            "switch_photos": (len(photos), {"names": photos, "versions": _photo_versions()}),
            "switch_benchmark": (len(bench), bench),
            "noise_seeds": (None, {"rule": "2 * k + 1" if self.part == "eval" else "2 * k", "k": "uniform below 2**62"}),
            "canvases": (2, canvases),
        }


def _sha256(content: Any) -> str:
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _photo_versions() -> dict[str, str]:
    """What the photos' pixels depend on besides their names."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        skimage_version = version("scikit-image")
    except PackageNotFoundError:
        skimage_version = "missing"
    return {"scikit-image": skimage_version, "scenes": str(scenes.GENERATOR_VERSION)}


SWITCH_SOURCES = ("mixed", "photos", "benchmark")


def default_pools(samples: Sequence | None = None, switch_source: str = "mixed", part: str = "eval") -> Pools:
    """Pools for a run. ``switch_source``: real photos, images of other benchmark samples (the
    literal "switch"), or both. ``part``: ``eval`` (diagnosis) or ``train`` (mitigation views);
    ``samples`` are the run's own (diagnosis: the samples diagnosed; training: the training
    samples). The benchmark part is ordered by sample id, so it does not depend on the order
    samples arrive in."""
    if switch_source not in SWITCH_SOURCES:
        raise ValueError(f"unknown switch source {switch_source!r} (use one of {', '.join(SWITCH_SOURCES)})")
    _check_part(part)
    choices: list[ImageChoice] = []
    if switch_source in ("mixed", "photos"):
        choices += [ImageChoice(p.name, p.load) for p in photo_pool(part)]
    if switch_source in ("mixed", "benchmark"):
        with_images = sorted((s for s in samples or [] if s.image is not None), key=lambda s: s.id)
        choices += [ImageChoice(f"sample:{s.id}", _sample_loader(s), s.id) for s in with_images]
    sentences = UNRELATED_SENTENCES if part == "eval" else TRAIN_UNRELATED_SENTENCES
    return Pools(sentences=sentences, switch_images=choices, part=part, switch_source=switch_source)


def _sample_loader(sample) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        from modint.data.sample import load_image

        return load_image(sample)

    return load
