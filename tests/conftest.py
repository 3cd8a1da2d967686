import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import numpy as np
import pytest
from PIL import Image

from modint.data.sample import Sample


@pytest.fixture(scope="session")
def tiny_llava_adapter():
    from modint.models import load_adapter

    return load_adapter("tiny-random-llava")


def make_image(seed: int, size=(40, 50)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8))


@pytest.fixture
def mixed_samples():
    return [
        Sample("img-1", "image_heavy", "What shape is shown?", ("circle", "square", "star", "cross"), 1, make_image(1)),
        Sample("txt-1", "text_heavy", "What is 2 + 2?", ("4", "5", "6"), 0, None, context="Cats sleep a lot."),
        Sample("vqa-1", "vqa", "How many circles?", ("1", "2", "3", "4", "5"), 4, make_image(2, (64, 64))),
    ]
