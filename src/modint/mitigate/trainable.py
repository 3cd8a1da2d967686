"""What a run trains: ``prepare_trainable`` sets which parameters learn (``TrainConfig.trainable``;
LoRA through peft on the language model's layers only), and ``reference_model`` gives the model
before fine-tuning for the preservation term."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Sequence

import torch

from modint.models.specs import lora_targets_for

if TYPE_CHECKING:
    from modint.mitigate.train import TrainConfig


def _vision_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    found = []
    for owner in (model, getattr(model, "model", None)):
        for name in ("vision_tower", "vision_model", "visual"):
            module = getattr(owner, name, None) if owner is not None else None
            if isinstance(module, torch.nn.Module) and module not in found:
                found.append(module)
    return found


def _projector_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    found = []
    for owner in (model, getattr(model, "model", None)):
        for name in ("multi_modal_projector", "connector", "qformer", "language_projection", "merger"):
            module = getattr(owner, name, None) if owner is not None else None
            if isinstance(module, torch.nn.Module) and module not in found:
                found.append(module)
    return found


def _lora_target_pattern(model: torch.nn.Module, targets: Sequence[str]) -> str:
    """A peft regex for the ``targets`` layers of the language model only: the vision tower's
    attention has layers of the same names (q_proj, v_proj), and it stays frozen as published.
    Targets that match no layer of the language model are refused, naming the layers it has."""
    import re

    # Idefics3 and SmolVLM call their language model text_model
    lms = [name for name, _ in model.named_modules() if name.split(".")[-1] in ("language_model", "text_model")]
    names = "|".join(re.escape(t) for t in targets)
    if not lms:
        pattern = rf".*\.({names})$"
    else:
        pattern = rf"({'|'.join(re.escape(n) for n in lms)})\..*\.({names})$"
    if not any(re.fullmatch(pattern, name) for name, _ in model.named_modules()):
        prefixes = tuple(n + "." for n in lms) or ("",)
        linear = sorted({n.split(".")[-1] for n, m in model.named_modules()
                         if isinstance(m, torch.nn.Linear) and n.startswith(prefixes)})
        raise ValueError(f"LoRA targets {', '.join(targets)} match no layer of the language model of "
                         f"{type(model).__name__}; its linear layers are: {', '.join(linear) or 'none'}")
    return pattern


def prepare_trainable(adapter: Any, cfg: TrainConfig) -> list[torch.nn.Parameter]:
    """Set requires_grad per ``cfg.trainable``; LoRA wraps the model with peft."""
    model = adapter.model
    if cfg.trainable == "lora":
        import warnings

        from peft import LoraConfig, get_peft_model

        targets = cfg.lora_targets or lora_targets_for(model.config)

        with warnings.catch_warnings():  # peft reads a property transformers 5 deprecates: noise for our users
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                                     target_modules=_lora_target_pattern(model, targets),
                                                     lora_dropout=0.0))
        adapter.model = model
    else:
        for p in model.parameters():
            p.requires_grad_(cfg.trainable in ("full", "all"))
        if cfg.trainable == "full":  # the published recipe: the vision encoder stays frozen
            for m in _vision_modules(model):
                m.requires_grad_(False)
        if cfg.trainable == "projector":
            for m in _projector_modules(model):
                m.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"trainable={cfg.trainable!r} leaves nothing to train in {type(model).__name__}")
    return params


def reference_model(adapter: Any, cfg: TrainConfig) -> Callable[[], ContextManager] | None:
    """A context factory in which ``adapter.model`` is the model before fine-tuning, for the
    preservation term; None when it is off. LoRA: the adapters switched off (no copy); otherwise a
    frozen copy made now (call it before the first step; it doubles the model's memory)."""
    if cfg.preserve_weight <= 0:
        return None
    if cfg.trainable == "lora":
        return lambda: adapter.model.disable_adapter()
    before = copy.deepcopy(adapter.model).eval().requires_grad_(False)

    @contextmanager
    def swapped():
        live, adapter.model = adapter.model, before
        try:
            yield
        finally:
            adapter.model = live

    return swapped
