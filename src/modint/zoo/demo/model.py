"""The demo model's architecture, tokenizer corpus and the encoding of training examples."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from modint.data import facts
from modint.data.sample import OPTION_LETTERS, Sample
from modint.models.prompts import user_text
from modint.zoo.demo.config import DEMO_CHAT_TEMPLATE, DemoConfig
from modint.zoo.demo.data import Example, filler_sentence


def corpus_for_tokenizer(samples: list[Sample], rng: np.random.Generator) -> Iterator[str]:
    for s in samples:
        yield user_text(s) + " " + " ".join(s.options)
    for _ in range(3000):
        yield filler_sentence(rng)
    for pair in facts.CONCEPT_FACTS.values():
        yield " ".join(pair)
    yield " ".join(f"Which option is {c}?" for c in facts.SHAPES + facts.KB_COLOURS)


def build_demo(cfg: DemoConfig, tokenizer) -> tuple:
    from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    vision = CLIPVisionConfig(hidden_size=cfg.vision_hidden, intermediate_size=4 * cfg.vision_hidden,
                              num_hidden_layers=cfg.vision_layers, num_attention_heads=4,
                              image_size=cfg.image_size, patch_size=cfg.patch_size, projection_dim=cfg.vision_hidden)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=cfg.text_hidden, intermediate_size=3 * cfg.text_hidden,
                       num_hidden_layers=cfg.text_layers, num_attention_heads=4, num_key_value_heads=4,
                       max_position_embeddings=1024, pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       tie_word_embeddings=True)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=image_token_id,
                         vision_feature_layer=-1, vision_feature_select_strategy="default",
                         projector_hidden_act="gelu", tie_word_embeddings=True)
    torch.manual_seed(cfg.seed)
    model = LlavaForConditionalGeneration(config)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": cfg.image_size}, crop_size={"height": cfg.image_size, "width": cfg.image_size},
        do_center_crop=True, image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711])
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=cfg.patch_size,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=DEMO_CHAT_TEMPLATE)
    return model, processor


def encode_examples(processor, examples: list[Example]) -> dict[str, torch.Tensor]:
    """Inputs with labels only on the answer tokens (and the end-of-turn token), plus
    ``concept_targets``: per example, the first token of its concept, or -100 (see concept_loss)."""
    tok = processor.tokenizer
    texts, targets = [], []
    for ex in examples:
        content = ([{"type": "image"}] if ex.image is not None else []) + [{"type": "text", "text": ex.text}]
        prompt = processor.apply_chat_template([{"role": "user", "content": content}],
                                               add_generation_prompt=True, tokenize=False)
        target_ids = tok.encode(ex.target, add_special_tokens=False) + [tok.eos_token_id]
        texts.append(prompt + ex.target + tok.eos_token)
        targets.append(target_ids)
    images = [ex.image for ex in examples if ex.image is not None]
    tok.padding_side = "right"
    inputs = dict(processor(text=texts, images=images or None, padding=True, return_tensors="pt"))
    labels = torch.full_like(inputs["input_ids"], -100)
    lengths = inputs["attention_mask"].sum(1)
    for i, ids in enumerate(targets):
        end = int(lengths[i])
        got = inputs["input_ids"][i, end - len(ids):end].tolist()
        if got != ids:  # the answer must tokenise the same inside the sequence as alone
            raise RuntimeError(f"target tokens differ in context: {got} vs {ids}")
        labels[i, end - len(ids):end] = torch.tensor(ids)
    inputs["labels"] = labels
    inputs["answer_positions"] = lengths - torch.tensor([len(t) for t in targets]) - 1
    inputs["concept_targets"] = torch.tensor(
        [tok.encode(" " + ex.concept, add_special_tokens=False)[0] if ex.concept else -100 for ex in examples])
    ids = [inputs["input_ids"][i].tolist() for i in range(len(examples))]
    inputs["point_positions"] = [option_positions(tok, ids[i], ex.point) for i, ex in enumerate(examples)]
    # (first text token, letter token) of every option line: "B", ":", " purple"
    inputs["letter_links"] = [[(where[0], where[0] - 2) for where in
                               (option_positions(tok, ids[i], (letter, text)) for letter, text in
                                zip(OPTION_LETTERS, ex.choices)) if where]
                              for i, ex in enumerate(examples)]
    return inputs


def option_positions(tok, ids: list[int], point: tuple[str, str] | None) -> list[int] | None:
    """Token positions of the text of option line ``point`` = (letter, text) ("\nB: purple")
    in ``ids`` (its last occurrence), or None."""
    if point is None:
        return None
    letter, text = point
    line = tok.encode(f"\n{letter}: {text}", add_special_tokens=False)
    n_text = len(tok.encode(f" {text}", add_special_tokens=False))
    for start in range(len(ids) - len(line), -1, -1):
        if ids[start:start + len(line)] == line:
            return list(range(start + len(line) - n_text, start + len(line)))
    return None
