"""One vision encoding per distinct image per training step.

A step shows the vision tower the same pictures many times: an image-heavy anchor's image again in
each of its text views and in its adversarial copy, the black and white canvases in every
text-heavy anchor's views, every attacked image at each PGD iteration and in the reference
forward. When the tower is frozen (the presets train LoRA on the language model, or the language
model and projector) and deterministic (no active dropout), its output for an image is a constant
of the step: ``encode_each_image_once`` answers repeats from a cache that lives for the step.

Families whose tower takes one [3, H, W] image per row of ``pixel_values`` are served (LLaVA,
PaliGemma, BLIP-2, InstructBLIP, Gemma 3, ...); others (Qwen's flattened patches, tiled
[B, tiles, 3, h, w] inputs) call their tower as before.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

VISION_NAMES = ("vision_tower", "vision_model", "visual")
# Options of the language model's forward that reach the tower with the model's other keyword
# arguments and leave its output as it is: not part of a cache key.
LANGUAGE_MODEL_OPTIONS = ("use_cache",)


def vision_towers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The outermost vision encoders of ``model`` (through any wrapper such as peft's)."""
    found: list[tuple[str, torch.nn.Module]] = []
    for name, module in model.named_modules():
        if name.split(".")[-1] in VISION_NAMES and not any(name.startswith(n + ".") for n, _ in found):
            found.append((name, module))
    return [m for _, m in found]


def _frozen_and_deterministic(module: torch.nn.Module) -> bool:
    return not any(p.requires_grad for p in module.parameters()) and deterministic(module)


def deterministic(module: torch.nn.Module) -> bool:
    """Whether ``module``'s forward is a function of its inputs (no dropout active)."""
    if not module.training:
        return True
    config = getattr(module, "config", None)  # attention dropout is functional: read from the config
    rates = [v for k, v in (config.to_dict().items() if config is not None else ()) if "dropout" in k]
    if any(isinstance(v, (int, float)) and v > 0 for v in rates):
        return False
    return not any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in module.modules())


def _rows(output: Any, index: int) -> Any:
    """Row ``index`` of a tower output (a tensor, a tuple of them, or a ModelOutput)."""
    if output is None:
        return None
    if isinstance(output, torch.Tensor):
        return output[index:index + 1]
    if isinstance(output, tuple):
        return tuple(_rows(x, index) for x in output)
    return type(output)(**{k: _rows(v, index) for k, v in output.items()})


def _stack(rows: list[Any]) -> Any:
    first = rows[0]
    if first is None:
        return None
    if isinstance(first, torch.Tensor):
        return torch.cat(rows)
    if isinstance(first, tuple):
        return tuple(_stack([r[i] for r in rows]) for i in range(len(first)))
    return type(first)(**{k: _stack([r[k] for r in rows]) for k in first.keys()})


def _cached_forward(forward: Callable[..., Any], cache: dict[tuple[str, str], Any]) -> Callable[..., Any]:
    def run(pixel_values: Any = None, *args: Any, **kwargs: Any) -> Any:
        plain = all(isinstance(v, (bool, int, float, str, type(None))) for v in kwargs.values())
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != 4 or args or not plain:
            return forward(pixel_values, *args, **kwargs)  # not one image per row, or options we cannot key
        call = repr(sorted((k, v) for k, v in kwargs.items() if k not in LANGUAGE_MODEL_OPTIONS))
        keys = [(hashlib.sha1(row.detach().cpu().contiguous().numpy().tobytes()).hexdigest(), call)
                for row in pixel_values]
        missing = list(dict.fromkeys(k for k in keys if k not in cache))
        if missing:
            first = [keys.index(k) for k in missing]
            fresh = forward(pixel_values[first], **kwargs)
            for j, key in enumerate(missing):
                cache[key] = _rows(fresh, j)
        return _stack([cache[k] for k in keys])
    return run


@contextmanager
def encode_each_image_once(model: torch.nn.Module) -> Iterator[None]:
    """Within the context, each frozen, deterministic vision tower of ``model`` encodes each
    distinct image (per set of call options) once; the cache goes with the context."""
    patched = []
    for tower in vision_towers(model):
        if _frozen_and_deterministic(tower):
            tower.forward = _cached_forward(tower.forward, {})  # an instance attribute: nn.Module calls it
            patched.append(tower)
    try:
        yield
    finally:
        for tower in patched:
            del tower.forward
