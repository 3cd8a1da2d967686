"""Differentiable preprocessing of the tiling families (LLaVA-NeXT and LLaVA-OneVision "anyres",
Idefics3 / SmolVLM frames): PIL's resampling as torch ops, the same tiles as the family's
processor (up to PIL's 8-bit rounding), batches laid out as the processor pads them, and a
gradient to the raw pixels through the model."""

import numpy as np
import pytest
import torch

from modint.data.sample import Sample
from modint.models.adapter import VLMAdapter
from modint.models.pixels import anyres_tiles, idefics3_tiles, pad_tiles
from modint.models.tiny import build_tiny

from conftest import make_image

ANYRES = ["llava_next", "llava_onevision"]
TILED = ANYRES + ["idefics3", "smolvlm"]


def _raw(image):
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255


@pytest.mark.parametrize("family", TILED)
@pytest.mark.parametrize("size", [(100, 80), (64, 64), (40, 90)])
def test_tiles_match_the_processor(family, size):
    _, processor = build_tiny(family, seed=0)
    image = make_image(1, size)
    reference = processor.image_processor(images=[image], return_tensors="pt")["pixel_values"][0]
    tiles = (anyres_tiles if family in ANYRES else idefics3_tiles)(_raw(image), processor.image_processor)
    assert tiles.shape == reference.shape  # same grid choice, same number and order of tiles
    gap = (tiles - reference).abs()  # normalised units (about 2 per 255 grey levels)
    assert float(gap.mean()) < 0.006 and float(gap.max()) < 0.03


def test_pad_tiles_pads_with_zero_tiles():
    a, b = torch.ones(3, 3, 4, 4), torch.ones(1, 3, 4, 4)
    out = pad_tiles([a, b])
    assert out.shape == (2, 3, 3, 4, 4) and out[1, 1:].abs().sum() == 0 and out[1, 0].sum() == 48


@pytest.mark.parametrize("family", TILED)
def test_batched_tiles_are_laid_out_as_the_processor_and_carry_gradients(family):
    model, processor = build_tiny(family, seed=0)
    adapter = VLMAdapter(model.float().eval(), processor)
    samples = [Sample("t1", "text_heavy", "What is 2 + 2?", ("4", "5", "6"), 0, make_image(3, (48, 64))),
               Sample("t2", "text_heavy", "What is 1 + 2?", ("2", "3", "4", "5"), 1, make_image(4, (30, 30)))]
    raws = [_raw(s.image).requires_grad_(True) for s in samples]
    batch = adapter.encode(samples)
    reference = batch.inputs["pixel_values"]
    batch.inputs["pixel_values"] = adapter.differentiable_pixel_values(raws)
    assert batch.inputs["pixel_values"].shape == reference.shape
    adapter.answer_logits(batch)[:, adapter.letter_token_ids("B")[0]].sum().backward()
    assert all(r.grad is not None and r.grad.abs().sum() > 0 for r in raws)
    # (pixel PGD on every family: tests/test_attacks.py)


@pytest.mark.parametrize("resample", [1, 2, 3])  # Lanczos, bilinear, bicubic
@pytest.mark.parametrize("size", [(37, 29), (60, 130), (130, 60), (200, 90), (120, 150), (40, 40)])
def test_resize_matches_pil_within_its_rounding(resample, size):
    from modint.models.pixels import resize

    image = make_image(1, (100, 80))  # 80 wide, 100 high: each size shrinks or stretches each side
    reference = torch.from_numpy(np.array(image.resize(size, resample=resample))).permute(2, 0, 1).float() / 255
    out = resize(_raw(image), size[1], size[0], resample)
    gap = (out - reference).abs() * 255
    assert float(gap.max()) < 2.5 and float(gap.mean()) < 0.5  # grey levels: PIL rounds each pass to 8 bits
