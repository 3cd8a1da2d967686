"""What the renderer knows about a scene, as training targets: per-patch and scene-level classes."""

from __future__ import annotations

import numpy as np

from modint.data import facts
from modint.data.mini import Scene, item_masks
from modint.data.sample import VQA, Sample
from modint.zoo.demo.config import DemoConfig

# Naming through the language model alone leaves a from-scratch vision tower near chance for a
# long time. So the tower first learns, per patch, what covers it (shape, colour, digit) and
# where objects are centred (what counting needs), from the label maps the renderer knows.

NAMED_COLOURS = {**facts.COLOURS, "white": (250, 250, 250), "black": (10, 10, 10), "grey": (128, 128, 128)}
_COLOUR_NAMES = list(NAMED_COLOURS)
DIGITS = [str(n) for n in range(21)]
N_SHAPES = len(facts.SHAPES) + 1  # + the digit glyph
# Per-patch heads (what covers the patch) and global heads on the mean patch feature (what the
# questions ask: how many of each shape, the colour of each shape, which shape is leftmost...).
# The global heads push scene-level facts into every patch token, where the LM will read them.
PATCH_HEADS = {"shape": 1 + N_SHAPES, "colour": 1 + len(_COLOUR_NAMES)}
GLOBAL_HEADS = {"count": (N_SHAPES, 7), "colour_of": (N_SHAPES, 1 + len(_COLOUR_NAMES)), "digit": (1, 1 + len(DIGITS)),
                "extreme": (4, 1 + N_SHAPES)}
SIDES = ("left", "right", "top", "bottom")


def patch_heads(cfg: DemoConfig) -> dict[str, int]:
    """Output sizes of the per-patch heads: shape and colour classes, and with ``side_flags``
    a yes/no pair per side (does the patch belong to the leftmost object, ...)."""
    return {**PATCH_HEADS, **({"side": 2 * len(SIDES)} if cfg.side_flags else {})}


def _colour_class(rgb: tuple[int, int, int]) -> int:
    dists = [sum((a - b) ** 2 for a, b in zip(rgb, ref)) for ref in NAMED_COLOURS.values()]
    return 1 + int(np.argmin(dists))


def shape_class(kind: str) -> int:
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
            k = shape_class(it.kind)
            where = present & (best == i)
            shape[where] = k
            colour[where] = _colour_class(it.colour)
            count[k - 1] = min(6, count[k - 1] + 1)
            colour_of[k - 1] = _colour_class(it.colour)
            if it.kind.startswith("digit:"):
                digit[0] = 1 + DIGITS.index(it.kind.split(":", 1)[1])
        items = scene.items
        for j, key in enumerate((lambda it: it.cx, lambda it: -it.cx, lambda it: it.cy, lambda it: -it.cy)):
            first = min(range(len(items)), key=lambda i: key(items[i]))  # left, right, top, bottom
            extreme[j] = shape_class(items[first].kind)
            side[:, j] = owner == first
    return {"shape": shape.reshape(-1), "colour": colour.reshape(-1), "count": count, "colour_of": colour_of,
            "digit": digit, "extreme": extreme, "side": side}



def asked_patches(sample: Sample, grid: int) -> np.ndarray | None:
    """The patches of a VQA sample's picture that its question is about: the asked shape's
    (count, colour_of) or the answer shape's (position); None if there are none."""
    shape = sample.meta.get("target") or sample.options[sample.answer]
    if sample.family != VQA or shape not in facts.SHAPES:
        return None
    mask = scene_labels(sample.image.args[0], grid)["shape"] == shape_class(shape)
    return mask if mask.any() else None
