"""Tiny random models built from configs, with offline processors: for tests and for trying the
pipeline without weights. Seeded, so the same family and seed give the same weights."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from modint.models.tokenizer import train_bpe_tokenizer

TINY_IMAGE_SIZE = 32
TINY_PATCH = 8


def tiny_llava(seed: int = 0, image_size: int = TINY_IMAGE_SIZE, patch_size: int = TINY_PATCH,
               hidden: int = 32, layers: int = 2):
    """A LLaVA-1.5-architecture model (CLIP vision tower, MLP projector, Llama LM) of ~100k
    parameters, and its LlavaProcessor with a locally trained tokenizer."""
    from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    tokenizer = train_bpe_tokenizer()
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    vision = CLIPVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                              num_attention_heads=2, image_size=image_size, patch_size=patch_size,
                              projection_dim=hidden)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                       num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                       max_position_embeddings=2048, pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=image_token_id,
                         vision_feature_layer=-2, vision_feature_select_strategy="default",
                         projector_hidden_act="gelu")
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
        do_center_crop=True, image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711])
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch_size,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=tokenizer.chat_template)
    return model, processor


def tiny_llava_next(seed: int = 0, image_size: int = TINY_IMAGE_SIZE, patch_size: int = TINY_PATCH, hidden: int = 32,
                    layers: int = 2):
    """A LLaVA-NeXT (anyres tiling) model of the same tiny size; grid pinpoints at 1x1, 1x2, 2x1 tiles."""
    from transformers import (CLIPVisionConfig, LlamaConfig, LlavaNextConfig, LlavaNextForConditionalGeneration,
                              LlavaNextProcessor)
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    tokenizer = train_bpe_tokenizer()
    pinpoints = [[image_size, image_size], [image_size, 2 * image_size], [2 * image_size, image_size]]
    vision = CLIPVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                              num_attention_heads=2, image_size=image_size, patch_size=patch_size,
                              projection_dim=hidden)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                       num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                       max_position_embeddings=2048, pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    config = LlavaNextConfig(vision_config=vision, text_config=text,
                             image_token_id=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_layer=-2,
                             vision_feature_select_strategy="default", image_grid_pinpoints=pinpoints)
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(config).eval()
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
        image_grid_pinpoints=pinpoints, image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711])
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch_size,
                                   vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                   chat_template=tokenizer.chat_template)
    return model, processor


TINY_BUILDERS: dict[str, Callable] = {"llava": tiny_llava, "llava_next": tiny_llava_next}


def build_tiny(family: str, seed: int = 0):
    """(model, processor) for a transformers ``model_type``; KeyError lists the known ones."""
    try:
        builder = TINY_BUILDERS[family]
    except KeyError:
        raise KeyError(f"no tiny builder for family {family!r}; known: {', '.join(sorted(TINY_BUILDERS))}") from None
    return builder(seed=seed)


def save_tiny(family: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Write a tiny random model of ``family`` in the standard Hugging Face layout."""
    out = Path(out_dir)
    model, processor = build_tiny(family, seed=seed)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
