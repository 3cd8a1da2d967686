"""What perturbations draw from: unrelated sentences and unrelated real photos."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from PIL import Image

# ~80 "facts" unrelated to any question (REFERENCE section 2): science, history, daily life, fun
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
# their docstrings (skimage.data.<name>.__doc__).
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


def photo_pool() -> list[Photo]:
    return [Photo(f"skimage:{name}", licence, _skimage_photo(name)) for name, licence in SKIMAGE_PHOTOS]


@dataclass(frozen=True)
class ImageChoice:
    """An entry of the switch pool: its name (recorded as ``switched_from``) and how to load it."""

    name: str
    load: Callable[[], Image.Image]
    source_id: str | None = None  # the benchmark sample it came from, never the sample itself


@dataclass
class Pools:
    sentences: Sequence[str] = UNRELATED_SENTENCES
    switch_images: Sequence[ImageChoice] = field(default_factory=list)
    _cache: dict[str, Image.Image] = field(default_factory=dict, repr=False)

    def load_switch(self, choice: ImageChoice) -> Image.Image:
        # A photo is decoded once per run: the same few photos serve thousands of samples.
        # Benchmark images are cheap to redraw and many, so they are not kept.
        if choice.source_id is not None:
            return choice.load()
        if choice.name not in self._cache:
            self._cache[choice.name] = choice.load()
        return self._cache[choice.name]


SWITCH_SOURCES = ("mixed", "photos", "benchmark")


def default_pools(samples: Sequence | None = None, switch_source: str = "mixed") -> Pools:
    """Pools for a run. ``switch_source``: real photos, images of other benchmark samples (the
    literal "switch"), or both. The benchmark part is ordered by sample id, so it does not depend
    on the order samples arrive in."""
    if switch_source not in SWITCH_SOURCES:
        raise ValueError(f"unknown switch source {switch_source!r} (use one of {', '.join(SWITCH_SOURCES)})")
    choices: list[ImageChoice] = []
    if switch_source in ("mixed", "photos"):
        choices += [ImageChoice(p.name, p.load) for p in photo_pool()]
    if switch_source in ("mixed", "benchmark"):
        with_images = sorted((s for s in samples or [] if s.image is not None), key=lambda s: s.id)
        choices += [ImageChoice(f"sample:{s.id}", _sample_loader(s), s.id) for s in with_images]
    return Pools(switch_images=choices)


def _sample_loader(sample) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        from modint.data.sample import load_image

        return load_image(sample)

    return load
