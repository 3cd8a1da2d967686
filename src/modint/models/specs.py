"""Per-family differences, as data. A checkpoint is recognised by its config's ``model_type``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modint.models.prompts import SYSTEM_PROMPT


@dataclass(frozen=True)
class FamilySpec:
    model_type: str
    display_name: str
    hub_examples: tuple[str, ...] = ()
    image_token: str = "<image>"
    system_prompt: str | None = SYSTEM_PROMPT
    # Where the family's own processor class cannot be built (it needs torchvision), a function
    # (source, config) -> processor that builds an equivalent one (see models/processors.py).
    stand_in: str | None = None
    # No chat template: the prompt is this format of the system prompt and the user text.
    plain_prompt: str | None = None
    # Q-Former families (BLIP-2, InstructBLIP): the processor puts query tokens on every row and
    # the model needs pixels, so mixed batches are split and text-only rows go to the LM alone.
    # (Their Flan-T5 variants share the model_type; the adapter reads the encoder-decoder LM from
    # the config: ``config.text_config.is_encoder_decoder``.)
    text_only_via_language_model: bool = False
    # PaliGemma: the processor wants "<image>" before the prompt, refuses text-only input (then the
    # tokenizer alone encodes this template, all tokens prefix), and one batch is all-image or none.
    image_prefix: str | None = None
    text_only_template: str | None = None
    split_mixed_batches: bool = False
    # Gemma 3: the processor reads a flat list of images as all belonging to the first prompt, so
    # images go in one list per row ([[image], [], ...]; text-only rows get an empty list).
    images_per_row: bool = False
    # Why letter scoring cannot compute a prompt prefix once and reuse it (modint.models.sharing),
    # or None when it can; such families keep the reference path.
    no_prefix_sharing: str | None = None


_QFORMER_PROMPT = "{system}\n{user}\nAnswer:"

SPECS: dict[str, FamilySpec] = {
    "paligemma": FamilySpec("paligemma", "PaliGemma", ("google/paligemma-3b-mix-224", "google/paligemma2-3b-mix-224"),
                            plain_prompt=_QFORMER_PROMPT, image_prefix="<image>", text_only_template="{bos}{text}\n",
                            split_mixed_batches=True,
                            no_prefix_sharing="the image and the prompt form one prefix that attends in both "
                                              "directions, so a prompt's end changes its image tokens"),
    "instructblip": FamilySpec("instructblip", "InstructBLIP", ("Salesforce/instructblip-vicuna-7b",
                                                                "Salesforce/instructblip-flan-t5-xl"),
                               plain_prompt=_QFORMER_PROMPT, text_only_via_language_model=True,
                               no_prefix_sharing="the Q-Former reads the instruction, so the image features "
                                                 "depend on the text"),
    "blip-2": FamilySpec("blip-2", "BLIP-2", ("Salesforce/blip2-opt-2.7b", "Salesforce/blip2-flan-t5-xl"),
                         plain_prompt=_QFORMER_PROMPT, text_only_via_language_model=True),
    "idefics3": FamilySpec("idefics3", "Idefics3", ("HuggingFaceM4/Idefics3-8B-Llama3",)),
    "smolvlm": FamilySpec("smolvlm", "SmolVLM", ("HuggingFaceTB/SmolVLM-Instruct", "HuggingFaceTB/SmolVLM2-2.2B-Instruct"),
                          stand_in="modint.models.processors.smolvlm_stand_in"),
    "llava": FamilySpec("llava", "LLaVA-1.5", ("llava-hf/llava-1.5-7b-hf", "llava-hf/llava-1.5-13b-hf")),
    "llava_next": FamilySpec("llava_next", "LLaVA-NeXT (1.6)", ("llava-hf/llava-v1.6-mistral-7b-hf",
                                                              "llava-hf/llava-v1.6-vicuna-7b-hf")),
    "llava_onevision": FamilySpec("llava_onevision", "LLaVA-OneVision",
                                  ("llava-hf/llava-onevision-qwen2-0.5b-ov-hf", "llava-hf/llava-onevision-qwen2-7b-ov-hf"),
                                  stand_in="modint.models.processors.llava_onevision_stand_in"),
    "qwen2_vl": FamilySpec("qwen2_vl", "Qwen2-VL", ("Qwen/Qwen2-VL-2B-Instruct", "Qwen/Qwen2-VL-7B-Instruct"),
                           image_token="<|image_pad|>", stand_in="modint.models.processors.qwen_stand_in"),
    "qwen2_5_vl": FamilySpec("qwen2_5_vl", "Qwen2.5-VL", ("Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct"),
                             image_token="<|image_pad|>", stand_in="modint.models.processors.qwen_stand_in"),
    "qwen3_vl": FamilySpec("qwen3_vl", "Qwen3-VL", ("Qwen/Qwen3-VL-4B-Instruct", "Qwen/Qwen3-VL-8B-Instruct"),
                           image_token="<|image_pad|>", stand_in="modint.models.processors.qwen_stand_in"),
    "gemma3": FamilySpec("gemma3", "Gemma 3", ("google/gemma-3-4b-it", "google/gemma-3-12b-it"),
                         image_token="<image_soft_token>", images_per_row=True),
}


# LoRA's default targets: the attention projections of the language model, by the language
# model's own model_type (``config.text_config.model_type``: BLIP-2 and InstructBLIP come with
# OPT, Vicuna or Flan-T5). Llama, Vicuna, Mistral, Qwen and Gemma all name them q/k/v/o_proj.
LLAMA_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
LORA_TARGETS: dict[str, tuple[str, ...]] = {
    "t5": ("q", "k", "v", "o"),
    "opt": ("q_proj", "k_proj", "v_proj", "out_proj"),
}


def lora_targets_for(config: Any) -> tuple[str, ...]:
    """The default LoRA target layers of a checkpoint's language model."""
    text = getattr(config, "text_config", None)
    return LORA_TARGETS.get(getattr(text, "model_type", None), LLAMA_ATTENTION)


def spec_for(model_type: str) -> FamilySpec:
    try:
        return SPECS[model_type]
    except KeyError:
        raise KeyError(f"unsupported model family {model_type!r}; supported: {', '.join(sorted(SPECS))}") from None
