"""The one record every stage passes along: a multiple-choice sample of one task family."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union

from PIL import Image

IMAGE_HEAVY = "image_heavy"
TEXT_HEAVY = "text_heavy"
VQA = "vqa"
FAMILIES = (IMAGE_HEAVY, TEXT_HEAVY, VQA)

# An image is held as a decoded PIL image, a path (decoded lazily), or a zero-argument loader
# (e.g. base64 in a TSV row), so that big benchmarks keep memory flat.
ImageSource = Union[Image.Image, str, Path, Callable[[], Image.Image], None]

OPTION_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class SampleError(ValueError):
    """A sample that cannot be run; the message names the sample and the problem."""


class BenchmarkError(ValueError):
    """An unknown benchmark or split, or a benchmark that cannot be read."""


@dataclass(frozen=True)
class Sample:
    """A multiple-choice question.

    ``context`` is text placed before the question (perturbations put unrelated or misleading
    text there, so the question itself stays as the benchmark wrote it). Perturbed copies keep
    ``id``: that is what pairs a perturbed answer with its reference answer.
    """

    id: str
    family: str
    question: str
    options: tuple[str, ...]
    answer: int
    image: ImageSource = None
    meta: dict[str, Any] = field(default_factory=dict)
    context: str = ""

    def replace(self, **changes: Any) -> "Sample":
        return dataclasses.replace(self, **changes)

    @property
    def letters(self) -> str:
        return OPTION_LETTERS[: len(self.options)]


def load_image(sample: Sample) -> Image.Image | None:
    """Decode the sample's image as RGB, or raise SampleError naming the sample."""
    src = sample.image
    if src is None:
        return None
    try:
        if isinstance(src, Image.Image):
            img = src
        elif isinstance(src, (str, Path)):
            with Image.open(src) as opened:
                img = opened.convert("RGB")
        else:
            img = src()
        return img if img.mode == "RGB" else img.convert("RGB")
    except SampleError:
        raise
    except FileNotFoundError:
        raise SampleError(f"sample {sample.id!r}: image not found: {src}") from None
    except Exception as exc:  # PIL raises many kinds for broken files
        raise SampleError(f"sample {sample.id!r}: unreadable image ({type(exc).__name__}: {exc})") from None


def validate_sample(sample: Sample) -> None:
    """Raise SampleError for a sample that cannot be scored (images are checked on load)."""
    if isinstance(sample.meta, dict) and sample.meta.get("load_error"):  # a row its loader could not read
        raise SampleError(str(sample.meta["load_error"]))
    if sample.family not in FAMILIES:
        raise SampleError(f"sample {sample.id!r}: unknown family {sample.family!r} (expected one of {', '.join(FAMILIES)})")
    n = len(sample.options)
    if n < 2:
        raise SampleError(f"sample {sample.id!r}: needs at least 2 options, has {n}")
    if n > len(OPTION_LETTERS):
        raise SampleError(f"sample {sample.id!r}: at most {len(OPTION_LETTERS)} options supported, has {n}")
    if not isinstance(sample.answer, int) or not 0 <= sample.answer < n:
        raise SampleError(f"sample {sample.id!r}: answer index {sample.answer!r} out of range for {n} options")
    if any(not str(o).strip() for o in sample.options):
        raise SampleError(f"sample {sample.id!r}: empty option text")
