"""The demo model's recipe settings (``DemoConfig``) and its chat template."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from modint.models.tokenizer import llava_chat_template
from modint.settings import parse_overrides, read_mapping, typed_values


# LLaVA-1.5's conversation format without the system turn: the demo model is small and the
# published system prompt would only add 35 tokens to every input (docs/demo-model.md).
DEMO_CHAT_TEMPLATE = llava_chat_template(with_system=False)


@dataclass
class DemoConfig:
    seed: int = 0
    image_size: int = 96
    patch_size: int = 12
    vision_hidden: int = 192
    vision_layers: int = 4
    text_hidden: int = 256
    text_layers: int = 6
    # Deep supervision: the LM layer whose output, read through the final norm and the tied
    # unembedding at the answer position, must already name the answer's concept ("star"), so
    # the layers above it only have to find that concept's option letter (see concept_loss).
    concept_layer: int | None = None  # None: half the LM's depth (3 of 6)
    concept_weight: float = 0.5
    vocab_size: int = 2048
    train_per_family: int = 3000
    batch_size: int = 24
    vision_steps: int = 1500
    vision_batch: int = 48
    naming_steps: int = 1200
    pointer_steps: int = 1000
    mixture_steps: int = 3000
    vision_lr: float = 2e-3
    lr: float = 1e-3
    mixture_lr: float = 3e-4
    pointer_naming_rate: float = 0.3
    vision_lr_factor: float = 0.3
    weight_decay: float = 0.01
    warmup: int = 50
    # mixture knobs (fractions within a family)
    caption_rate: float = 0.6
    weak_image_rate: float = 0.5  # of captioned image-heavy prompts: the caption carries the answer
    # ... rising linearly to this by the mixture's end (-1: constant): the caption shortcut stays
    # while the tower gets better at reading pictures.
    weak_image_rate_end: float = 0.9
    # ... and of captioned image-heavy prompts, the share whose picture shows another scene of the
    # same task (a noisy web pair: the text right, the picture not), so the caption wins a
    # conflict.
    mismatched_picture_rate: float = 0.3
    # The mixture draws fresh samples of the training split (indices < this, per family, made on
    # demand) instead of the train_per_family pool, so the model cannot memorise scenes.
    mixture_pool: int = 100000  # 0: the train_per_family pool
    filler_rate: float = 0.15
    # Binding stage (after the mixture; 0 steps: off): the mixture's examples at its final habits,
    # a third of every batch VQA, the tower at 0.3 x the lr: where mismatched pictures teach
    # caption trust.
    binding_steps: int = 600
    binding_lr: float = 3e-4
    binding_vqa_share: float = 0.34
    binding_vision_lr_factor: float = 0.3
    # Training-only supervision of binding, in the stages named (comma-separated; "" = none)
    # (docs/demo-model.md, "Where VQA is lost").
    # - patch heads: from what the LM reads (the projector's output, RMS-normalised as the LM's
    #   first norm sees it) per-patch heads name the shape and colour covering each patch, on
    #   `patch_scenes` fresh VQA training scenes per step (0: batch_size);
    patch_weight: float = 0.5
    patch_stages: str = "naming,pointer,mixture,binding"
    patch_scenes: int = 8
    # - attention: on VQA examples, one head's attention from the answer position onto the
    #   image must fall on the asked shape's patches (the renderer knows them).
    attention_weight: float = 0.5
    attention_layer: int = 2
    attention_head: int = 3
    attention_stages: str = "naming,pointer,mixture,binding"
    # - pointer attention: on multiple-choice examples, one head's attention from the answer
    #   position must fall on the right option's text, and a head in a lower layer must carry
    #   each option's letter onto its text: the circuit that turns the concept (deep
    #   supervision) into its letter.
    pointer_attention_weight: float = 0.5
    pointer_attention_layer: int = 4
    pointer_attention_head: int = 0
    letter_attention_layer: int = 1
    letter_attention_head: int = 0
    pointer_attention_stages: str = "pointer,mixture,binding"
    # Vision warm-up: the share of scenes drawn fresh from VQA training scenes (several objects;
    # 0: only the pool's and single-concept scenes), and per-patch side flags (does the patch
    # belong to the leftmost / rightmost / topmost / bottommost object: what `position` asks).
    vision_vqa_rate: float = 0.5
    side_flags: bool = True
    # Arithmetic drill: per step of the stages named, this many fresh arithmetic questions of the
    # training split join the batch, as text-only naming ("What is 7 - 3?" -> "4") or as the
    # multiple-choice question: the arithmetic facts are few beside the rest of the mixture.
    drill_examples: int = 16
    drill_stages: str = "binding"
    # ... of which this share is posed as the multiple-choice question itself (its picture and
    # context as the mixture draws them), which trains the sum and the pointer to its option.
    drill_choice_rate: float = 0.5
    agreeing_image_rate: float = 0.35  # text-heavy questions illustrated with their answer
    no_image_rate: float = 0.1
    threads: int = 2
    checkpoints: bool = False  # keep the model after each stage in OUT/stages/<stage>
    checkpoint_every: int = 0  # with checkpoints: also every N steps, in OUT/stages/<stage>-<step>
    resume_from: str | None = None  # a stage checkpoint: run only the stages after it

    def scaled(self, scale: float) -> "DemoConfig":
        """The same recipe with every stage ``scale`` times as long (tests use a tiny scale)."""
        out = DemoConfig(**asdict(self))
        for name in ("vision_steps", "naming_steps", "pointer_steps", "mixture_steps", "binding_steps", "warmup"):
            if getattr(out, name):  # a stage switched off (0 steps) stays off
                setattr(out, name, max(1, int(round(getattr(out, name) * scale))))
        return out



def load_demo_config(yaml_file: str | Path | None = None, overrides: Sequence[str] = ()) -> DemoConfig:
    """``DemoConfig`` from its defaults, a YAML file (``configs/demo_model.yaml`` writes them all
    out) and ``"KEY=VALUE"`` overrides, each value of its field's type. Raises ValueError naming
    the source and the setting for an unknown setting or a value of the wrong type."""
    layers = [(str(yaml_file), read_mapping(yaml_file))] if yaml_file is not None else []
    layers.append(("--set", parse_overrides(overrides)))
    return DemoConfig(**typed_values(DemoConfig, layers, what="demo setting"))
