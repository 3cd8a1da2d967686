"""Training-only losses of the demo recipe (the shipped model stays a plain LLaVA)."""

from __future__ import annotations

import numpy as np
import torch

from modint.data.mini import make_sample, render
from modint.data.sample import VQA
from modint.seeding import derive_seed
from modint.zoo.demo.config import DemoConfig
from modint.zoo.demo.data import Example
from modint.zoo.demo.labels import GLOBAL_HEADS, PATCH_HEADS, SIDES, scene_labels


def head_loss(feats: torch.Tensor, heads: torch.nn.ModuleDict, targets: list[dict[str, np.ndarray]]
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


def concept_loss(model, hidden_states: tuple[torch.Tensor, ...], positions: torch.Tensor,
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


def pointer_attention_loss(attentions: tuple[torch.Tensor, ...], positions: torch.Tensor,
                            targets: list[list[int] | None], layer: int, head: int) -> torch.Tensor | None:
    """-log of the share of one head's answer-position attention on the right option's text,
    averaged over the examples that have one."""
    losses = [-torch.log(attentions[layer][i, head, positions[i], where].sum().clamp_min(1e-6))
              for i, where in enumerate(targets) if where]
    return torch.stack(losses).mean() if losses else None


def letter_attention_loss(attentions: tuple[torch.Tensor, ...], links: list[list[tuple[int, int]]], layer: int,
                           head: int) -> torch.Tensor | None:
    """-log of one head's attention from each option's first text token onto its letter,
    averaged over all options of all examples."""
    losses = [-torch.log(attentions[layer][i, head, text, letter].clamp_min(1e-6))
              for i, pairs in enumerate(links) for text, letter in pairs]
    return torch.stack(losses).mean() if losses else None


def attention_loss(attentions: tuple[torch.Tensor, ...], inputs: dict, positions: torch.Tensor,
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


def projector_patch_loss(model, processor, heads: torch.nn.ModuleDict, cfg: DemoConfig, stage: str,
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
    return head_loss(normed, heads, [scene_labels(sc, grid) for sc in scenes])[0]
